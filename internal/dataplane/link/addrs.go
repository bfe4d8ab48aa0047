package link

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// SyncAddrs makes the addresses of link name that ours reports as ours
// exactly want: it adds the missing ones (host prefixes, /32 or /128) and
// deletes the others of ours; addresses that are not ours are never
// touched. A missing link wraps fs.ErrNotExist.
func SyncAddrs(h *netlink.Handle, name string, want []netip.Prefix, ours func(netip.Prefix) bool) error {
	l, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return fmt.Errorf("link %s: %w", name, fs.ErrNotExist)
		}
		return fmt.Errorf("link %s: %w", name, err)
	}
	have, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", name, err)
	}
	var errs []error
	found := map[netip.Prefix]bool{}
	for _, a := range have {
		p, ok := AddrPrefix(a)
		if !ok {
			continue
		}
		switch {
		case slices.Contains(want, p):
			found[p] = true
		case ours(p):
			if err := h.AddrDel(l, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				errs = append(errs, fmt.Errorf("delete address %s from %s: %w", p, name, err))
			}
		}
	}
	for _, p := range want {
		if found[p] {
			continue
		}
		a := &netlink.Addr{IPNet: ipNet(p)}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(l, a); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("add address %s to %s: %w", p, name, err))
		}
	}
	return errors.Join(errs...)
}

// AddrPrefix returns a kernel address as a prefix (an IPv4 address in
// IPv4 form, however netlink gave it); false for one netlink could not
// parse.
func AddrPrefix(a netlink.Addr) (netip.Prefix, bool) {
	if a.IPNet == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := a.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones), true
}
