package agent

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/onecalico/calico/internal/api"
)

// incrScaleModel is node n0000's model of n VXLAN nodes on one subnet,
// each with a block in pool a and two pods (the scale harness's cluster).
func incrScaleModel(n int) *Model {
	m := &Model{NodeName: "n0000", Nodes: map[string]Node{}, Pools: map[string]Pool{}, Blocks: map[netip.Prefix]Block{}, WEPs: map[string]WEP{}}
	m.Host = HostFacts{ParentIf: "eth0", ParentIndex: 2}
	m.Felix.IPForwarding = true
	m.Pools["a"] = Pool{Name: "a", CIDR: netip.MustParsePrefix("10.64.0.0/12"), VXLANMode: api.VXLANModeAlways, NATOutgoing: true, Tunnel: true}
	m.Pools["b"] = Pool{Name: "b", CIDR: netip.MustParsePrefix("10.96.0.0/12"), VXLANMode: api.VXLANModeAlways}
	for i := range n {
		name := fmt.Sprintf("n%04d", i)
		blk := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 64 + byte(i>>10), byte(i >> 2), byte(i&3) << 6}), 26)
		m.Nodes[name] = Node{Name: name, IPv4: netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, byte((i + 1) >> 8), byte(i + 1)}), 12), VXLANTunnelAddr: blk.Addr()}
		m.Blocks[blk] = Block{CIDR: blk, Affinity: name}
		for p := range 2 {
			ip := blk.Addr().Next().Next()
			for range p {
				ip = ip.Next()
			}
			m.WEPs[fmt.Sprintf("/wep/%s/%d", name, p)] = WEP{Node: name, Interface: fmt.Sprintf("cali%s%d", name, p), IPs: []netip.Prefix{netip.PrefixFrom(ip, 32)}}
		}
	}
	return m
}

// globalChanges are the cluster-wide changes of the scale harness and
// two more: each flips one setting back and forth and records it.
var globalChanges = []struct {
	name   string
	change func(m *Model, d *dirtySet)
	routes int // route changes the calculator hands the apply step
}{
	{"pool-natOutgoing", func(m *Model, d *dirtySet) {
		p := m.Pools["a"]
		p.NATOutgoing = !p.NATOutgoing
		m.Pools["a"], d.pools = p, map[string]struct{}{"a": {}}
	}, 0},
	{"pool-vxlanMode", func(m *Model, d *dirtySet) {
		p := m.Pools["a"]
		p.VXLANMode = map[api.VXLANMode]api.VXLANMode{api.VXLANModeAlways: api.VXLANModeCrossSubnet, api.VXLANModeCrossSubnet: api.VXLANModeAlways}[p.VXLANMode]
		m.Pools["a"], d.pools = p, map[string]struct{}{"a": {}}
	}, 999},
	{"felix-vxlanMTU", func(m *Model, d *dirtySet) {
		m.Felix.VXLANMTU = map[int]int{0: 1400, 1400: 0}[m.Felix.VXLANMTU]
		d.felix = true
	}, 0},
}

// BenchmarkGlobalChange is what one node computes for a cluster-wide
// change with 1,000 nodes: "full" is the pass before the calculator
// followed such changes (a copy of the model, Calc, and seeding the
// calculator anew for the next item change), "incr" the calculator's
// step. "full-without-seed" is the full pass without the seeding, which
// it costs as much as again. None includes the apply.
func BenchmarkGlobalChange(b *testing.B) {
	for _, gc := range globalChanges {
		b.Run(gc.name+"/full", func(b *testing.B) {
			live := incrScaleModel(1000)
			b.ReportAllocs()
			for b.Loop() {
				var d dirtySet
				gc.change(live, &d)
				m := live.clone()
				if newIncr(m, Calc(m)) == nil {
					b.Fatal("not seeded")
				}
			}
		})
		b.Run(gc.name+"/full-without-seed", func(b *testing.B) {
			live := incrScaleModel(1000)
			b.ReportAllocs()
			for b.Loop() {
				var d dirtySet
				gc.change(live, &d)
				Calc(live.clone())
			}
		})
		b.Run(gc.name+"/incr", func(b *testing.B) {
			live := incrScaleModel(1000)
			m := live.clone()
			ic := newIncr(m, Calc(m))
			b.ReportAllocs()
			for b.Loop() {
				var d dirtySet
				gc.change(live, &d)
				in := ic.pull(live, d)
				if !ic.globalStep(&in) {
					b.Fatal("not followed")
				}
				res, ok := ic.update(in)
				if !ok || !res.global && gc.routes == 0 || len(res.routes) != gc.routes {
					b.Fatalf("ok %v, global %v, %d route changes", ok, res.global, len(res.routes))
				}
				ic.commit(res)
			}
		})
	}
}

// TestGlobalChangeFollowed checks that the scale harness's global changes
// are followed by the calculator, with the result Calc gives.
func TestGlobalChangeFollowed(t *testing.T) {
	for _, gc := range globalChanges {
		live := incrScaleModel(50)
		m := live.clone()
		ic := newIncr(m, Calc(m))
		for i := range 2 {
			var d dirtySet
			gc.change(live, &d)
			in := ic.pull(live, d)
			if !ic.globalStep(&in) {
				t.Fatalf("%s %d: not followed", gc.name, i)
			}
			res, ok := ic.update(in)
			if !ok || !in.global && gc.routes == 0 {
				t.Fatalf("%s %d: ok %v, global %v", gc.name, i, ok, in.global)
			}
			ic.commit(res)
			if got, want := ic.desired(), Calc(live.clone()); got.String() != want.String() || got.NAT.NAT.SNATAddress != want.NAT.NAT.SNATAddress {
				t.Fatalf("%s %d: differs from Calc\n%s", gc.name, i, diffLines(got.String(), want.String()))
			}
		}
	}
}
