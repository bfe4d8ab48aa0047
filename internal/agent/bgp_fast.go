package agent

import (
	"net/netip"
	"time"

	"github.com/onecalico/calico/internal/bgp"
	"github.com/onecalico/calico/internal/dataplane/route"
)

// The learned-route fast path. A change of learned best paths alone (no
// datastore change, no resync, the last pass complete) is programmed as
// a delta: only the changed destinations are computed, with the model of
// the last complete pass, and written in one batch. A full Calc and diff
// per UPDATE would cost O(routes) each time, which dominates when
// thousands of routes arrive in many UPDATEs.

// learnedFast is the fast path's state; the reconcile goroutine owns it.
type learnedFast struct {
	m     *Model // the model of the last complete pass (nil: no fast path)
	ipip  DeviceState
	owner route.Owner
	local map[netip.Prefix]bool // local workloads' addresses (the CNI plugin's routes)
	pools []Pool                // poolsBySpecificity(m.Pools)
	// routes is dp.last.routes by destination, built on first use;
	// stale says it changed since dp.last.routes was written.
	routes map[netip.Prefix]route.Route
	stale  bool
	buf    []bgp.Change
}

// needCalc marks that something besides learned routes changed: the next
// pass is a full Calc. Called by signal.
func (a *Agent) needCalc() {
	if a.bgp != nil {
		a.bgp.recalc.Store(true)
	}
}

// learnedOnly reports whether the next pass only programs learned-route
// changes (the fast path applies and nothing else asked for a full pass).
// Such a pass does not wait for the throttle that spaces out full passes:
// when a session comes up, its Established signal starts a full pass that
// may take tens of milliseconds with thousands of routes arriving, and the
// throttle would then hold every learned-route pass for up to 100 ms.
func (a *Agent) learnedOnly(full bool) bool {
	b := a.bgp
	return !full && b != nil && !b.recalc.Load() && b.fast.m != nil && a.dp.last.routesOK
}

// reconcileLearned programs the learned-route changes since the last
// pass when the fast path applies (done); ok is false when the apply
// failed (the retry is a full pass).
func (a *Agent) reconcileLearned() (ok, done bool) {
	if !a.learnedOnly(false) {
		return false, false
	}
	b, dp := a.bgp, a.dp
	start := time.Now()
	f := &b.fast
	f.buf = b.speaker.TakeChanges(f.buf[:0])
	if len(f.buf) == 0 {
		return true, true
	}
	if f.routes == nil {
		f.routes = make(map[netip.Prefix]route.Route, len(dp.last.routes))
		for _, r := range dp.last.routes {
			f.routes[r.Dst] = r
		}
	}
	prev, want, ok := f.delta()
	if !ok {
		// A destination the datastore also routes: the full pass decides
		// (it reads every learned path, so nothing taken here is lost).
		b.recalc.Store(true)
		return false, false
	}
	res, err := dp.k.ApplyRouteChanges(f.owner, prev, want)
	n := res.Added + res.Replaced + res.Deleted
	a.met.routeChanges.Add(float64(n))
	if err != nil {
		a.log.Error("learned routes apply failed", "component", "dataplane", "err", err)
		a.met.applyErrs.WithLabelValues("routes").Inc()
		dp.last.routesOK = false
		f.m, f.routes, f.stale = nil, nil, false
		return false, true
	}
	for _, r := range prev {
		delete(f.routes, r.Dst)
	}
	for _, r := range want {
		f.routes[r.Dst] = r
	}
	f.stale = true
	// The last Calc's routes no longer match the kernel: a resync must
	// compute them anew rather than re-apply them (reconcileOnce's reuse).
	dp.calcOK = false
	a.met.routes.Set(float64(len(f.routes)))
	a.met.reconcile.WithLabelValues("learned").Observe(time.Since(start).Seconds())
	s := &a.st
	s.mu.Lock()
	s.routes, s.changes, s.lastApply = len(f.routes), s.changes+int64(n), time.Now()
	s.mu.Unlock()
	return true, true
}

// delta computes, for the taken changes, the routes they replace (prev)
// and the routes they want. ok is false when a learned route would
// replace one the datastore gives (the full pass decides which wins).
func (f *learnedFast) delta() (prev, want []route.Route, ok bool) {
	c := calc{m: f.m, me: f.m.Nodes[f.m.NodeName]}
	c.d.IPIPState = f.ipip
	prev, want = make([]route.Route, 0, len(f.buf)), make([]route.Route, 0, len(f.buf))
	for _, ch := range f.buf {
		var r route.Route
		use := false
		if !ch.Gone && !f.local[ch.Prefix] {
			r, use = c.learnedRoute(f.pools, ch.Prefix, ch.Learned)
		}
		old, had := f.routes[ch.Prefix]
		if had && old.Protocol != BGPRouteProtocol {
			if use {
				return nil, nil, false // a learned route would shadow it
			}
			continue // not ours to change (such as this node's own block)
		}
		if had {
			prev = append(prev, old)
		}
		if use {
			want = append(want, r)
		}
	}
	return prev, want, true
}

// beginFullPass is called by a full (non-fast) pass before it reads the
// model: later signals ask for another one, and the fast path's route
// changes are written back to dp.last.routes (which the pass diffs
// against).
func (a *Agent) beginFullPass() {
	b := a.bgp
	if b == nil {
		return
	}
	b.recalc.Store(false)
	f := &b.fast
	if f.stale && a.dp.last.routesOK {
		rs := make([]route.Route, 0, len(f.routes))
		for _, r := range f.routes {
			rs = append(rs, r)
		}
		route.Sort(rs)
		a.dp.last.routes = rs
	}
	f.routes, f.stale = nil, false
}

// endFullPass keeps what the fast path needs from a complete pass (ok:
// every part applied) with m and d.
func (a *Agent) endFullPass(m *Model, d Desired, ok bool) {
	b := a.bgp
	if b == nil {
		return
	}
	f := &b.fast
	if !ok || !m.BGP.Enabled {
		f.m = nil
		return
	}
	m.BGP.Learned = nil // the fast path reads changes only
	local := map[netip.Prefix]bool{}
	for _, w := range m.WEPs {
		if w.Node == m.NodeName {
			for _, ip := range w.IPs {
				local[netip.PrefixFrom(ip.Addr(), ip.Addr().BitLen())] = true
			}
		}
	}
	f.m, f.ipip, f.owner, f.local, f.pools = m, d.IPIPState, d.routeOwner(), local, poolsBySpecificity(m.Pools)
}
