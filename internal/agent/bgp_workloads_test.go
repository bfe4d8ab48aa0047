package agent

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/bgp"
	"github.com/onecalico/calico/internal/dataplane/ifaces"
)

// TestLocalWorkloadsForBGP: the speaker gets this node's endpoints (with
// labels, interface and first address of each family) only while a
// BGPPeer selects local workloads, and the interface routes (connected
// subnets of up interfaces, less loopback and link-local, plus the
// workload routes) only once the interfaces were scanned.
func TestLocalWorkloadsForBGP(t *testing.T) {
	m := model(vxlanPool(api.VXLANModeNever))
	m.WEPs["w1"] = WEP{Node: "n1", Interface: "cali1", Labels: map[string]string{"role": "peer"},
		IPs: []netip.Prefix{pfx("fd00:244::1/128"), pfx("10.244.1.5/32"), pfx("10.244.1.6/32")}}
	m.WEPs["w2"] = WEP{Node: "n2", Interface: "cali2", IPs: []netip.Prefix{pfx("10.244.2.5/32")}}
	if got := localWorkloads(m); got != nil {
		t.Errorf("without a localWorkloadSelector peer: %+v", got)
	}
	m.BGP.Peers = map[string]*api.BGPPeer{"p": {Spec: api.BGPPeerSpec{LocalWorkloadSelector: "role == 'peer'", ASNumber: 65401}}}
	got := localWorkloads(m)
	if len(got) != 1 || got[0].Name != "w1" || got[0].Interface != "cali1" || got[0].IPv4 != netip.MustParseAddr("10.244.1.5") ||
		got[0].IPv6 != netip.MustParseAddr("fd00:244::1") || got[0].Labels["role"] != "peer" {
		t.Errorf("local workloads %+v", got)
	}
	pa := peeringAddrs([]bgp.WorkloadAddr{{Interface: "cali1", Addr: pfx("169.254.0.179/32")}, {Interface: "cali1", Addr: pfx("fd12::1/128")}})
	if len(pa) != 1 || len(pa["cali1"]) != 2 || peeringAddrs(nil) != nil {
		t.Errorf("peering addresses %v", pa)
	}

	cr := connectedRoutes([]ifaces.Interface{
		{Name: "lo", Up: true, Addrs: []netip.Prefix{pfx("127.0.0.1/8"), pfx("::1/128")}},
		{Name: "eth0", Up: true, Addrs: []netip.Prefix{pfx("10.99.0.11/24"), pfx("fe80::1/64")}},
		{Name: "eth1", Up: false, Addrs: []netip.Prefix{pfx("10.98.0.11/24")}},
	})
	if want := []bgp.IfaceRoute{{Prefix: pfx("10.99.0.0/24"), Interface: "eth0", Connected: true}}; !slices.Equal(cr, want) {
		t.Errorf("connected routes %+v", cr)
	}
	a := &Agent{bgp: &bgpAgent{}}
	if a.ifaceRoutes(m) != nil {
		t.Error("interface routes before a scan")
	}
	a.bgp.ifaces.connected = cr
	ir := a.ifaceRoutes(m)
	if len(ir) != 4 || ir[1] != (bgp.IfaceRoute{Prefix: pfx("fd00:244::1/128"), Interface: "cali1"}) {
		t.Errorf("interface routes %+v", ir)
	}
	if !needIfaceRoutes(map[string]*api.BGPFilterSpec{"f": {ImportV6: []api.BGPFilterRule{{Interface: "eth*", Action: api.BGPFilterReject}}}}) ||
		needIfaceRoutes(map[string]*api.BGPFilterSpec{"f": {ImportV6: []api.BGPFilterRule{{Action: api.BGPFilterReject}}}}) {
		t.Error("needIfaceRoutes")
	}
}
