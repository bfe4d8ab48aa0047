//go:build !nogobgp

package bgp

import (
	"net/netip"
	"slices"
	"testing"

	gobgpapi "github.com/osrg/gobgp/v3/api"

	"github.com/onecalico/calico/internal/api"
)

// TestFilterInterface: interface matches, as BIRD's `ifname ~ pattern`.
// On export a rule matches this node's connected subnets (not of cali*,
// kube-ipvs* or ignoredInterfaces) and workload routes through matching
// interfaces, within its cidr; an accepted one is originated and every
// other peer rejects it; learned routes match by next hop. On import
// only the next hop counts.
func TestFilterInterface(t *testing.T) {
	nodes := threeNodes()
	in := &Input{NodeName: "n1", Nodes: nodes,
		Global: &api.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false), IgnoredInterfaces: []string{"dummy9*"}},
		IfaceRoutes: []IfaceRoute{
			{Prefix: pfx("10.99.0.0/24"), Interface: "eth0", Connected: true},
			{Prefix: pfx("198.51.100.0/24"), Interface: "dummy0", Connected: true},
			{Prefix: pfx("198.51.101.0/24"), Interface: "dummy1", Connected: true},
			{Prefix: pfx("203.0.113.0/24"), Interface: "dummy99", Connected: true},
			{Prefix: pfx("169.254.0.179/32"), Interface: "caliA", Connected: true},
			{Prefix: pfx("10.244.1.2/32"), Interface: "caliA"},
		},
		Peers: map[string]*api.BGPPeer{
			"tor":   {ObjectMeta: api.ObjectMeta{Name: "tor"}, Spec: api.BGPPeerSpec{PeerIP: "10.99.0.1", ASNumber: 65001, Filters: []string{"f"}}},
			"other": {ObjectMeta: api.ObjectMeta{Name: "other"}, Spec: api.BGPPeerSpec{PeerIP: "10.99.0.2", ASNumber: 65002}},
		},
		Filters: map[string]*api.BGPFilterSpec{"f": {
			ExportV4: []api.BGPFilterRule{
				{Interface: "dummy*", CIDR: "198.51.100.0/23", MatchOperator: api.BGPFilterIn, Action: api.BGPFilterAccept},
				{Interface: "cali*", Action: api.BGPFilterReject},
			},
			ImportV4: []api.BGPFilterRule{{Interface: "eth0", Action: api.BGPFilterReject}, {Interface: "nope*", Action: api.BGPFilterReject}},
		}},
	}
	d := Calc(in)
	ps := peerKeys(d)
	tor, other := ps["10.99.0.1"], ps["10.99.0.2"]
	var origin []netip.Prefix
	for _, o := range d.Originated {
		origin = append(origin, o.Prefix)
	}
	// dummy99 is ignored; 203.0.113.0/24 is outside the rule's cidr anyway.
	if !slices.Equal(origin, []netip.Prefix{pfx("198.51.100.0/24"), pfx("198.51.101.0/24")}) {
		t.Errorf("originated %v", origin)
	}
	// tor: dummy accept (own), dummy accept (learned, by next hop), cali reject
	// (own: the workload route and the caliA address), cali reject
	// (learned), then the interface routes' rejection.
	ex := tor.Export
	if len(ex) != 5 || !slices.Equal(ex[0].Exact, []netip.Prefix{pfx("198.51.100.0/24"), pfx("198.51.101.0/24")}) || !ex[0].LocalOnly ||
		!ex[1].RemotePeers || len(ex[1].NextHops) != 2 || ex[1].Op != api.BGPFilterIn ||
		!slices.Equal(ex[2].Exact, []netip.Prefix{pfx("10.244.1.2/32")}) || ex[4].Accept || len(ex[4].Exact) != 2 {
		t.Errorf("tor's export rules %+v", ex)
	}
	if len(other.Export) != 1 || other.Export[0].Accept || !other.Export[0].LocalOnly {
		t.Errorf("other peer's export rules %+v", other.Export)
	}
	if len(tor.Import) != 1 || !slices.Equal(tor.Import[0].NextHops, []netip.Prefix{pfx("10.99.0.0/24")}) {
		t.Errorf("tor's import rules %+v", tor.Import)
	}
	req := policies(d.Peers, nil)
	im := req.Policies[0].Statements
	if len(im) != 1 || !slices.Equal(im[0].Conditions.NextHopInList, []string{"10.99.0.0/24"}) || im[0].Conditions.PrefixSet != nil {
		t.Errorf("import statements %v", im)
	}
	first := req.Policies[1].Statements[0]
	if first.Conditions.RouteType != gobgpapi.Conditions_ROUTE_TYPE_LOCAL || first.Conditions.PrefixSet == nil || first.Conditions.PrefixSet.Type != gobgpapi.MatchSet_ANY {
		t.Errorf("first export statement %v", first)
	}
	for _, s := range req.DefinedSets {
		if s.Name == first.Conditions.PrefixSet.Name && (len(s.Prefixes) != 2 || s.Prefixes[0].MaskLengthMin != 24 || s.Prefixes[0].MaskLengthMax != 24) {
			t.Errorf("exact prefix set %v", s)
		}
	}
}
