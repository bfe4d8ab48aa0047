package agent

import (
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/selector"
)

// Node is what the dataplane needs from one Node resource.
type Node struct {
	Name            string
	Labels          map[string]string
	IPv4            netip.Prefix // address with its subnet (host bits kept); invalid: none
	VXLANTunnelAddr netip.Addr
	VXLANMAC        net.HardwareAddr // nil: derived from the name (VTEPMAC)
	IPIPTunnelAddr  netip.Addr
	// IPv6, VXLANTunnelAddrV6 and VXLANMACV6 are the IPv6 counterparts
	// (calc6.go).
	IPv6              netip.Prefix
	VXLANTunnelAddrV6 netip.Addr
	VXLANMACV6        net.HardwareAddr
	ASNumber          uint32 // spec.bgp.asNumber; 0 = the cluster's
	RRClusterID       string // spec.bgp.routeReflectorClusterID
}

// Pool is what the dataplane needs from one IPPool.
type Pool struct {
	Name         string
	CIDR         netip.Prefix
	VXLANMode    api.VXLANMode
	IPIPMode     api.IPIPMode
	NATOutgoing  bool
	Disabled     bool
	NodeSelector string
	Tunnel       bool // allowedUses includes Tunnel
	// DisableBGPExport keeps the pool's addresses out of BGP.
	DisableBGPExport bool
}

// vxlan reports whether the pool uses VXLAN in some form.
func (p Pool) vxlan() bool {
	return p.VXLANMode == api.VXLANModeAlways || p.VXLANMode == api.VXLANModeCrossSubnet
}

// ipip reports whether the pool uses IPIP in some form.
func (p Pool) ipip() bool {
	return p.IPIPMode == api.IPIPModeAlways || p.IPIPMode == api.IPIPModeCrossSubnet
}

// selects reports whether the pool's nodeSelector matches n.
func (p Pool) selects(n Node) bool {
	sel := p.NodeSelector
	if sel == "" || sel == "all()" {
		return true
	}
	s, err := selector.Parse(sel)
	if err != nil {
		return false
	}
	return s.Evaluate(n.Labels)
}

// Block is what the dataplane needs from one IPAM block.
type Block struct {
	CIDR     netip.Prefix
	Affinity string // host the block is affine to; "" for none
	// Borrowed maps addresses of this block that are held by a node other
	// than Affinity (from the allocation's "node" attribute) to that node.
	Borrowed map[netip.Addr]string
}

// WEP is what the dataplane needs from one WorkloadEndpoint.
type WEP struct {
	Node      string
	Interface string
	IPs       []netip.Prefix
	Labels    map[string]string // for BGPPeer localWorkloadSelector
}

// VTEPMAC is the VXLAN device MAC upstream derives for a node that has no
// vxlanTunnelMACAddr: 0x66 ('f') followed by the first five bytes of
// sha1(nodename). Every node computes the same value for every other node.
func VTEPMAC(nodeName string) net.HardwareAddr {
	sum := sha1.Sum([]byte(nodeName))
	return net.HardwareAddr{0x66, sum[0], sum[1], sum[2], sum[3], sum[4]}
}

// mac returns the node's VXLAN MAC, derived when the resource has none.
func (n Node) mac() net.HardwareAddr {
	if len(n.VXLANMAC) == 6 {
		return n.VXLANMAC
	}
	return VTEPMAC(n.Name)
}

// nodeFromAPI keeps what the dataplane needs of r.
func nodeFromAPI(r *api.Node) Node {
	n := Node{Name: r.Name, Labels: r.Labels}
	var b api.NodeBGPSpec
	if r.Spec.BGP != nil {
		b = *r.Spec.BGP
	}
	n.IPv4, n.VXLANTunnelAddr, n.VXLANMAC = familyFields(netip.Addr.Is4,
		b.IPv4Address, r.Spec.IPv4VXLANTunnelAddr, r.Spec.VXLANTunnelMACAddr)
	n.IPv6, n.VXLANTunnelAddrV6, n.VXLANMACV6 = familyFields(netip.Addr.Is6,
		b.IPv6Address, r.Spec.IPv6VXLANTunnelAddr, r.Spec.VXLANTunnelMACAddrV6)
	if r.Spec.BGP != nil {
		if a, err := netip.ParseAddr(b.IPv4IPIPTunnelAddr); err == nil && a.Is4() {
			n.IPIPTunnelAddr = a
		}
		if b.ASNumber != nil {
			n.ASNumber = uint32(*b.ASNumber)
		}
		n.RRClusterID = b.RouteReflectorClusterID
	}
	return n
}

// familyFields parses one family's node address (with its subnet), VXLAN
// tunnel address and VXLAN MAC. Each result is zero when its text is
// empty, malformed or (for the addresses) not of the family that is
// reports.
func familyFields(is func(netip.Addr) bool, addr, tunnel, mac string) (netip.Prefix, netip.Addr, net.HardwareAddr) {
	var (
		p  netip.Prefix
		t  netip.Addr
		hw net.HardwareAddr
	)
	if addr != "" {
		if q, err := api.ParseAddrOrCIDR(addr); err == nil && is(q.Addr()) {
			p = q
		}
	}
	if a, err := netip.ParseAddr(tunnel); err == nil && is(a) {
		t = a
	}
	if m, err := net.ParseMAC(mac); err == nil && len(m) == 6 {
		hw = m
	}
	return p, t, hw
}

func poolFromAPI(r *api.IPPool) (Pool, bool) {
	c := r.Prefix()
	if !c.IsValid() {
		return Pool{}, false
	}
	return Pool{
		Name:         r.Name,
		CIDR:         c,
		VXLANMode:    r.Spec.VXLANMode,
		IPIPMode:     r.Spec.IPIPMode,
		NATOutgoing:  r.Spec.NATOutgoing,
		Disabled:     r.Spec.Disabled,
		NodeSelector: r.Spec.NodeSelector,
		Tunnel:       r.Allows(api.AllowedUseTunnel),

		DisableBGPExport: r.Spec.DisableBGPExport,
	}, true
}

// leanBlock is the part of a stored AllocationBlock the daemon reads:
// decoding only it skips building the unallocated list, the sequence
// numbers, the handles and each attribute's map (10,000 blocks at start).
type leanBlock struct {
	Affinity    *string   `json:"affinity"`
	Allocations allocList `json:"allocations"`
	Attributes  []struct {
		Secondary struct {
			Node string `json:"node"` // api.AttrNode
		} `json:"secondary"`
	} `json:"attributes"`
}

// blockFromJSON decodes a stored AllocationBlock.
func blockFromJSON(key string, value []byte) (Block, error) {
	cidr, err := api.ParseBlockKey(key)
	if err != nil {
		return Block{}, err
	}
	var b leanBlock
	if err := json.Unmarshal(value, &b); err != nil {
		return Block{}, fmt.Errorf("decode block %s: %w", key, err)
	}
	out := Block{CIDR: cidr}
	if h, ok := (&api.Block{Affinity: b.Affinity}).AffineHost(); ok {
		out.Affinity = h
	}
	for ord, idx := range b.Allocations {
		if idx < 0 || int(idx) >= len(b.Attributes) {
			continue
		}
		node := b.Attributes[idx].Secondary.Node
		if node == "" || node == out.Affinity {
			continue
		}
		ip, ok := addrAdd(cidr.Masked().Addr(), ord)
		if !ok || !cidr.Contains(ip) {
			continue
		}
		if out.Borrowed == nil {
			out.Borrowed = map[netip.Addr]string{}
		}
		out.Borrowed[ip] = node
	}
	return out, nil
}

// addrAdd returns base + n (n >= 0), or false on overflow.
func addrAdd(base netip.Addr, n int) (netip.Addr, bool) {
	b := base.AsSlice()
	carry := uint64(n)
	for i := len(b) - 1; i >= 0 && carry > 0; i-- {
		sum := uint64(b[i]) + carry&0xff
		b[i] = byte(sum)
		carry = carry>>8 + sum>>8
	}
	if carry > 0 {
		return netip.Addr{}, false
	}
	a, _ := netip.AddrFromSlice(b)
	return a, true
}

func wepFromAPI(r *api.WorkloadEndpoint) WEP {
	w := WEP{Node: r.Spec.Node, Interface: r.Spec.InterfaceName, Labels: r.Labels}
	for _, s := range r.Spec.IPNetworks {
		if p, err := api.ParseAddrOrCIDR(s); err == nil {
			w.IPs = append(w.IPs, p)
		}
	}
	return w
}

// Model is everything the calculation reads: the datastore view, the
// resolved Felix configuration and a few facts about the host's kernel.
// Calc never changes it.
type Model struct {
	NodeName string
	Nodes    map[string]Node
	Pools    map[string]Pool
	Blocks   map[netip.Prefix]Block
	WEPs     map[string]WEP // by etcd key
	Felix    FelixConfig
	Host     HostFacts
	// BGP is the BGP configuration and what the speaker learned (bgp.go).
	BGP BGPView
}

// HostFacts are kernel facts calc needs as inputs.
type HostFacts struct {
	// ParentIf and ParentIndex name the interface that holds this node's
	// IPv4 address ("" when it is on no interface).
	ParentIf    string
	ParentIndex int
	// ParentIfV6 and ParentIndexV6 are the same for its IPv6 address.
	ParentIfV6    string
	ParentIndexV6 int
	// HostMTU is the smallest MTU of the up links matching mtuIfacePattern
	// (1460 when none match).
	HostMTU int
	// IPIPUnsupported is set once the kernel refused to create tunl0.
	IPIPUnsupported bool
}

// clone returns a copy whose maps can be read while the original changes.
// Map values are immutable once stored, so a shallow copy of each map is
// enough.
func (m *Model) clone() *Model {
	c := *m
	c.Nodes = maps.Clone(m.Nodes)
	c.Pools = maps.Clone(m.Pools)
	c.Blocks = maps.Clone(m.Blocks)
	c.WEPs = maps.Clone(m.WEPs)
	c.BGP = m.BGP.clone()
	return &c
}

func sortedKeys[K interface{ ~string }, V any](m map[K]V) []K {
	ks := slices.Collect(maps.Keys(m))
	slices.Sort(ks)
	return ks
}

// tunnelPools lists, in pool name order, the CIDRs of the enabled pools
// of kind's family that use kind's encapsulation, select node n and allow
// tunnel addresses.
func tunnelPools(m *Model, n Node, kind TunnelKind) []string {
	var out []string
	for _, name := range sortedKeys(m.Pools) {
		p := m.Pools[name]
		if p.Disabled || !p.Tunnel || p.CIDR.Addr().Is6() != (kind == TunnelVXLANV6) || !p.selects(n) {
			continue
		}
		if ((kind == TunnelVXLAN || kind == TunnelVXLANV6) && p.vxlan()) || (kind == TunnelIPIP && p.ipip()) {
			out = append(out, p.CIDR.String())
		}
	}
	return out
}

// joinOr joins names, or returns "none".
func joinOr(ss []string) string {
	if len(ss) == 0 {
		return "none"
	}
	return strings.Join(ss, ", ")
}
