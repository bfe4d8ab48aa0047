package nft

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/testutil"
)

// TestPrivilegedVXLANFilterWorkloads: a pod (behind a cali* veth) sending
// UDP to the VXLAN port is dropped and counted, both to the node itself
// and forwarded to another host (before the filter both arrive), while a
// known peer's VXLAN still arrives. A full resync (Invalidate, then the
// table rewritten) keeps both counters where they were.
func TestPrivilegedVXLANFilterWorkloads(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCmd(t, "ip", "sysctl")
	node, other, pod := testutil.NewNetNS(t), testutil.NewNetNS(t), testutil.NewNetNS(t)
	veth(t, node, "eth0", other, "eth0")
	veth(t, node, "calipod1", pod, "eth0")
	testutil.RunIn(t, node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	testutil.RunIn(t, node, "ip", "addr", "add", "198.51.100.1/24", "dev", "eth0")
	testutil.RunIn(t, node, "ip", "addr", "add", "192.0.2.1/24", "dev", "calipod1")
	for _, a := range []string{"198.51.100.2/24", "198.51.100.3/24"} {
		testutil.RunIn(t, other, "ip", "addr", "add", a, "dev", "eth0")
	}
	testutil.RunIn(t, other, "ip", "route", "add", "192.0.2.0/24", "via", "198.51.100.1")
	testutil.RunIn(t, pod, "ip", "addr", "add", "192.0.2.2/24", "dev", "eth0")
	testutil.RunIn(t, pod, "ip", "route", "add", "default", "via", "192.0.2.1")
	c, closeConn, err := netns.NewNftConn(node)
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn()

	atNode := listenVXLAN(t, node, "0.0.0.0")
	atOther := listenVXLAN(t, other, "198.51.100.2")
	a := NewVXLANFilterApplier(c, VXLANFilterTableName)
	count := func(read func(c2 *netConn, table string) (CounterValue, error)) uint64 {
		t.Helper()
		v, err := read(c, VXLANFilterTableName)
		if err != nil {
			t.Fatal(err)
		}
		return v.Packets
	}
	waitCount := func(what string, read func(*netConn, string) (CounterValue, error), n uint64) {
		t.Helper()
		testutil.Eventually(t, 5*time.Second, func() error {
			if got := count(read); got != n {
				return fmt.Errorf("%s: %d, want %d", what, got, n)
			}
			return nil
		})
	}
	pod4, peer := netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("198.51.100.2")
	fromPod := func() {
		t.Helper()
		sendVXLAN(t, pod, "192.0.2.2", "198.51.100.1")
		sendVXLAN(t, pod, "192.0.2.2", "198.51.100.2")
	}

	// Without the filter the pod reaches both: the test can see a drop.
	fromPod()
	if n := atNode.senders()[pod4]; n != 1 {
		t.Fatalf("without the filter the node got %d packets from the pod, want 1", n)
	}
	if n := atOther.senders()[pod4]; n != 1 {
		t.Fatalf("without the filter the other host got %d packets from the pod, want 1", n)
	}

	if _, err := a.Apply(VXLANFilter{Peers: addrs("198.51.100.2")}); err != nil {
		t.Fatal(err)
	}
	fromPod()
	sendVXLAN(t, other, "198.51.100.2", "198.51.100.1") // a known peer
	sendVXLAN(t, other, "198.51.100.3", "198.51.100.1") // forged
	waitCount("workload drops", VXLANWorkloadDropped, 2)
	waitCount("peer drops", VXLANDropped, 1)
	if got := atNode.senders(); got[pod4] != 0 || got[peer] != 1 {
		t.Errorf("through the filter the node got %v; want only 1 from the known peer %s", got, peer)
	}
	if got := atOther.senders(); got[pod4] != 0 {
		t.Errorf("the other host got %d packets forwarded from the pod through the filter", got[pod4])
	}

	// A full resync rewrites the table; the counts carry on.
	a.Invalidate()
	if st, err := a.Apply(VXLANFilter{Peers: addrs("198.51.100.2")}); err != nil || !st.Replaced {
		t.Fatalf("full resync: %+v %v", st, err)
	}
	if w, p := count(VXLANWorkloadDropped), count(VXLANDropped); w != 2 || p != 1 {
		t.Fatalf("after the rewrite the counters are %d (workload) and %d (peer), want 2 and 1", w, p)
	}
	fromPod()
	sendVXLAN(t, other, "198.51.100.3", "198.51.100.1")
	waitCount("workload drops after the rewrite", VXLANWorkloadDropped, 4)
	waitCount("peer drops after the rewrite", VXLANDropped, 2)
}

type netConn = nftables.Conn

// veth links interface an in namespace a to bn in namespace b, both up.
func veth(t *testing.T, a, an, b, bn string) {
	t.Helper()
	bNS, err := netns.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer bNS.Close()
	la := netlink.NewLinkAttrs()
	la.Name, la.Flags = an, net.FlagUp
	if err := testutil.Handle(t, a).LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: bn, PeerNamespace: netlink.NsFd(bNS.Fd())}); err != nil {
		t.Fatal(err)
	}
	testutil.RunIn(t, b, "ip", "link", "set", bn, "up")
}

// udpSink is a UDP socket on the VXLAN port.
type udpSink struct{ pc *net.UDPConn }

func listenVXLAN(t *testing.T, ns, addr string) *udpSink {
	t.Helper()
	var pc *net.UDPConn
	if err := netns.Do(ns, func() (err error) {
		pc, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(addr), Port: DefaultVXLANPort})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return &udpSink{pc}
}

// senders drains the socket for a moment and counts the packets by
// source.
func (s *udpSink) senders() map[netip.Addr]int {
	got := map[netip.Addr]int{}
	buf := make([]byte, 64)
	for {
		_ = s.pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, from, err := s.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			return got
		}
		got[from.Addr().Unmap()]++
	}
}

// sendVXLAN sends one datagram from namespace ns, address from, to the
// VXLAN port of to.
func sendVXLAN(t *testing.T, ns, from, to string) {
	t.Helper()
	if err := netns.Do(ns, func() error {
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
		t.Fatalf("send from %s to %s: %v", from, to, err)
	}
}
