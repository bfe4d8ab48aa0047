package agent

// RequestResync asks the reconcile goroutine for a full resync now, the
// same pass the periodic routeRefreshInterval timer starts: every part is
// re-applied against the kernel. Requests made while one is pending
// coalesce.
func (a *Agent) RequestResync() {
	select {
	case a.resyncReq <- struct{}{}:
	default:
	}
}

// modelCopy returns a private copy of the model for one reconcile pass.
// The copy holds every change recorded so far, so it clears them.
func (a *Agent) modelCopy() *Model {
	a.dp.collectBeforeFirstPass()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.takeDirtyLocked()
	a.anyChange.Store(false)
	return a.model.clone()
}
