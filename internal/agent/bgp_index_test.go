package agent

import (
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/bgp"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/kv"
)

// kickAgent is an agent with the model of calc_test.go (node n1) and its
// sync handlers by prefix, without a datastore or a dataplane.
func kickAgent(t *testing.T) (*Agent, map[string]*syncHandler) {
	t.Helper()
	a := &Agent{cfg: Config{NodeName: "n1"}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), synced: map[string]bool{},
		trigger: make(chan struct{}, 1), tunnelTrigger: make(chan struct{}, 1), model: model(plainPool())}
	a.bgp = &bgpAgent{kick: make(chan struct{}, 1)}
	a.model.BGP.Peers, a.model.BGP.Filters = map[string]*api.BGPPeer{}, map[string]*api.BGPFilterSpec{}
	hs := map[string]*syncHandler{}
	for _, h := range append(a.handlers(), a.bgpHandlers()...) {
		hs[h.prefix] = h
	}
	return a, hs
}

func blockJSON(affinity string, borrowers ...string) []byte {
	v := fmt.Sprintf(`{"affinity":"host:%s","allocations":[null`, affinity)
	attrs := ""
	for i, n := range borrowers {
		v += fmt.Sprintf(",%d", i)
		if i > 0 {
			attrs += ","
		}
		attrs += fmt.Sprintf(`{"secondary":{"node":%q}}`, n)
	}
	return []byte(v + `],"attributes":[` + attrs + `]}`)
}

func encoded(t *testing.T, r api.Resource) []byte {
	t.Helper()
	b, err := datastore.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wepJSON(t *testing.T, node, ip string) []byte {
	w := api.NewWorkloadEndpoint()
	w.Name, w.Namespace = "w", "default"
	w.Spec.Node, w.Spec.InterfaceName, w.Spec.IPNetworks = node, "cali"+node, []string{ip}
	return encoded(t, w)
}

// TestBGPKickOnlyForItsChanges: a remote endpoint, or a block of another
// node that lends nothing here, does not wake the BGP goroutine; this
// node's endpoints, a block that lends to it (and stops), an affinity
// that moves here and away, a Node and a BGPPeer do. After every step
// the input built from the live model under the lock computes what the
// whole-model copy computes.
func TestBGPKickOnlyForItsChanges(t *testing.T) {
	a, hs := kickAgent(t)
	borrow := api.BlockKey(pfx("10.244.2.0/26"))
	node3 := api.NewNode()
	node3.Name, node3.Spec.BGP = "n3", &api.NodeBGPSpec{IPv4Address: "10.98.0.13/24"}
	node3.Labels = map[string]string{"rack": "b"}
	peer := api.NewBGPPeer()
	peer.Name, peer.Spec.PeerIP, peer.Spec.ASNumber = "tor", "10.99.0.1", 65001
	felixDefault := prefixFelix + FelixConfigGlobal
	steps := []struct {
		name   string
		prefix string
		ev     kv.Event
		kick   bool
	}{
		{"remote endpoint added", prefixWEPs, kv.Event{Key: prefixWEPs + "r", Value: wepJSON(t, "n2", "10.244.2.7/32")}, false},
		{"remote endpoint deleted", prefixWEPs, kv.Event{Key: prefixWEPs + "r", Type: kv.EventDelete}, false},
		{"local endpoint added", prefixWEPs, kv.Event{Key: prefixWEPs + "l", Value: wepJSON(t, "n1", "10.244.1.7/32")}, true},
		{"remote block, nothing borrowed here", prefixBlocks, kv.Event{Key: borrow, Value: blockJSON("n2", "n3")}, false},
		{"remote block lends to this node", prefixBlocks, kv.Event{Key: borrow, Value: blockJSON("n2", "n3", "n1")}, true},
		{"remote block no longer lends", prefixBlocks, kv.Event{Key: borrow, Value: blockJSON("n2", "n3")}, true},
		{"remote block changes again", prefixBlocks, kv.Event{Key: borrow, Value: blockJSON("n2")}, false},
		{"new remote block", prefixBlocks, kv.Event{Key: api.BlockKey(pfx("10.244.9.0/26")), Value: blockJSON("n3")}, false},
		{"affinity moves here", prefixBlocks, kv.Event{Key: api.BlockKey(pfx("10.244.9.0/26")), Value: blockJSON("n1")}, true},
		{"affinity moves away", prefixBlocks, kv.Event{Key: api.BlockKey(pfx("10.244.9.0/26")), Value: blockJSON("n3")}, true},
		{"remote block deleted", prefixBlocks, kv.Event{Key: api.BlockKey(pfx("10.244.9.0/26")), Type: kv.EventDelete}, false},
		{"a Node changes", prefixNodes, kv.Event{Key: prefixNodes + "n3", Value: encoded(t, node3)}, true},
		{"a BGPPeer is added", prefixBGPPeers, kv.Event{Key: prefixBGPPeers + "tor", Value: encoded(t, peer)}, true},
		{"this node's block deleted", prefixBlocks, kv.Event{Key: api.BlockKey(pfx("10.244.1.0/26")), Type: kv.EventDelete}, true},
		{"FelixConfiguration default changes", felixDefault, kv.Event{Key: felixDefault, Value: []byte(`{"spec":{"vxlanMTU":1400}}`)}, false},
		{"a policy is added", policyPrefixes()[0], kv.Event{Key: policyPrefixes()[0] + "p", Value: []byte(`{}`)}, false},
	}
	for _, s := range steps {
		hs[s.prefix].OnEvents([]kv.Event{s.ev})
		kicked := false
		select {
		case <-a.bgp.kick:
			kicked = true
		default:
		}
		if kicked != s.kick {
			t.Errorf("%s: BGP kicked %v, want %v", s.name, kicked, s.kick)
		}
		a.mu.Lock()
		got, want := bgp.Calc(a.bgpInputLocked()), bgp.Calc(a.bgpInput(a.model.clone()))
		a.mu.Unlock()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: input from the index computes\n%+v\nthe whole model\n%+v", s.name, got, want)
		}
	}
}

// TestBGPInputCopiesWhatHandlersChange: the input keeps its BGPPeer set
// when a handler adds a peer afterwards, and a snapshot rebuilds the index.
func TestBGPInputCopiesWhatHandlersChange(t *testing.T) {
	a, hs := kickAgent(t)
	a.mu.Lock()
	in := a.bgpInputLocked()
	a.mu.Unlock()
	peer := api.NewBGPPeer()
	peer.Name, peer.Spec.PeerIP, peer.Spec.ASNumber = "tor", "10.99.0.1", 65001
	hs[prefixBGPPeers].OnEvents([]kv.Event{{Key: prefixBGPPeers + "tor", Value: encoded(t, peer)}})
	if len(in.Peers) != 0 {
		t.Errorf("input changed by a later event: %v", in.Peers)
	}
	hs[prefixBlocks].OnSnapshot([]*kv.KV{{Key: api.BlockKey(pfx("10.244.5.0/26")), Value: blockJSON("n1")}}, 5)
	a.mu.Lock()
	in = a.bgpInputLocked()
	a.mu.Unlock()
	if len(in.Blocks) != 1 || in.Blocks[0].CIDR != pfx("10.244.5.0/26") {
		t.Errorf("blocks after a snapshot: %+v", in.Blocks)
	}
}
