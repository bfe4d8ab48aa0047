package e2e_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/testutil"
)

// filterOpsDoc matches on communities and AS path prefixes on import, and
// accepts one block with operations (add a community, prepend the AS
// path) and rejects another on export. The IPv6 lists do not touch the
// IPv4 session.
const filterOpsDoc = `apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata:
  name: ops
spec:
  importV4:
  - {communities: {values: ["65001:666"]}, action: Reject}
  - {asPathPrefix: [65001, 65002], action: Reject}
  - {cidr: 10.244.0.0/16, matchOperator: In, action: Accept}
  importV6:
  - {action: Reject}
  exportV4:
  - cidr: 10.244.1.0/26
    matchOperator: Equal
    action: Accept
    operations:
    - addCommunity: {value: "64512:100"}
    - prependASPath: {prefix: [64512, 64512]}
  - {cidr: 10.244.3.0/26, matchOperator: Equal, action: Reject}
  exportV6:
  - {action: Reject}
`

// TestPrivilegedBGPFilterOperations: n1 peers over eBGP with gobgpd (AS
// 65001), which announces three routes. The one carrying community
// 65001:666 and the one whose AS path starts 65001 65002 are rejected on
// import, the third is in n1's kernel. gobgpd receives n1's first block
// with the added community and the prepended path, and never the second.
func TestPrivilegedBGPFilterOperations(t *testing.T) {
	c := newLab1(t)
	cli := c.startEdge(t,
		[]string{"10.244.201.0/26", "community", "65001:666"},
		[]string{"10.244.202.0/26", "aspath", "65002"},
		[]string{"10.244.203.0/26"})
	c.startPeered(t, 1, meshOff, filterOpsDoc, peerDoc("edge", "10.99.0.1", 65001, "filters: [ops]"))
	gw := netip.MustParseAddr("10.99.0.1")
	kept := netip.MustParsePrefix("10.244.203.0/26")
	c.waitIPRoute(t, c.n1, kept, bgpRoute(kept, gw))
	for _, p := range []string{"10.244.201.0/26", "10.244.202.0/26"} {
		if rs := ipRoutes(t, c.n1, netip.MustParsePrefix(p)); len(rs) != 0 {
			t.Errorf("route rejected on import is in n1's kernel: %q", rs)
		}
	}
	s, err := c.procs["n1"].Status()
	if err != nil || len(s.BGPPeers) != 1 || s.BGPPeers[0].Received != 3 {
		t.Errorf("n1's peer (want 3 received): %+v %v", s.BGPPeers, err)
	}

	quiet := c.lab.ClaimBlock("n1", netip.MustParseAddr("10.244.3.0"))
	open := c.lab.ClaimBlock("n1", netip.MustParseAddr("10.244.1.0"))
	rib := c.edgeLearns(t, cli, open)
	var line string
	for _, l := range strings.Split(rib, "\n") {
		if strings.Contains(l, open.String()) {
			line = l
		}
	}
	if !strings.Contains(line, "64512 64512 64512") || !strings.Contains(line, "64512:100") {
		t.Errorf("exported block lacks the prepended path or the community: %q", line)
	}
	if strings.Contains(rib, quiet.String()) {
		t.Errorf("block rejected on export reached gobgpd:\n%s", rib)
	}
}

// TestPrivilegedBGPExternalRoutes: routes a BIRD peer announces outside
// every IP pool are installed proto bird, as upstream's kernel filter
// (it ends with accept) does; a default route, which covers n1's own
// address, is not put over the host's default route. Passed on to an
// eBGP peer (a second BIRD on the external host) is only the learned
// route inside the pool, as upstream's export filter ends with reject.
func TestPrivilegedBGPExternalRoutes(t *testing.T) {
	c := newLab1(t)
	startBird(t, c.lab.Router, birdN1("10.99.0.1", 64512, "direct; next hop self", "import all; export all; graceful restart",
		"192.0.2.0/24", "198.51.100.0/25", "0.0.0.0/0", "10.244.220.0/26"))
	far := startBird(t, c.lab.AddExternal(), birdN1("203.0.113.10", 65001, "multihop", "import all; export none"))
	c.startPeered(t, 2, meshOff, peerDoc("tor", "10.99.0.1", 64512), peerDoc("far", "203.0.113.10", 65001))
	gw := netip.MustParseAddr("10.99.0.1")
	for _, p := range []string{"192.0.2.0/24", "198.51.100.0/25"} {
		dst := netip.MustParsePrefix(p)
		c.waitIPRoute(t, c.n1, dst, bgpRoute(dst, gw))
	}
	c.eventually(t, "far BIRD learns the pool route", func() error {
		out, err := far.birdc("show", "route", "10.244.220.0/26")
		if err != nil || !strings.Contains(out, "10.244.220.0/26") {
			return fmt.Errorf("%v %s", err, out)
		}
		return nil
	})
	if out, _ := far.birdc("show", "route"); strings.Contains(out, "192.0.2.0") || strings.Contains(out, "198.51.100.0") || strings.Contains(out, "0.0.0.0/0") {
		t.Errorf("routes outside every pool passed on to an eBGP peer:\n%s", out)
	}
	def := testutil.RunIn(t, c.n1.NS, "ip", "-4", "route", "show", "default")
	if strings.Contains(def, "proto bird") || !strings.Contains(def, "default via 10.99.0.1") {
		t.Errorf("n1's default route: %q", def)
	}
}
