package agent

import (
	"net/netip"
	"slices"
	"time"

	"github.com/onecalico/calico/internal/dataplane/route"
	"github.com/onecalico/calico/internal/dataplane/tunnel"
)

// VTEPChanger is a Kernel that also changes VTEPs by delta, as
// ApplyRouteChanges does routes: set are added or replaced, gone (what
// an earlier call set) removed unless set has their tunnel address. The
// counted kernel has it; without it an incremental pass syncs the whole
// list (SyncVTEPs).
type VTEPChanger interface {
	ApplyVTEPChanges(device string, gone, set []tunnel.VTEP) error
}

// VXLANFilterChanger is a VXLAN filter applier that also takes the peers
// that came and went (the counted kernel has it; nft.VXLANFilterApplier
// diffs the whole list itself).
type VXLANFilterChanger interface {
	ApplyPeerChanges(gone, added []netip.Addr) error
}

// reconcileIncr runs a signal's pass with the incremental calculator
// when it can (done); ok is false when the apply failed (the calculator
// is dropped, so the retry is a full pass). It cannot when no calculator
// is seeded, something global changed that it does not follow
// (incr_global.go), or the host facts changed.
func (a *Agent) reconcileIncr() (ok, done bool) {
	dp := a.dp
	in, ok := a.incrInput()
	if !ok {
		return false, false
	}
	ic := dp.incr
	start := time.Now()
	host := dp.host
	if err := dp.refreshHost(ic.m, false); err != nil || dp.host != host || !ic.globalStep(&in) {
		dp.dropIncr()
		return false, false
	}
	res, ok := ic.update(in)
	if !ok {
		dp.last.vtepsOK = false // the list is half changed
		dp.dropIncr()
		return false, false
	}
	a.met.reconcile.WithLabelValues("calc").Observe(time.Since(start).Seconds())
	// The last Calc's model is the calculator's now, and its result
	// stale: drop it (a full pass computes anew).
	dp.calc, dp.calcOK = Desired{}, false
	d := ic.pass()
	var ar applyResult
	dp.applyIncr(d, res, &ar)
	if len(ar.errs) == 0 {
		ic.commit(res)
		d.Degraded = ic.degraded
	} else {
		dp.last.routesOK = false // the next full pass reads the kernel's routes
		dp.dropIncr()
	}
	a.applyPolicy(&ar, false)
	a.finishPass(d, ic.m.Nodes[ic.m.NodeName], ar, false, time.Since(start), len(ic.routes))
	return len(ar.errs) == 0, true
}

// incrInput takes the pass's dirty items into the calculator, seeding it
// first from the last full pass if need be; false when the pass must be
// a full one (something global changed, or there is no calculator).
func (a *Agent) incrInput() (incrInput, bool) {
	dp := a.dp
	if dp.incr == nil && dp.seed == nil {
		return incrInput{}, false
	}
	a.mu.Lock()
	dirty := a.takeDirtyLocked()
	global := dirty.global || a.anyChange.Swap(false)
	a.mu.Unlock()
	if global {
		dp.dropIncr() // before seeding: a global pass would drop it at once
		return incrInput{}, false
	}
	if dp.incr == nil && dp.calcOK && dp.calcModel == dp.seed {
		dp.incr = newIncr(dp.seed, dp.calc)
	}
	dp.seed = nil
	if dp.incr == nil {
		return incrInput{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return dp.incr.pull(a.model, dirty), true
}

// dropIncr discards the calculator (the next pass is a full Calc, which
// seeds a new one), first writing back the routes it applied.
func (dp *dataplane) dropIncr() {
	dp.seed = nil
	if dp.incr != nil && dp.routesStale {
		dp.last.routes = dp.incr.sortedRoutes()
	}
	if dp.incr != nil && dp.vtepsStale {
		dp.last.vteps = slices.Clone(dp.incr.vteps)
	}
	dp.incr, dp.routesStale, dp.vtepsStale = nil, false, false
}

// applyIncr applies an incremental pass: the global parts when they
// changed (applyGlobal), this node's workloads, the VTEPs (and the VXLAN
// peer filter) and the routes that changed. Everything else is as the
// last full pass left it.
func (dp *dataplane) applyIncr(d Desired, res incrResult, ar *applyResult) {
	timed := func(part string, f func()) {
		t := time.Now()
		f()
		dp.a.met.reconcile.WithLabelValues(part).Observe(time.Since(t).Seconds())
	}
	if res.global {
		dp.applyGlobal(d, ar, timed)
	}
	if res.local {
		dp.workloads(d, false, ar, timed)
	}
	if res.vteps {
		dp.changeVXLANFilter(d, res, ar, timed)
		timed("vteps", func() { dp.changeVTEPs(d, res, ar) })
	}
	prev, want := routeDelta(res.routes)
	if len(prev)+len(want) == 0 {
		return
	}
	timed("routes", func() {
		r, err := dp.k.ApplyRouteChanges(d.routeOwner(), prev, want)
		ar.routeChanges = r.Added + r.Replaced + r.Deleted
		dp.a.met.routeChanges.Add(float64(ar.routeChanges))
		if err != nil {
			dp.last.routesOK = false
			ar.fail("routes", err, dp)
			return
		}
		// The calculator's routes are the applied ones until dropIncr.
		dp.routesStale, dp.last.routes = true, nil
	})
}

// changeVXLANFilter sends the filter only the peers that came and went
// when its applier takes them (else applyVXLANFilter compares and sends
// the whole list). The filter's recorded list is then stale: the next
// full pass finds it different and rewrites it whole.
func (dp *dataplane) changeVXLANFilter(d Desired, res incrResult, ar *applyResult, timed func(string, func())) {
	p := dp.vxf
	var fc VXLANFilterChanger
	if p != nil {
		fc, _ = p.applier.(VXLANFilterChanger)
	}
	if fc == nil || !p.present || vxlanFilterState(d) != DevicePresent || d.VXLANV6State == DevicePresent {
		dp.applyVXLANFilter(d, false, ar, timed)
		return
	}
	timed("vxlan-filter", func() {
		if err := fc.ApplyPeerChanges(nodeIPs(res.vtepGone), nodeIPs(res.vtepSet)); err != nil {
			p.present = false
			ar.fail("vxlan-filter", err, dp)
			return
		}
		p.want.Peers = nil
	})
}

func nodeIPs(vs []tunnel.VTEP) []netip.Addr {
	out := make([]netip.Addr, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.NodeIP)
	}
	return out
}

func (dp *dataplane) changeVTEPs(d Desired, res incrResult, ar *applyResult) {
	l := &dp.last
	l.vtepsOK = false
	var err error
	if vc, ok := dp.k.(VTEPChanger); ok {
		err = vc.ApplyVTEPChanges(VXLANDevice, res.vtepGone, res.vtepSet)
	} else {
		err = dp.k.SyncVTEPs(VXLANDevice, d.VTEPs)
	}
	if err != nil {
		ar.fail("vteps", err, dp)
		return
	}
	// The calculator's list is the applied one until dropIncr.
	l.vteps, l.vtepsOK, dp.vtepsStale = nil, true, true
}

// routeDelta lists the routes that went or changed (prev) and the ones
// that came or changed (want).
func routeDelta(chs []routeChange) (prev, want []route.Route) {
	for _, ch := range chs {
		if ch.had == ch.has && ch.old == ch.new {
			continue // only the skip notes changed
		}
		if ch.had {
			prev = append(prev, ch.old)
		}
		if ch.has {
			want = append(want, ch.new)
		}
	}
	return prev, want
}
