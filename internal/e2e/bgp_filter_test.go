package e2e_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// bgpFilterDoc is a BGPFilter that rejects one imported and one exported
// /26 (rules of BGPFilterSpec: cidr, matchOperator, action).
func bgpFilterDoc(importReject, exportReject string) string {
	doc := `apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata:
  name: tor-rules
spec:
  exportV4:
  - {cidr: %s, matchOperator: Equal, action: Reject}
`
	doc = fmt.Sprintf(doc, exportReject)
	if importReject != "" {
		doc += fmt.Sprintf("  importV4:\n  - {cidr: %s, matchOperator: Equal, action: Reject}\n  - {cidr: 10.244.0.0/16, matchOperator: In, action: Accept}\n", importReject)
	}
	return doc
}

// TestPrivilegedBGPFilter: n1 peers with a BIRD ToR through a BGPPeer
// naming a BGPFilter. The import rule keeps one of the ToR's two routes
// out of n1's kernel, the export rule keeps one of n1's two blocks out of
// the ToR's table; dropping the import rule lets the route in without
// the session going down.
func TestPrivilegedBGPFilter(t *testing.T) {
	c := newLab1(t)
	tor := startBird(t, c.lab.Router, birdN1("10.99.0.1", 64512, "direct; next hop self", "import all; export all; graceful restart",
		"10.244.200.0/26", "10.244.201.0/26"))
	kept, dropped := netip.MustParsePrefix("10.244.200.0/26"), netip.MustParsePrefix("10.244.201.0/26")
	c.startPeered(t, 1, meshOff, bgpFilterDoc(dropped.String(), "10.244.3.0/26"), peerDoc("tor", "10.99.0.1", 64512, "filters: [tor-rules]"))

	// Import: the accepted route arrives; the rejected one came in the
	// same UPDATE stream and is not there.
	c.waitIPRoute(t, c.n1, kept, bgpRoute(kept, netip.MustParseAddr("10.99.0.1")))
	if rs := ipRoutes(t, c.n1, dropped); len(rs) != 0 {
		t.Errorf("route rejected by the import rule is in n1's kernel: %q", rs)
	}
	// Export: the rejected block was claimed first, the allowed one after.
	quiet := c.lab.ClaimBlock("n1", netip.MustParseAddr("10.244.3.0"))
	open := c.lab.ClaimBlock("n1", netip.MustParseAddr("10.244.1.0"))
	c.eventually(t, "ToR learns "+open.String(), func() error {
		out, err := tor.birdc("show", "route", open.String())
		if err != nil || !strings.Contains(out, open.String()) {
			return fmt.Errorf("%v %s", err, out)
		}
		return nil
	})
	if out, _ := tor.birdc("show", "route", quiet.String()); strings.Contains(out, quiet.String()) {
		t.Errorf("block rejected by the export rule reached the ToR:\n%s", out)
	}
	_ = quiet

	// Without the import rule the route comes in; the session stays up.
	c.calicoctl(t, bgpFilterDoc("", quiet.String()), "apply", "-f", "-")
	c.waitIPRoute(t, c.n1, dropped, bgpRoute(dropped, netip.MustParseAddr("10.99.0.1")))
	s, err := c.procs["n1"].Status()
	if err != nil || len(s.BGPPeers) != 1 || s.BGPPeers[0].Flaps != 0 || s.BGPPeers[0].State != "Established" {
		t.Errorf("after the filter change: %+v %v", s.BGPPeers, err)
	}
}
