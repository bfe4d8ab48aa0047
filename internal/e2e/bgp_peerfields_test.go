package e2e_test

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/testutil"
)

// farPeer is n1's BGPPeer to a BIRD at 10.98.0.1 (AS 65001) on another
// subnet, with spec lines added.
func farPeer(spec ...string) string {
	return peerDoc("far", "10.98.0.1", 65001, append([]string{"node: n1"}, spec...)...)
}

// TestPrivilegedBGPPeerReachableByNextHop: n1 has no default route, so
// the eBGP peer on another subnet is reachable only through reachableBy's
// static route (installed proto bird). nextHopMode Keep sends n2's block
// (learned over the mesh) with n2 as next hop; Self with n1; the change
// does not reset the session.
func TestPrivilegedBGPPeerReachableByNextHop(t *testing.T) {
	c := newLab(t)
	c.sameSubnet(2)
	c.lab.Subnet(98)
	testutil.RunIn(t, c.n1.NS, "ip", "route", "del", "default")
	tor := startBird(t, c.lab.Router, birdN1("10.98.0.1", 65001, "multihop", "import all; export none"))
	c.startPeered(t, 2, farPeer("reachableBy: 10.99.0.1", "nextHopMode: Keep"))
	peer := netip.MustParsePrefix("10.98.0.1/32")
	c.waitIPRoute(t, c.n1, peer, "10.98.0.1/32 via 10.99.0.1 dev eth0 proto bird")

	b2 := c.lab.ClaimBlock("n2", netip.MustParseAddr("10.244.2.0"))
	b1 := c.lab.ClaimBlock("n1", netip.MustParseAddr("10.244.1.0"))
	torRoute := func(p netip.Prefix, via string) func() error {
		return func() error {
			out, err := tor.birdc("show", "route", p.String(), "all")
			if err != nil || !strings.Contains(out, "BGP.next_hop: "+via+"\n") {
				return fmt.Errorf("want via %s: %v\n%s", via, err, out)
			}
			return nil
		}
	}
	c.eventually(t, "Keep: n2's block with n2's next hop", torRoute(b2, "10.99.0.12"))
	c.eventually(t, "n1's own block", torRoute(b1, "10.99.0.11"))

	c.calicoctl(t, farPeer("reachableBy: 10.99.0.1", "nextHopMode: Self"), "apply", "-f", "-")
	c.eventually(t, "Self: n2's block with n1's next hop", torRoute(b2, "10.99.0.11"))
	s, err := c.procs["n1"].Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range s.BGPPeers {
		if p.Flaps != 0 || p.State != "Established" {
			t.Errorf("next-hop change reset a session: %+v", p)
		}
	}
	// Without reachableBy the static route goes.
	c.calicoctl(t, farPeer("nextHopMode: Self"), "apply", "-f", "-")
	c.waitIPRoute(t, c.n1, peer, "")
}

// TestPrivilegedBGPAllowLocalAS: gobgpd (AS 65001) announces a route
// whose AS path already holds n1's AS 64512. n1 drops it as a loop until
// its BGPPeer sets numAllowedLocalASNumbers: 1; then it is installed.
func TestPrivilegedBGPAllowLocalAS(t *testing.T) {
	c := newLab1(t)
	looped := netip.MustParsePrefix("10.244.210.0/26")
	plain := netip.MustParsePrefix("10.244.211.0/26")
	c.startEdge(t, []string{looped.String(), "aspath", "64512"}, []string{plain.String()})
	c.startPeered(t, 1, meshOff, peerDoc("edge", "10.99.0.1", 65001))
	gw := netip.MustParseAddr("10.99.0.1")
	c.waitIPRoute(t, c.n1, plain, bgpRoute(plain, gw))
	if rs := ipRoutes(t, c.n1, looped); len(rs) != 0 {
		t.Errorf("route with n1's own AS in its path installed: %q", rs)
	}
	c.calicoctl(t, peerDoc("edge", "10.99.0.1", 65001, "numAllowedLocalASNumbers: 1"), "apply", "-f", "-")
	c.waitIPRoute(t, c.n1, looped, bgpRoute(looped, gw))
}

// TestPrivilegedBGPTTLSecurity: BIRD on the lab's external host, two hops
// from n1 (through the router), with TTL security on (it sends TTL 255).
// n1's BGPPeer with ttlSecurity: 1 accepts only packets with TTL 255, so
// the session stays down; with ttlSecurity: 2 (TTL 254 accepted) it comes
// up.
func TestPrivilegedBGPTTLSecurity(t *testing.T) {
	c := newLab1(t)
	b := startBird(t, c.lab.AddExternal(), birdN1("203.0.113.10", 65001, "multihop 2; ttl security on", "import all; export none"))
	peer := func(hops int) string {
		return peerDoc("ext", "203.0.113.10", 65001, fmt.Sprintf("ttlSecurity: %d", hops))
	}
	c.calicoctl(t, strings.Join([]string{noEncapPool, meshOff, peer(1)}, "---\n"), "apply", "-f", "-")
	c.startBGP(t)
	// n1's packets (TTL 255) reach BIRD; BIRD's arrive with TTL 254 and
	// n1 drops them once the socket's minimum TTL is set (before n1 sends
	// its OPEN), so BIRD's KEEPALIVE, which answers that OPEN, never gets
	// through: BIRD moves on (OpenConfirm or Established), n1 does not.
	// The kernel counts those drops (TcpExtTCPMinTTLDrop in n1's netns).
	c.eventually(t, "BIRD answered n1's OPEN and n1 dropped the answer", func() error {
		out, err := b.birdc("show", "protocols", "n1")
		if err != nil || !strings.Contains(out, "OpenConfirm") && !strings.Contains(out, "Established") {
			return fmt.Errorf("%v %s", err, out)
		}
		if d := minTTLDrops(t, c.n1.NS); d == 0 {
			return fmt.Errorf("no TCPMinTTLDrop yet")
		}
		return nil
	})
	if s, err := c.procs["n1"].Status(); err != nil || len(s.BGPPeers) != 1 || s.BGPPeers[0].State == "Established" {
		t.Fatalf("session with ttlSecurity 1 across two hops: %+v %v", s.BGPPeers, err)
	}
	c.calicoctl(t, peer(2), "apply", "-f", "-")
	c.waitEstablished(t, c.n1, 1)
}

// minTTLDrops is the TCPMinTTLDrop counter of namespace ns.
func minTTLDrops(t *testing.T, ns string) int {
	out := testutil.RunIn(t, ns, "cat", "/proc/net/netstat")
	lines := strings.Split(out, "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j, n := range names {
			if n == "TCPMinTTLDrop" && j < len(vals) {
				v, _ := strconv.Atoi(vals[j])
				return v
			}
		}
	}
	t.Fatalf("no TCPMinTTLDrop in /proc/net/netstat of %s", ns)
	return 0
}
