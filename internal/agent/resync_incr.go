package agent

// A periodic resync (routeRefreshInterval, 90 s by default) re-applies the
// desired state to put back what was changed in the kernel behind the
// daemon's back; it is about the kernel, not the model. With nothing
// changed since the last pass it re-applies the last Calc's result
// (reconcileOnce's reuse), but after an incremental pass that result is
// gone (it no longer matches), so every resync copied the model and ran
// Calc over every node and block: at 1,000 nodes that was 80 % of the
// harness's CPU in its idle window (docs/scale.md, "What limits it" 5), a
// fixed O(N) cost per node every 90 s. The incremental calculator holds
// the same whole result (desired() equals Calc of its model:
// TestIncrMatchesCalc), so the resync takes that instead.
//
// Not with BGP: routes learned from peers are programmed by the fast
// path (bgp_fast.go) without the calculator, whose result would then
// lack them; those nodes still run Calc.

// keepIncrResult makes the incremental calculator's whole result and
// model the last Calc's, for a full pass with nothing changed to reuse.
// It must run before the pass drops the calculator.
func (a *Agent) keepIncrResult(full, changed bool) {
	dp := a.dp
	if !full || changed || dp.incr == nil || a.bgp.wanted {
		return
	}
	dp.calc, dp.calcModel, dp.calcOK = dp.incr.desired(), dp.incr.m, true
}
