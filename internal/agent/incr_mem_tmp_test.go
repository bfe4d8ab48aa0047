package agent

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"github.com/onecalico/calico/internal/api"
)

func memModel(n int) *Model {
	m := &Model{NodeName: "n0000", Nodes: map[string]Node{}, Pools: map[string]Pool{},
		Blocks: map[netip.Prefix]Block{}, WEPs: map[string]WEP{}}
	m.Felix.IPForwarding = true
	m.Host = HostFacts{ParentIf: "eth0", ParentIndex: 2}
	m.Pools["a"] = Pool{Name: "a", CIDR: netip.MustParsePrefix("10.64.0.0/12"), VXLANMode: api.VXLANModeAlways, NATOutgoing: true, Tunnel: true}
	for i := range n {
		name := fmt.Sprintf("n%04d", i)
		blk := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 64 + byte(i>>10), byte(i >> 2), byte(i&3) << 6}), 26)
		m.Nodes[name] = Node{Name: name, IPv4: netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, byte((i + 1) >> 8), byte(i + 1)}), 12), VXLANTunnelAddr: blk.Addr()}
		m.Blocks[blk] = Block{CIDR: blk, Affinity: name}
	}
	return m
}

func heap() uint64 { runtime.GC(); runtime.GC(); var s runtime.MemStats; runtime.ReadMemStats(&s); return s.HeapAlloc }

func TestIncrMem(t *testing.T) {
	m := memModel(1000)
	d := Calc(m)
	h0 := heap()
	ic := newIncr(m, d)
	h1 := heap()
	t.Logf("incr state at 1000 nodes: %d KB (model+desired would be separate)", (h1-h0)/1024)
	runtime.KeepAlive(ic)
	runtime.KeepAlive(d)
	runtime.KeepAlive(m)
}
