package e2e_test

import (
	"net/netip"
	"strings"
	"testing"
)

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
	c := newLab1(t)
	cli := c.startEdge(t, []string{"10.244.203.0/26"}, []string{"10.244.204.0/26"})
	c.startPeered(t, 1, meshOff, priorityDoc, peerDoc("edge", "10.99.0.1", 65001, "filters: [prio]"))
	gw := netip.MustParseAddr("10.99.0.1")
	high, plain := netip.MustParsePrefix("10.244.203.0/26"), netip.MustParsePrefix("10.244.204.0/26")
	c.waitIPRoute(t, c.n1, high, bgpRoute(high, gw)+" metric 300")
	c.waitIPRoute(t, c.n1, plain, bgpRoute(plain, gw))

	// The refused blocks first: by the time gobgpd has the last one, it
	// would have them too.
	quiet := c.lab.ClaimBlock("n1", netip.MustParseAddr("10.244.3.0"))
	byPath := c.lab.ClaimBlock("n1", netip.MustParseAddr("10.244.5.0"))
	open := c.lab.ClaimBlock("n1", netip.MustParseAddr("10.244.1.0"))
	rib := c.edgeLearns(t, cli, open)
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
