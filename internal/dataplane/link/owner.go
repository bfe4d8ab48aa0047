package link

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/dataplane/netns"
)

// ErrOwnNetNS is wrapped when a container namespace is the host
// namespace itself: plumbing a "container" there would rewrite the node's
// own sysctls, addresses and routes, and tearing it down would delete the
// node's uplink.
var ErrOwnNetNS = errors.New("the container network namespace is the host's own")

// ErrHostIfTaken is wrapped when the host link name a workload wants is
// held by a link that is not provably this workload's (its peer is not
// the container interface in the workload's namespace): another live pod
// whose container ID shares the first 11 characters, or an earlier sandbox.
var ErrHostIfTaken = errors.New("host interface name in use by another workload")

// NetNSIdentity returns the nsfs device and inode that identify the
// network namespace at path ("" = the calling thread's); the inode is the
// number in "net:[inode]".
func NetNSIdentity(path string) (dev, ino uint64, err error) {
	p := path
	if p == "" {
		p = "/proc/thread-self/ns/net"
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return 0, 0, fmt.Errorf("stat netns %s: %w", p, err)
	}
	return st.Dev, st.Ino, nil
}

// SameNetNS reports whether the namespace files at a and b ("" = the
// calling thread's namespace) are the same network namespace: same nsfs
// device and inode, whatever paths name them (/proc/1/ns/net, a bind
// mount under /var/run/netns, /proc/self/ns/net).
func SameNetNS(a, b string) (bool, error) {
	da, ia, err := NetNSIdentity(a)
	if err != nil {
		return false, err
	}
	db, ib, err := NetNSIdentity(b)
	if err != nil {
		return false, err
	}
	return da == db && ia == ib, nil
}

// refuseOwnNetNS fails with ErrOwnNetNS when containerNS is hostNS. A
// container path that cannot be examined is left to the caller's own
// handling (a missing namespace is success for a teardown).
func refuseOwnNetNS(hostNS, containerNS string) error {
	if containerNS == "" {
		return nil
	}
	same, err := SameNetNS(hostNS, containerNS)
	if err != nil {
		return nil
	}
	if same {
		return fmt.Errorf("container netns %s: %w", containerNS, ErrOwnNetNS)
	}
	return nil
}

// isPeerOf reports whether the veth h (in the host namespace) has as its
// peer the link named contIf in the namespace of contH: each end's
// IFLA_LINK names the other's index.
func isPeerOf(h netlink.Link, contH *netlink.Handle, contIf string) bool {
	if contH == nil || h.Type() != "veth" {
		return false
	}
	c, err := contH.LinkByName(contIf)
	if err != nil || c.Type() != "veth" {
		return false
	}
	return c.Attrs().ParentIndex == h.Attrs().Index && h.Attrs().ParentIndex == c.Attrs().Index
}

// hostRoutes lists the host routes (/32, /128 in the main table, not
// link-local or multicast) through the link with index idx.
func hostRoutes(h *netlink.Handle, idx int) ([]netlink.Route, error) {
	var routes []netlink.Route
	var err error
	for range 5 { // a dump the kernel interrupted (routes changed meanwhile) is retried
		routes, err = h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: idx}, netlink.RT_FILTER_OIF)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	out := routes[:0]
	for _, r := range routes {
		if r.Dst == nil || r.Table != unix.RT_TABLE_MAIN {
			continue
		}
		ones, bits := r.Dst.Mask.Size()
		if ones != bits || r.Dst.IP.IsLinkLocalUnicast() || r.Dst.IP.IsMulticast() {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// routesOnlyTo reports whether l carries at least one host route and every
// host route through it is to one of addrs: the proof that a host link
// found by name is the workload's whose addresses are addrs.
func routesOnlyTo(h *netlink.Handle, l netlink.Link, addrs []netip.Prefix) (bool, error) {
	routes, err := hostRoutes(h, l.Attrs().Index)
	if err != nil {
		return false, fmt.Errorf("list routes of host link %s: %w", l.Attrs().Name, err)
	}
	if len(routes) == 0 {
		return false, nil
	}
	for _, r := range routes {
		a, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok || !slices.Contains(addrs, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())) {
			return false, nil
		}
	}
	return true, nil
}

// Orphan describes the addresses of an allocation whose workload is gone
// (no endpoint record, not a live attachment), for RemoveOrphanLinks.
type Orphan struct {
	HostNetNS string         // "" = the calling thread's namespace
	Addrs     []netip.Prefix // the allocation's addresses, /32 or /128
	// Prefix is the host link name prefix of workload veths ("cali").
	Prefix string
	// InUse reports whether a live workload endpoint claims the host link
	// of that name; such a link is never removed.
	InUse func(name string) bool
}

// RemoveOrphanLinks removes the host veths still routing o.Addrs after
// their workload died without a DEL (e.g. an ADD killed after it made the
// veth and before it recorded the endpoint), so that the addresses can go
// back to IPAM without leaving a route that would block their next user
// (calico#3940). A link is removed only when it is provably the orphan's:
// a veth named with o.Prefix, claimed by no live endpoint, whose host
// routes are all to o.Addrs. It returns nil when no host route to any of
// o.Addrs is left; otherwise an error naming the link still routing one.
func RemoveOrphanLinks(o Orphan) error {
	h, err := netns.NewHandle(o.HostNetNS)
	if err != nil {
		return fmt.Errorf("remove orphan links: %w", err)
	}
	defer h.Close()
	for _, a := range o.Addrs {
		routes, err := h.RouteListFiltered(familyOf(a.Addr()), &netlink.Route{Dst: ipNet(a)}, netlink.RT_FILTER_DST)
		if err != nil {
			return fmt.Errorf("list routes to %s: %w", a, err)
		}
		for _, r := range routes {
			if r.Table != unix.RT_TABLE_MAIN || r.LinkIndex == 0 {
				continue
			}
			l, err := h.LinkByIndex(r.LinkIndex)
			if isLinkNotFound(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("look up the link routing %s: %w", a, err)
			}
			name := l.Attrs().Name
			ok := l.Type() == "veth" && len(name) > len(o.Prefix) && name[:len(o.Prefix)] == o.Prefix &&
				(o.InUse == nil || !o.InUse(name))
			if ok {
				if ok, err = routesOnlyTo(h, l, o.Addrs); err != nil {
					return err
				}
			}
			if !ok {
				return fmt.Errorf("address %s is still routed to interface %s, which is not provably the dead workload's: %w", a, name, ErrRouteConflict)
			}
			if err := deleteHostRoutes(h, l); err != nil {
				return err
			}
			if err := h.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) && !isLinkNotFound(err) {
				return fmt.Errorf("delete orphan host link %s: %w", name, err)
			}
		}
	}
	return nil
}
