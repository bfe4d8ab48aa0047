package agent

import (
	"net/netip"
	"slices"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/tunnel"
)

// Constant-factor shortcuts of the calculation, each with the general
// path it stands for in calc.go.

// vtepsFast lists the other nodes' VTEPs sorted by tunnel address when no
// two of them share a tunnel address or a MAC; nil otherwise (or when
// there are none), and vxlan then takes them in node name order, which
// decides which of two duplicates wins. Without duplicates the order
// does not matter, so the names need no sorting.
func (c *calc) vtepsFast() []tunnel.VTEP {
	out := make([]tunnel.VTEP, 0, len(c.m.Nodes))
	macs := make(map[[6]byte]struct{}, len(c.m.Nodes))
	for name, n := range c.m.Nodes {
		if name == c.m.NodeName || !n.IPv4.IsValid() || !n.VXLANTunnelAddr.IsValid() {
			continue
		}
		mac := n.mac()
		if _, dup := macs[[6]byte(mac)]; dup {
			return nil
		}
		macs[[6]byte(mac)] = struct{}{}
		out = append(out, tunnel.VTEP{TunnelIP: n.VXLANTunnelAddr, MAC: mac, NodeIP: n.IPv4.Addr()})
	}
	slices.SortFunc(out, compareVTEP)
	for i := 1; i < len(out); i++ {
		if out[i].TunnelIP == out[i-1].TunnelIP {
			return nil
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// blockBits lists the prefix lengths of blocks, longest first.
func blockBits(blocks map[netip.Prefix]Block) []int {
	var seen [129]bool
	for p := range blocks {
		seen[p.Bits()] = true
	}
	return bitsOf(seen[:])
}

func bitsOf(seen []bool) []int {
	out := []int{}
	for b := len(seen) - 1; b >= 0; b-- {
		if seen[b] {
			out = append(out, b)
		}
	}
	return out
}

// blockOfBits is blockOf probing only the lengths blocks have (most
// blocks share one, so one map access instead of seven).
func (c *calc) blockOfBits(a netip.Addr) (Block, bool) {
	lo := api.MinBlockSizeV4
	if a.Is6() {
		lo = api.MinBlockSizeV6
	}
	for _, bits := range c.blockBits {
		if bits > a.BitLen() || bits < lo {
			continue
		}
		p, _ := a.Prefix(bits)
		if b, ok := c.m.Blocks[p]; ok {
			return b, true
		}
	}
	return Block{}, false
}
