package agent

import (
	"crypto/sha1"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/dataplane/route"
	"github.com/onecalico/calico/internal/dataplane/tunnel"
)

// The IPv6 half of the calculation: the vxlan-v6.calico device and its
// VTEPs, routes to remote IPv6 blocks and the IPv6 kernel settings, as
// Felix programs them when ipv6Support is on. Everything here is pure,
// like calc.go.

// IPv6 names and numbers.
const (
	VXLANV6Device = "vxlan-v6.calico"
	// VXLANV6Overhead is what Felix subtracts from the host MTU for VXLAN
	// over IPv6 (a 40-byte IPv6 header instead of 20).
	VXLANV6Overhead = 70
)

// VTEPMACV6 is the vxlan-v6.calico MAC upstream derives for a node that
// has no vxlanTunnelMACAddrV6: 0x66 followed by the first five bytes of
// sha1(nodename + "-v6").
func VTEPMACV6(nodeName string) net.HardwareAddr {
	sum := sha1.Sum([]byte(nodeName + "-v6"))
	return net.HardwareAddr{0x66, sum[0], sum[1], sum[2], sum[3], sum[4]}
}

// macV6 returns the node's IPv6 VXLAN MAC, derived when the resource has none.
func (n Node) macV6() net.HardwareAddr {
	if len(n.VXLANMACV6) == 6 {
		return n.VXLANMACV6
	}
	return VTEPMACV6(n.Name)
}

// fill6 copies the IPv6 fields of r into n.
func (n *Node) fill6(r *api.Node) {
	if r.Spec.BGP != nil && r.Spec.BGP.IPv6Address != "" {
		if p, err := api.ParseAddrOrCIDR(r.Spec.BGP.IPv6Address); err == nil && p.Addr().Is6() {
			n.IPv6 = p
		}
	}
	if a, err := netip.ParseAddr(r.Spec.IPv6VXLANTunnelAddr); err == nil && a.Is6() {
		n.VXLANTunnelAddrV6 = a
	}
	if m, err := net.ParseMAC(r.Spec.VXLANTunnelMACAddrV6); err == nil && len(m) == 6 {
		n.VXLANMACV6 = m
	}
}

// ipv6On reports whether this node does IPv6 at all: Felix's ipv6Support
// and at least one IPv6 pool (an IPv4-only cluster gets no IPv6 settings).
func (c *calc) ipv6On() bool {
	if !c.m.Felix.IPv6Support {
		return false
	}
	for _, p := range c.m.Pools {
		if p.CIDR.Addr().Is6() {
			return true
		}
	}
	return false
}

// run6 computes the IPv6 parts that do not depend on routes: settings,
// the device and its VTEPs. It runs after the IPv4 devices.
func (c *calc) run6() {
	if !c.ipv6On() {
		c.d.VXLANV6State = DeviceAbsent
		return
	}
	c.d.WorkloadV6 = true
	if c.m.Felix.IPForwarding {
		c.d.Sysctls = append(c.d.Sysctls, netns.Sysctl{Key: "net/ipv6/conf/all/forwarding", Value: "1"})
	}
	c.vxlan6(c.encapPools6())
}

// encapPools6 returns the names of the IPv6 pools using VXLAN (disabled
// pools included, as for IPv4).
func (c *calc) encapPools6() []string {
	var out []string
	for _, name := range sortedKeys(c.m.Pools) {
		if p := c.m.Pools[name]; p.CIDR.Addr().Is6() && p.vxlan() {
			out = append(out, name)
		}
	}
	return out
}

func (c *calc) vxlanV6MTU() int {
	if c.m.Felix.VXLANMTUV6 > 0 {
		return c.m.Felix.VXLANMTUV6
	}
	return c.hostMTU() - VXLANV6Overhead
}

// vxlan6 is vxlan for IPv6: the device exists while an IPv6 pool uses
// VXLAN (vxlanEnabled=false turns both families off).
func (c *calc) vxlan6(pools []string) {
	if len(pools) == 0 || (c.m.Felix.VXLANEnabled != nil && !*c.m.Felix.VXLANEnabled) {
		c.d.VXLANV6State = DeviceAbsent
		if len(pools) > 0 {
			c.degrade("vxlan-v6: vxlanEnabled is false in FelixConfiguration: routes for VXLAN pools %s are not programmed", joinOr(pools))
		}
		return
	}
	me := c.me
	var missing []string
	if !me.IPv6.IsValid() {
		missing = append(missing, "an IPv6 address (spec.bgp.ipv6Address)")
	}
	if !me.VXLANTunnelAddrV6.IsValid() {
		missing = append(missing, "an IPv6 VXLAN tunnel address (spec.ipv6VXLANTunnelAddr)")
	}
	if me.IPv6.IsValid() && c.m.Host.ParentIfV6 == "" {
		missing = append(missing, fmt.Sprintf("an interface holding %s", me.IPv6.Addr()))
	}
	if len(missing) > 0 {
		c.d.VXLANV6State = DeviceKeep
		c.degrade("vxlan-v6: device %s is not programmed: node %s lacks %s", VXLANV6Device, c.m.NodeName, strings.Join(missing, " and "))
		return
	}
	c.d.VXLANV6State = DevicePresent
	c.d.VXLANV6 = tunnel.VXLAN{
		Name:        VXLANV6Device,
		VNI:         c.m.Felix.VXLANVNI,
		Port:        c.m.Felix.VXLANPort,
		MAC:         me.macV6(),
		LocalIP:     me.IPv6.Addr(),
		ParentIndex: c.m.Host.ParentIndexV6,
		MTU:         c.vxlanV6MTU(),
		Addr:        netip.PrefixFrom(me.VXLANTunnelAddrV6, 128),
	}
	if !c.global {
		c.d.VTEPsV6 = c.vteps6()
	}
}

// vteps6 lists the other nodes' IPv6 VTEPs, skipping duplicates.
func (c *calc) vteps6() []tunnel.VTEP {
	var out []tunnel.VTEP
	seenIP := map[netip.Addr]string{}
	seenMAC := map[string]string{}
	for _, name := range sortedKeys(c.m.Nodes) {
		n := c.m.Nodes[name]
		if name == c.m.NodeName || !n.IPv6.IsValid() || !n.VXLANTunnelAddrV6.IsValid() {
			continue
		}
		mac := n.macV6()
		if other, dup := seenIP[n.VXLANTunnelAddrV6]; dup {
			c.degrade("vxlan-v6: nodes %s and %s both claim IPv6 VXLAN tunnel address %s; %s is ignored", other, name, n.VXLANTunnelAddrV6, name)
			continue
		}
		if other, dup := seenMAC[string(mac)]; dup {
			c.degrade("vxlan-v6: nodes %s and %s both use IPv6 VXLAN MAC %s; %s is ignored", other, name, mac, name)
			continue
		}
		seenIP[n.VXLANTunnelAddrV6], seenMAC[string(mac)] = name, name
		out = append(out, tunnel.VTEP{TunnelIP: n.VXLANTunnelAddrV6, MAC: mac, NodeIP: n.IPv6.Addr()})
	}
	slices.SortFunc(out, func(a, b tunnel.VTEP) int { return a.TunnelIP.Compare(b.TunnelIP) })
	return out
}

// routeTo6 is routeTo for an IPv6 destination: over vxlan-v6.calico to
// the remote VTEP (VXLAN Always, or CrossSubnet off this node's IPv6
// subnet), else straight to the node's IPv6 address on the same subnet.
// IPv6 has no IPIP mode.
func (c *calc) routeTo6(dst netip.Prefix, name string, pool Pool) (route.Route, bool) {
	n, ok := c.m.Nodes[name]
	what := func() string { return fmt.Sprintf("%s (node %s)", dst, name) }
	if !ok || !n.IPv6.IsValid() {
		c.skip("routes: remote node has no IPv6 address", what())
		return route.Route{}, false
	}
	nodeIP := n.IPv6.Addr()
	sameSubnet := c.me.IPv6.IsValid() && c.me.IPv6.Masked().Contains(nodeIP)
	if pool.VXLANMode == api.VXLANModeAlways || (pool.VXLANMode == api.VXLANModeCrossSubnet && !sameSubnet) {
		if c.d.VXLANV6State != DevicePresent {
			c.skip("routes: no local "+VXLANV6Device+" device", what())
			return route.Route{}, false
		}
		if !n.VXLANTunnelAddrV6.IsValid() {
			c.skip("routes: remote node has no IPv6 VXLAN tunnel address", what())
			return route.Route{}, false
		}
		return route.Route{Dst: dst, Gw: n.VXLANTunnelAddrV6, LinkName: VXLANV6Device, OnLink: true, Protocol: RouteProtocol}, true
	}
	if !sameSubnet {
		c.skip("routes: pool "+pool.Name+" has no encapsulation and the node is not on this node's IPv6 subnet (needs BGP)", what())
		return route.Route{}, false
	}
	if c.m.Host.ParentIfV6 == "" {
		c.skip("routes: no interface holds this node's IPv6 address", what())
		return route.Route{}, false
	}
	return route.Route{Dst: dst, Gw: nodeIP, LinkName: c.m.Host.ParentIfV6, Protocol: RouteProtocol}, true
}

// WorkloadSysctlsV6 are the IPv6 settings Felix keeps on every workload
// interface when IPv6 is on: proxy NDP (the host answers for the pod's
// neighbours) and forwarding of packets from the pod.
func WorkloadSysctlsV6(ifName string) []netns.Sysctl {
	k := func(key string) string { return netns.SysctlKey("net", "ipv6", "conf", ifName, key) }
	return []netns.Sysctl{
		{Key: k("proxy_ndp"), Value: "1"},
		{Key: k("forwarding"), Value: "1"},
	}
}

// string6 renders the IPv6 device and VTEPs for Desired.String.
func (d Desired) string6(b *strings.Builder) {
	switch d.VXLANV6State {
	case DevicePresent:
		v := d.VXLANV6
		fmt.Fprintf(b, "vxlan6 %s vni %d port %d mac %s local %s parent %d mtu %d addr %s\n", v.Name, v.VNI, v.Port, v.MAC, v.LocalIP, v.ParentIndex, v.MTU, v.Addr)
	case DeviceKeep:
		fmt.Fprintf(b, "vxlan6 keep\n")
	}
	for _, v := range d.VTEPsV6 {
		fmt.Fprintf(b, "vtep6 %s mac %s node %s\n", v.TunnelIP, v.MAC, v.NodeIP)
	}
}

// off6 reports whether a is an IPv6 address while IPv6 is off (its blocks
// get no routes and no blackholes).
func (c *calc) off6(a netip.Addr) bool { return a.Is6() && !c.d.WorkloadV6 }
