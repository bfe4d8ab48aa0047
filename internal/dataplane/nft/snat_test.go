package nft

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/testutil"
)

// TestPrivilegedNATOutgoingAddressAndPorts sends real packets from a pod
// to the external namespace: with natOutgoingAddress the external side sees
// that address (not the node's interface address), with natPortRange TCP
// and UDP source ports fall inside the range, and ICMP (no ports) still
// gets through the SNAT.
func TestPrivilegedNATOutgoingAddressAndPorts(t *testing.T) {
	l := newNATLab(t)
	// The SNAT address is the node's second address on the external link.
	testutil.RunIn(t, l.node, "ip", "addr", "add", "203.0.113.5/24", "dev", "eth1")
	tbl := natTable()
	tbl.NAT.SNATAddress = netip.MustParseAddr("203.0.113.5")
	tbl.NAT.PortMin, tbl.NAT.PortMax = 40000, 40009
	if err := Apply(l.conn, tbl); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		_, err := testutil.RunInErr(l.pod1, "ping", "-c", "1", "-W", "1", "203.0.113.10")
		return err
	})
	inRange := func(p uint16) bool { return p >= 40000 && p <= 40009 }
	for range 3 { // new connections, new source ports: every one in the range
		src, err := tcpSourceSeen(t, l.ext, l.pod1, "203.0.113.10")
		if err != nil || src.Addr() != netip.MustParseAddr("203.0.113.5") || !inRange(src.Port()) {
			t.Errorf("TCP: external side saw %v (%v), want 203.0.113.5:40000-40009", src, err)
		}
	}
	src, err := udpSourceSeen(t, l.ext, l.pod1, "203.0.113.10")
	if err != nil || src.Addr() != netip.MustParseAddr("203.0.113.5") || !inRange(src.Port()) {
		t.Errorf("UDP: external side saw %v (%v), want 203.0.113.5:40000-40009", src, err)
	}
	// Inside the pools nothing changes.
	if src, err := remoteAddrSeen(t, l.pod2, l.pod1, "10.244.1.3"); err != nil || src != netip.MustParseAddr("10.244.1.2") {
		t.Errorf("pod2 saw %v (%v), want pod1's own address", src, err)
	}
	listed := testutil.RunIn(t, l.node, "nft", "list", "table", "inet", "calico")
	for _, want := range []string{"meta l4proto tcp counter packets", "snat ip to 203.0.113.5:40000-40009", "snat ip to 203.0.113.5 fully-random",
		"masquerade to :40000-40009"} {
		if !strings.Contains(listed, want) {
			t.Errorf("nft list lacks %q:\n%s", want, listed)
		}
	}
	dump, err := Dump(l.conn, "calico")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dump, "counter snat ip to 203.0.113.5 fully-random") || !strings.Contains(dump, "meta l4proto udp counter snat ip to 203.0.113.5:40000-40009") {
		t.Errorf("our rendering of the kernel's rules:\n%s", dump)
	}
}

// tcpSourceSeen connects from client to a listener on addr in ns and
// returns the source address and port the listener saw.
func tcpSourceSeen(t *testing.T, ns, client, addr string) (netip.AddrPort, error) {
	t.Helper()
	var ln net.Listener
	if err := netns.Do(ns, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(addr, "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan netip.AddrPort, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			seen <- netip.AddrPort{}
			return
		}
		ap := c.RemoteAddr().(*net.TCPAddr).AddrPort()
		seen <- netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		c.Close()
	}()
	if err := netns.Do(client, func() error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}); err != nil {
		return netip.AddrPort{}, err
	}
	return <-seen, nil
}

// udpSourceSeen sends one datagram from client to addr in ns and returns
// the source the receiver saw.
func udpSourceSeen(t *testing.T, ns, client, addr string) (netip.AddrPort, error) {
	t.Helper()
	var pc *net.UDPConn
	if err := netns.Do(ns, func() (err error) {
		pc, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(addr), 0)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := netns.Do(client, func() error {
		c, err := net.Dial("udp", pc.LocalAddr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("x"))
		return err
	}); err != nil {
		return netip.AddrPort{}, err
	}
	if err := pc.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return netip.AddrPort{}, err
	}
	_, from, err := pc.ReadFromUDPAddrPort(make([]byte, 16))
	return netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), err
}
