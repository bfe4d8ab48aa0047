package agent_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/api"
)

// scaleModel is node n0000's model of a cluster of n VXLAN nodes, each
// with one block and two pods (the scale harness's cluster after its
// pods step).
func scaleModel(n int) *agent.Model {
	m := &agent.Model{NodeName: "n0000", Nodes: map[string]agent.Node{}, Pools: map[string]agent.Pool{},
		Blocks: map[netip.Prefix]agent.Block{}, WEPs: map[string]agent.WEP{}}
	m.Felix.IPForwarding = true
	m.Host = agent.HostFacts{ParentIf: "eth0", ParentIndex: 2}
	m.Pools["a"] = agent.Pool{Name: "a", CIDR: netip.MustParsePrefix("10.64.0.0/12"), VXLANMode: api.VXLANModeAlways,
		IPIPMode: api.IPIPModeNever, NATOutgoing: true, Tunnel: true}
	for i := range n {
		name := fmt.Sprintf("n%04d", i)
		blk := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 64 + byte(i>>10), byte(i >> 2), byte(i&3) << 6}), 26)
		m.Nodes[name] = agent.Node{Name: name, IPv4: netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, byte((i + 1) >> 8), byte(i + 1)}), 12),
			VXLANTunnelAddr: blk.Addr()}
		m.Blocks[blk] = agent.Block{CIDR: blk, Affinity: name}
		for p := range 2 {
			ip := blk.Addr().Next()
			for range p + 1 {
				ip = ip.Next()
			}
			m.WEPs[fmt.Sprintf("/wep/%s/%d", name, p)] = agent.WEP{Node: name, Interface: fmt.Sprintf("cali%s%d", name, p),
				IPs: []netip.Prefix{netip.PrefixFrom(ip, 32)}}
		}
	}
	return m
}

// BenchmarkCalcScale is one Calc (what every reconcile pass of every node
// computes) for clusters of 100, 300 and 1,000 nodes.
func BenchmarkCalcScale(b *testing.B) {
	for _, n := range []int{100, 300, 1000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			m := scaleModel(n)
			d := agent.Calc(m)
			if len(d.Routes) != n || len(d.VTEPs) != n-1 {
				b.Fatalf("routes %d vteps %d, want %d and %d", len(d.Routes), len(d.VTEPs), n, n-1)
			}
			b.ReportAllocs()
			for b.Loop() {
				agent.Calc(m)
			}
		})
	}
}
