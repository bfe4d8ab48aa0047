package link

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/onecalico/calico/internal/testutil"
)

// hostRoutes returns the host routes to addrs that exist in the lab's host.
func (l *lab) hostRoutes(t *testing.T, addrs ...string) []string {
	t.Helper()
	var out []string
	for _, a := range addrs {
		p := netip.MustParsePrefix(a)
		rs, err := l.hostH.RouteListFiltered(familyOf(p.Addr()), &netlink.Route{Dst: ipNet(p)}, netlink.RT_FILTER_DST)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%s dev %s", r.Dst, linkName(l.hostH, r.LinkIndex)))
		}
	}
	return out
}

func TestPrivilegedRemoveWorkloadRoutesFirst(t *testing.T) {
	l := newLab(t)
	w := l.pod(t, "calirm0000001", "10.65.5.2/32", "fd00:65:5::2/128")
	calls := 0
	// No host name given: the host end is found as the container link's peer.
	err := RemoveWorkload(Removal{HostNetNS: l.host, ContainerNetNS: w.ContainerNetNS, ContainerIf: "eth0", RoutesGone: func() {
		calls++
		// When the callback runs, the routes are gone but the veth is not
		// yet: the addresses can be released while the kernel deletes it.
		if rs := l.hostRoutes(t, "10.65.5.2/32", "fd00:65:5::2/128"); len(rs) != 0 {
			t.Errorf("host routes still there when routesGone runs: %v", rs)
		}
		if _, err := l.hostH.LinkByName(w.HostIf); err != nil {
			t.Errorf("host link already gone when routesGone runs: %v", err)
		}
	}})
	if err != nil || calls != 1 {
		t.Fatalf("RemoveWorkload = %v, routesGone called %d times", err, calls)
	}
	if _, err := l.hostH.LinkByName(w.HostIf); !isLinkNotFound(err) {
		t.Errorf("host link still there after RemoveWorkload: %v", err)
	}
	if _, err := testutil.Handle(t, w.ContainerNetNS).LinkByName("eth0"); !isLinkNotFound(err) {
		t.Errorf("container link still there after RemoveWorkload: %v", err)
	}
	// Again: nothing left to do, still success, still one callback.
	calls = 0
	if err := RemoveWorkload(Removal{HostNetNS: l.host, ContainerNetNS: w.ContainerNetNS, ContainerIf: "eth0", HostIf: w.HostIf, RoutesGone: func() { calls++ }}); err != nil || calls != 1 {
		t.Fatalf("second RemoveWorkload = %v, %d callbacks", err, calls)
	}
}

func TestPrivilegedRemoveWorkloadOrphanHostLink(t *testing.T) {
	l := newLab(t)
	// The container namespace is gone (never existed here) but a host link
	// with the workload's name remains, with a route: both are removed.
	orphan := addVeth(t, l.hostH, "calirmorphan1", "orphanpeer")
	if err := l.hostH.RouteAdd(&netlink.Route{LinkIndex: orphan.Attrs().Index, Dst: ipNet(netip.MustParsePrefix("10.65.6.2/32")), Scope: netlink.SCOPE_LINK}); err != nil {
		t.Fatal(err)
	}
	// Its route is to another address: not provably ours, left alone.
	if err := RemoveWorkload(Removal{HostNetNS: l.host, ContainerNetNS: "/var/run/netns/cdp-never-existed", ContainerIf: "eth0", HostIf: "calirmorphan1",
		HostIfAddrs: []netip.Prefix{netip.MustParsePrefix("10.65.6.3/32")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.hostH.LinkByName("calirmorphan1"); err != nil {
		t.Errorf("host link routing another address deleted by name: %v", err)
	}
	if err := RemoveWorkload(Removal{HostNetNS: l.host, ContainerNetNS: "/var/run/netns/cdp-never-existed", ContainerIf: "eth0", HostIf: "calirmorphan1",
		HostIfAddrs: []netip.Prefix{netip.MustParsePrefix("10.65.6.2/32")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.hostH.LinkByName("calirmorphan1"); !isLinkNotFound(err) {
		t.Errorf("orphan host link not deleted: %v", err)
	}
	if rs := l.hostRoutes(t, "10.65.6.2/32"); len(rs) != 0 {
		t.Errorf("orphan route not deleted: %v", rs)
	}
	// The container namespace exists but has no such link; the host link
	// has no route, so nothing proves it is this workload's: left alone.
	addVeth(t, l.hostH, "calirmorphan2", "orphanpeer2")
	mine := []netip.Prefix{netip.MustParsePrefix("10.65.6.4/32")}
	if err := RemoveWorkload(Removal{HostNetNS: l.host, ContainerNetNS: testutil.NewNetNS(t), ContainerIf: "eth0", HostIfLater: func() (string, []netip.Prefix) { return "calirmorphan2", mine }}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.hostH.LinkByName("calirmorphan2"); err != nil {
		t.Errorf("host link without routes deleted by name: %v", err)
	}
	// A host link of that name that is not a veth is not ours: untouched.
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "calirmbridge1"}}
	if err := l.hostH.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	if err := RemoveWorkload(Removal{HostNetNS: l.host, ContainerIf: "eth0", HostIf: "calirmbridge1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.hostH.LinkByName("calirmbridge1"); err != nil {
		t.Errorf("a bridge named like a workload link was deleted: %v", err)
	}
	// A live container link identifies its own host peer; a host link of the
	// given name that is not that peer (another sandbox of the same pod has
	// it) is left alone.
	a := l.pod(t, "calirmpodA0001", "10.65.7.2/32")
	b := l.pod(t, "calirmpodB0001", "10.65.7.3/32")
	if err := RemoveWorkload(Removal{HostNetNS: l.host, ContainerNetNS: b.ContainerNetNS, ContainerIf: "eth0", HostIf: a.HostIf, HostIfLater: func() (string, []netip.Prefix) {
		t.Error("HostIfLater called while the container link exists")
		return a.HostIf, a.Addrs
	}}); err != nil {
		t.Fatal(err)
	}
	if err := CheckWorkload(a); err != nil {
		t.Errorf("removing B touched A: %v", err)
	}
	if _, err := l.hostH.LinkByName(b.HostIf); !isLinkNotFound(err) {
		t.Errorf("B's host link not removed through its peer: %v", err)
	}
	if err := RemoveWorkload(Removal{HostNetNS: l.host, ContainerIf: "eth0"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("RemoveWorkload with nothing to name the workload = %v", err)
	}
}

// TestPrivilegedCreateThenConfigure: the two halves of SetupWorkload run
// apart give the same plumbing; addresses of a family the veth was not made
// for are refused; Remove undoes CreateVeth.
func TestPrivilegedCreateThenConfigure(t *testing.T) {
	l := newLab(t)
	w := Workload{HostNetNS: l.host, ContainerNetNS: testutil.NewNetNS(t), ContainerIf: "eth0", HostIf: "calisplit0001", MTU: 1450}
	v, err := CreateVeth(w, true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if len(v.ContainerMAC()) != 6 {
		t.Errorf("container MAC %v", v.ContainerMAC())
	}
	if _, err := v.Configure([]netip.Prefix{netip.MustParsePrefix("fd00:65:8::2/128")}); !errors.Is(err, ErrInvalid) {
		t.Errorf("IPv6 address on an IPv4-only veth: %v", err)
	}
	w.Addrs = []netip.Prefix{netip.MustParsePrefix("10.65.8.2/32")}
	res, err := v.Configure(w.Addrs)
	if err != nil {
		t.Fatal(err)
	}
	if res.ContainerMAC.String() != v.ContainerMAC().String() {
		t.Errorf("result MAC %s, veth %s", res.ContainerMAC, v.ContainerMAC())
	}
	if err := CheckWorkload(w); err != nil {
		t.Fatal(err)
	}
	l.ping(t, l.host, "10.65.8.2")
	if err := v.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.hostH.LinkByName(w.HostIf); !isLinkNotFound(err) {
		t.Errorf("host link left after Remove: %v", err)
	}
	if _, err := CreateVeth(w, false, false); !errors.Is(err, ErrInvalid) {
		t.Errorf("CreateVeth without a family: %v", err)
	}
}

// TestPrivilegedRemoveOrphanLinks: the veth still routing a dead
// workload's addresses is removed; a link a live endpoint claims, a link
// that is not a cali veth, or one that also routes other addresses, is
// not, and the error says the address is still routed.
func TestPrivilegedRemoveOrphanLinks(t *testing.T) {
	l := newLab(t)
	dead := l.pod(t, "caliorphan0001", "10.65.10.2/32")
	live := l.pod(t, "caliorphan0002", "10.65.10.3/32")
	inUse := func(name string) bool { return name == live.HostIf }
	if err := RemoveOrphanLinks(Orphan{HostNetNS: l.host, Addrs: dead.Addrs, Prefix: "cali", InUse: inUse}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.hostH.LinkByName(dead.HostIf); !isLinkNotFound(err) {
		t.Errorf("orphan link left: %v", err)
	}
	if rs := l.hostRoutes(t, "10.65.10.2/32"); len(rs) != 0 {
		t.Errorf("orphan route left: %v", rs)
	}
	// The live endpoint's link is never an orphan, even for its address.
	if err := RemoveOrphanLinks(Orphan{HostNetNS: l.host, Addrs: live.Addrs, Prefix: "cali", InUse: inUse}); !errors.Is(err, ErrRouteConflict) {
		t.Errorf("RemoveOrphanLinks on a live endpoint's address = %v, want ErrRouteConflict", err)
	}
	// Not the claimed name, but it routes an address outside the orphan's.
	if err := RemoveOrphanLinks(Orphan{HostNetNS: l.host, Addrs: live.Addrs[:1], Prefix: "cali"}); err != nil {
		t.Fatal(err) // all its routes are to these addresses: removed
	}
	two := l.pod(t, "caliorphan0003", "10.65.10.4/32", "10.65.10.5/32")
	if err := RemoveOrphanLinks(Orphan{HostNetNS: l.host, Addrs: two.Addrs[:1], Prefix: "cali"}); !errors.Is(err, ErrRouteConflict) {
		t.Errorf("RemoveOrphanLinks on a link that also routes another address = %v", err)
	}
	if err := CheckWorkload(two); err != nil {
		t.Errorf("a link routing other addresses was touched: %v", err)
	}
	// Nothing routes the address: nothing to do.
	if err := RemoveOrphanLinks(Orphan{HostNetNS: l.host, Addrs: dead.Addrs, Prefix: "cali"}); err != nil {
		t.Errorf("RemoveOrphanLinks with nothing left = %v", err)
	}
}
