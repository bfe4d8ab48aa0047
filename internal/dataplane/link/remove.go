package link

import (
	"errors"
	"fmt"

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
	// (its namespace was deleted): a workload veth of that name. "" = none.
	HostIf string
	// HostIfLater, when set, is called instead of reading HostIf, and only
	// when the name is needed; it may block until the caller knows whether
	// the name still belongs to this workload.
	HostIfLater func() string
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
// that is not a veth is not a workload's and is left alone.
func RemoveWorkload(rm Removal) error {
	if rm.ContainerNetNS == "" && rm.HostIf == "" && rm.HostIfLater == nil {
		return fmt.Errorf("remove workload %s: neither a container netns nor a host interface: %w", rm.ContainerIf, ErrInvalid)
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
		name := rm.HostIf
		if rm.HostIfLater != nil {
			name = rm.HostIfLater()
		}
		if name != "" {
			l, err := hostH.LinkByName(name)
			switch {
			case err == nil && l.Type() == "veth":
				hostLink = l
			case err != nil && !isLinkNotFound(err):
				return fmt.Errorf("look up host link %s: %w", name, err)
			}
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
	var routes []netlink.Route
	var err error
	for range 5 { // a dump the kernel interrupted (routes changed meanwhile) is retried
		routes, err = h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: l.Attrs().Index}, netlink.RT_FILTER_OIF)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("list routes of host link %s: %w", l.Attrs().Name, err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Table != unix.RT_TABLE_MAIN {
			continue
		}
		ones, bits := r.Dst.Mask.Size()
		if ones != bits || r.Dst.IP.IsLinkLocalUnicast() || r.Dst.IP.IsMulticast() {
			continue
		}
		if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("delete host route %s dev %s: %w", r.Dst, l.Attrs().Name, err)
		}
	}
	return nil
}
