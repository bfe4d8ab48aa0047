package agent

import (
	"context"
	"fmt"
	"time"
)

// Datastore liveness. The etcd watches resume by themselves after an
// outage, so nothing else in the daemon notices one: a stopped or
// partitioned etcd just goes quiet. The monitor probes the store
// (kv.Store.Probe, on this node's own key) every dsProbeInterval with a
// dsProbeTimeout deadline. On etcd the probe is a local count-only read
// that the member refuses while it has no leader, so it needs a working
// cluster, not just an open socket, without the quorum round a
// linearizable read costs (datastore/etcd probe.go). One failed probe
// marks the datastore lost: the daemon stops being ready (with the reason
// in /readiness and the control socket's status), logs one line, and the
// connected gauge drops to 0; the dataplane stays exactly as it is. The
// first good probe marks it back, logs one line, and wakes the reconcile
// and tunnel loops, so a pass or an address claim that failed during the
// outage is retried at once. It does not ask for a full calculation: the
// watches resume where they stopped and deliver what changed meanwhile
// as changes (a compacted revision is a relist, which is a full pass of
// its own). A full pass per recovery cost O(N) per node, and a process
// starved of CPU (1,000 simulated nodes on two cores) missed probe
// deadlines, recovered, and ran 1,000 full passes that starved it more.
const (
	dsProbeInterval = time.Second
	dsProbeTimeout  = 2 * time.Second
)

// dsHealth is the monitor's view, kept in statusState (under st.mu).
type dsHealth struct {
	checked bool // the startup or a probe has reached it
	lost    bool
	since   time.Time // when the current state began
	lastErr string
}

// datastoreMonitor probes until ctx ends.
func (a *Agent) datastoreMonitor(ctx context.Context) {
	key := prefixNodes + a.cfg.NodeName
	t := time.NewTicker(dsProbeInterval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, dsProbeTimeout)
		err := a.store.Probe(pctx, key)
		cancel()
		if ctx.Err() != nil {
			return
		}
		a.noteDatastore(err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// noteDatastore records one probe's outcome, logging and signalling only
// on a change of state.
func (a *Agent) noteDatastore(err error) {
	now := time.Now()
	s := &a.st
	s.mu.Lock()
	was := s.ds
	switch {
	case err != nil && !was.lost:
		s.ds = dsHealth{checked: true, lost: true, since: now, lastErr: err.Error()}
	case err != nil:
		s.ds.lastErr = err.Error()
	case was.lost || !was.checked:
		s.ds = dsHealth{checked: true, since: now}
	}
	s.mu.Unlock()
	// The logger is made only to log: the probe runs every second on
	// every node, and nearly always nothing changes.
	switch {
	case err == nil && !was.checked:
		a.met.dsConnected.Set(1)
	case err != nil && !was.lost:
		a.met.dsConnected.Set(0)
		a.log.With("component", "datastore").Error("datastore unreachable; not ready, keeping the dataplane as it is", "err", err)
	case err == nil && was.lost:
		a.met.dsConnected.Set(1)
		a.log.With("component", "datastore").Info("datastore reachable again; ready once the dataplane is in step", "outage", now.Sub(was.since).Round(time.Millisecond))
		a.wake(true, false)
	}
}

// datastoreReason says why the daemon is not ready because of the
// datastore ("" when it is reachable); st.mu is held.
func (s *statusState) datastoreReason(now time.Time) string {
	if !s.ds.lost {
		return ""
	}
	return fmt.Sprintf("datastore unreachable for %s: %s", now.Sub(s.ds.since).Round(time.Second), s.ds.lastErr)
}
