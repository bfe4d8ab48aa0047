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

// famV4 is the IPv4 VXLAN device and routes (famV6 is calc6.go's).
var famV4 = family{name: "vxlan", device: VXLANDevice, ip: "IPv4", bits: 32, overhead: VXLANOverhead,
	forwarding: "net/ipv4/ip_forward", needIP: "an IPv4 address (spec.bgp.ipv4Address)",
	needTunnel: "a VXLAN tunnel address (spec.ipv4VXLANTunnelAddr)"}

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
	c.forwarding(&famV4)
	if !c.global {
		c.workloads()
	}
	vxlanPools, ipipPools := c.encapPools(&famV4)
	c.vxlan(&famV4, vxlanPools)
	c.ipip(ipipPools)
	c.run6()
	if !c.global {
		c.routes()
	}
	c.nat()
	c.mtu(c.vxlanEnabled(vxlanPools), c.ipipEnabled(ipipPools))
	if c.d.VXLANV6State != DeviceAbsent {
		c.d.MTU = min(c.d.MTU, c.vxlanMTU(&famV6))
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

// encapPools returns the names of family f's pools using VXLAN and IPIP
// (disabled pools included: their existing blocks still need routes).
func (c *calc) encapPools(f *family) (vxlan, ipip []string) {
	for _, name := range sortedKeys(c.m.Pools) {
		p := c.m.Pools[name]
		if !f.holds(p.CIDR.Addr()) {
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

// forwarding adds family f's global forwarding setting.
func (c *calc) forwarding(f *family) {
	if c.m.Felix.IPForwarding {
		c.d.Sysctls = append(c.d.Sysctls, netns.Sysctl{Key: f.forwarding, Value: "1"})
	}
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

// encapMTU is an encapsulation's MTU: Felix's setting, else the host
// MTU less the encapsulation's overhead.
func (c *calc) encapMTU(setting, overhead int) int {
	if setting > 0 {
		return setting
	}
	return c.hostMTU() - overhead
}

func (c *calc) vxlanMTU(f *family) int {
	setting := c.m.Felix.VXLANMTU
	if f.v6 {
		setting = c.m.Felix.VXLANMTUV6
	}
	return c.encapMTU(setting, f.overhead)
}

func (c *calc) ipipMTU() int { return c.encapMTU(c.m.Felix.IPIPMTU, IPIPOverhead) }

// vxlan decides family f's VXLAN device and, unless global, its VTEPs.
func (c *calc) vxlan(f *family, pools []string) {
	state, dev, vteps := f.out(&c.d)
	on := c.vxlanEnabled(pools)
	if f.v6 {
		// No IPv6 device without an IPv6 VXLAN pool, even when
		// vxlanEnabled is true (IPv4 keeps its device then).
		on = on && len(pools) > 0
	}
	if !on {
		*state = DeviceAbsent
		if len(pools) > 0 {
			c.degrade("%s: vxlanEnabled is false in FelixConfiguration: routes for VXLAN pools %s are not programmed", f.name, joinOr(pools))
		}
		return
	}
	ip, tun := f.addrs(c.me)
	parentIf, parentIndex := f.parent(c.m.Host)
	if missing := f.lacks(ip, tun, parentIf); len(missing) > 0 {
		*state = DeviceKeep
		c.degrade("%s: device %s is not programmed: node %s lacks %s", f.name, f.device, c.m.NodeName, strings.Join(missing, " and "))
		return
	}
	*state = DevicePresent
	*dev = tunnel.VXLAN{
		Name:        f.device,
		VNI:         c.m.Felix.VXLANVNI,
		Port:        c.m.Felix.VXLANPort,
		MAC:         f.mac(c.me),
		LocalIP:     ip.Addr(),
		ParentIndex: parentIndex,
		MTU:         c.vxlanMTU(f),
		Addr:        netip.PrefixFrom(tun, f.bits),
	}
	if !c.global {
		*vteps = c.vteps(f)
	}
}

// vteps lists the other nodes' VTEPs of family f by tunnel address; of
// two nodes claiming one tunnel address or MAC, the first by name wins.
func (c *calc) vteps(f *family) []tunnel.VTEP {
	if !f.v6 && !c.slow { // the shortcut is IPv4's (calc_fast.go)
		if out := c.vtepsFast(); out != nil {
			return out
		}
	}
	var out []tunnel.VTEP
	seenIP := map[netip.Addr]string{}
	seenMAC := map[string]string{} // key: the MAC's bytes
	for _, name := range sortedKeys(c.m.Nodes) {
		n := c.m.Nodes[name]
		ip, tun := f.addrs(n)
		if name == c.m.NodeName || !ip.IsValid() || !tun.IsValid() {
			continue
		}
		mac := f.mac(n)
		if other, dup := seenIP[tun]; dup {
			c.degrade("%s: nodes %s and %s both claim %sVXLAN tunnel address %s; %s is ignored", f.name, other, name, f.qual, tun, name)
			continue
		}
		if other, dup := seenMAC[string(mac)]; dup {
			c.degrade("%s: nodes %s and %s both use %sVXLAN MAC %s; %s is ignored", f.name, other, name, f.qual, mac, name)
			continue
		}
		seenIP[tun], seenMAC[string(mac)] = name, name
		out = append(out, tunnel.VTEP{TunnelIP: tun, MAC: mac, NodeIP: ip.Addr()})
	}
	slices.SortFunc(out, compareVTEP)
	return out
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
// encapsulation mode of pool: over the VXLAN device of dst's family to
// the node's VTEP (Always, or CrossSubnet off this node's subnet), over
// tunl0 likewise (IPv4 only), else straight to the node on this node's
// subnet. ok is false when it cannot be programmed; the reason is
// recorded as degraded.
func (c *calc) routeTo(dst netip.Prefix, name string, pool Pool) (route.Route, bool) {
	f := &famV4
	if dst.Addr().Is6() {
		f = &famV6
	}
	n, ok := c.m.Nodes[name]
	ip, tun := f.addrs(n)
	what := func() string { return fmt.Sprintf("%s (node %s)", dst, name) } // only when skipped
	if !ok {
		// A block whose Node is not known: a node that has claimed its
		// block and not yet registered (it creates its Node after the
		// claim), or one deleted with its blocks left. Nothing to route
		// to yet, and nothing wrong here: not a degradation (Felix too
		// waits for the node without a warning).
		return route.Route{}, false
	}
	if !ip.IsValid() {
		c.skip("routes: remote node has no "+f.ip+" address", what())
		return route.Route{}, false
	}
	nodeIP := ip.Addr()
	mine, _ := f.addrs(c.me)
	sameSubnet := mine.IsValid() && mine.Masked().Contains(nodeIP)
	switch {
	case pool.VXLANMode == api.VXLANModeAlways || (pool.VXLANMode == api.VXLANModeCrossSubnet && !sameSubnet):
		if state, _, _ := f.out(&c.d); *state != DevicePresent {
			c.skip("routes: no local "+f.device+" device", what())
			return route.Route{}, false
		}
		if !tun.IsValid() {
			c.skip("routes: remote node has no "+f.qual+"VXLAN tunnel address", what())
			return route.Route{}, false
		}
		return route.Route{Dst: dst, Gw: tun, LinkName: f.device, OnLink: true, Protocol: RouteProtocol}, true
	case !f.v6 && (pool.IPIPMode == api.IPIPModeAlways || (pool.IPIPMode == api.IPIPModeCrossSubnet && !sameSubnet)):
		if c.d.IPIPState != DevicePresent {
			// Reported once as the ipip degradation.
			return route.Route{}, false
		}
		return route.Route{Dst: dst, Gw: nodeIP, LinkName: IPIPDevice, OnLink: true, Protocol: RouteProtocol}, true
	}
	// No encapsulation, or CrossSubnet within this node's subnet: route
	// straight to the node over the interface that holds our address.
	if !sameSubnet {
		c.skip("routes: pool "+pool.Name+" has no encapsulation and the node is not on this node's "+f.qual+"subnet (needs BGP)", what())
		return route.Route{}, false
	}
	parentIf, _ := f.parent(c.m.Host)
	if parentIf == "" {
		c.skip("routes: no interface holds this node's "+f.ip+" address", what())
		return route.Route{}, false
	}
	return route.Route{Dst: dst, Gw: nodeIP, LinkName: parentIf, Protocol: RouteProtocol}, true
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
		mtu = min(mtu, c.vxlanMTU(&famV4))
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
	writeVXLAN(&b, "", d.VXLANState, d.VXLAN, d.VTEPs)
	writeVXLAN(&b, "6", d.VXLANV6State, d.VXLANV6, d.VTEPsV6)
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

// writeVXLAN renders one family's device and VTEPs for String; sfx is
// "" for IPv4 and "6" for IPv6.
func writeVXLAN(b *strings.Builder, sfx string, state DeviceState, v tunnel.VXLAN, vteps []tunnel.VTEP) {
	switch state {
	case DevicePresent:
		fmt.Fprintf(b, "vxlan%s %s vni %d port %d mac %s local %s parent %d mtu %d addr %s\n", sfx, v.Name, v.VNI, v.Port, v.MAC, v.LocalIP, v.ParentIndex, v.MTU, v.Addr)
	case DeviceKeep:
		fmt.Fprintf(b, "vxlan%s keep\n", sfx)
	}
	for _, v := range vteps {
		fmt.Fprintf(b, "vtep%s %s mac %s node %s\n", sfx, v.TunnelIP, v.MAC, v.NodeIP)
	}
}
