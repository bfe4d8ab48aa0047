package bgp

import (
	"testing"

	"github.com/onecalico/calico/internal/api"
)

// TestCalcSelectorPeersOneSideConnects: sessions of a peerSelector BGPPeer
// with reversePeering Auto exist at both ends, so, as in the mesh, exactly
// one end of each (the smaller address string) connects. With Manual the
// other end may have no session, so every end connects.
func TestCalcSelectorPeersOneSideConnects(t *testing.T) {
	off := &api.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)}
	nodes := threeNodes()
	for name, n := range nodes {
		n.ASNumber = 0
		n.Labels = map[string]string{"rr": ""}
		nodes[name] = n
	}
	for _, manual := range []bool{false, true} {
		p := &api.BGPPeer{ObjectMeta: api.ObjectMeta{Name: "all"}, Spec: api.BGPPeerSpec{PeerSelector: "has(rr)"}}
		if manual {
			p.Spec.ReversePeering = ptr(api.ReversePeeringManual)
		}
		in := func(name string) map[string]Peer {
			return peerKeys(Calc(&Input{NodeName: name, Nodes: nodes, Global: off, Peers: map[string]*api.BGPPeer{"all": p}}))
		}
		n1, n2, n3 := in("n1"), in("n2"), in("n3")
		pairs := []struct {
			name string
			a, b Peer
		}{
			{"n1-n2", n1["10.99.0.12"], n2["10.99.0.11"]},
			{"n1-n3", n1["10.99.0.13"], n3["10.99.0.11"]},
			{"n2-n3", n2["10.99.0.13"], n3["10.99.0.12"]},
		}
		for _, pr := range pairs {
			if !pr.a.Addr.IsValid() || !pr.b.Addr.IsValid() {
				t.Fatalf("manual=%v %s: a session is missing: %+v / %+v", manual, pr.name, pr.a, pr.b)
			}
			want := !manual
			if got := pr.a.Passive != pr.b.Passive; got != want {
				t.Errorf("manual=%v %s: passive %v / %v, want exactly one passive: %v", manual, pr.name, pr.a.Passive, pr.b.Passive, want)
			}
			if manual && (pr.a.Passive || pr.b.Passive) {
				t.Errorf("manual=%v %s: a passive end", manual, pr.name)
			}
		}
	}
}
