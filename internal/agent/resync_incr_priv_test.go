package agent_test

import (
	"net/netip"
	"testing"
)

// TestPrivilegedResyncAfterIncrementalPasses: once remote changes have
// been followed incrementally (so the resync re-applies the incremental
// calculator's result, not a Calc's), the periodic resync still repairs
// drift, the routes the incremental passes added included.
func TestPrivilegedResyncAfterIncrementalPasses(t *testing.T) {
	lab, n1, a := resyncLab(t)
	want := []string{"blackhole 10.244.1.0/26 proto 80", "10.244.2.0/26 via 10.244.2.0 dev vxlan.calico onlink proto 80"}
	waitRoutes(t, n1, want...)
	// Two remote changes, each followed incrementally (the first one
	// seeds the calculator from the last full pass).
	for i, b := range []string{"10.244.3.0", "10.244.4.0"} {
		name := []string{"n3", "n4"}[i]
		lab.PutNode(name, netip.MustParsePrefix("10.99.0."+[]string{"13", "14"}[i]+"/24"), addr(b))
		lab.ClaimBlock(name, addr(b))
		want = append(want, b+"/26 via "+b+" dev vxlan.calico onlink proto 80")
		waitRoutes(t, n1, want...)
	}
	run(t, n1.NS, "ip", "route", "del", "10.244.4.0/26")
	run(t, n1.NS, "ip", "route", "del", "10.244.2.0/26")
	run(t, n1.NS, "ip", "route", "add", "10.77.0.0/24", "via", "10.99.0.1", "proto", "80")
	run(t, n1.NS, "ip", "neigh", "del", "10.244.4.0", "dev", "vxlan.calico")
	waitRoutes(t, n1, want...)
	waitOutput(t, n1.NS, "10.244.4.0 lladdr", "ip", "neigh", "show", "dev", "vxlan.calico")
	if err := a.Stop(); err != nil {
		t.Errorf("agent ended with %v", err)
	}
}
