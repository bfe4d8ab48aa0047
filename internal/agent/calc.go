package agent

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/dataplane/nft"
	"github.com/onecalico/calico/internal/dataplane/route"
	"github.com/onecalico/calico/internal/dataplane/tunnel"
)

// Names and numbers of what the daemon programs.
const (
	VXLANDevice = "vxlan.calico"
	IPIPDevice  = "tunl0"
	// RouteProtocol marks the routes the daemon derives from the datastore
	// (Felix's DefaultRouteProto).
	RouteProtocol = 80
	// VXLANOverhead and IPIPOverhead are the encapsulation overheads Felix
	// subtracts from the host MTU.
	VXLANOverhead = 50
	IPIPOverhead  = 20
)

// RouteOwner says which routes of the main table are the daemon's: protocol
// 80, and anything on vxlan.calico, vxlan-v6.calico or tunl0. Workload /32 routes on cali*
// belong to the CNI plugin and are never touched.
var RouteOwner = route.Owner{Protocols: []int{RouteProtocol}, LinkPrefixes: []string{VXLANDevice, VXLANV6Device, IPIPDevice}}

// DeviceState is whether an overlay device should exist.
type DeviceState int

// Device states. Keep means "not wanted now, but do not delete it either"
// (the device is wanted but this node's own information is incomplete).
const (
	DeviceAbsent DeviceState = iota
	DevicePresent
	DeviceKeep
)

// Desired is the whole dataplane state the daemon wants, computed purely
// from a Model. Every slice is sorted, so two Desired values compare with
// reflect.DeepEqual part by part.
type Desired struct {
	// Sysctls are the global kernel settings (ip_forward).
	Sysctls []netns.Sysctl
	// WorkloadIfaces are the local workload interfaces that get the
	// workload sysctls (once each).
	WorkloadIfaces []string
	VXLANState     DeviceState
	VXLAN          tunnel.VXLAN // valid when VXLANState == DevicePresent
	VTEPs          []tunnel.VTEP
	IPIPState      DeviceState
	IPIP           tunnel.IPIP
	// VXLANV6State, VXLANV6 and VTEPsV6 are the IPv6 device (calc6.go).
	VXLANV6State DeviceState
	VXLANV6      tunnel.VXLAN
	VTEPsV6      []tunnel.VTEP
	// WorkloadV6 says the workload interfaces also get WorkloadSysctlsV6.
	WorkloadV6 bool
	Routes     []route.Route
	NAT        nft.Table
	// MTU is the pod MTU for the MTU file.
	MTU int
	// Degraded lists features that do not work, one sentence each.
	Degraded []string
	// LocalWorkloads counts this node's workload endpoints.
	LocalWorkloads int
	// OwnBGPRoutes says whether protocol 12 routes are ours to delete
	// (see BGPView.Synced).
	OwnBGPRoutes bool
	// PeeringAddrs are the BGP peering addresses to put on workload
	// interfaces, by interface (bgp_workloads.go).
	PeeringAddrs map[string][]netip.Prefix
}

// WorkloadSysctls are the settings Felix keeps on every workload interface.
func WorkloadSysctls(ifName string) []netns.Sysctl {
	k := func(fam, kind, key string) string { return netns.SysctlKey("net", fam, kind, ifName, key) }
	return []netns.Sysctl{
		{Key: k("ipv4", "conf", "proxy_arp"), Value: "1"},
		{Key: k("ipv4", "conf", "forwarding"), Value: "1"},
		{Key: k("ipv4", "conf", "route_localnet"), Value: "1"},
		{Key: k("ipv4", "neigh", "proxy_delay"), Value: "0"},
		{Key: k("ipv6", "conf", "accept_ra"), Value: "0"},
	}
}

// Calc computes the desired dataplane from m. It is a pure function: no
// I/O, no clock, m is not changed.
func Calc(m *Model) Desired {
	c := calc{m: m, me: m.Nodes[m.NodeName]}
	return c.run()
}

type calc struct {
	m        *Model
	me       Node
	d        Desired
	degraded []string
	// skipped collects, per reason, the destinations not programmed.
	skipped map[string][]string
	// pools are m.Pools in name order (poolFor runs once per block).
	pools []Pool
	// blockBits are the blocks' prefix lengths, longest first (nil: not
	// known; blockOf then probes every length).
	blockBits []int
	// slow keeps to the general paths (calc_fast.go's test).
	slow bool
	// global computes only the parts that do not depend on the cluster's
	// Nodes, blocks and endpoints (calcGlobal).
	global bool
}

func (c *calc) degrade(format string, a ...any) {
	c.degraded = append(c.degraded, fmt.Sprintf(format, a...))
}

func (c *calc) skip(reason, what string) {
	if c.skipped == nil {
		c.skipped = map[string][]string{}
	}
	c.skipped[reason] = append(c.skipped[reason], what)
}

func (c *calc) run() Desired {
	m := c.m
	if m.Felix.IPForwarding {
		c.d.Sysctls = []netns.Sysctl{{Key: "net/ipv4/ip_forward", Value: "1"}}
	}
	if !c.global {
		c.workloads()
	}
	vxlanPools, ipipPools := c.encapPools()
	c.vxlan(vxlanPools)
	c.ipip(ipipPools)
	c.run6()
	if !c.global {
		c.routes()
	}
	c.nat()
	c.mtu(c.vxlanEnabled(vxlanPools), c.ipipEnabled(ipipPools))
	if c.d.VXLANV6State != DeviceAbsent {
		c.d.MTU = min(c.d.MTU, c.vxlanV6MTU())
	}
	for _, reason := range sortedKeys(c.skipped) {
		what := c.skipped[reason]
		slices.Sort(what)
		c.degrade("%s: %s", reason, strings.Join(what, ", "))
	}
	slices.Sort(c.degraded)
	c.d.Degraded = slices.Compact(c.degraded)
	return c.d
}

func (c *calc) workloads() {
	// Map order: ifs is sorted below, and the count needs no order (the
	// cluster's endpoints are not sorted for the few that are local).
	var ifs []string
	for _, w := range c.m.WEPs {
		if w.Node != c.m.NodeName {
			continue
		}
		c.d.LocalWorkloads++
		if w.Interface != "" {
			ifs = append(ifs, w.Interface)
		}
	}
	slices.Sort(ifs)
	c.d.WorkloadIfaces = slices.Compact(ifs)
}

// encapPools returns the names of the IPv4 pools using VXLAN and IPIP
// (disabled pools included: their existing blocks still need routes).
func (c *calc) encapPools() (vxlan, ipip []string) {
	for _, name := range sortedKeys(c.m.Pools) {
		p := c.m.Pools[name]
		if !p.CIDR.Addr().Is4() {
			continue
		}
		if p.vxlan() {
			vxlan = append(vxlan, name)
		}
		if p.ipip() {
			ipip = append(ipip, name)
		}
	}
	return vxlan, ipip
}

func (c *calc) vxlanEnabled(pools []string) bool {
	if e := c.m.Felix.VXLANEnabled; e != nil {
		return *e
	}
	return len(pools) > 0
}

func (c *calc) ipipEnabled(pools []string) bool {
	if e := c.m.Felix.IPIPEnabled; e != nil {
		return *e
	}
	return len(pools) > 0
}

func (c *calc) hostMTU() int {
	if c.m.Host.HostMTU > 0 {
		return c.m.Host.HostMTU
	}
	return 1460
}

func (c *calc) vxlanMTU() int {
	if c.m.Felix.VXLANMTU > 0 {
		return c.m.Felix.VXLANMTU
	}
	return c.hostMTU() - VXLANOverhead
}

func (c *calc) ipipMTU() int {
	if c.m.Felix.IPIPMTU > 0 {
		return c.m.Felix.IPIPMTU
	}
	return c.hostMTU() - IPIPOverhead
}

func (c *calc) vxlan(pools []string) {
	if !c.vxlanEnabled(pools) {
		c.d.VXLANState = DeviceAbsent
		if len(pools) > 0 {
			c.degrade("vxlan: vxlanEnabled is false in FelixConfiguration: routes for VXLAN pools %s are not programmed", joinOr(pools))
		}
		return
	}
	me := c.me
	var missing []string
	if !me.IPv4.IsValid() {
		missing = append(missing, "an IPv4 address (spec.bgp.ipv4Address)")
	}
	if !me.VXLANTunnelAddr.IsValid() {
		missing = append(missing, "a VXLAN tunnel address (spec.ipv4VXLANTunnelAddr)")
	}
	if me.IPv4.IsValid() && c.m.Host.ParentIf == "" {
		missing = append(missing, fmt.Sprintf("an interface holding %s", me.IPv4.Addr()))
	}
	if len(missing) > 0 {
		c.d.VXLANState = DeviceKeep
		c.degrade("vxlan: device %s is not programmed: node %s lacks %s", VXLANDevice, c.m.NodeName, strings.Join(missing, " and "))
		return
	}
	c.d.VXLANState = DevicePresent
	c.d.VXLAN = tunnel.VXLAN{
		Name:        VXLANDevice,
		VNI:         c.m.Felix.VXLANVNI,
		Port:        c.m.Felix.VXLANPort,
		MAC:         me.mac(),
		LocalIP:     me.IPv4.Addr(),
		ParentIndex: c.m.Host.ParentIndex,
		MTU:         c.vxlanMTU(),
		Addr:        netip.PrefixFrom(me.VXLANTunnelAddr, 32),
	}
	if c.global {
		return
	}
	if !c.slow {
		if c.d.VTEPs = c.vtepsFast(); c.d.VTEPs != nil {
			return
		}
	}
	seenIP := map[netip.Addr]string{}
	seenMAC := map[string]string{} // key: the MAC's bytes
	for _, name := range sortedKeys(c.m.Nodes) {
		n := c.m.Nodes[name]
		if name == c.m.NodeName || !n.IPv4.IsValid() || !n.VXLANTunnelAddr.IsValid() {
			continue
		}
		mac := n.mac()
		if other, dup := seenIP[n.VXLANTunnelAddr]; dup {
			c.degrade("vxlan: nodes %s and %s both claim VXLAN tunnel address %s; %s is ignored", other, name, n.VXLANTunnelAddr, name)
			continue
		}
		if other, dup := seenMAC[string(mac)]; dup {
			c.degrade("vxlan: nodes %s and %s both use VXLAN MAC %s; %s is ignored", other, name, mac, name)
			continue
		}
		seenIP[n.VXLANTunnelAddr], seenMAC[string(mac)] = name, name
		c.d.VTEPs = append(c.d.VTEPs, tunnel.VTEP{TunnelIP: n.VXLANTunnelAddr, MAC: mac, NodeIP: n.IPv4.Addr()})
	}
	slices.SortFunc(c.d.VTEPs, func(a, b tunnel.VTEP) int { return a.TunnelIP.Compare(b.TunnelIP) })
}

func (c *calc) ipip(pools []string) {
	if !c.ipipEnabled(pools) {
		c.d.IPIPState = DeviceAbsent
		if len(pools) > 0 {
			c.degrade("ipip: ipipEnabled is false in FelixConfiguration: routes for IPIP pools %s are not programmed", joinOr(pools))
		}
		return
	}
	if c.m.Host.IPIPUnsupported {
		c.d.IPIPState = DeviceAbsent
		c.degrade("ipip: IPIP is not supported by this kernel: routes for IPIP pools %s are not programmed; use vxlanMode", joinOr(pools))
		return
	}
	c.d.IPIPState = DevicePresent
	c.d.IPIP = tunnel.IPIP{Name: IPIPDevice, MTU: c.ipipMTU()}
	if c.me.IPIPTunnelAddr.IsValid() {
		c.d.IPIP.Addr = netip.PrefixFrom(c.me.IPIPTunnelAddr, 32)
	}
}

// poolFor returns the most specific pool containing p.
func (c *calc) poolFor(p netip.Prefix) (Pool, bool) {
	var best Pool
	found := false
	if c.pools == nil {
		c.pools = make([]Pool, 0, len(c.m.Pools))
		for _, name := range sortedKeys(c.m.Pools) {
			c.pools = append(c.pools, c.m.Pools[name])
		}
	}
	for _, pool := range c.pools {
		if pool.CIDR.Addr().Is4() != p.Addr().Is4() || pool.CIDR.Bits() > p.Bits() || !pool.CIDR.Contains(p.Addr()) {
			continue
		}
		if !found || pool.CIDR.Bits() > best.CIDR.Bits() {
			best, found = pool, true
		}
	}
	return best, found
}

func (c *calc) routes() {
	m := c.m
	want := make(map[netip.Prefix]route.Route, len(m.Blocks))
	// Addresses of local workloads: their /32 routes are the CNI plugin's,
	// so no route of ours may ever take their destination.
	local := map[netip.Prefix]bool{}
	for _, w := range m.WEPs {
		if w.Node != m.NodeName {
			continue
		}
		for _, ip := range w.IPs {
			local[netip.PrefixFrom(ip.Addr(), ip.Addr().BitLen())] = true
		}
	}
	add := func(dst netip.Prefix, r route.Route) {
		if local[dst] {
			return
		}
		want[dst] = r
	}
	// owner[ip] is the node an address belongs to when it is not the
	// block's affine node (borrowed addresses, from blocks and endpoints).
	// When two endpoints claim one address, the one with the greatest key
	// wins (the last in key order), without sorting every endpoint.
	borrowed := map[netip.Addr]string{}
	borrowedKey := map[netip.Addr]string{}
	if !c.slow {
		c.blockBits = blockBits(m.Blocks)
	}
	for k, w := range m.WEPs {
		if w.Node == "" {
			continue
		}
		for _, ip := range w.IPs {
			if b, ok := c.blockOf(ip.Addr()); !ok || b.Affinity != w.Node {
				if prev, seen := borrowedKey[ip.Addr()]; !seen || k > prev {
					borrowed[ip.Addr()], borrowedKey[ip.Addr()] = w.Node, k
				}
			}
		}
	}
	c.blockBorrowed(borrowed)
	for cidr, b := range m.Blocks {
		if c.off6(cidr.Addr()) {
			continue
		}
		pool, ok := c.poolFor(cidr)
		if !ok || b.Affinity == "" {
			continue
		}
		if b.Affinity == m.NodeName {
			if cidr.Bits() < cidr.Addr().BitLen() {
				add(cidr, route.Route{Dst: cidr, Type: route.Blackhole, Protocol: RouteProtocol})
			}
			continue
		}
		if c.bgpSource(pool) {
			continue
		}
		if r, ok := c.routeTo(cidr, b.Affinity, pool); ok {
			add(cidr, r)
		}
	}
	for _, ip := range slices.SortedFunc(maps.Keys(borrowed), func(a, b netip.Addr) int { return a.Compare(b) }) {
		node := borrowed[ip]
		if node == m.NodeName || c.off6(ip) {
			continue
		}
		dst := netip.PrefixFrom(ip, ip.BitLen())
		pool, ok := c.poolFor(dst)
		if !ok || c.bgpSource(pool) {
			continue
		}
		if r, ok := c.routeTo(dst, node, pool); ok {
			add(dst, r)
		}
	}
	c.bgpRoutes(add)
	out := make([]route.Route, 0, len(want))
	for _, r := range want {
		out = append(out, r)
	}
	route.Sort(out)
	c.d.Routes = out
}

// blockBorrowed adds the blocks' borrowed addresses to borrowed where the
// endpoints gave none: the first block in prefix order wins.
func (c *calc) blockBorrowed(borrowed map[netip.Addr]string) {
	var with []netip.Prefix // blocks that lend addresses (few)
	for cidr, b := range c.m.Blocks {
		if len(b.Borrowed) > 0 && !c.off6(cidr.Addr()) {
			with = append(with, cidr)
		}
	}
	slices.SortFunc(with, comparePrefix)
	for _, cidr := range with {
		for ip, node := range c.m.Blocks[cidr].Borrowed {
			if _, ok := borrowed[ip]; !ok {
				borrowed[ip] = node
			}
		}
	}
}

// blockOf finds the block containing a.
func (c *calc) blockOf(a netip.Addr) (Block, bool) {
	if c.blockBits != nil {
		return c.blockOfBits(a)
	}
	// Blocks are at most /20 (IPv4), so probing the masks from /32 down is
	// bounded and avoids a scan of every block.
	for bits := a.BitLen(); bits >= 0; bits-- {
		p, _ := a.Prefix(bits)
		if b, ok := c.m.Blocks[p]; ok {
			return b, true
		}
		if a.Is4() && bits <= api.MinBlockSizeV4 {
			break
		}
		if a.Is6() && bits <= api.MinBlockSizeV6 {
			break
		}
	}
	return Block{}, false
}

// routeTo builds the route for dst toward remote node name, following the
// encapsulation mode of pool. ok is false when it cannot be programmed; the
// reason is recorded as degraded.
func (c *calc) routeTo(dst netip.Prefix, name string, pool Pool) (route.Route, bool) {
	if dst.Addr().Is6() {
		return c.routeTo6(dst, name, pool)
	}
	n, ok := c.m.Nodes[name]
	what := func() string { return fmt.Sprintf("%s (node %s)", dst, name) } // only when skipped
	if !ok || !n.IPv4.IsValid() {
		c.skip("routes: remote node has no IPv4 address", what())
		return route.Route{}, false
	}
	nodeIP := n.IPv4.Addr()
	sameSubnet := c.me.IPv4.IsValid() && c.me.IPv4.Masked().Contains(nodeIP)
	switch {
	case pool.VXLANMode == api.VXLANModeAlways || (pool.VXLANMode == api.VXLANModeCrossSubnet && !sameSubnet):
		if c.d.VXLANState != DevicePresent {
			c.skip("routes: no local "+VXLANDevice+" device", what())
			return route.Route{}, false
		}
		if !n.VXLANTunnelAddr.IsValid() {
			c.skip("routes: remote node has no VXLAN tunnel address", what())
			return route.Route{}, false
		}
		return route.Route{Dst: dst, Gw: n.VXLANTunnelAddr, LinkName: VXLANDevice, OnLink: true, Protocol: RouteProtocol}, true
	case pool.IPIPMode == api.IPIPModeAlways || (pool.IPIPMode == api.IPIPModeCrossSubnet && !sameSubnet):
		if c.d.IPIPState != DevicePresent {
			// Reported once as the ipip degradation.
			return route.Route{}, false
		}
		return route.Route{Dst: dst, Gw: nodeIP, LinkName: IPIPDevice, OnLink: true, Protocol: RouteProtocol}, true
	}
	// No encapsulation, or CrossSubnet within this node's subnet: route
	// straight to the node over the interface that holds our address.
	if !sameSubnet {
		c.skip("routes: pool "+pool.Name+" has no encapsulation and the node is not on this node's subnet (needs BGP)", what())
		return route.Route{}, false
	}
	if c.m.Host.ParentIf == "" {
		c.skip("routes: no interface holds this node's IPv4 address", what())
		return route.Route{}, false
	}
	return route.Route{Dst: dst, Gw: nodeIP, LinkName: c.m.Host.ParentIf, Protocol: RouteProtocol}, true
}

func (c *calc) nat() {
	f := c.m.Felix
	t := nft.Table{Name: nft.DefaultTableName, NAT: nft.NAT{FullyRandom: true,
		SNATAddress: f.NATOutgoingAddress, PortMin: f.NATPortMin, PortMax: f.NATPortMax}}
	for _, name := range sortedKeys(c.m.Pools) {
		p := c.m.Pools[name]
		t.NAT.AllPools = append(t.NAT.AllPools, p.CIDR)
		if p.NATOutgoing && !p.Disabled {
			t.NAT.MasqPools = append(t.NAT.MasqPools, p.CIDR)
		}
	}
	slices.SortFunc(t.NAT.AllPools, comparePrefix)
	slices.SortFunc(t.NAT.MasqPools, comparePrefix)
	c.d.NAT = t
}

func (c *calc) mtu(vxlan, ipip bool) {
	mtu := c.hostMTU()
	if vxlan {
		mtu = min(mtu, c.vxlanMTU())
	}
	if ipip {
		mtu = min(mtu, c.ipipMTU())
	}
	c.d.MTU = mtu
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// String renders a Desired for logs and golden tests: one line per item,
// in a fixed order.
func (d Desired) String() string {
	var b strings.Builder
	for _, s := range d.Sysctls {
		fmt.Fprintf(&b, "sysctl %s=%s\n", s.Key, s.Value)
	}
	for _, i := range d.WorkloadIfaces {
		fmt.Fprintf(&b, "workload %s\n", i)
	}
	switch d.VXLANState {
	case DevicePresent:
		v := d.VXLAN
		fmt.Fprintf(&b, "vxlan %s vni %d port %d mac %s local %s parent %d mtu %d addr %s\n", v.Name, v.VNI, v.Port, v.MAC, v.LocalIP, v.ParentIndex, v.MTU, v.Addr)
	case DeviceKeep:
		fmt.Fprintf(&b, "vxlan keep\n")
	}
	for _, v := range d.VTEPs {
		fmt.Fprintf(&b, "vtep %s mac %s node %s\n", v.TunnelIP, v.MAC, v.NodeIP)
	}
	d.string6(&b)
	if d.IPIPState == DevicePresent {
		fmt.Fprintf(&b, "ipip %s mtu %d addr %s\n", d.IPIP.Name, d.IPIP.MTU, d.IPIP.Addr)
	}
	for _, r := range d.Routes {
		fmt.Fprintf(&b, "route %s\n", r)
	}
	fmt.Fprintf(&b, "nat masq %v all %v\n", d.NAT.NAT.MasqPools, d.NAT.NAT.AllPools)
	fmt.Fprintf(&b, "mtu %d\n", d.MTU)
	for _, s := range d.Degraded {
		fmt.Fprintf(&b, "degraded %s\n", s)
	}
	return b.String()
}
