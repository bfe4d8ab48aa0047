package link

import (
	"errors"
	"io/fs"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
)

// linkAddrs lists a link's addresses.
func linkAddrs(t *testing.T, h *netlink.Handle, name string) []netip.Prefix {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	as, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Prefix
	for _, a := range as {
		ip, _ := netip.AddrFromSlice(a.IP)
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

// TestPrivilegedSyncAddrs: SyncAddrs adds the wanted address to a
// workload's host veth, leaves an address that is not ours alone, takes
// ours off when no longer wanted, is idempotent, and reports a missing
// link as fs.ErrNotExist.
func TestPrivilegedSyncAddrs(t *testing.T) {
	l := newLab(t)
	w := l.pod(t, "calisync00001", "10.65.7.2/32")
	peer, foreign := netip.MustParsePrefix("169.254.0.179/32"), netip.MustParsePrefix("192.0.2.9/32")
	hl, err := l.hostH.LinkByName(w.HostIf)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.hostH.AddrAdd(hl, &netlink.Addr{IPNet: ipNet(foreign)}); err != nil {
		t.Fatal(err)
	}
	ours := func(p netip.Prefix) bool { return p == peer }
	for range 2 {
		if err := SyncAddrs(l.hostH, w.HostIf, []netip.Prefix{peer}, ours); err != nil {
			t.Fatal(err)
		}
		if got := linkAddrs(t, l.hostH, w.HostIf); !slices.Equal(got, []netip.Prefix{peer, foreign}) {
			t.Errorf("addresses %v", got)
		}
	}
	if err := SyncAddrs(l.hostH, w.HostIf, nil, ours); err != nil {
		t.Fatal(err)
	}
	if got := linkAddrs(t, l.hostH, w.HostIf); !slices.Equal(got, []netip.Prefix{foreign}) {
		t.Errorf("addresses after removal %v", got)
	}
	if err := SyncAddrs(l.hostH, "calinope", []netip.Prefix{peer}, ours); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing link: %v", err)
	}
}
