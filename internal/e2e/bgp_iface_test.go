package e2e_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/testutil"
)

// ifaceDoc: n1 ignores dummy1 (BGPConfiguration ignoredInterfaces);
// the ToR's filter exports routes of dummy* interfaces and rejects one
// route learned over eth0.
const ifaceDoc = `apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: false
  ignoredInterfaces: [dummy1]
---
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata:
  name: ifaces
spec:
  exportV4:
  - {interface: "dummy*", action: Accept}
  importV4:
  - {interface: eth0, cidr: 192.0.2.0/24, matchOperator: Equal, action: Reject}
`

// TestPrivilegedBGPFilterInterface: BGPFilter interface matches and
// ignoredInterfaces against two BIRDs. n1 has dummy0 (198.51.100.1/24)
// and dummy1 (198.51.101.1/24, ignored), veths named so. The ToR, whose filter accepts
// routes of dummy* interfaces, learns dummy0's subnet and not dummy1's;
// the far BIRD, without that filter, learns neither. Of two routes the
// ToR announces, the import rule matching eth0 (the interface towards
// the ToR's next hop) rejects one. When dummy0 loses its address the
// ToR's route goes (BIRD's 2 s interface scan).
func TestPrivilegedBGPFilterInterface(t *testing.T) {
	c := newLab1(t)
	for i, addr := range []string{"198.51.100.1/24", "198.51.101.1/24"} {
		dev := fmt.Sprintf("dummy%d", i)
		// No dummy module here: a veth pair inside n1 stands in.
		testutil.RunIn(t, c.n1.NS, "ip", "link", "add", dev, "type", "veth", "peer", "name", dev+"p")
		testutil.RunIn(t, c.n1.NS, "ip", "addr", "add", addr, "dev", dev)
		testutil.RunIn(t, c.n1.NS, "ip", "link", "set", dev+"p", "up")
		testutil.RunIn(t, c.n1.NS, "ip", "link", "set", dev, "up")
	}
	tor := startBird(t, c.lab.Router, birdN1("10.99.0.1", 65001, "direct", "import all; export all", "192.0.2.0/24", "198.18.0.0/24"))
	far := startBird(t, c.lab.AddExternal(), birdN1("203.0.113.10", 65002, "multihop", "import all; export none"))
	c.startPeered(t, 2, ifaceDoc, peerDoc("tor", "10.99.0.1", 65001, "filters: [ifaces]"), peerDoc("far", "203.0.113.10", 65002))

	gw := netip.MustParseAddr("10.99.0.1")
	kept := netip.MustParsePrefix("198.18.0.0/24")
	c.waitIPRoute(t, c.n1, kept, bgpRoute(kept, gw))
	if rs := ipRoutes(t, c.n1, netip.MustParsePrefix("192.0.2.0/24")); len(rs) != 0 {
		t.Errorf("route the eth0 import rule rejects is in n1's kernel: %q", rs)
	}
	learns := func(b *bird, p string, want bool) func() error {
		return func() error {
			out, err := b.birdc("show", "route", p)
			if err != nil || strings.Contains(out, p) != want {
				return fmt.Errorf("want %v: %v %s", want, err, out)
			}
			return nil
		}
	}
	c.eventually(t, "the ToR learns dummy0's subnet", learns(tor, "198.51.100.0/24", true))
	for _, check := range []func() error{learns(tor, "198.51.101.0/24", false), learns(far, "198.51.100.0/24", false), learns(far, "198.51.101.0/24", false)} {
		if err := check(); err != nil {
			t.Error(err)
		}
	}
	testutil.RunIn(t, c.n1.NS, "ip", "addr", "del", "198.51.100.1/24", "dev", "dummy0")
	c.eventually(t, "the ToR drops dummy0's subnet", learns(tor, "198.51.100.0/24", false))
}
