package agent

import (
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/bgp"
	"github.com/onecalico/calico/internal/dataplane/route"
)

// The fast path's delta, applied to the routes of a full Calc, gives the
// routes a full Calc computes with the changed learned paths.
func TestLearnedDeltaMatchesCalc(t *testing.T) {
	for _, mode := range []api.IPIPMode{api.IPIPModeNever, api.IPIPModeAlways, api.IPIPModeCrossSubnet} {
		m := bgpModel(ipipPool(mode), true)
		d := Calc(m)
		f := learnedFast{routes: map[netip.Prefix]route.Route{}}
		for _, r := range d.Routes {
			f.routes[r.Dst] = r
		}
		fm := *m
		fm.BGP.Learned = nil
		f.m, f.ipip, f.pools = &fm, d.IPIPState, poolsBySpecificity(m.Pools)
		f.local = map[netip.Prefix]bool{pfx("10.244.7.9/32"): true}

		next := map[netip.Prefix]bgp.Learned{}
		for p, l := range m.BGP.Learned {
			next[p] = l
		}
		delete(next, pfx("10.244.2.0/26"))                                  // withdrawn
		next[pfx("10.244.3.0/26")] = bgp.Learned{NextHop: ip("10.99.0.14")} // moved to this subnet
		next[pfx("10.244.5.0/26")] = bgp.Learned{NextHop: ip("10.98.0.15")} // new
		next[pfx("10.244.7.9/32")] = bgp.Learned{NextHop: ip("10.99.0.12")} // a local workload's address
		next[pfx("10.244.1.0/26")] = bgp.Learned{NextHop: ip("10.99.0.13")} // our own block again
		for _, p := range []string{"10.244.2.0/26", "10.244.3.0/26", "10.244.5.0/26", "10.244.7.9/32", "10.244.1.0/26", "10.9.9.0/24"} {
			l, ok := next[pfx(p)]
			f.buf = append(f.buf, bgp.Change{Prefix: pfx(p), Learned: l, Gone: !ok})
		}
		prev, want, ok := f.delta()
		if !ok {
			t.Fatalf("%s: delta refused", mode)
		}
		for _, r := range prev {
			delete(f.routes, r.Dst)
		}
		for _, r := range want {
			f.routes[r.Dst] = r
		}
		got := slices.Collect(maps.Values(f.routes))
		route.Sort(got)

		m2 := bgpModel(ipipPool(mode), true)
		m2.BGP.Learned = next
		m2.WEPs["local"] = WEP{Node: m2.NodeName, IPs: []netip.Prefix{pfx("10.244.7.9/32")}}
		wantRoutes := Calc(m2).Routes
		if !slices.Equal(got, wantRoutes) {
			t.Errorf("%s: fast path routes\n%v\nfull calc\n%v", mode, got, wantRoutes)
		}
	}
}

// A change at a destination the datastore routes is left to a full pass.
func TestLearnedDeltaRefusesDerivedRoute(t *testing.T) {
	m := bgpModel(ipipPool(api.IPIPModeNever), true)
	d := Calc(m)
	f := learnedFast{m: m, ipip: d.IPIPState, pools: poolsBySpecificity(m.Pools), routes: map[netip.Prefix]route.Route{}}
	for _, r := range d.Routes {
		f.routes[r.Dst] = r
	}
	derived := route.Route{Dst: pfx("10.244.2.0/26"), Gw: ip("10.99.0.12"), Protocol: RouteProtocol}
	f.routes[derived.Dst] = derived
	f.buf = []bgp.Change{{Prefix: derived.Dst, Learned: bgp.Learned{NextHop: ip("10.99.0.13")}}}
	if _, _, ok := f.delta(); ok {
		t.Error("delta replaced a route from the datastore")
	}
}
