package agent

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/dataplane/tunnel"
)

// The IPv6 half of the calculation: the vxlan-v6.calico device and its
// VTEPs, routes to remote IPv6 blocks and the IPv6 kernel settings, as
// Felix programs them when ipv6Support is on. Everything here is pure,
// like calc.go. The device, VTEP and route logic is calc.go's, shared by
// both families through a family value (below): what differs between
// them in names and numbers only.

// IPv6 names and numbers.
const (
	VXLANV6Device = "vxlan-v6.calico"
	// VXLANV6Overhead is what Felix subtracts from the host MTU for VXLAN
	// over IPv6 (a 40-byte IPv6 header instead of 20).
	VXLANV6Overhead = 70
)

// famV6 is the IPv6 VXLAN device and routes.
var famV6 = family{v6: true, name: "vxlan-v6", device: VXLANV6Device, ip: "IPv6", qual: "IPv6 ", bits: 128,
	overhead: VXLANV6Overhead, forwarding: "net/ipv6/conf/all/forwarding",
	needIP:     "an IPv6 address (spec.bgp.ipv6Address)",
	needTunnel: "an IPv6 VXLAN tunnel address (spec.ipv6VXLANTunnelAddr)"}

// family is what tells the IPv4 and the IPv6 VXLAN device, VTEPs and
// routes apart where they differ only in names and numbers. Where
// upstream differs in behaviour (IPIP is IPv4's; no IPv6 device without
// an IPv6 VXLAN pool), the code tests v6 and says so.
type family struct {
	v6         bool
	name       string // prefix of the degradation sentences
	device     string
	ip         string // "IPv4" or "IPv6", in sentences
	qual       string // "" or "IPv6 ": before "VXLAN tunnel address", "VXLAN MAC", "subnet"
	bits       int    // of the device's address
	overhead   int    // VXLAN's, subtracted from the host MTU
	forwarding string // the global forwarding sysctl
	// needIP and needTunnel are what a node without its address or
	// tunnel address lacks.
	needIP, needTunnel string
}

// holds reports whether a is of family f.
func (f *family) holds(a netip.Addr) bool {
	if f.v6 {
		return a.Is6()
	}
	return a.Is4()
}

// addrs returns n's address (with its subnet) and VXLAN tunnel address.
func (f *family) addrs(n Node) (netip.Prefix, netip.Addr) {
	if f.v6 {
		return n.IPv6, n.VXLANTunnelAddrV6
	}
	return n.IPv4, n.VXLANTunnelAddr
}

// mac returns n's VXLAN MAC, derived when the resource has none.
func (f *family) mac(n Node) net.HardwareAddr {
	if f.v6 {
		return n.macV6()
	}
	return n.mac()
}

// parent returns the interface (and its index) holding this node's
// address.
func (f *family) parent(h HostFacts) (string, int) {
	if f.v6 {
		return h.ParentIfV6, h.ParentIndexV6
	}
	return h.ParentIf, h.ParentIndex
}

// out returns where d keeps the device's state, the device and its VTEPs.
func (f *family) out(d *Desired) (*DeviceState, *tunnel.VXLAN, *[]tunnel.VTEP) {
	if f.v6 {
		return &d.VXLANV6State, &d.VXLANV6, &d.VTEPsV6
	}
	return &d.VXLANState, &d.VXLAN, &d.VTEPs
}

// lacks lists what this node needs for the device and does not have.
func (f *family) lacks(ip netip.Prefix, tun netip.Addr, parentIf string) []string {
	var missing []string
	if !ip.IsValid() {
		missing = append(missing, f.needIP)
	}
	if !tun.IsValid() {
		missing = append(missing, f.needTunnel)
	}
	if ip.IsValid() && parentIf == "" {
		missing = append(missing, fmt.Sprintf("an interface holding %s", ip.Addr()))
	}
	return missing
}

// VTEPMACV6 is the vxlan-v6.calico MAC upstream derives for a node that
// has no vxlanTunnelMACAddrV6: 0x66 followed by the first five bytes of
// sha1(nodename + "-v6").
func VTEPMACV6(nodeName string) net.HardwareAddr { return VTEPMAC(nodeName + "-v6") }

// macV6 returns the node's IPv6 VXLAN MAC, derived when the resource has none.
func (n Node) macV6() net.HardwareAddr {
	if len(n.VXLANMACV6) == 6 {
		return n.VXLANMACV6
	}
	return VTEPMACV6(n.Name)
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
	c.forwarding(&famV6)
	pools, _ := c.encapPools(&famV6) // IPv6 has no IPIP
	c.vxlan(&famV6, pools)
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

// off6 reports whether a is an IPv6 address while IPv6 is off (its blocks
// get no routes and no blackholes).
func (c *calc) off6(a netip.Addr) bool { return a.Is6() && !c.d.WorkloadV6 }
