package link

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/dataplane/netns"
)

// ErrCheckFailed is wrapped by CheckWorkload when the plumbing differs from
// w; the joined messages say precisely what is wrong.
var ErrCheckFailed = errors.New("workload check failed")

// CheckWorkload verifies that the plumbing SetupWorkload(w) would create is
// in place: the container link with its addresses, the 169.254.1.1 and
// default routes (IPv6: a default via a link-local gateway), the host link
// with MAC ee:ee:ee:ee:ee:ee as the container link's peer, and the host
// /32 (/128) routes on it. It reports every problem it finds, joined.
func CheckWorkload(w Workload) error {
	if err := w.validate(); err != nil {
		return err
	}
	wantV4, wantV6 := w.families()
	hostH, err := netns.NewHandle(w.HostNetNS)
	if err != nil {
		return fmt.Errorf("check workload %s: %w", w.HostIf, err)
	}
	defer hostH.Close()
	contH, err := netns.NewHandle(w.ContainerNetNS)
	if err != nil {
		return fmt.Errorf("check workload %s: %w", w.HostIf, err)
	}
	defer contH.Close()

	var problems []error
	bad := func(format string, a ...any) { problems = append(problems, fmt.Errorf(format, a...)) }
	done := func() error {
		if len(problems) == 0 {
			return nil
		}
		return fmt.Errorf("%w: %w", ErrCheckFailed, errors.Join(problems...))
	}

	contLink, err := contH.LinkByName(w.ContainerIf)
	if err != nil {
		if isLinkNotFound(err) {
			bad("container interface %s is missing", w.ContainerIf)
		} else {
			bad("look up container interface %s: %w", w.ContainerIf, err)
		}
	}
	hostLink, err := hostH.LinkByName(w.HostIf)
	if err != nil {
		if isLinkNotFound(err) {
			bad("host interface %s is missing", w.HostIf)
		} else {
			bad("look up host interface %s: %w", w.HostIf, err)
		}
	}

	if contLink != nil {
		if contLink.Type() != "veth" {
			bad("container interface %s is a %s, not a veth", w.ContainerIf, contLink.Type())
		}
		if w.MTU != 0 && contLink.Attrs().MTU != w.MTU {
			bad("container interface %s has MTU %d, want %d", w.ContainerIf, contLink.Attrs().MTU, w.MTU)
		}
		checkContainer(contH, contLink, w, wantV4, wantV6, bad)
	}
	if hostLink != nil {
		if hostLink.Type() != "veth" {
			bad("host interface %s is a %s, not a veth", w.HostIf, hostLink.Type())
		}
		if !bytes.Equal(hostLink.Attrs().HardwareAddr, hostMAC()) {
			bad("host interface %s has MAC %s, want %s", w.HostIf, hostLink.Attrs().HardwareAddr, HostMACString)
		}
		if contLink != nil && (contLink.Attrs().ParentIndex != hostLink.Attrs().Index ||
			hostLink.Attrs().ParentIndex != contLink.Attrs().Index) {
			bad("host interface %s is not the peer of container interface %s", w.HostIf, w.ContainerIf)
		}
		for _, a := range w.Addrs {
			checkHostRoute(hostH, a, hostLink, bad)
		}
	}
	return done()
}

func checkContainer(h *netlink.Handle, l netlink.Link, w Workload, wantV4, wantV6 bool, bad func(string, ...any)) {
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		bad("list addresses of container interface %s: %w", w.ContainerIf, err)
		return
	}
	have := map[netip.Prefix]bool{}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			ones, _ := a.Mask.Size()
			have[netip.PrefixFrom(ip.Unmap(), ones)] = true
		}
	}
	for _, a := range w.Addrs {
		if !have[a] {
			bad("container interface %s is missing address %s", w.ContainerIf, a)
		}
	}
	routes, err := h.RouteList(l, netlink.FAMILY_ALL)
	if err != nil {
		bad("list routes of container interface %s: %w", w.ContainerIf, err)
		return
	}
	var gwRoute, def4, def6 bool
	gw := netip.MustParseAddr(GatewayV4)
	for _, r := range routes {
		dst := netip.Prefix{}
		if r.Dst != nil {
			ip, _ := netip.AddrFromSlice(r.Dst.IP)
			ones, _ := r.Dst.Mask.Size()
			dst = netip.PrefixFrom(ip.Unmap(), ones)
		}
		rgw, _ := netip.AddrFromSlice(r.Gw)
		rgw = rgw.Unmap()
		switch {
		case dst == netip.PrefixFrom(gw, 32) && r.Scope == netlink.SCOPE_LINK && !rgw.IsValid():
			gwRoute = true
		case r.Family == unix.AF_INET && (r.Dst == nil || dst.Bits() == 0) && rgw == gw:
			def4 = true
		case r.Family == unix.AF_INET6 && (r.Dst == nil || dst.Bits() == 0) && rgw.IsLinkLocalUnicast():
			def6 = true
		}
	}
	if wantV4 && !gwRoute {
		bad("container is missing route %s/32 dev %s scope link", GatewayV4, w.ContainerIf)
	}
	if wantV4 && !def4 {
		bad("container is missing route default via %s dev %s", GatewayV4, w.ContainerIf)
	}
	if wantV6 && !def6 {
		bad("container is missing IPv6 route default via a link-local gateway dev %s", w.ContainerIf)
	}
}

func checkHostRoute(h *netlink.Handle, a netip.Prefix, hostLink netlink.Link, bad func(string, ...any)) {
	name := hostLink.Attrs().Name
	rs, err := h.RouteListFiltered(familyOf(a.Addr()), &netlink.Route{Dst: ipNet(a)}, netlink.RT_FILTER_DST)
	if err != nil {
		bad("list host routes to %s: %w", a, err)
		return
	}
	for _, r := range rs {
		if r.LinkIndex == hostLink.Attrs().Index {
			return
		}
	}
	if len(rs) > 0 {
		bad("host route %s points at interface %s, want %s", a, linkName(h, rs[0].LinkIndex), name)
		return
	}
	bad("host route %s dev %s is missing", a, name)
}
