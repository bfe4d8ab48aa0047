package bgp

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/onecalico/calico/internal/api"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ptr[T any](v T) *T         { return &v }

func threeNodes() map[string]Node {
	return map[string]Node{
		"n1": {Name: "n1", IPv4: pfx("10.99.0.11/24"), Labels: map[string]string{"rack": "a"}},
		"n2": {Name: "n2", IPv4: pfx("10.99.0.12/24"), Labels: map[string]string{"rack": "a"}},
		"n3": {Name: "n3", IPv4: pfx("10.99.0.13/24"), Labels: map[string]string{"rack": "b"}, ASNumber: 65001},
	}
}

func peerKeys(d Desired) map[string]Peer {
	out := map[string]Peer{}
	for _, p := range d.Peers {
		out[p.Key()] = p
	}
	return out
}

func TestCalcMeshPassiveRule(t *testing.T) {
	d := Calc(&Input{NodeName: "n2", Nodes: threeNodes()})
	if !d.Enabled || d.Global.ASNumber != 64512 || d.Global.RouterID.String() != "10.99.0.12" || d.Global.ListenPort != 179 {
		t.Fatalf("global %+v", d.Global)
	}
	ps := peerKeys(d)
	if len(ps) != 2 || ps["10.99.0.11"].Passive || !ps["10.99.0.13"].Passive {
		t.Fatalf("peers %+v", d.Peers)
	}
	if ps["10.99.0.13"].ASNumber != 65001 || ps["10.99.0.11"].Type != PeerMesh || ps["10.99.0.11"].LocalAddr != "10.99.0.12" {
		t.Errorf("peers %+v", d.Peers)
	}
	// Each pair: exactly one side is passive.
	d1 := peerKeys(Calc(&Input{NodeName: "n1", Nodes: threeNodes()}))
	if d1["10.99.0.12"].Passive == ps["10.99.0.11"].Passive {
		t.Errorf("n1<->n2: both sides passive=%v", d1["10.99.0.12"].Passive)
	}
}

func TestCalcMeshOffAndRouteReflector(t *testing.T) {
	nodes := threeNodes()
	n1 := nodes["n1"]
	n1.RRClusterID = "1.1.1.1"
	nodes["n1"] = n1
	off := &api.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)}
	peers := map[string]*api.BGPPeer{"to-rr": {ObjectMeta: api.ObjectMeta{Name: "to-rr"}, Spec: api.BGPPeerSpec{PeerSelector: "has(rr)", NodeSelector: "!has(rr)"}}}
	nodes["n1"] = Node{Name: "n1", IPv4: n1.IPv4, RRClusterID: "1.1.1.1", Labels: map[string]string{"rr": ""}}
	rr := peerKeys(Calc(&Input{NodeName: "n1", Nodes: nodes, Global: off, Peers: peers}))
	if len(rr) != 2 || !rr["10.99.0.12"].RRClient || rr["10.99.0.12"].ClusterID != "1.1.1.1" || rr["10.99.0.13"].RRClient {
		// n3 is in another AS: eBGP, not a client.
		t.Fatalf("reflector peers %+v", rr)
	}
	client := peerKeys(Calc(&Input{NodeName: "n2", Nodes: nodes, Global: off, Peers: peers}))
	if len(client) != 1 || client["10.99.0.11"].Type != PeerNode || client["10.99.0.11"].RRClient {
		t.Fatalf("client peers %+v", client)
	}
	// With the mesh on, a reflector leaves it, and nodes skip reflectors.
	mesh := peerKeys(Calc(&Input{NodeName: "n2", Nodes: nodes}))
	if _, ok := mesh["10.99.0.11"]; ok || len(mesh) != 1 {
		t.Errorf("mesh peers of n2 %+v", mesh)
	}
}

func TestCalcExplicitPeers(t *testing.T) {
	peers := map[string]*api.BGPPeer{
		"global": {ObjectMeta: api.ObjectMeta{Name: "global"}, Spec: api.BGPPeerSpec{PeerIP: "10.0.0.1:1179", ASNumber: 65000,
			KeepaliveTime: &api.Duration{Duration: 10e9}, MaxRestartTime: &api.Duration{Duration: 30e9}, TTLSecurity: ptr(uint8(1))}},
		"rack-b": {ObjectMeta: api.ObjectMeta{Name: "rack-b"}, Spec: api.BGPPeerSpec{NodeSelector: "rack == 'b'", PeerIP: "10.0.0.2", ASNumber: 65000}},
		"pw":     {ObjectMeta: api.ObjectMeta{Name: "pw"}, Spec: api.BGPPeerSpec{Node: "n1", PeerIP: "10.0.0.3", ASNumber: 65000, Password: &api.BGPPassword{SecretKeyRef: &api.SecretKeySelector{Name: "s", Key: "k"}}}},
	}
	secret := func(name, key string) (string, error) {
		if name == "s" && key == "k" {
			return "", errors.New("missing")
		}
		return "x", nil
	}
	ps := peerKeys(Calc(&Input{NodeName: "n1", Nodes: threeNodes(), Peers: peers, Secret: secret}))
	g, ok := ps["10.0.0.1:1179"]
	if !ok || g.Port != 1179 || g.Keepalive != 10 || g.RestartTime != 30 || g.TTLSecurity != 1 || g.Type != PeerGlobal {
		t.Errorf("global peer %+v", g)
	}
	if _, ok := ps["10.0.0.2"]; ok {
		t.Errorf("rack-b peer applied to n1")
	}
	if p := ps["10.0.0.3"]; !p.Down || p.Problem == "" || p.Type != PeerNode {
		t.Errorf("peer with a missing secret %+v", p)
	}
}

func TestCalcOriginated(t *testing.T) {
	in := &Input{
		NodeName: "n1", Nodes: threeNodes(),
		Pools: []Pool{{CIDR: pfx("10.244.0.0/16")}, {CIDR: pfx("10.245.0.0/16"), DisableExport: true}},
		Blocks: []Block{
			{CIDR: pfx("10.244.1.0/26"), Affinity: "n1"},
			{CIDR: pfx("10.244.2.0/26"), Affinity: "n2", Borrowed: map[netip.Addr]string{netip.MustParseAddr("10.244.2.5"): "n1", netip.MustParseAddr("10.244.2.6"): "n3"}},
			{CIDR: pfx("10.245.1.0/26"), Affinity: "n1"},
		},
		Global: &api.BGPConfigurationSpec{
			ServiceClusterIPs:    []api.ServiceClusterIPBlock{{CIDR: "10.96.0.0/12"}},
			Communities:          []api.Community{{Name: "c", Value: "65000:100"}},
			PrefixAdvertisements: []api.PrefixAdvertisement{{CIDR: "10.244.0.0/16", Communities: []string{"c", "1:2:3"}}},
		},
	}
	d := Calc(in)
	want := []Origin{
		{Prefix: pfx("10.96.0.0/12")},
		{Prefix: pfx("10.244.1.0/26"), Communities: []uint32{65000<<16 | 100}, Large: [][3]uint32{{1, 2, 3}}},
		{Prefix: pfx("10.244.2.5/32"), Communities: []uint32{65000<<16 | 100}, Large: [][3]uint32{{1, 2, 3}}},
	}
	if !reflect.DeepEqual(d.Originated, want) || d.NextHop.String() != "10.99.0.11" {
		t.Errorf("originated %+v next hop %s", d.Originated, d.NextHop)
	}
}

func TestCalcNoAddressDisables(t *testing.T) {
	if d := Calc(&Input{NodeName: "x", Nodes: threeNodes()}); d.Enabled {
		t.Errorf("enabled without an address: %+v", d)
	}
}
