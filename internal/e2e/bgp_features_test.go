package e2e_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/agent/labtest"
)

// gobgpdEdge is gobgpd on the lab router, AS 65001, peering with n1.
const gobgpdEdge = `[global.config]
  as = 65001
  router-id = "10.99.0.1"
  local-address-list = ["10.99.0.1"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.99.0.11"
    peer-as = 64512
  [neighbors.timers.config]
    connect-retry = 1
`

// priorityDoc gives one imported route priority 300, prepends two
// different AS numbers to one exported block, rejects another by its AS
// path (n1's AS, which both BIRD 1.6 and GoBGP have put in front when an
// eBGP export rule runs) and the rest by priority.
const priorityDoc = `apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata:
  name: prio
spec:
  importV4:
  - cidr: 10.244.203.0/26
    matchOperator: Equal
    action: Accept
    operations:
    - setPriority: {value: 300}
  exportV4:
  - cidr: 10.244.1.0/26
    matchOperator: Equal
    action: Accept
    operations:
    - prependASPath: {prefix: [65010, 65020]}
  - {cidr: 10.244.5.0/26, matchOperator: Equal, asPathPrefix: [64512], action: Reject}
  - {cidr: 10.244.5.0/26, matchOperator: Equal, action: Accept}
  - {priority: 1024, action: Reject}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: edge
spec:
  peerIP: 10.99.0.1
  asNumber: 65001
  filters: [prio]
`

// TestPrivilegedBGPFilterPriorityPrepend: n1 peers over eBGP with gobgpd
// (AS 65001). Of two routes gobgpd announces, the one an import rule
// gives setPriority 300 is in n1's kernel with metric 300, the other
// with the default. gobgpd receives n1's first block with the path
// "65010 65020 64512" (as BIRD 1.6 sends it: the rule's numbers before
// n1's AS), not the block an asPathPrefix [64512] rule rejects, and not
// n1's third block, which a priority 1024 rule (the priority of n1's own
// routes) rejects.
func TestPrivilegedBGPFilterPriorityPrepend(t *testing.T) {
	c := newLab(t)
	c.n1 = c.lab.AddNode("n1", 99, 11)
	c.nodes = []*labtest.Node{c.n1}
	cli := startGobgpd(t, c.lab.Router, gobgpdEdge)
	for _, p := range []string{"10.244.203.0/26", "10.244.204.0/26"} {
		if out, err := cli("global", "rib", "add", "-a", "ipv4", p, "nexthop", "10.99.0.1"); err != nil {
			t.Fatalf("gobgp add %s: %v %s", p, err, out)
		}
	}
	c.calicoctl(t, strings.Join([]string{noEncapPool, meshOff, priorityDoc}, "---\n"), "apply", "-f", "-")
	c.startBGP(t)
	c.waitEstablished(t, c.n1, 1)
	gw := netip.MustParseAddr("10.99.0.1")
	high, plain := netip.MustParsePrefix("10.244.203.0/26"), netip.MustParsePrefix("10.244.204.0/26")
	c.waitIPRoute(t, c.n1, high, bgpRoute(high, gw)+" metric 300")
	c.waitIPRoute(t, c.n1, plain, bgpRoute(plain, gw))

	// The refused blocks first: by the time gobgpd has the last one, it
	// would have them too.
	quiet := c.lab.ClaimBlock("n1", netip.MustParseAddr("10.244.3.0"))
	byPath := c.lab.ClaimBlock("n1", netip.MustParseAddr("10.244.5.0"))
	open := c.lab.ClaimBlock("n1", netip.MustParseAddr("10.244.1.0"))
	var rib string
	c.eventually(t, "gobgpd learns "+open.String(), func() error {
		out, err := cli("neighbor", "10.99.0.11", "adj-in", "-a", "ipv4")
		rib = out
		if err != nil || !strings.Contains(out, open.String()) {
			return fmt.Errorf("%v %s", err, out)
		}
		return nil
	})
	for _, l := range strings.Split(rib, "\n") {
		// The private mark that chains the prepends does not leave n1.
		if strings.Contains(l, open.String()) && (!strings.Contains(l, "65010 65020 64512") || strings.Contains(l, "64512 64512") || strings.Contains(l, "65535")) {
			t.Errorf("exported block's AS path or communities: %q", l)
		}
	}
	if strings.Contains(rib, quiet.String()) || strings.Contains(rib, byPath.String()) {
		t.Errorf("block rejected by the priority or the AS path rule reached gobgpd:\n%s", rib)
	}
}
