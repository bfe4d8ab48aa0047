package agent

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/route"
	"github.com/onecalico/calico/internal/dataplane/tunnel"
)

// TestIncrMatchesCalc drives random sequences of model changes (nodes,
// blocks with borrowed addresses, endpoints added, changed and deleted;
// pools, this node and Felix settings changed) through the incremental
// calculator, as the reconcile loop does: item changes update it, global
// ones seed a new one from a full Calc. After every step its whole result
// must equal Calc of the model, and the deltas it hands the apply step,
// applied to a recorded kernel, must give Calc's routes and VTEPs.
func TestIncrMatchesCalc(t *testing.T) {
	seeds, followed, steps := uint64(200), 0, 150
	if testing.Short() {
		seeds = 20
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { followed += runIncrSeq(t, seed, steps) })
	}
	// Most steps must exercise the calculator, not the full Calc.
	if total := int(seeds) * steps; followed < total/2 {
		t.Fatalf("the calculator followed %d of %d steps", followed, total)
	}
	t.Logf("the calculator followed %d of %d steps", followed, int(seeds)*steps)
}

// incrSim is the reconcile loop's view: the live model, the calculator
// and what the "kernel" holds.
type incrSim struct {
	t       *testing.T
	r       *rand.Rand
	live    *Model
	ic      *incrCalc
	routes  map[netip.Prefix]route.Route
	vteps   map[netip.Addr]tunnel.VTEP
	steps   int
	incrOK  int // steps the calculator followed
	changes int // route changes it applied
}

func runIncrSeq(t *testing.T, seed uint64, steps int) int {
	s := &incrSim{t: t, r: rand.New(rand.NewPCG(seed, 7)), live: randomModel(rand.New(rand.NewPCG(seed, 11)))}
	s.full()
	for s.steps = 0; s.steps < steps; s.steps++ {
		var d dirtySet
		n := 1 + s.r.IntN(4)
		for range n {
			s.change(&d)
		}
		if d.global || s.ic == nil {
			s.full()
		} else {
			s.incr(d)
		}
		s.check()
	}
	return s.incrOK
}

// full is a full pass: Calc, the kernel made equal, a new calculator.
func (s *incrSim) full() {
	m := s.live.clone()
	d := Calc(m)
	s.routes, s.vteps = map[netip.Prefix]route.Route{}, map[netip.Addr]tunnel.VTEP{}
	for _, r := range d.Routes {
		s.routes[r.Dst] = r
	}
	for _, v := range d.VTEPs {
		s.vteps[v.TunnelIP] = v
	}
	s.ic = newIncr(m, d)
}

// incr is an incremental pass over the dirty items.
func (s *incrSim) incr(d dirtySet) {
	in := s.ic.pull(s.live, d)
	res, ok := s.ic.update(in)
	if !ok {
		s.full()
		return
	}
	s.incrOK++
	prev, want := routeDelta(res.routes)
	s.changes += len(prev) + len(want)
	applyRoutes(s.routes, prev, want)
	if res.vteps {
		applyVTEPs(s.vteps, res.vtepGone, res.vtepSet)
	}
	s.ic.commit(res)
}

func applyRoutes(k map[netip.Prefix]route.Route, prev, want []route.Route) {
	wanted := map[netip.Prefix]bool{}
	for _, r := range want {
		k[r.Dst], wanted[r.Dst] = r, true
	}
	for _, r := range prev {
		if !wanted[r.Dst] {
			delete(k, r.Dst)
		}
	}
}

func applyVTEPs(k map[netip.Addr]tunnel.VTEP, gone, set []tunnel.VTEP) {
	keep := map[netip.Addr]bool{}
	for _, v := range set {
		k[v.TunnelIP], keep[v.TunnelIP] = v, true
	}
	for _, v := range gone {
		if !keep[v.TunnelIP] {
			delete(k, v.TunnelIP)
		}
	}
}

// check compares the calculator and the kernel with Calc.
func (s *incrSim) check() {
	t := s.t
	t.Helper()
	want := Calc(s.live.clone())
	if s.ic != nil {
		if got := s.ic.desired(); !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d: incremental result differs from Calc\n%s", s.steps, diffLines(got.String(), want.String()))
		}
		if !reflect.DeepEqual(s.ic.pass().VTEPs, want.VTEPs) {
			t.Fatalf("step %d: pass VTEPs %v, want %v", s.steps, s.ic.pass().VTEPs, want.VTEPs)
		}
	}
	if len(s.routes) != len(want.Routes) {
		t.Fatalf("step %d: kernel has %d routes, Calc %d", s.steps, len(s.routes), len(want.Routes))
	}
	for _, r := range want.Routes {
		if s.routes[r.Dst] != r {
			t.Fatalf("step %d: kernel route %v, Calc %v", s.steps, s.routes[r.Dst], r)
		}
	}
	if len(s.vteps) != len(want.VTEPs) {
		t.Fatalf("step %d: kernel has %d VTEPs, Calc %d", s.steps, len(s.vteps), len(want.VTEPs))
	}
	for _, v := range want.VTEPs {
		if !equalVTEP(s.vteps[v.TunnelIP], v) {
			t.Fatalf("step %d: kernel VTEP %v, Calc %v", s.steps, s.vteps[v.TunnelIP], v)
		}
	}
}

func diffLines(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	has := func(ls []string, l string) bool {
		for _, x := range ls {
			if x == l {
				return true
			}
		}
		return false
	}
	var b strings.Builder
	for _, l := range g {
		if !has(w, l) {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	for _, l := range w {
		if !has(g, l) {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	return b.String()
}

// change makes one random change to the live model and records it as the
// sync handlers do.
func (s *incrSim) change(d *dirtySet) {
	r, m := s.r, s.live
	switch k := r.IntN(100); {
	case k < 25:
		name := nodeName(r)
		if r.IntN(5) == 0 {
			delete(m.Nodes, name)
		} else {
			m.Nodes[name] = randomNode(r, name)
		}
		if name == m.NodeName {
			d.global = true
		} else {
			d.node(name)
		}
	case k < 55:
		b := randomBlock(r)
		if r.IntN(4) == 0 {
			delete(m.Blocks, b.CIDR)
		} else {
			m.Blocks[b.CIDR] = b
		}
		d.block(b.CIDR)
	case k < 92:
		key := fmt.Sprintf("/wep/w%02d", r.IntN(30))
		if r.IntN(4) == 0 {
			delete(m.WEPs, key)
		} else {
			m.WEPs[key] = randomWEP(r)
		}
		d.wep(key)
	default:
		globalChange(r, m)
		d.global = true
	}
}

func nodeName(r *rand.Rand) string { return fmt.Sprintf("n%d", r.IntN(12)) }

// randomModel is node n0's model of a small cluster whose items collide
// often (shared addresses, overlapping blocks, borrowed addresses).
func randomModel(r *rand.Rand) *Model {
	m := &Model{NodeName: "n0", Nodes: map[string]Node{}, Pools: map[string]Pool{}, Blocks: map[netip.Prefix]Block{},
		WEPs: map[string]WEP{}}
	m.Host = HostFacts{ParentIf: "eth0", ParentIndex: 2}
	m.Felix.IPForwarding = true
	for _, p := range []Pool{
		{Name: "a", CIDR: netip.MustParsePrefix("10.0.0.0/16"), VXLANMode: api.VXLANModeAlways, NATOutgoing: true, Tunnel: true},
		{Name: "b", CIDR: netip.MustParsePrefix("10.1.0.0/16"), IPIPMode: api.IPIPModeCrossSubnet},
		{Name: "c", CIDR: netip.MustParsePrefix("10.2.0.0/16")},
		{Name: "d", CIDR: netip.MustParsePrefix("10.3.0.0/16"), VXLANMode: api.VXLANModeCrossSubnet},
		{Name: "v6", CIDR: netip.MustParsePrefix("fd00::/48"), VXLANMode: api.VXLANModeAlways},
	} {
		m.Pools[p.Name] = p
	}
	m.Nodes["n0"] = randomNode(r, "n0")
	me := m.Nodes["n0"]
	me.IPv4, me.VXLANTunnelAddr = netip.MustParsePrefix("172.16.0.1/24"), netip.MustParseAddr("10.0.0.1")
	m.Nodes["n0"] = me
	for range 10 {
		n := nodeName(r)
		m.Nodes[n] = randomNode(r, n)
	}
	for range 15 {
		b := randomBlock(r)
		m.Blocks[b.CIDR] = b
	}
	for i := range 20 {
		m.WEPs[fmt.Sprintf("/wep/w%02d", i)] = randomWEP(r)
	}
	return m
}

func randomNode(r *rand.Rand, name string) Node {
	n := Node{Name: name}
	if r.IntN(8) != 0 {
		n.IPv4 = netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16 + byte(r.IntN(2)), 0, byte(2 + r.IntN(40))}), 24)
	}
	if r.IntN(6) != 0 {
		n.VXLANTunnelAddr = netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(2)), byte(2 + r.IntN(250))})
	}
	if r.IntN(20) == 0 { // sometimes shared: a duplicate Calc resolves
		n.VXLANMAC = net.HardwareAddr{0x66, 0, 0, 0, 0, byte(r.IntN(4))}
	}
	if r.IntN(3) == 0 {
		n.IPv6 = netip.MustParsePrefix(fmt.Sprintf("fd01::%x/64", 2+r.IntN(20)))
		n.VXLANTunnelAddrV6 = netip.MustParseAddr(fmt.Sprintf("fd00::%x", 2+r.IntN(20)))
	}
	return n
}

// randomBlock picks a block in one of the pools (or outside them), of a
// few sizes that overlap, with an affinity and some borrowed addresses.
func randomBlock(r *rand.Rand) Block {
	sizes := []int{26, 26, 26, 28, 32, 24}
	bits := sizes[r.IntN(len(sizes))]
	var base netip.Addr
	if r.IntN(10) == 0 {
		base = netip.MustParseAddr(fmt.Sprintf("fd00::%x", r.IntN(4)*64))
		bits += 96
	} else {
		base = netip.AddrFrom4([4]byte{10, byte(r.IntN(5)), 0, byte(r.IntN(4) * 64)})
	}
	cidr := netip.PrefixFrom(base, bits).Masked()
	b := Block{CIDR: cidr}
	if r.IntN(6) != 0 {
		b.Affinity = nodeName(r)
	}
	for range r.IntN(3) {
		a := randomAddrIn(r, cidr)
		if n := nodeName(r); n != b.Affinity {
			if b.Borrowed == nil {
				b.Borrowed = map[netip.Addr]string{}
			}
			b.Borrowed[a] = n
		}
	}
	return b
}

func randomAddrIn(r *rand.Rand, p netip.Prefix) netip.Addr {
	a := p.Addr()
	host := min(p.Addr().BitLen()-p.Bits(), 8)
	for range r.IntN(1 << host) {
		a = a.Next()
	}
	return a
}

func randomWEP(r *rand.Rand) WEP {
	w := WEP{Interface: fmt.Sprintf("cali%d", r.IntN(8))}
	if r.IntN(8) != 0 {
		w.Node = nodeName(r)
	}
	for range 1 + r.IntN(2) {
		var a netip.Addr
		if r.IntN(10) == 0 {
			a = netip.MustParseAddr(fmt.Sprintf("fd00::%x", r.IntN(256)))
		} else {
			a = netip.AddrFrom4([4]byte{10, byte(r.IntN(5)), 0, byte(r.IntN(256))})
		}
		w.IPs = append(w.IPs, netip.PrefixFrom(a, a.BitLen()))
	}
	return w
}

// globalChange changes something every result depends on. BGP (which
// the calculator leaves to Calc) stays on until the next one.
func globalChange(r *rand.Rand, m *Model) {
	m.BGP.Enabled = false
	switch r.IntN(6) {
	case 0:
		p := m.Pools["a"]
		p.VXLANMode = []api.VXLANMode{api.VXLANModeAlways, api.VXLANModeCrossSubnet, api.VXLANModeNever}[r.IntN(3)]
		m.Pools["a"] = p
	case 1:
		m.Felix.IPv6Support = !m.Felix.IPv6Support
	case 2:
		m.BGP.Enabled = true
	case 3:
		if m.Host.ParentIf == "" {
			m.Host.ParentIf = "eth0"
		} else {
			m.Host.ParentIf = ""
		}
	case 4:
		p := m.Pools["c"]
		p.Disabled = !p.Disabled
		if r.IntN(2) == 0 {
			delete(m.Pools, "c")
		} else {
			m.Pools["c"] = p
		}
	default:
		me := m.Nodes["n0"]
		me.IPv4 = netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16 + byte(r.IntN(2)), 0, 1}), 24)
		m.Nodes["n0"] = me
	}
}

// BenchmarkIncrPass is the calculator's part of a pass for one new block
// in a cluster of 1,000 nodes (compare BenchmarkCalcScale, a full Calc):
// the block is claimed and released in turn, each a pass that pulls the
// item, recomputes its route and commits the change.
func BenchmarkIncrPass(b *testing.B) {
	live := &Model{NodeName: "n0000", Nodes: map[string]Node{}, Pools: map[string]Pool{}, Blocks: map[netip.Prefix]Block{}, WEPs: map[string]WEP{}}
	live.Host = HostFacts{ParentIf: "eth0", ParentIndex: 2}
	live.Pools["a"] = Pool{Name: "a", CIDR: netip.MustParsePrefix("10.64.0.0/12"), VXLANMode: api.VXLANModeAlways, Tunnel: true}
	for i := range 1000 {
		name := fmt.Sprintf("n%04d", i)
		blk := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 64 + byte(i>>10), byte(i >> 2), byte(i&3) << 6}), 26)
		live.Nodes[name] = Node{Name: name, IPv4: netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, byte((i + 1) >> 8), byte(i + 1)}), 12), VXLANTunnelAddr: blk.Addr()}
		live.Blocks[blk] = Block{CIDR: blk, Affinity: name}
	}
	m := live.clone()
	ic := newIncr(m, Calc(m))
	if ic == nil {
		b.Fatal("not seeded")
	}
	nb := netip.MustParsePrefix("10.70.0.0/26")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i++; i%2 == 1 {
			live.Blocks[nb] = Block{CIDR: nb, Affinity: "n0500"}
		} else {
			delete(live.Blocks, nb)
		}
		var d dirtySet
		d.block(nb)
		res, ok := ic.update(ic.pull(live, d))
		if !ok || len(res.routes) != 1 {
			b.Fatalf("ok %v, %d route changes", ok, len(res.routes))
		}
		ic.commit(res)
	}
}
