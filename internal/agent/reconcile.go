package agent

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// reconcileLoop is the only goroutine that touches the kernel. It waits
// for a signal (a datastore change), the periodic full resync or a retry
// after a failure; it does nothing until every watched prefix has
// delivered its first snapshot, and its first apply is a full one.
//
// Signals that arrive while it works coalesce into one pending signal, so
// a burst of datastore events costs one extra pass, not one per event.
// A signal that comes sooner after a pass than passGap times that pass's
// length waits out the rest (see passGap).
func (a *Agent) reconcileLoop(ctx context.Context) {
	log := a.log.With("component", "dataplane")
	resync := time.NewTimer(time.Hour)
	resync.Stop()
	defer resync.Stop()
	var retry <-chan time.Time
	backoff := 100 * time.Millisecond
	full := true
	changed := true // the model may differ from the one of the last Calc
	heartbeat := time.NewTicker(heartbeatInterval)
	defer heartbeat.Stop()
	var next time.Time        // no signal-started pass before this
	var hold <-chan time.Time // fires at next when a signal waits for it
	a.beat()
	for {
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.C:
			a.beat()
			continue
		case <-a.trigger:
			changed = true
			if wait := time.Until(next); wait > 0 && !a.learnedOnly(full) {
				if hold == nil {
					hold = time.After(wait)
				}
				continue
			}
		case <-hold:
		case <-resync.C:
			full = true
		case <-a.resyncReq:
			full = true
		case <-retry:
			changed = true
		}
		a.beat()
		retry, hold = nil, nil
		if !a.allSynced() {
			continue
		}
		start := time.Now()
		ok, interval, calc := a.reconcileOnce(full, changed)
		if d := time.Since(start); calc && d >= minThrottledPass {
			next = time.Now().Add(min(passGap*d, maxPassWait))
		}
		if !ok {
			log.Debug("apply incomplete; retrying", "retry_in", backoff)
			retry = time.After(backoff)
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		changed = false
		if full {
			full = false
			if interval > 0 {
				resync.Reset(interval)
			}
		}
	}
}

// passGap bounds the share of a core the reconcile loop takes while the
// datastore keeps changing: after a pass of length d, a signal waits
// until passGap*d after its end (maxPassWait at most), so at most
// 1/(passGap+1) of the time goes to passes (a fifth) unless passes take
// longer than 25 ms. A signal after a quiet spell runs at once, so
// a single change is not delayed, and passes shorter than
// minThrottledPass (a small cluster's) are never held back. It matters
// with many nodes: a pass is a full calculation over every node and block
// (about 3 ms with 1,000 nodes), and a cold start of the cluster sends
// every node thousands of events (docs/scale.md). Passes that only
// program BGP-learned changes (reconcileLearned) cost what changed, not
// what the cluster holds, and neither count nor wait: with them throttled
// 10,000 learned routes took 290-375 ms to the kernel instead of 240.
const (
	passGap          = 4
	maxPassWait      = 100 * time.Millisecond
	minThrottledPass = time.Millisecond
)

// heartbeatInterval is how often the idle reconcile loop reports in; the
// daemon is not live when it has not reported for livenessTimeout.
const (
	heartbeatInterval = 10 * time.Second
	livenessTimeout   = 90 * time.Second
)

func (a *Agent) beat() {
	a.st.mu.Lock()
	a.st.beat = time.Now()
	a.st.mu.Unlock()
}

// reconcileOnce computes and applies the desired state once (twice when
// the apply learns a kernel fact that changes it). It reports whether every
// part applied, and the resync interval in force.
//
// Without changed (no signal since the last successful pass: a periodic or
// requested resync) and with the same host facts, the desired state of the
// last Calc is applied again instead of copying the model and computing it
// anew: with thousands of remote nodes that is a good part of a resync's
// cost, and a resync is about the kernel drifting, not the model (every
// model change signals).
func (a *Agent) reconcileOnce(full, changed bool) (ok bool, interval time.Duration, calc bool) {
	if !full {
		if ok, done := a.reconcileLearned(); done {
			return ok, 0, false
		}
		if ok, done := a.reconcileIncr(); done {
			return ok, 0, true
		}
	}
	log := a.log.With("component", "dataplane")
	start := time.Now()
	dp := a.dp
	a.keepIncrResult(full, changed)
	dp.dropIncr()
	a.beginFullPass()
	var m *Model
	var d Desired
	var res applyResult
	var me Node
	for pass := 0; pass < 3; pass++ {
		reuse := pass == 0 && !changed && dp.calcOK
		m = dp.calcModel
		if !reuse {
			// Let the last Calc's model and result go before copying the
			// model anew: holding both at once was the daemon's memory
			// peak with 10,000 remote nodes.
			dp.calc, dp.calcModel, dp.calcOK = Desired{}, nil, false
			m = a.modelCopy()
		}
		host := dp.host
		if err := dp.refreshHost(m, full); err != nil {
			log.Error("read host interfaces", "err", err)
		}
		if reuse && dp.host != host {
			reuse, m = false, a.modelCopy()
		}
		me = m.Nodes[m.NodeName]
		interval = m.Felix.RouteRefreshInterval
		if reuse {
			d = dp.calc
		} else {
			m.Host = dp.host
			m.BGP = a.bgpView(m.BGP)
			t := time.Now()
			d = Calc(m)
			a.met.reconcile.WithLabelValues("calc").Observe(time.Since(t).Seconds())
			dp.calc, dp.calcModel, dp.calcOK = d, m, true
		}
		res = dp.apply(d, full || pass > 0)
		if !res.recalc {
			break
		}
	}
	a.applyPolicy(&res, full)
	ok = len(res.errs) == 0
	a.endFullPass(m, d, ok)
	if ok {
		// The calculator is seeded from this pass when a pass first needs
		// it: a burst of global changes does not pay for it every time.
		dp.seed = m
	}
	routes := len(dp.last.routes)
	a.finishPass(d, me, res, full, time.Since(start), routes)
	return ok, interval, true
}

// finishPass reports a pass (full, or incremental with d.Routes nil):
// metrics, degradations, status and readiness. routes is the number of
// desired routes.
func (a *Agent) finishPass(d Desired, me Node, res applyResult, full bool, elapsed time.Duration, routes int) {
	log := a.log.With("component", "dataplane")
	a.met.reconcile.WithLabelValues("total").Observe(elapsed.Seconds())
	errs := make([]string, 0, len(res.errs))
	for _, e := range res.errs {
		errs = append(errs, e.Error())
	}
	if err := errors.Join(res.errs...); err != nil {
		log.Error("dataplane apply failed", "err", err)
	}
	dp := a.dp
	if dp.last.routesOK {
		a.met.routes.Set(float64(routes))
	}
	if dp.last.vtepsOK || d.VXLANState != DevicePresent {
		a.met.vteps.Set(float64(len(d.VTEPs))) // what was applied
	}
	a.met.localWorkloads.Set(float64(d.LocalWorkloads))

	s := &a.st
	s.mu.Lock()
	if !slices.Equal(s.degraded, d.Degraded) {
		logDegraded(log, s.degraded, d.Degraded)
	}
	s.degraded, s.errors = d.Degraded, errs
	if me.IPv4.IsValid() {
		s.ipv4 = me.IPv4.String()
	}
	s.lastApply = time.Now()
	s.local, s.routes, s.vteps = d.LocalWorkloads, routes, len(d.VTEPs)
	s.status6(me, d)
	s.changes += int64(res.routeChanges)
	becameReady := false
	if len(errs) == 0 && full && !s.ready {
		s.ready, becameReady = true, true
	}
	s.mu.Unlock()
	if becameReady {
		close(a.readyCh)
		log.Info("first dataplane apply complete; ready", "elapsed", elapsed, "since_start", time.Since(a.started),
			"routes", routes, "vteps", len(d.VTEPs), "local_workloads", d.LocalWorkloads)
	} else {
		log.Debug("applied", "full", full, "incremental", d.Routes == nil, "elapsed", elapsed, "route_changes", res.routeChanges)
	}
}

// logDegraded logs the degradations new in now. One whose reason was
// already reported, with other destinations (a line listing skipped
// routes changes with every node that comes or goes), is logged at debug
// level: at a cold start of many nodes such a line would otherwise be
// logged again with every pass.
func logDegraded(log *slog.Logger, before, now []string) {
	reason := func(x string) string {
		if i := strings.LastIndex(x, ": "); i > 0 {
			return x[:i]
		}
		return x
	}
	for _, x := range now {
		if slices.Contains(before, x) {
			continue
		}
		if slices.ContainsFunc(before, func(b string) bool { return reason(b) == reason(x) }) {
			log.Debug("degraded (changed)", "detail", x)
			continue
		}
		log.Warn("degraded", "detail", x)
	}
}
