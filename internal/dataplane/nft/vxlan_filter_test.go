package nft

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/testutil"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestBuildVXLANFilter(t *testing.T) {
	s := buildVXLANFilter("calico-vxlan", VXLANFilter{Peers: addrs("10.0.0.3", "10.0.0.2", "10.0.0.3", "fd00::2", "::ffff:10.0.0.4")})
	want := `table inet calico-vxlan
  set vxlan-peers-v4 { type ipv4_addr; elements = { 10.0.0.2, 10.0.0.3, 10.0.0.4 } }
  set vxlan-peers-v6 { type ipv6_addr; elements = { fd00::2 } }
  chain vxlan-forward { type filter hook forward priority -1; policy accept;
    iifname "cali*" meta l4proto udp th dport 4789 counter name "vxlan-workload-dropped" drop
  }
  chain vxlan-input { type filter hook input priority -1; policy accept;
    iifname "cali*" meta l4proto udp th dport 4789 counter name "vxlan-workload-dropped" drop
    meta l4proto udp th dport 4789 meta nfproto ipv4 ip saddr @vxlan-peers-v4 accept
    meta l4proto udp th dport 4789 meta nfproto ipv6 ip6 saddr @vxlan-peers-v6 accept
    meta l4proto udp th dport 4789 counter name "vxlan-dropped" drop
  }
`
	if got := render(s); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if got := render(buildVXLANFilter("t", VXLANFilter{Port: 8472})); !strings.Contains(got, "th dport 8472 counter") {
		t.Fatalf("port 8472:\n%s", got)
	}
	got := render(buildVXLANFilter("t", VXLANFilter{WorkloadPrefixes: []string{"tap", " veth"}}))
	if strings.Contains(got, `"cali*"`) || strings.Count(got, `iifname "tap*"`) != 2 || strings.Count(got, `iifname "veth*"`) != 2 {
		t.Fatalf("prefixes tap,veth:\n%s", got)
	}
}

func TestDiffAddrs(t *testing.T) {
	add, del := diffAddrs(addrs("10.0.0.1", "10.0.0.2"), addrs("10.0.0.2", "10.0.0.3"))
	if len(add) != 1 || add[0] != netip.MustParseAddr("10.0.0.3") || len(del) != 1 || del[0] != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("add %v del %v", add, del)
	}
}

// TestPrivilegedVXLANPeerFilter sends UDP packets to the node's VXLAN port
// from known and unknown underlay addresses of both families: the known
// ones are delivered, the unknown ones dropped and counted. A change of
// peers is applied in place (the counter survives) and takes effect.
func TestPrivilegedVXLANPeerFilter(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCmd(t, "ip")
	node, other := testutil.NewNetNS(t), testutil.NewNetNS(t)
	otherNS, err := netns.Open(other)
	if err != nil {
		t.Fatal(err)
	}
	defer otherNS.Close()
	la := netlink.NewLinkAttrs()
	la.Name, la.Flags = "eth0", net.FlagUp
	if err := testutil.Handle(t, node).LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(otherNS.Fd())}); err != nil {
		t.Fatal(err)
	}
	testutil.RunIn(t, node, "ip", "addr", "add", "198.51.100.1/24", "dev", "eth0")
	testutil.RunIn(t, node, "ip", "addr", "add", "fd00:5::1/64", "dev", "eth0", "nodad")
	testutil.RunIn(t, other, "ip", "link", "set", "eth0", "up")
	for _, a := range []string{"198.51.100.2/24", "198.51.100.3/24"} {
		testutil.RunIn(t, other, "ip", "addr", "add", a, "dev", "eth0")
	}
	for _, a := range []string{"fd00:5::2/64", "fd00:5::3/64"} {
		testutil.RunIn(t, other, "ip", "addr", "add", a, "dev", "eth0", "nodad")
	}
	c, closeConn, err := netns.NewNftConn(node)
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn()

	// The node's VXLAN port, as the kernel's vxlan device would own it.
	var pc *net.UDPConn
	if err := netns.Do(node, func() (err error) {
		pc, err = net.ListenUDP("udp", &net.UDPAddr{Port: DefaultVXLANPort})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	send := func(from, to string) {
		t.Helper()
		if err := netns.Do(other, func() error {
			l := net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(from), 0))
			r := net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(to), DefaultVXLANPort))
			conn, err := net.DialUDP("udp", l, r)
			if err != nil {
				return err
			}
			defer conn.Close()
			_, err = conn.Write([]byte("vxlan"))
			return err
		}); err != nil {
			t.Fatalf("send from %s: %v", from, err)
		}
	}
	// received drains the socket for a moment and returns the senders.
	received := func() map[netip.Addr]int {
		got := map[netip.Addr]int{}
		buf := make([]byte, 64)
		for {
			_ = pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			_, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return got
			}
			got[from.Addr().Unmap()]++
		}
	}
	dropped := func() uint64 {
		t.Helper()
		v, err := VXLANDropped(c, VXLANFilterTableName)
		if err != nil {
			t.Fatal(err)
		}
		return v.Packets
	}
	waitDropped := func(n uint64) {
		t.Helper()
		testutil.Eventually(t, 5*time.Second, func() error {
			if d := dropped(); d != n {
				return fmt.Errorf("dropped %d, want %d", d, n)
			}
			return nil
		})
	}

	a := NewVXLANFilterApplier(c, VXLANFilterTableName)
	st, err := a.Apply(VXLANFilter{Peers: addrs("198.51.100.2", "fd00:5::2")})
	if err != nil || !st.Replaced || st.PeersV4 != 1 || st.PeersV6 != 1 {
		t.Fatalf("first apply: %+v %v", st, err)
	}
	for range 3 {
		send("198.51.100.2", "198.51.100.1")
		send("198.51.100.3", "198.51.100.1")
		send("fd00:5::2", "fd00:5::1")
		send("fd00:5::3", "fd00:5::1")
	}
	waitDropped(6)
	got := received()
	if got[netip.MustParseAddr("198.51.100.2")] != 3 || got[netip.MustParseAddr("fd00:5::2")] != 3 || len(got) != 2 {
		t.Fatalf("delivered %v, want 3 each from the known peers only", got)
	}

	// .3 becomes a VTEP, .2 and fd00:5::2 go: one in-place batch.
	st, err = a.Apply(VXLANFilter{Peers: addrs("198.51.100.3")})
	if err != nil || st.Replaced || st.Added != 1 || st.Deleted != 2 {
		t.Fatalf("update: %+v %v", st, err)
	}
	send("198.51.100.2", "198.51.100.1")
	send("198.51.100.3", "198.51.100.1")
	send("fd00:5::2", "fd00:5::1")
	waitDropped(8) // the counter survived: the table was not replaced
	got = received()
	if got[netip.MustParseAddr("198.51.100.3")] != 1 || len(got) != 1 {
		t.Fatalf("after the update delivered %v, want one from 198.51.100.3", got)
	}
	if st, err := a.Apply(VXLANFilter{Peers: addrs("198.51.100.3")}); err != nil || st.Replaced || st.Added+st.Deleted != 0 {
		t.Fatalf("same again: %+v %v", st, err)
	}

	// Someone deletes our table: the in-place update fails and the
	// applier rebuilds it.
	if err := Delete(c, VXLANFilterTableName); err != nil {
		t.Fatal(err)
	}
	if st, err := a.Apply(VXLANFilter{Peers: addrs("198.51.100.2")}); err != nil || !st.Replaced {
		t.Fatalf("after the table vanished: %+v %v", st, err)
	}
	dump, err := Dump(c, VXLANFilterTableName)
	if err != nil || !strings.Contains(dump, "set vxlan-peers-v4 { type ipv4_addr; elements = { 198.51.100.2 } }") {
		t.Fatalf("dump %v:\n%s", err, dump)
	}
	if err := a.Delete(); err != nil {
		t.Fatal(err)
	}
	send("198.51.100.3", "198.51.100.1")
	if got := received(); got[netip.MustParseAddr("198.51.100.3")] != 1 {
		t.Fatalf("with the filter deleted, delivered %v", got)
	}
}
