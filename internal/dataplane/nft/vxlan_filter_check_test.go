package nft

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/nftables"

	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/testutil"
)

// vxlanCheckLab is a namespace with a VXLAN filter applier on a socket of
// its own (as the daemon's), optionally watching the namespace.
func vxlanCheckLab(t *testing.T, watch bool) (string, *VXLANFilterApplier) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireCmd(t, "nft")
	ns := testutil.NewNetNS(t)
	f, err := netns.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	sock := &BatchSocket{}
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())), nftables.AsLasting(), nftables.WithSockOptions(sock.Grab))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseLasting() })
	a := NewVXLANFilterApplier(c, VXLANFilterTableName)
	if watch {
		if err := a.Watch(sock, int(f.Fd())); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Close)
	}
	return ns, a
}

// TestPrivilegedVXLANFilterCheck: a full resync's Check of the VXLAN
// filter finds it intact without writing it, and without reading it back
// while only other tables changed; every foreign edit of the table (a
// peer added or removed, a rule flushed, the table deleted) makes Check
// report it, and the next Apply restores the table. With and without the
// notification watch (without it, every Check reads the table back).
func TestPrivilegedVXLANFilterCheck(t *testing.T) {
	for _, watch := range []bool{true, false} {
		t.Run(fmt.Sprintf("watch=%v", watch), func(t *testing.T) { testVXLANFilterCheck(t, watch) })
	}
}

func testVXLANFilterCheck(t *testing.T, watch bool) {
	ns, a := vxlanCheckLab(t, watch)
	want := VXLANFilter{Peers: addrs("198.51.100.2", "198.51.100.3", "fd00:5::2")}
	if _, err := a.Apply(want); err != nil {
		t.Fatal(err)
	}
	wantDump, err := Dump(a.c, VXLANFilterTableName)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, intact bool) {
		t.Helper()
		ok, err := a.Check()
		if err != nil || ok != intact {
			t.Fatalf("%s: Check = %v, %v; want %v", what, ok, err, intact)
		}
		if intact {
			return
		}
		st, err := a.Apply(want)
		if err != nil || !st.Replaced {
			t.Fatalf("%s: repair Apply = %+v, %v; want the table replaced", what, st, err)
		}
		if got, err := Dump(a.c, VXLANFilterTableName); err != nil || got != wantDump {
			t.Fatalf("%s: after the repair (%v):\n%s\nwant\n%s", what, err, got, wantDump)
		}
		if ok, err := a.Check(); err != nil || !ok {
			t.Fatalf("%s: Check after the repair = %v, %v", what, ok, err)
		}
	}
	check("untouched", true)
	testutil.RunIn(t, ns, "nft", "add table inet someone-else")
	check("another table changed", true)
	if watch && a.readBacks != 0 {
		t.Fatalf("with the watch, Check read the table back %d times while nobody touched it", a.readBacks)
	}
	if st, err := a.Apply(want); err != nil || st.Replaced || st.Added+st.Deleted != 0 {
		t.Fatalf("Apply of the same filter after Check: %+v, %v; want nothing written", st, err)
	}
	edits := []struct{ what, cmd string }{
		{"a foreign peer added", "add element inet calico-vxlan vxlan-peers-v4 { 192.0.2.9 }"},
		{"a peer removed", "delete element inet calico-vxlan vxlan-peers-v6 { fd00:5::2 }"},
		{"the forward chain flushed", "flush chain inet calico-vxlan vxlan-forward"},
		{"a rule added", "insert rule inet calico-vxlan vxlan-input udp dport 4789 accept"},
		{"the table deleted", "delete table inet calico-vxlan"},
	}
	for _, e := range edits {
		testutil.RunIn(t, ns, "nft", e.cmd)
		check(e.what, false)
	}
	if !strings.Contains(wantDump, "198.51.100.3") {
		t.Fatalf("dump lacks a peer:\n%s", wantDump)
	}
}
