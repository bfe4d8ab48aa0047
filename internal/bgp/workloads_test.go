package bgp

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/api"
)

// TestCalcLocalWorkloads: a localWorkloadSelector BGPPeer peers with the
// selected workloads on this node, per family, from the default
// BGPConfiguration's peering address, which goes on the workload's
// interface; a node outside the peer's nodeSelector has no such session;
// without a peering address of a family it is reported.
func TestCalcLocalWorkloads(t *testing.T) {
	nodes := threeNodes()
	n1 := nodes["n1"]
	n1.IPv6 = pfx("fd00:99::11/64")
	nodes["n1"] = n1
	wls := []Workload{
		{Name: "a", Labels: map[string]string{"role": "peer"}, Interface: "caliA", IPv4: netip.MustParseAddr("10.244.1.2"), IPv6: netip.MustParseAddr("fd00:244::2")},
		{Name: "b", Labels: map[string]string{"role": "web"}, Interface: "caliB", IPv4: netip.MustParseAddr("10.244.1.3")},
	}
	peers := map[string]*api.BGPPeer{"child": {ObjectMeta: api.ObjectMeta{Name: "child"}, Spec: api.BGPPeerSpec{
		LocalWorkloadSelector: "role == 'peer'", ASNumber: 65401, NodeSelector: "rack == 'a'"}}}
	in := &Input{NodeName: "n1", Nodes: nodes, Peers: peers, Workloads: wls,
		Global: &api.BGPConfigurationSpec{LocalWorkloadPeeringIPV4: "169.254.0.179", NodeToNodeMeshEnabled: ptr(false)}}
	d := Calc(in)
	ps := peerKeys(d)
	p, ok := ps["10.244.1.2"]
	if len(ps) != 1 || !ok || p.Type != PeerLocalWorkload || p.ASNumber != 65401 || p.LocalAddr != "169.254.0.179" || p.Passive {
		t.Fatalf("sessions %+v", d.Peers)
	}
	if len(d.WorkloadAddrs) != 1 || d.WorkloadAddrs[0] != (WorkloadAddr{Interface: "caliA", Addr: pfx("169.254.0.179/32")}) {
		t.Errorf("workload addresses %+v", d.WorkloadAddrs)
	}
	if len(d.Problems) != 1 || !strings.Contains(d.Problems[0], "localWorkloadPeeringIPV6") {
		t.Errorf("problems %q", d.Problems)
	}

	in.Global.LocalWorkloadPeeringIPV6 = "fd12::1"
	if d := Calc(in); len(d.Peers) != 2 || len(d.WorkloadAddrs) != 2 || len(d.Problems) != 0 {
		t.Errorf("dual stack: sessions %+v addresses %+v problems %q", d.Peers, d.WorkloadAddrs, d.Problems)
	}
	in.NodeName = "n3" // rack b: not in the nodeSelector
	if d := Calc(in); len(d.Peers) != 0 || len(d.WorkloadAddrs) != 0 {
		t.Errorf("n3: sessions %+v addresses %+v", d.Peers, d.WorkloadAddrs)
	}
}
