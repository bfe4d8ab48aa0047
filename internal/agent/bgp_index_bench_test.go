package agent

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/bgp"
)

// bgpScaleAgent is node n0000 of a BGP mesh of n nodes (no encapsulation),
// each with one block and two endpoints.
func bgpScaleAgent(n int) *Agent {
	m := &Model{NodeName: "n0000", Nodes: map[string]Node{}, Pools: map[string]Pool{},
		Blocks: map[netip.Prefix]Block{}, WEPs: map[string]WEP{}, Felix: testFelix()}
	m.Pools["a"] = Pool{Name: "a", CIDR: pfx("10.64.0.0/12"), VXLANMode: api.VXLANModeNever, IPIPMode: api.IPIPModeNever}
	m.BGP.Peers, m.BGP.Filters = map[string]*api.BGPPeer{}, map[string]*api.BGPFilterSpec{}
	for i := range n {
		name := fmt.Sprintf("n%04d", i)
		blk := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 64 + byte(i>>10), byte(i >> 2), byte(i&3) << 6}), 26)
		m.Nodes[name] = Node{Name: name, IPv4: netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, byte((i + 1) >> 8), byte(i + 1)}), 12)}
		m.Blocks[blk] = Block{CIDR: blk, Affinity: name}
		for p := range 2 {
			m.WEPs[fmt.Sprintf("%s%s/%d", prefixWEPs, name, p)] = WEP{Node: name, Interface: fmt.Sprintf("cali%s%d", name, p),
				IPs: []netip.Prefix{netip.PrefixFrom(blk.Addr().Next().Next(), 32)}}
		}
	}
	a := &Agent{cfg: Config{NodeName: m.NodeName}, model: m}
	a.bgp = &bgpAgent{kick: make(chan struct{}, 1)}
	return a
}

// BenchmarkBGPRemoteEndpoint is the BGP side of one remote endpoint change
// at 1,000 nodes in BGP mode: before, every change woke the BGP goroutine,
// which copied the whole model and ran Calc over it ("clone+calc"); now
// the change is looked up in the index and does not wake it
// ("remote-endpoint"). "relevant" is a pass for a change that does wake
// it (this node's block, a Node): the input built under the lock, and Calc.
func BenchmarkBGPRemoteEndpoint(b *testing.B) {
	a := bgpScaleAgent(1000)
	key := prefixWEPs + "n0500/0"
	b.Run("clone+calc", func(b *testing.B) {
		for b.Loop() {
			a.mu.Lock()
			m := a.model.clone()
			a.mu.Unlock()
			_ = bgp.Calc(a.bgpInput(m))
		}
	})
	b.Run("remote-endpoint", func(b *testing.B) {
		for b.Loop() {
			a.mu.Lock()
			kick := a.bgpMattersLocked(prefixWEPs, key) || a.bgpMattersLocked(prefixWEPs, key)
			a.mu.Unlock()
			if kick {
				b.Fatal("a remote endpoint kicks BGP")
			}
		}
	})
	b.Run("relevant", func(b *testing.B) {
		for b.Loop() {
			a.mu.Lock()
			in := a.bgpInputLocked()
			a.mu.Unlock()
			_ = bgp.Calc(in)
		}
	})
	b.Run("relevant-input-only", func(b *testing.B) {
		for b.Loop() {
			a.mu.Lock()
			_ = a.bgpInputLocked()
			a.mu.Unlock()
		}
	})
	b.Run("clone+input-only", func(b *testing.B) {
		for b.Loop() {
			a.mu.Lock()
			m := a.model.clone()
			a.mu.Unlock()
			_ = a.bgpInput(m)
		}
	})
}
