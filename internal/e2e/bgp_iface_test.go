package e2e_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/agent/labtest"
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
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor
spec:
  peerIP: 10.99.0.1
  asNumber: 65001
  filters: [ifaces]
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: far
spec:
  peerIP: 203.0.113.10
  asNumber: 65002
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
	c := newLab(t)
	c.n1 = c.lab.AddNode("n1", 99, 11)
	c.nodes = []*labtest.Node{c.n1}
	for i, addr := range []string{"198.51.100.1/24", "198.51.101.1/24"} {
		dev := fmt.Sprintf("dummy%d", i)
		// No dummy module here: a veth pair inside n1 stands in.
		testutil.RunIn(t, c.n1.NS, "ip", "link", "add", dev, "type", "veth", "peer", "name", dev+"p")
		testutil.RunIn(t, c.n1.NS, "ip", "addr", "add", addr, "dev", dev)
		testutil.RunIn(t, c.n1.NS, "ip", "link", "set", dev+"p", "up")
		testutil.RunIn(t, c.n1.NS, "ip", "link", "set", dev, "up")
	}
	tor := startBird(t, c.lab.Router, `router id 10.99.0.1;
protocol device { scan time 2; }
protocol static ext { route 192.0.2.0/24 blackhole; route 198.18.0.0/24 blackhole; }
protocol bgp n1 {
  local 10.99.0.1 as 65001; neighbor 10.99.0.11 as 64512; direct;
  import all; export all; connect retry time 1; connect delay time 1; error wait time 1,5;
}
`)
	far := startBird(t, c.lab.AddExternal(), `router id 203.0.113.10;
protocol device { scan time 2; }
protocol bgp n1 {
  local 203.0.113.10 as 65002; neighbor 10.99.0.11 as 64512; multihop;
  import all; export none; connect retry time 1; connect delay time 1; error wait time 1,5;
}
`)
	c.calicoctl(t, noEncapPool+"---\n"+ifaceDoc, "apply", "-f", "-")
	c.startBGP(t)
	c.waitEstablished(t, c.n1, 2)

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
