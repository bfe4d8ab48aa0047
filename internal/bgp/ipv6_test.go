//go:build !nogobgp

package bgp

import (
	"net/netip"
	"testing"

	gobgpapi "github.com/osrg/gobgp/v3/api"

	"github.com/onecalico/calico/internal/api"
)

func TestDecodePathIPv6(t *testing.T) {
	o := Origin{Prefix: pfx("fd00:244::40/122")}
	p, err := originPath(o, netip.MustParseAddr("fd99::12"), false)
	if err != nil {
		t.Fatal(err)
	}
	p.Family, p.NeighborIp = familyV6, "fd99::12"
	got, l, ok := decodePath(p)
	if !ok || got != o.Prefix || l.NextHop != netip.MustParseAddr("fd99::12") {
		t.Errorf("decoded %v %+v %v", got, l, ok)
	}
	p.Family = familyV4 // an IPv6 prefix announced as IPv4
	if _, _, ok := decodePath(p); ok {
		t.Error("IPv6 NLRI decoded in the IPv4 family")
	}
}

// TestCalcIPv6: nodes with IPv6 addresses get a second (IPv6) mesh
// session per pair, IPv6 blocks are originated with the IPv6 next hop,
// an IPv6 BGPPeer needs an IPv6 address here, and an IPv6-only node has
// a router ID hashed from its name.
func TestCalcIPv6(t *testing.T) {
	nodes := threeNodes()
	for name, v6 := range map[string]string{"n1": "fd99::11/64", "n2": "fd99::12/64"} {
		n := nodes[name]
		n.IPv6 = pfx(v6)
		nodes[name] = n
	}
	peers := map[string]*api.BGPPeer{"tor6": {ObjectMeta: api.ObjectMeta{Name: "tor6"}, Spec: api.BGPPeerSpec{PeerIP: "fd99::1", ASNumber: 64512}}}
	blocks := []Block{
		{CIDR: pfx("fd00:244::/122"), Affinity: "n1"},
		{CIDR: pfx("fd00:244::40/122"), Affinity: "n2", Borrowed: map[netip.Addr]string{netip.MustParseAddr("fd00:244::45"): "n1"}},
		{CIDR: pfx("10.244.1.0/26"), Affinity: "n1"},
	}
	pools := []Pool{{CIDR: pfx("fd00:244::/112")}, {CIDR: pfx("10.244.0.0/16")}}
	d := Calc(&Input{NodeName: "n1", Nodes: nodes, Peers: peers, Blocks: blocks, Pools: pools})
	ps := peerKeys(d)
	if len(ps) != 4 || ps["fd99::12"].Type != PeerMesh || ps["fd99::12"].LocalAddr != "fd99::11" || ps["fd99::12"].Passive != ("fd99::12" > "fd99::11") ||
		ps["fd99::1"].LocalAddr != "fd99::11" || ps["10.99.0.12"].Type != PeerMesh {
		t.Errorf("peers %+v", d.Peers)
	}
	if d.NextHop6 != netip.MustParseAddr("fd99::11") || len(d.Global.ListenAddrs) != 2 {
		t.Errorf("next hop %v listen %v", d.NextHop6, d.Global.ListenAddrs)
	}
	var orig []string
	for _, o := range d.Originated {
		orig = append(orig, o.Prefix.String())
	}
	if want := "10.244.1.0/26 fd00:244::/122 fd00:244::45/128"; joinSp(orig) != want {
		t.Errorf("originated %q, want %q", joinSp(orig), want)
	}
	// n3 has no IPv6 address: no IPv6 sessions, no IPv6 prefixes.
	d3 := Calc(&Input{NodeName: "n3", Nodes: nodes, Peers: peers, Blocks: blocks, Pools: pools})
	for _, p := range d3.Peers {
		if p.Addr.Is6() {
			t.Errorf("n3 has an IPv6 session %+v", p)
		}
	}
	// An IPv6-only node.
	nodes["n4"] = Node{Name: "n4", IPv6: pfx("fd99::14/64")}
	d4 := Calc(&Input{NodeName: "n4", Nodes: nodes})
	if !d4.Enabled || !d4.Global.RouterID.Is4() || d4.Global.RouterID == routerID(Node{Name: "n5"}) || len(peerKeys(d4)) != 2 {
		t.Errorf("IPv6-only node: %+v %+v", d4.Global, d4.Peers)
	}
}

func joinSp(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

// TestLearnedCountKeepsChanges: counting the learned paths (a metrics
// scrape) does not take the changes the fast path has not read yet.
func TestLearnedCountKeepsChanges(t *testing.T) {
	s := NewSpeaker(nil, nil)
	o := Origin{Prefix: pfx("10.244.2.0/26")}
	p, err := originPath(o, netip.MustParseAddr("10.99.0.12"), false)
	if err != nil {
		t.Fatal(err)
	}
	p.Family, p.NeighborIp = familyV4, "10.99.0.12"
	s.onEvent(eventWith(p))
	if n := s.LearnedCount(); n != 1 {
		t.Fatalf("count %d", n)
	}
	if ch := s.TakeChanges(nil); len(ch) != 1 || ch[0].Prefix != o.Prefix {
		t.Errorf("changes after a count: %+v", ch)
	}
}

func eventWith(p *gobgpapi.Path) *gobgpapi.WatchEventResponse {
	return &gobgpapi.WatchEventResponse{Event: &gobgpapi.WatchEventResponse_Table{Table: &gobgpapi.WatchEventResponse_TableEvent{Paths: []*gobgpapi.Path{p}}}}
}
