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
	seeds, followed, globals, steps := uint64(200), 0, 0, 150
	if testing.Short() {
		seeds = 20
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			s := runIncrSeq(t, seed, steps)
			followed, globals = followed+s.incrOK, globals+s.globals
		})
	}
	// Most steps must exercise the calculator, not the full Calc, and
	// some of them global changes it followed.
	if total := int(seeds) * steps; followed < total/2 || globals < int(seeds) {
		t.Fatalf("the calculator followed %d of %d steps, %d with global changes", followed, total, globals)
	}
	t.Logf("the calculator followed %d of %d steps, %d with global changes", followed, int(seeds)*steps, globals)
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
	globals int // steps it followed that changed the global parts or a pool's routes
}

func runIncrSeq(t *testing.T, seed uint64, steps int) *incrSim {
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
	return s
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
	if !s.ic.globalStep(&in) {
		s.full()
		return
	}
	if in.global || len(in.dests) > 0 {
		s.globals++
	}
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
			t.Fatalf("step %d: incremental result differs from Calc\n%s\n%#v\n%#v", s.steps, diffLines(got.String(), want.String()), got, want)
		}
		if !reflect.DeepEqual(s.ic.pass().VTEPs, want.VTEPs) {
			t.Fatalf("step %d: pass VTEPs %v, want %v", s.steps, s.ic.pass().VTEPs, want.VTEPs)
		}
		if got, want := s.ic.poolOf, poolIndex(s.ic); !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d: destinations by pool %v, want %v", s.steps, got, want)
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

// poolIndex is what the calculator's inPool must hold, from scratch.
func poolIndex(ic *incrCalc) map[netip.Prefix]string {
	c := &calc{m: ic.m}
	out := map[netip.Prefix]string{}
	add := func(dst netip.Prefix) {
		if p, ok := c.poolFor(dst); ok {
			out[dst] = p.Name
		}
	}
	for dst := range ic.m.Blocks {
		add(dst)
	}
	for _, w := range ic.m.WEPs {
		for _, ip := range w.IPs {
			if w.Node != "" {
				add(hostPrefix(ip.Addr()))
			}
		}
	}
	for _, b := range ic.m.Blocks {
		for a := range b.Borrowed {
			add(hostPrefix(a))
		}
	}
	for name, dsts := range ic.inPool {
		for dst := range dsts {
			if out[dst] != name {
				out[dst] = "inPool:" + name
			}
		}
	}
	return out
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
		d.node(name)
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
	case k < 95:
		poolChange(r, m, d)
	case k < 98:
		felixChange(r, m)
		d.felix = true
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

// globalChange changes what only a full Calc follows: BGP (which the
// calculator leaves to Calc) stays on until the next one; the host facts
// (read by the apply step, not the datastore).
func globalChange(r *rand.Rand, m *Model) {
	m.BGP.Enabled = false
	switch r.IntN(3) {
	case 0:
		m.BGP.Enabled = true
	default:
		if m.Host.ParentIf == "" {
			m.Host.ParentIf = "eth0"
		} else {
			m.Host.ParentIf = ""
		}
	}
}

// poolChange changes one pool (or this node's Node, which the pools'
// route choice depends on too) and records it.
func poolChange(r *rand.Rand, m *Model, d *dirtySet) {
	name := []string{"a", "b", "c", "d", "v6"}[r.IntN(5)]
	p, ok := m.Pools[name]
	if !ok {
		p = Pool{Name: "c", CIDR: netip.MustParsePrefix("10.2.0.0/16")}
	}
	switch r.IntN(9) {
	case 0, 1:
		p.VXLANMode = []api.VXLANMode{api.VXLANModeAlways, api.VXLANModeCrossSubnet, api.VXLANModeNever}[r.IntN(3)]
	case 2:
		p.IPIPMode = []api.IPIPMode{api.IPIPModeAlways, api.IPIPModeCrossSubnet, api.IPIPModeNever}[r.IntN(3)]
	case 3:
		p.NATOutgoing = !p.NATOutgoing
	case 4:
		p.Disabled = !p.Disabled
	case 5:
		p.DisableBGPExport, p.NodeSelector = !p.DisableBGPExport, []string{"", "all()", "x == 'y'"}[r.IntN(3)]
	case 6:
		if name == "c" && ok && r.IntN(2) == 0 {
			delete(m.Pools, "c")
			d.pool("c")
			return
		}
		if name == "c" {
			p.CIDR = []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16"), netip.MustParsePrefix("10.2.0.0/17")}[r.IntN(2)]
		}
	default:
		me := m.Nodes["n0"]
		if r.IntN(3) == 0 {
			me.IPv4 = netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16 + byte(r.IntN(2)), 0, 1}), 24)
		} else {
			me.Labels = map[string]string{"x": []string{"y", "z"}[r.IntN(2)]}
			me.ASNumber = uint32(r.IntN(3))
		}
		m.Nodes["n0"] = me
		d.node("n0")
		return
	}
	if !ok {
		name = "c"
	}
	m.Pools[name] = p
	d.pool(name)
}

// felixChange changes one Felix setting: most feed no route (MTUs,
// sysctls, NAT, logging); vxlanEnabled, ipipEnabled and ipv6Support can
// change the device states; the VNI and interfacePrefix are read outside
// Calc.
func felixChange(r *rand.Rand, m *Model) {
	f := &m.Felix
	b := func() *bool {
		if r.IntN(3) == 0 {
			return nil
		}
		v := r.IntN(2) == 0
		return &v
	}
	switch r.IntN(10) {
	case 0:
		f.VXLANMTU = []int{0, 1400, 1410}[r.IntN(3)]
	case 1:
		f.IPIPMTU, f.VXLANMTUV6 = []int{0, 1400}[r.IntN(2)], []int{0, 1390}[r.IntN(2)]
	case 2:
		f.IPForwarding = !f.IPForwarding
	case 3:
		f.NATPortMin, f.NATPortMax = uint16(r.IntN(2))*1000, uint16(r.IntN(2))*2000
		f.NATOutgoingAddress = []netip.Addr{{}, netip.MustParseAddr("192.0.2.1")}[r.IntN(2)]
	case 4:
		f.LogSeverityScreen = []string{"Info", "Debug"}[r.IntN(2)]
	case 5:
		f.VXLANEnabled = b()
	case 6:
		f.IPIPEnabled = b()
	case 7:
		f.IPv6Support = !f.IPv6Support
	case 8:
		f.VXLANVNI = 4096 + r.IntN(2)
	default:
		f.InterfacePrefix = []string{"", "cali", "cali,tap"}[r.IntN(3)]
	}
}

// model1000 is the benchmarks' cluster of 1,000 VXLAN nodes, each with
// one /26 block, seen from n0000.
func model1000() *Model {
	live := &Model{NodeName: "n0000", Nodes: map[string]Node{}, Pools: map[string]Pool{}, Blocks: map[netip.Prefix]Block{}, WEPs: map[string]WEP{}}
	live.Host = HostFacts{ParentIf: "eth0", ParentIndex: 2}
	live.Pools["a"] = Pool{Name: "a", CIDR: netip.MustParsePrefix("10.64.0.0/12"), VXLANMode: api.VXLANModeAlways, Tunnel: true}
	for i := range 1000 {
		name := fmt.Sprintf("n%04d", i)
		blk := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 64 + byte(i>>10), byte(i >> 2), byte(i&3) << 6}), 26)
		live.Nodes[name] = Node{Name: name, IPv4: netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, byte((i + 1) >> 8), byte(i + 1)}), 12), VXLANTunnelAddr: blk.Addr()}
		live.Blocks[blk] = Block{CIDR: blk, Affinity: name}
	}
	return live
}

// BenchmarkIncrPass is the calculator's part of a pass for one new block
// in a cluster of 1,000 nodes (compare BenchmarkCalcScale, a full Calc):
// the block is claimed and released in turn, each a pass that pulls the
// item, recomputes its route and commits the change.
func BenchmarkIncrPass(b *testing.B) {
	live := model1000()
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
