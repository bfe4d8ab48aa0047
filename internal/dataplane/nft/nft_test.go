package nft

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/onecalico/calico/internal/dataplane/link"
	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/testutil"
)

// natLab is lab.md §3 in miniature: a node namespace with two pods
// (10.244.1.2, 10.244.1.3) and an external namespace (203.0.113.10) on
// the node's eth1 (203.0.113.1) that has no route back to the pools.
type natLab struct {
	node, ext, pod1, pod2 string
	extH                  *netlink.Handle
	conn                  *nftables.Conn
}

func newNATLab(t *testing.T) *natLab {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireCmd(t, "ip", "nft", "ping")
	l := &natLab{node: testutil.NewNetNS(t), ext: testutil.NewNetNS(t)}
	if err := netns.SetSysctl(l.node, "net/ipv4/ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	nodeH := testutil.Handle(t, l.node)
	l.extH = testutil.Handle(t, l.ext)
	extNS, err := netns.Open(l.ext)
	if err != nil {
		t.Fatal(err)
	}
	defer extNS.Close()
	la := netlink.NewLinkAttrs()
	la.Name = "eth1"
	la.Flags = net.FlagUp
	if err := nodeH.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(extNS.Fd())}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ns  string
		cmd []string
	}{
		{l.node, []string{"ip", "addr", "add", "203.0.113.1/24", "dev", "eth1"}},
		{l.node, []string{"ip", "route", "add", "default", "via", "203.0.113.254", "dev", "eth1"}},
		{l.ext, []string{"ip", "link", "set", "eth0", "up"}},
		{l.ext, []string{"ip", "addr", "add", "203.0.113.10/24", "dev", "eth0"}},
	} {
		testutil.RunIn(t, c.ns, c.cmd...)
	}
	for i, pod := range []*string{&l.pod1, &l.pod2} {
		*pod = testutil.NewNetNS(t)
		if _, err := link.SetupWorkload(link.Workload{HostNetNS: l.node, ContainerNetNS: *pod, ContainerIf: "eth0",
			HostIf: fmt.Sprintf("calinat%d", i+1), Addrs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, 1, byte(i + 2)}), 32)}}); err != nil {
			t.Fatal(err)
		}
	}
	c, closeConn, err := netns.NewNftConn(l.node)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeConn() })
	l.conn = c
	return l
}

// remoteAddrSeen listens on addr inside ns, connects from client's
// namespace and returns the source address the server saw.
func remoteAddrSeen(t *testing.T, ns, client, addr string) (netip.Addr, error) {
	t.Helper()
	var ln net.Listener
	if err := netns.Do(ns, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(addr, "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan netip.Addr, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(seen)
			return
		}
		seen <- c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		c.Close()
	}()
	err := netns.Do(client, func() error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		return netip.Addr{}, err
	}
	select {
	case a, ok := <-seen:
		if !ok {
			return netip.Addr{}, errors.New("accept failed")
		}
		return a, nil
	case <-time.After(10 * time.Second):
		return netip.Addr{}, errors.New("no connection accepted")
	}
}

func TestPrivilegedNATOutgoing(t *testing.T) {
	l := newNATLab(t)
	testutil.RunIn(t, l.node, "nft", "add table ip other; add chain ip other c; add rule ip other c counter accept")
	other := testutil.RunIn(t, l.node, "nft", "list", "table", "ip", "other")

	// Without the table the reply cannot come back.
	if _, err := testutil.RunInErr(l.pod1, "ping", "-c", "1", "-W", "1", "203.0.113.10"); err == nil {
		t.Fatal("pod reached the external address before NAT was applied")
	}

	tbl := natTable()
	if err := Apply(l.conn, tbl); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		_, err := testutil.RunInErr(l.pod1, "ping", "-c", "1", "-W", "1", "203.0.113.10")
		return err
	})
	if src, err := remoteAddrSeen(t, l.ext, l.pod1, "203.0.113.10"); err != nil || src != netip.MustParseAddr("203.0.113.1") {
		t.Errorf("external side saw %v (%v), want the node address 203.0.113.1", src, err)
	}
	if src, err := remoteAddrSeen(t, l.pod2, l.pod1, "10.244.1.3"); err != nil || src != netip.MustParseAddr("10.244.1.2") {
		t.Errorf("pod2 saw %v (%v), want pod1's own address (no NAT inside the pools)", src, err)
	}
	// A destination in a pool without natOutgoing (10.245.0.0/16, e.g. a
	// disabled pool) is not NATed either.
	lo, _ := l.extH.LinkByName("lo")
	if err := l.extH.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(10, 245, 0, 1), Mask: net.CIDRMask(32, 32)}}); err != nil {
		t.Fatal(err)
	}
	testutil.RunIn(t, l.ext, "ip", "route", "add", "10.244.0.0/16", "via", "203.0.113.1")
	testutil.RunIn(t, l.node, "ip", "route", "add", "10.245.0.0/16", "via", "203.0.113.10")
	if src, err := remoteAddrSeen(t, l.ext, l.pod1, "10.245.0.1"); err != nil || src != netip.MustParseAddr("10.244.1.2") {
		t.Errorf("address in a non-NAT pool saw %v (%v), want 10.244.1.2", src, err)
	}

	// Kernel state: our rendering and nft's own.
	dump, err := Dump(l.conn, "calico")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "nat.golden", dump)
	listed := testutil.RunIn(t, l.node, "nft", "list", "table", "inet", "calico")
	for _, want := range []string{"hook postrouting priority srcnat", "ip saddr @masq-ipam-pools-v4 ip daddr != @all-ipam-pools-v4 counter packets", "masquerade fully-random",
		"10.244.0.0-10.246.255.255", "fd00:244::/48"} {
		if !strings.Contains(listed, want) {
			t.Errorf("nft list lacks %q:\n%s", want, listed)
		}
	}

	// Empty pools still make a valid table; then delete, twice.
	if err := Apply(l.conn, Table{Name: "calico"}); err != nil {
		t.Fatal(err)
	}
	if dump, err := Dump(l.conn, "calico"); err != nil {
		t.Fatal(err)
	} else {
		golden(t, "empty.golden", dump)
	}
	for range 2 {
		if err := Delete(l.conn, "calico"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	if out := testutil.RunIn(t, l.node, "nft", "list", "tables"); strings.Contains(out, "calico") {
		t.Errorf("table survived Delete:\n%s", out)
	}
	if got := testutil.RunIn(t, l.node, "nft", "list", "table", "ip", "other"); got != other {
		t.Errorf("foreign table changed:\n%s\nwas\n%s", got, other)
	}
}

// TestPrivilegedApplyIsAtomic re-applies alternating pool sets while `nft
// list table inet calico` runs again and again in the same namespace: every
// listing must find the table complete (nft retries until it has read one
// consistent generation, so it shows exactly what a transaction committed).
func TestPrivilegedApplyIsAtomic(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCmd(t, "ip", "nft")
	ns := testutil.NewNetNS(t)
	c, closeC, err := netns.NewNftConn(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer closeC()
	a, b := natTable(), natTable()
	b.NAT.MasqPools = pfxs("10.250.0.0/16")
	b.NAT.AllPools = pfxs("10.250.0.0/16", "10.251.0.0/16")
	if err := Apply(c, a); err != nil {
		t.Fatal(err)
	}

	var applies atomic.Int64
	stop := make(chan struct{})
	applyErr := make(chan error, 1)
	go func() {
		defer close(applyErr)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tbl := a
			if i%2 == 0 {
				tbl = b
			}
			if err := Apply(c, tbl); err != nil {
				applyErr <- fmt.Errorf("Apply #%d: %w", i, err)
				return
			}
			applies.Add(1)
			// Pace the churn a little so that nft, which re-reads until
			// it sees one stable generation, can finish a listing.
			time.Sleep(time.Millisecond)
		}
	}()
	const reads = 30
	var bad []string
	for range reads {
		out, err := testutil.RunInErr(ns, "nft", "list", "table", "inet", "calico")
		complete := err == nil && strings.Count(out, "flags interval") == 4 &&
			strings.Contains(out, "hook postrouting") && strings.Count(out, "masquerade fully-random") >= 1
		if !complete {
			bad = append(bad, fmt.Sprintf("%v: %s", err, out))
		}
	}
	close(stop)
	if err := <-applyErr; err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d listings during %d applies saw no complete table; first:\n%s", len(bad), reads, applies.Load(), bad[0])
	}
	if applies.Load() < reads {
		t.Errorf("only %d applies ran during %d listings", applies.Load(), reads)
	}
	t.Logf("%d complete listings during %d applies", reads, applies.Load())
}

func TestPrivilegedDiscardLeavesKernelAlone(t *testing.T) {
	testutil.RequireRoot(t)
	ns := testutil.NewNetNS(t)
	c, closeC, err := netns.NewNftConn(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer closeC()
	if err := Apply(c, natTable()); err != nil {
		t.Fatal(err)
	}
	// Half a batch (the delete) is queued when something fails; discard
	// must throw it away without effect.
	c.DelTable(buildTable("calico"))
	if err := discard(c, errors.New("boom")); err == nil {
		t.Fatal("discard lost the error")
	}
	if _, err := c.ListTableOfFamily("calico", nftables.TableFamilyINet); err != nil {
		t.Fatalf("table gone after discard: %v", err)
	}
	if err := Apply(c, natTable()); err != nil {
		t.Fatalf("Conn unusable after discard: %v", err)
	}
}

func BenchmarkNftApply(b *testing.B) {
	testutil.RequireRoot(b)
	ns := testutil.NewNetNS(b)
	c, closeC, err := netns.NewNftConn(ns)
	if err != nil {
		b.Fatal(err)
	}
	defer closeC()
	tbl := natTable()
	for i := range 20 {
		tbl.NAT.AllPools = append(tbl.NAT.AllPools, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + i), 0, 0}), 16))
	}
	for b.Loop() {
		if err := Apply(c, tbl); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
}
