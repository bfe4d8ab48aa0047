package link

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/dataplane/netns"
)

// Removal is what RemoveWorkload removes and how it reports progress.
type Removal struct {
	HostNetNS      string // "" = the calling thread's namespace
	ContainerNetNS string // "" = not known (the runtime may give none on DEL)
	ContainerIf    string // e.g. "eth0"
	// HostIf is the host link to remove when the container end is gone
	// (its namespace was deleted): a workload veth of that name whose host
	// routes are all to HostIfAddrs (at least one). "" = none.
	HostIf      string
	HostIfAddrs []netip.Prefix
	// HostIfLater, when set, is called instead of reading HostIf and
	// HostIfAddrs, and only when they are needed; it may block until the
	// caller knows whether the name still belongs to this workload.
	HostIfLater func() (string, []netip.Prefix)
	// RoutesGone, when set, is called once the host routes are gone.
	RoutesGone func()
}

// RemoveWorkload tears down the plumbing of one workload for a CNI DEL, in
// the order that lets the caller release the workload's addresses early:
//
//  1. find the host end of the pair: the peer of ContainerIf in the
//     container namespace or, when that namespace or link is gone, the
//     host link named HostIf;
//  2. delete the host routes (/32, /128) through it, then call RoutesGone;
//  3. delete ContainerIf, which also removes its host peer, or else the
//     host link found by name.
//
// Why: an address may only go back to IPAM once no host route points at
// its old interface, or the next pod to get it fails to add its own route
// ("route already exists for an interface other than ...", calico#3940).
// Deleting a route is quick, but deleting a veth makes the kernel wait for
// an RCU grace period (10-20 ms), so the caller can release the addresses
// and delete the endpoint record while step 3 runs. RemoveWorkload itself
// returns only when the links are gone.
//
// RoutesGone is called at most once, when step 2 succeeded (also when
// there was nothing to delete); if RemoveWorkload fails before that, it is
// not called and the caller must not release the addresses. A caller that
// waits for it must also wait for RemoveWorkload's result.
//
// A missing namespace or link counts as success. A host link named HostIf
// is removed only when it is provably this workload's: a veth whose host
// routes are all to HostIfAddrs. Any other link of that name (not a veth,
// no routes, or routes to other addresses: another pod whose container ID
// shares the name's characters) is left alone. A container namespace that
// is the host namespace itself is refused (ErrOwnNetNS) before anything
// is touched.
func RemoveWorkload(rm Removal) error {
	if rm.ContainerNetNS == "" && rm.HostIf == "" && rm.HostIfLater == nil {
		return fmt.Errorf("remove workload %s: neither a container netns nor a host interface: %w", rm.ContainerIf, ErrInvalid)
	}
	if err := refuseOwnNetNS(rm.HostNetNS, rm.ContainerNetNS); err != nil {
		return fmt.Errorf("remove workload %s: %w", rm.ContainerIf, err)
	}
	hostH, err := netns.NewHandle(rm.HostNetNS)
	if err != nil {
		return fmt.Errorf("remove workload %s: %w", rm.ContainerIf, err)
	}
	defer hostH.Close()

	var contH *netlink.Handle
	var contLink, hostLink netlink.Link
	if rm.ContainerNetNS != "" {
		h, err := netns.NewHandle(rm.ContainerNetNS)
		switch {
		case errors.Is(err, netns.ErrNotNetNS) || errors.Is(err, unix.ENOENT):
			// The namespace is gone; its end of the veth went with it.
		case err != nil:
			return fmt.Errorf("remove workload %s: %w", rm.ContainerIf, err)
		default:
			contH = h
			defer contH.Close()
			l, err := contH.LinkByName(rm.ContainerIf)
			switch {
			case err == nil:
				contLink = l
				hostLink = hostPeer(hostH, l)
			case !isLinkNotFound(err):
				return fmt.Errorf("look up container link %s: %w", rm.ContainerIf, err)
			}
		}
	}
	if contLink == nil {
		name, addrs := rm.HostIf, rm.HostIfAddrs
		if rm.HostIfLater != nil {
			name, addrs = rm.HostIfLater()
		}
		if name != "" {
			l, err := ownedHostLink(hostH, name, addrs)
			if err != nil {
				return err
			}
			hostLink = l
		}
	}
	if hostLink != nil {
		if err := deleteHostRoutes(hostH, hostLink); err != nil {
			return err
		}
	}
	if rm.RoutesGone != nil {
		rm.RoutesGone()
	}

	switch {
	case contLink != nil:
		if err := contH.LinkDel(contLink); err != nil && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("delete container link %s: %w", rm.ContainerIf, err)
		}
	case hostLink != nil:
		// The container end is gone but the host end is still there (its
		// namespace is being destroyed, or is held open elsewhere).
		if err := hostH.LinkDel(hostLink); err != nil && !errors.Is(err, unix.ENODEV) && !isLinkNotFound(err) {
			return fmt.Errorf("delete host link %s: %w", hostLink.Attrs().Name, err)
		}
	}
	return nil
}

// ownedHostLink returns the host link named name if it is provably the
// workload's with addresses addrs (a veth routing only to them), else nil.
func ownedHostLink(hostH *netlink.Handle, name string, addrs []netip.Prefix) (netlink.Link, error) {
	l, err := hostH.LinkByName(name)
	if isLinkNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up host link %s: %w", name, err)
	}
	if l.Type() != "veth" {
		return nil, nil
	}
	ok, err := routesOnlyTo(hostH, l, addrs)
	if err != nil || !ok {
		return nil, err
	}
	return l, nil
}

// hostPeer returns the host-namespace end of the container veth c, or nil
// if c is not a veth or its peer is not in the host namespace.
func hostPeer(hostH *netlink.Handle, c netlink.Link) netlink.Link {
	if c.Type() != "veth" || c.Attrs().ParentIndex == 0 {
		return nil
	}
	l, err := hostH.LinkByIndex(c.Attrs().ParentIndex)
	if err != nil || l.Type() != "veth" || l.Attrs().ParentIndex != c.Attrs().Index {
		return nil // an unrelated link that happens to have that index
	}
	return l
}

// deleteHostRoutes deletes the host routes (/32, /128) through l.
func deleteHostRoutes(h *netlink.Handle, l netlink.Link) error {
	routes, err := hostRoutes(h, l.Attrs().Index)
	if err != nil {
		return fmt.Errorf("list routes of host link %s: %w", l.Attrs().Name, err)
	}
	for _, r := range routes {
		if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("delete host route %s dev %s: %w", r.Dst, l.Attrs().Name, err)
		}
	}
	return nil
}
