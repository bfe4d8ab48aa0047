// Package link plumbs workload (pod) interfaces the way upstream Calico's
// CNI plugin does: a veth pair with the container end in the pod's network
// namespace and the host end (MAC ee:ee:ee:ee:ee:ee, no address, proxy ARP)
// in the host namespace, a /32 (/128) host route per pod address, and in the
// pod a default route via the link-local gateway 169.254.1.1 (IPv6: via the
// host veth's link-local address).
//
// It receives plain structs (Workload) and namespace paths, never imports
// datastore, IPAM, BGP, API or agent packages, and never shells out. Both
// namespaces are addressed through netlink handles bound once per call;
// threads switch namespaces only to write sysctls.
package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/dataplane/netns"
)

// HostMACString is the MAC address of every host-side workload veth.
const HostMACString = "ee:ee:ee:ee:ee:ee"

// HostLinkLocal is the IPv6 link-local address the kernel derives (EUI-64)
// from HostMACString; pods use it as their IPv6 default gateway.
const HostLinkLocal = "fe80::ecee:eeff:feee:eeee"

// GatewayV4 is the IPv4 next hop pods use. It is never assigned anywhere:
// the host answers ARP for it through proxy ARP on the host veth.
const GatewayV4 = "169.254.1.1"

// DefaultHostMTU is Felix's host MTU when no interface matches the pattern.
const DefaultHostMTU = 1460

// llWaitTimeout bounds the wait for the host veth's IPv6 link-local address.
const llWaitTimeout = 2 * time.Second

func hostMAC() net.HardwareAddr { return net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee} }

// Workload is the desired plumbing of one workload interface.
type Workload struct {
	HostNetNS         string         // path; "" = the calling thread's namespace
	ContainerNetNS    string         // path, e.g. /var/run/netns/x
	ContainerIf       string         // e.g. "eth0"
	HostIf            string         // e.g. "cali1234567890a" (<= 15 chars)
	MTU               int            // 0 = kernel default
	Addrs             []netip.Prefix // /32 and/or /128 to put on ContainerIf
	AllowIPForwarding bool           // container_settings.allow_ip_forwarding
}

// WorkloadResult reports what SetupWorkload created.
type WorkloadResult struct {
	HostIf           string
	HostMAC          net.HardwareAddr
	ContainerMAC     net.HardwareAddr
	ContainerIfIndex int
}

// ErrInvalid is wrapped by errors about a malformed Workload.
var ErrInvalid = errors.New("invalid workload")

func validIfName(n string) bool {
	return n != "" && len(n) <= unix.IFNAMSIZ-1 && n != "." && n != ".." &&
		!strings.ContainsAny(n, "/: \t\n\x00")
}

func (w Workload) validate() error {
	switch {
	case w.ContainerNetNS == "":
		return fmt.Errorf("container netns path is empty: %w", ErrInvalid)
	case !validIfName(w.ContainerIf):
		return fmt.Errorf("container interface name %q: %w", w.ContainerIf, ErrInvalid)
	case !validIfName(w.HostIf):
		return fmt.Errorf("host interface name %q: %w", w.HostIf, ErrInvalid)
	case w.MTU != 0 && (w.MTU < 68 || w.MTU > 65535):
		return fmt.Errorf("mtu %d: %w", w.MTU, ErrInvalid)
	}
	for _, a := range w.Addrs {
		if !a.IsValid() || !a.IsSingleIP() {
			return fmt.Errorf("address %s is not a /32 or /128: %w", a, ErrInvalid)
		}
	}
	return nil
}

func (w Workload) families() (v4, v6 bool) {
	for _, a := range w.Addrs {
		if a.Addr().Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	return v4, v6
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func onOff(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// SetupWorkload creates the veth pair, addresses, routes and sysctls of w.
//
// The sequence mirrors Calico's DoWorkloadNetnsSetUp but creates the veth
// through a netlink socket bound to the container namespace, with the peer
// created directly in the host namespace and its MAC set in the same
// request, so no thread enters the container except to write sysctls. An
// existing host link named w.HostIf is deleted first if it is this
// container's; otherwise the error wraps ErrHostIfTaken. A container
// namespace that is the host's own is refused (ErrOwnNetNS). On any failure
// everything done so far is undone (deleting the container end removes the
// host peer and its routes) and the error is returned.
//
// It is CreateVeth followed by Veth.Configure; callers that learn the
// addresses late (a CNI ADD waiting for IPAM) can run the two halves
// apart.
func SetupWorkload(w Workload) (res WorkloadResult, err error) {
	if err := w.validate(); err != nil {
		return res, err
	}
	v4, v6 := w.families()
	v, err := CreateVeth(w, v4, v6)
	if err != nil {
		return res, err
	}
	defer v.Close()
	res, err = v.Configure(w.Addrs)
	if err != nil {
		if derr := v.Remove(); derr != nil {
			err = errors.Join(err, fmt.Errorf("undo: %w", derr))
		}
	}
	return res, err
}

// Veth is a workload's veth pair made by CreateVeth: both ends exist, are
// up and carry their sysctls, but the container end has no address and
// neither side has routes yet. Configure finishes it; Remove undoes it;
// Close releases the netlink handles (not the links).
type Veth struct {
	w            Workload
	v4, v6       bool
	hostH, contH *netlink.Handle
	contLink     netlink.Link
	hostLink     *netlink.Veth
	hostIdx      int
}

// CreateVeth does the first half of SetupWorkload for a workload that
// will have IPv4 and/or IPv6 addresses (w.Addrs is not used): it deletes a
// stale host link named w.HostIf left by this container (any other link
// of that name makes it fail with ErrHostIfTaken), creates the pair (host end with MAC
// ee:ee:ee:ee:ee:ee), writes the host and container sysctls and sets both
// ends up. On failure it undoes what it did.
func CreateVeth(w Workload, v4, v6 bool) (_ *Veth, err error) {
	addrs := w.Addrs
	w.Addrs = nil
	if err := w.validate(); err != nil {
		return nil, err
	}
	w.Addrs = addrs
	if !v4 && !v6 {
		return nil, fmt.Errorf("workload %s: no address family: %w", w.HostIf, ErrInvalid)
	}
	if err := refuseOwnNetNS(w.HostNetNS, w.ContainerNetNS); err != nil {
		return nil, fmt.Errorf("setup workload %s: %w", w.HostIf, err)
	}
	v := &Veth{w: w, v4: v4, v6: v6}
	defer func() {
		if err != nil {
			v.Close()
		}
	}()
	hostNS, err := netns.Open(w.HostNetNS)
	if err != nil {
		return nil, fmt.Errorf("setup workload %s: %w", w.HostIf, err)
	}
	defer hostNS.Close()
	if v.hostH, err = netns.NewHandle(w.HostNetNS); err != nil {
		return nil, fmt.Errorf("setup workload %s: %w", w.HostIf, err)
	}
	if v.contH, err = netns.NewHandle(w.ContainerNetNS); err != nil {
		return nil, fmt.Errorf("setup workload %s: %w", w.HostIf, err)
	}
	hostH, contH := v.hostH, v.contH

	// An old host link with our name would make the peer creation fail.
	// Upstream deletes it whatever it is; we delete it only when it is
	// provably this container's (its peer is the container interface, left
	// by a crashed earlier ADD). Any other owner, e.g. a live pod whose
	// container ID shares the first 11 characters, keeps its link, and the
	// caller is told the name is taken.
	if old, err := hostH.LinkByName(w.HostIf); err == nil {
		if !isPeerOf(old, contH, w.ContainerIf) {
			return nil, fmt.Errorf("host link %s exists and is not the peer of %s in %s: %w", w.HostIf, w.ContainerIf, w.ContainerNetNS, ErrHostIfTaken)
		}
		if err := hostH.LinkDel(old); err != nil {
			return nil, fmt.Errorf("delete existing host link %s: %w", w.HostIf, err)
		}
	} else if !isLinkNotFound(err) {
		return nil, fmt.Errorf("look up host link %s: %w", w.HostIf, err)
	}

	la := netlink.NewLinkAttrs()
	la.Name = w.ContainerIf
	la.MTU = w.MTU
	if !v6 {
		// IPv6 needs accept_dad=0 on the container end before it goes up;
		// without IPv6 it can be created up, saving a round trip.
		la.Flags = net.FlagUp
	}
	veth := &netlink.Veth{
		LinkAttrs:        la,
		PeerName:         w.HostIf,
		PeerHardwareAddr: hostMAC(),
		PeerNamespace:    netlink.NsFd(hostNS.Fd()),
	}
	if err := contH.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			if _, lerr := hostH.LinkByName(w.HostIf); lerr == nil {
				// Another ADD made a link of that name since we looked.
				err = fmt.Errorf("%w: %w", err, ErrHostIfTaken)
			}
		}
		return nil, fmt.Errorf("create veth %s in %s with peer %s: %w", w.ContainerIf, w.ContainerNetNS, w.HostIf, err)
	}
	if v.contLink, err = contH.LinkByName(w.ContainerIf); err != nil {
		// We cannot undo by index; delete by name, which we just created.
		_ = contH.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: w.ContainerIf}})
		return nil, fmt.Errorf("look up new container link %s: %w", w.ContainerIf, err)
	}
	defer func() {
		if err != nil {
			if derr := v.Remove(); derr != nil {
				err = errors.Join(err, fmt.Errorf("undo: %w", derr))
			}
		}
	}()
	// For a veth, IFLA_LINK is the peer's ifindex in the peer's namespace.
	v.hostIdx = v.contLink.Attrs().ParentIndex
	if v.hostIdx == 0 {
		return nil, fmt.Errorf("container link %s reports no peer index", w.ContainerIf)
	}
	v.hostLink = &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Index: v.hostIdx, Name: w.HostIf}}

	if err := netns.SetSysctls(w.HostNetNS, hostSysctls(w.HostIf, v6)...); err != nil {
		return nil, fmt.Errorf("configure host link %s: %w", w.HostIf, err)
	}
	if err := hostH.LinkSetUp(v.hostLink); err != nil {
		return nil, fmt.Errorf("set host link %s up: %w", w.HostIf, err)
	}
	if err := netns.SetSysctls(w.ContainerNetNS, containerSysctls(w.ContainerIf, v6, w.AllowIPForwarding)...); err != nil {
		return nil, fmt.Errorf("configure container %s: %w", w.ContainerNetNS, err)
	}
	if v6 {
		if err := contH.LinkSetUp(v.contLink); err != nil {
			return nil, fmt.Errorf("set container link %s up: %w", w.ContainerIf, err)
		}
	}
	return v, nil
}

// Configure does the second half of SetupWorkload: the addresses (/32,
// /128) on the container end, the container's routes (169.254.1.1 and the
// default routes; IPv6 via the host end's link-local address) and the host
// routes. addrs must be of the families CreateVeth was told. On failure the
// caller removes the pair (Remove).
func (v *Veth) Configure(addrs []netip.Prefix) (WorkloadResult, error) {
	w := v.w
	w.Addrs = addrs
	if err := w.validate(); err != nil {
		return WorkloadResult{}, err
	}
	v4, v6 := w.families()
	if (v4 && !v.v4) || (v6 && !v.v6) {
		return WorkloadResult{}, fmt.Errorf("workload %s: addresses %v are of a family the veth was not made for: %w", w.HostIf, addrs, ErrInvalid)
	}
	hostH, contH := v.hostH, v.contH
	contIdx := v.contLink.Attrs().Index
	for _, a := range addrs {
		addr := &netlink.Addr{IPNet: ipNet(a)}
		if a.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := contH.AddrAdd(v.contLink, addr); err != nil {
			return WorkloadResult{}, fmt.Errorf("add address %s to container link %s: %w", a, w.ContainerIf, err)
		}
	}
	if v4 {
		gw := netip.MustParseAddr(GatewayV4)
		if err := contH.RouteAdd(&netlink.Route{
			LinkIndex: contIdx, Dst: ipNet(netip.PrefixFrom(gw, 32)), Scope: netlink.SCOPE_LINK,
		}); err != nil {
			return WorkloadResult{}, fmt.Errorf("add route %s/32 dev %s in container: %w", GatewayV4, w.ContainerIf, err)
		}
		if err := contH.RouteAdd(&netlink.Route{
			LinkIndex: contIdx, Dst: ipNet(netip.MustParsePrefix("0.0.0.0/0")), Gw: gw.AsSlice(),
		}); err != nil {
			return WorkloadResult{}, fmt.Errorf("add route default via %s dev %s in container: %w", GatewayV4, w.ContainerIf, err)
		}
	}
	if v6 {
		ll, err := waitLinkLocal(hostH, v.hostLink, llWaitTimeout)
		if err != nil {
			return WorkloadResult{}, fmt.Errorf("host link %s: %w", w.HostIf, err)
		}
		if err := contH.RouteAdd(&netlink.Route{
			LinkIndex: contIdx, Dst: ipNet(netip.MustParsePrefix("::/0")), Gw: ll.AsSlice(),
		}); err != nil {
			return WorkloadResult{}, fmt.Errorf("add route default via %s dev %s in container: %w", ll, w.ContainerIf, err)
		}
	}
	for _, a := range addrs {
		if err := addHostRoute(hostH, a, v.hostIdx, w.HostIf); err != nil {
			return WorkloadResult{}, err
		}
	}
	return WorkloadResult{
		HostIf:           w.HostIf,
		HostMAC:          hostMAC(),
		ContainerMAC:     v.contLink.Attrs().HardwareAddr,
		ContainerIfIndex: contIdx,
	}, nil
}

// ContainerMAC is the container end's MAC address.
func (v *Veth) ContainerMAC() net.HardwareAddr { return v.contLink.Attrs().HardwareAddr }

// Remove deletes the pair (the container end; the host end and its routes
// go with it). Call it before Close.
func (v *Veth) Remove() error {
	if v.contH == nil || v.contLink == nil {
		return nil
	}
	if err := v.contH.LinkDel(v.contLink); err != nil && !errors.Is(err, unix.ENODEV) && !isLinkNotFound(err) {
		return fmt.Errorf("delete container link %s: %w", v.w.ContainerIf, err)
	}
	return nil
}

// Close releases the netlink handles; the links stay.
func (v *Veth) Close() {
	if v.hostH != nil {
		v.hostH.Close()
		v.hostH = nil
	}
	if v.contH != nil {
		v.contH.Close()
		v.contH = nil
	}
}

func hostSysctls(ifName string, v6 bool) []netns.Sysctl {
	k := func(fam, kind, key string) string { return netns.SysctlKey("net", fam, kind, ifName, key) }
	s := []netns.Sysctl{
		{Key: k("ipv4", "conf", "route_localnet"), Value: "1"},
		{Key: k("ipv4", "neigh", "proxy_delay"), Value: "0"},
		{Key: k("ipv4", "conf", "proxy_arp"), Value: "1"},
		{Key: k("ipv4", "conf", "forwarding"), Value: "1"},
		{Key: k("ipv6", "conf", "accept_ra"), Value: "0"},
	}
	if v6 {
		s = append(s,
			netns.Sysctl{Key: k("ipv6", "conf", "disable_ipv6"), Value: "0"},
			netns.Sysctl{Key: k("ipv6", "conf", "accept_dad"), Value: "0"},
			netns.Sysctl{Key: k("ipv6", "conf", "proxy_ndp"), Value: "1"},
			netns.Sysctl{Key: k("ipv6", "conf", "forwarding"), Value: "1"},
		)
	}
	return s
}

func containerSysctls(ifName string, v6, forward bool) []netns.Sysctl {
	s := []netns.Sysctl{{Key: "net/ipv4/ip_forward", Value: onOff(forward)}}
	if v6 {
		s = append(s,
			netns.Sysctl{Key: "net/ipv6/conf/all/disable_ipv6", Value: "0"},
			netns.Sysctl{Key: "net/ipv6/conf/default/disable_ipv6", Value: "0"},
			netns.Sysctl{Key: "net/ipv6/conf/lo/disable_ipv6", Value: "0"},
			netns.Sysctl{Key: netns.SysctlKey("net", "ipv6", "conf", ifName, "disable_ipv6"), Value: "0"},
			netns.Sysctl{Key: netns.SysctlKey("net", "ipv6", "conf", ifName, "accept_dad"), Value: "0"},
			netns.Sysctl{Key: "net/ipv6/conf/all/forwarding", Value: onOff(forward)},
		)
	}
	return s
}

// waitLinkLocal polls (1 ms growing to 20 ms, bounded by timeout) for a
// non-tentative IPv6 link-local address on l. It normally appears as soon as
// both veth ends are up, because accept_dad is 0 on the host end.
func waitLinkLocal(h *netlink.Handle, l netlink.Link, timeout time.Duration) (netip.Addr, error) {
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		addrs, err := h.AddrList(l, netlink.FAMILY_V6)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return netip.Addr{}, fmt.Errorf("list addresses: %w", err)
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if ok && ip.Is6() && ip.IsLinkLocalUnicast() && a.Flags&unix.IFA_F_TENTATIVE == 0 {
				return ip, nil
			}
		}
		if time.Now().After(deadline) {
			return netip.Addr{}, fmt.Errorf("no IPv6 link-local address after %v", timeout)
		}
		time.Sleep(wait)
		wait = min(wait*2, 20*time.Millisecond)
	}
}

// addHostRoute adds "<a> dev <ifName> scope link" with no protocol (the kernel
// records proto boot). An identical route already on the same interface is
// fine; one on another interface is an error naming that interface.
func addHostRoute(h *netlink.Handle, a netip.Prefix, idx int, ifName string) error {
	r := &netlink.Route{LinkIndex: idx, Dst: ipNet(a), Scope: netlink.SCOPE_LINK}
	err := h.RouteAdd(r)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add route %s dev %s: %w", a, ifName, err)
	}
	existing, lerr := h.RouteListFiltered(familyOf(a.Addr()), &netlink.Route{Dst: ipNet(a)}, netlink.RT_FILTER_DST)
	if lerr != nil {
		return fmt.Errorf("add route %s dev %s: %w (and listing it: %v)", a, ifName, err, lerr)
	}
	for _, e := range existing {
		if e.LinkIndex == idx {
			return nil
		}
	}
	other := "unknown"
	if len(existing) > 0 {
		other = linkName(h, existing[0].LinkIndex)
	}
	return fmt.Errorf("route %s already exists for interface %s: %w", a, other, ErrRouteConflict)
}

// ErrRouteConflict is wrapped when a host route for a workload address
// already points at another interface.
var ErrRouteConflict = errors.New("route conflict")

func familyOf(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

func linkName(h *netlink.Handle, idx int) string {
	if idx == 0 {
		return "none"
	}
	l, err := h.LinkByIndex(idx)
	if err != nil {
		return fmt.Sprintf("index %d", idx)
	}
	return l.Attrs().Name
}

func isLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// TeardownWorkload deletes containerIf inside the namespace at
// containerNetNS; the kernel then removes the host peer and its routes. A
// missing namespace or link counts as success.
func TeardownWorkload(containerNetNS, containerIf string) error {
	if containerNetNS == "" {
		return fmt.Errorf("teardown %s: container netns path is empty: %w", containerIf, ErrInvalid)
	}
	h, err := netns.NewHandle(containerNetNS)
	if errors.Is(err, netns.ErrNotNetNS) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("teardown %s: %w", containerIf, err)
	}
	defer h.Close()
	l, err := h.LinkByName(containerIf)
	if isLinkNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up container link %s: %w", containerIf, err)
	}
	if err := h.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete container link %s: %w", containerIf, err)
	}
	return nil
}

// HostMTU returns the smallest MTU among oper-up links whose name matches
// ifacePattern, or DefaultHostMTU (1460) if none match (Felix's rule).
func HostMTU(h *netlink.Handle, ifacePattern *regexp.Regexp) (int, error) {
	var links []netlink.Link
	var err error
	// A dump the kernel interrupted (links changed meanwhile) is retried.
	for range 5 {
		if links, err = h.LinkList(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("list links: %w", err)
	}
	mtu := 0
	for _, l := range links {
		a := l.Attrs()
		if a.OperState != netlink.OperUp || !ifacePattern.MatchString(a.Name) {
			continue
		}
		if mtu == 0 || a.MTU < mtu {
			mtu = a.MTU
		}
	}
	if mtu == 0 {
		return DefaultHostMTU, nil
	}
	return mtu, nil
}
