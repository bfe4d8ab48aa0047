//go:build !nogobgp

package bgp

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	gobgpapi "github.com/osrg/gobgp/v3/api"

	"github.com/onecalico/calico/internal/api"
)

// TestFilterAllFields converts every rule field upstream has: the v4 and
// v6 lists, source, peerType, communities, asPathPrefix and operations;
// an interface match with no route through a matching interface and an
// import priority match (as upstream) never match and are left out.
func TestFilterAllFields(t *testing.T) {
	c := &calc{in: &Input{Filters: map[string]*api.BGPFilterSpec{"f": {
		ExportV4: []api.BGPFilterRule{
			{Source: api.BGPFilterRemotePeers, Action: api.BGPFilterReject},
			{PeerType: "iBGP", Action: api.BGPFilterReject},
			{CIDR: "10.244.0.0/16", MatchOperator: api.BGPFilterIn, Action: api.BGPFilterAccept, Operations: []api.BGPFilterOperation{
				{AddCommunity: &api.BGPFilterAddCommunity{Value: "65000:7"}},
				{AddCommunity: &api.BGPFilterAddCommunity{Value: "1:2:3"}},
				{PrependASPath: &api.BGPFilterPrependASPath{Prefix: []api.ASNumber{64512, 64512}}},
			}},
			{Interface: "eth*", Action: api.BGPFilterReject},
		},
		ImportV4: []api.BGPFilterRule{
			{Communities: &api.BGPFilterCommunityMatch{Values: []string{"65001:1"}}, Action: api.BGPFilterReject},
			{ASPathPrefix: []api.ASNumber{65001, 65002}, Action: api.BGPFilterAccept,
				Operations: []api.BGPFilterOperation{{SetPriority: &api.BGPFilterSetPriority{Value: 5}}}},
			{Priority: ptr(3), Action: api.BGPFilterReject},
		},
		ImportV6: []api.BGPFilterRule{{CIDR: "fd00::/64", MatchOperator: api.BGPFilterEqual, Action: api.BGPFilterReject}},
	}}}}
	// An eBGP peer (AS 65001) of AS 64512.
	imp, exp := c.filterRules([]string{"f"}, "BGPPeer p", 65001, 64512)
	if len(exp) != 2 || !exp[0].RemotePeers || exp[1].Op != api.BGPFilterIn || !slices.Equal(exp[1].Prepend, []uint32{64512, 64512}) ||
		strings.Join(exp[1].AddCommunities, ",") != "65000:7,1:2:3" {
		t.Errorf("export %+v", exp)
	}
	if len(imp) != 3 || imp[0].Community != "65001:1" || len(imp[1].ASPath) != 2 || imp[1].SetPriority != 5 || !imp[2].V6 || imp[2].Prefix != pfx("fd00::/64") {
		t.Errorf("import %+v", imp)
	}
	if len(c.d.Problems) != 0 {
		t.Errorf("problems %q", c.d.Problems)
	}

	req := policies([]Peer{{Addr: netip.MustParseAddr("10.99.0.1"), Import: imp, Export: exp, NextHop: NextHopSelf}}, nil)
	ex := req.Policies[1].Statements
	// next hop, RemotePeers (iBGP and eBGP routes), the accept rule.
	if len(ex) != 4+4 || ex[0].Actions.Nexthop == nil || !ex[0].Actions.Nexthop.Self || ex[0].Actions.RouteAction != gobgpapi.RouteAction_NONE {
		t.Fatalf("export statements %v", ex)
	}
	if ex[1].Conditions.RouteType != gobgpapi.Conditions_ROUTE_TYPE_INTERNAL || ex[2].Conditions.RouteType != gobgpapi.Conditions_ROUTE_TYPE_EXTERNAL {
		t.Errorf("RemotePeers statements %v %v", ex[1], ex[2])
	}
	acc := ex[3].Actions
	if acc.RouteAction != gobgpapi.RouteAction_ACCEPT || acc.Community.Communities[0] != "65000:7" || acc.LargeCommunity.Communities[0] != "1:2:3" ||
		acc.AsPrepend.Asn != 64512 || acc.AsPrepend.Repeat != 2 {
		t.Errorf("accept actions %v", acc)
	}
	im := req.Policies[0].Statements
	if len(im) != 3 || im[0].Conditions.CommunitySet == nil || im[1].Conditions.AsPathSet == nil || im[2].Conditions.AfiSafiIn[0].Afi != gobgpapi.Family_AFI_IP6 ||
		im[1].Actions.LocalPref == nil || im[1].Actions.LocalPref.Value != MaxLocalPref-5 {
		t.Errorf("import statements %v", im)
	}
	var asp string
	for _, s := range req.DefinedSets {
		if s.DefinedType == gobgpapi.DefinedType_AS_PATH {
			asp = s.List[0]
		}
	}
	// eBGP: GoBGP's export sees this node's AS first; import sees the path as received.
	if asp != "^65001_65002_" {
		t.Errorf("import as-path set %q", asp)
	}
}

// TestPeerFields: nextHopMode, keepOriginalNextHop, reachableBy and the
// session settings reach the Peer and GoBGP's configuration.
func TestPeerFields(t *testing.T) {
	nodes := threeNodes()
	peers := map[string]*api.BGPPeer{
		"self": {ObjectMeta: api.ObjectMeta{Name: "self"}, Spec: api.BGPPeerSpec{PeerIP: "10.98.0.1", ASNumber: 65010,
			NextHopMode: ptr(api.NextHopModeSelf), ReachableBy: "10.99.0.1", TTLSecurity: ptr(uint8(2)),
			KeepaliveTime: &api.Duration{Duration: 10e9}, MaxRestartTime: &api.Duration{Duration: 30e9},
			NumAllowedLocalASNumbers: ptr(int32(2)), SourceAddress: api.SourceAddressNone}},
		"keep": {ObjectMeta: api.ObjectMeta{Name: "keep"}, Spec: api.BGPPeerSpec{PeerIP: "10.98.0.2:1179", ASNumber: 64512, KeepOriginalNextHop: true}},
	}
	d := Calc(&Input{NodeName: "n1", Nodes: nodes, Peers: peers})
	ps := peerKeys(d)
	self, keep := ps["10.98.0.1"], ps["10.98.0.2:1179"]
	if self.NextHop != NextHopSelf || keep.NextHop != NextHopKeep || self.LocalAddr != "" || keep.LocalAddr != "10.99.0.11" {
		t.Errorf("peers %+v", d.Peers)
	}
	if len(d.Static) != 1 || d.Static[0] != (StaticRoute{Dst: pfx("10.98.0.1/32"), Gw: netip.MustParseAddr("10.99.0.1")}) {
		t.Errorf("static routes %+v", d.Static)
	}
	ap := apiPeer(self)
	if ap.TtlSecurity == nil || ap.TtlSecurity.TtlMin != 254 || ap.EbgpMultihop != nil || ap.Timers.Config.KeepaliveInterval != 10 ||
		ap.Timers.Config.HoldTime != 30 || ap.GracefulRestart.RestartTime != 30 || ap.Conf.AllowOwnAsn != 2 || ap.Transport.LocalAddress != "" {
		t.Errorf("GoBGP peer %v", ap)
	}
	if ak := apiPeer(keep); ak.Transport.RemotePort != 1179 || ak.Transport.LocalAddress != "10.99.0.11" || ak.EbgpMultihop == nil {
		t.Errorf("GoBGP peer %v", ak)
	}
}

// TestExportDefault: after the rules, learned routes are passed on only
// inside pools that allow export (one statement per family and learned
// route type); a family without such pools rejects every learned route.
func TestExportDefault(t *testing.T) {
	req := policies(nil, []netip.Prefix{pfx("10.244.0.0/16")})
	ex := req.Policies[1].Statements
	if len(ex) != 4 || len(req.DefinedSets) != 1 || req.DefinedSets[0].Prefixes[0].MaskLengthMin != 16 || req.DefinedSets[0].Prefixes[0].MaskLengthMax != 32 {
		t.Fatalf("statements %v sets %v", ex, req.DefinedSets)
	}
	for i, st := range ex {
		v6 := i >= 2
		if st.Actions.RouteAction != gobgpapi.RouteAction_REJECT || st.Conditions.RouteType == gobgpapi.Conditions_ROUTE_TYPE_NONE ||
			(st.Conditions.PrefixSet == nil) != v6 || (st.Conditions.AfiSafiIn[0].Afi == gobgpapi.Family_AFI_IP6) != v6 {
			t.Errorf("statement %d: %v", i, st)
		}
	}
	if st := ex[0]; st.Conditions.PrefixSet.Type != gobgpapi.MatchSet_INVERT {
		t.Errorf("IPv4 statement does not invert the pool set: %v", st)
	}
}
