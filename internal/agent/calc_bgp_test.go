package agent

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/bgp"
)

// learned: n2's block via n2 (same subnet), n3's via 10.98.0.13 (another
// subnet), and a route outside every pool.
func bgpModel(pool Pool, synced bool) *Model {
	m := model(pool)
	m.BGP = BGPView{Enabled: true, Synced: synced, Learned: map[netip.Prefix]bgp.Learned{
		pfx("10.244.2.0/26"): {NextHop: ip("10.99.0.12")},
		pfx("10.244.3.0/26"): {NextHop: ip("10.98.0.13")},
		pfx("10.244.1.0/26"): {NextHop: ip("10.99.0.12")}, // our own block, reflected
		pfx("192.0.2.0/24"):  {NextHop: ip("10.99.0.1")},
		// Outside every pool but covering this node's address: never
		// installed over the host's own routes.
		pfx("0.0.0.0/0"):    {NextHop: ip("10.99.0.1")},
		pfx("10.99.0.0/24"): {NextHop: ip("10.99.0.1")},
	}}
	return m
}

func routeLines(d Desired) []string {
	var out []string
	for _, r := range d.Routes {
		out = append(out, r.String())
	}
	return out
}

func TestCalcBGPNoEncap(t *testing.T) {
	d := Calc(bgpModel(ipipPool(api.IPIPModeNever), false))
	want := []string{
		"blackhole 10.244.1.0/26 proto 80",
		"10.244.2.0/26 via 10.99.0.12 dev eth0 proto 12",
		"10.244.3.0/26 via 10.98.0.13 proto 12",
		"192.0.2.0/24 via 10.99.0.1 dev eth0 proto 12",
	}
	if got := routeLines(d); !slices.Equal(got, want) {
		t.Errorf("routes:\n%q\nwant\n%q", got, want)
	}
	if len(d.Degraded) != 0 {
		t.Errorf("degraded with BGP up: %q", d.Degraded)
	}
	if d.OwnBGPRoutes || slices.Contains(d.routeOwner().Protocols, BGPRouteProtocol) {
		t.Error("protocol 12 owned before BGP is synced")
	}
	if d := Calc(bgpModel(ipipPool(api.IPIPModeNever), true)); !slices.Contains(d.routeOwner().Protocols, BGPRouteProtocol) {
		t.Error("protocol 12 not owned once synced")
	}
	// Without BGP the cross-subnet block is degraded and protocol 12 is
	// owned (left-over routes are removed).
	m := bgpModel(ipipPool(api.IPIPModeNever), false)
	m.BGP.Enabled = false
	d = Calc(m)
	if !d.OwnBGPRoutes || len(d.Degraded) == 0 {
		t.Errorf("no BGP: own %v degraded %q", d.OwnBGPRoutes, d.Degraded)
	}
}

func TestCalcBGPIPIP(t *testing.T) {
	// This kernel has no IPIP, so tunl0 is computed as present here.
	for _, tc := range []struct {
		mode api.IPIPMode
		want []string
	}{
		{api.IPIPModeAlways, []string{
			"blackhole 10.244.1.0/26 proto 80",
			"10.244.2.0/26 via 10.99.0.12 dev tunl0 onlink proto 12",
			"10.244.3.0/26 via 10.98.0.13 dev tunl0 onlink proto 12",
			"192.0.2.0/24 via 10.99.0.1 dev eth0 proto 12",
		}},
		{api.IPIPModeCrossSubnet, []string{
			"blackhole 10.244.1.0/26 proto 80",
			"10.244.2.0/26 via 10.99.0.12 dev eth0 proto 12",
			"10.244.3.0/26 via 10.98.0.13 dev tunl0 onlink proto 12",
			"192.0.2.0/24 via 10.99.0.1 dev eth0 proto 12",
		}},
	} {
		d := Calc(bgpModel(ipipPool(tc.mode), true))
		if got := routeLines(d); !slices.Equal(got, tc.want) {
			t.Errorf("%s: routes:\n%q\nwant\n%q", tc.mode, got, tc.want)
		}
	}
	m := bgpModel(ipipPool(api.IPIPModeAlways), true)
	m.Host.IPIPUnsupported = true
	if got := routeLines(Calc(m)); len(got) != 2 {
		t.Errorf("IPIP unsupported: %q", got)
	}
}

func TestCalcBGPLeavesVXLAN(t *testing.T) {
	// VXLAN pools stay programmed from the datastore; learned paths inside
	// them are not installed.
	d := Calc(bgpModel(vxlanPool(api.VXLANModeAlways), true))
	for _, r := range d.Routes {
		if r.Protocol == BGPRouteProtocol && r.Dst.Addr().Is4() && pfx("10.244.0.0/16").Contains(r.Dst.Addr()) {
			t.Errorf("BGP route in a VXLAN pool: %s", r)
		}
	}
	if got := routeLines(d); !slices.Contains(got, "10.244.3.0/26 via 10.244.3.0 dev vxlan.calico onlink proto 80") {
		t.Errorf("VXLAN routes: %q", got)
	}
}

func TestBGPInputSkipsUnconfirmedAffinity(t *testing.T) {
	m := model(ipipPool(api.IPIPModeNever))
	m.BGP.Unconfirmed = map[netip.Prefix]bool{pfx("10.244.1.0/26"): true}
	a := &Agent{}
	in := a.bgpInput(m)
	for _, b := range in.Blocks {
		if b.CIDR == pfx("10.244.1.0/26") && b.Affinity != "" {
			t.Errorf("pending block keeps its affinity: %+v", b)
		}
		if b.CIDR == pfx("10.244.2.0/26") && b.Affinity != "n2" {
			t.Errorf("other node's block: %+v", b)
		}
	}
	if d := bgp.Calc(in); len(d.Originated) != 0 {
		t.Errorf("originated %+v", d.Originated)
	}
}

func TestCalcBGPDownIsDegraded(t *testing.T) {
	m := bgpModel(ipipPool(api.IPIPModeNever), false)
	m.BGP.Down, m.BGP.Learned = "not running: listen tcp 0.0.0.0:179: address already in use", nil
	d := Calc(m)
	if len(d.Degraded) != 1 || !strings.Contains(d.Degraded[0], "address already in use") {
		t.Errorf("degraded %q", d.Degraded)
	}
}

// TestCalcBGPIPv6: learned IPv6 paths in an IPv6 pool go via their next
// hop (on the node's subnet: dev eth0), outside every pool too, except a
// destination covering this node's IPv6 address; a path whose next hop
// is of the other family is ignored.
func TestCalcBGPIPv6(t *testing.T) {
	m := bgpModel(ipipPool(api.IPIPModeAlways), true)
	me := m.Nodes[m.NodeName]
	me.IPv6 = pfx("fd99::11/64")
	m.Nodes[m.NodeName] = me
	m.Pools["v6"] = Pool{Name: "v6", CIDR: pfx("fd00:244::/112"), IPIPMode: api.IPIPModeAlways}
	m.BGP.Learned = map[netip.Prefix]bgp.Learned{
		pfx("fd00:244::40/122"): {NextHop: ip("fd99::12")},
		pfx("2001:db8::/64"):    {NextHop: ip("fd99::1")},
		pfx("fd99::/64"):        {NextHop: ip("fd99::1")},
		pfx("fd00:244::80/122"): {NextHop: ip("10.99.0.12")},
	}
	var got []string
	for _, r := range Calc(m).Routes {
		if r.Dst.Addr().Is6() {
			got = append(got, r.String())
		}
	}
	want := []string{"2001:db8::/64 via fd99::1 dev eth0 proto 12", "fd00:244::40/122 via fd99::12 dev eth0 proto 12"}
	if !slices.Equal(got, want) {
		t.Errorf("IPv6 routes:\n%q\nwant\n%q", got, want)
	}
}
