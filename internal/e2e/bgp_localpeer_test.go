package e2e_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/testutil"
)

// localPeerDoc: the node peers from 169.254.0.179 with the workloads
// labelled role=bgp-peer, AS 65401.
const localPeerDoc = `apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: false
  localWorkloadPeeringIPV4: 169.254.0.179
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: child
spec:
  localWorkloadSelector: role == 'bgp-peer'
  asNumber: 65401
`

// podBird is BIRD 1.6 in a pod: AS 65401, announcing 10.123.0.0/26 to
// the node at the local workload peering address.
func podBird(t *testing.T, p *labtest.CNIPod) *bird {
	return startBird(t, p.NS, fmt.Sprintf(`router id %s;
protocol device { scan time 2; }
protocol static { route 10.123.0.0/26 blackhole; }
protocol bgp node {
  local as 65401; neighbor 169.254.0.179 as 64512; multihop;
  import all; export all; connect retry time 1; connect delay time 1; error wait time 1,5;
}
`, p.IP))
}

// TestPrivilegedBGPLocalWorkload: BGPPeer localWorkloadSelector. Two pods
// made through the CNI plugin on n1 run BIRD; only the one whose
// endpoint is labelled role=bgp-peer is selected. n1 puts 169.254.0.179
// on that pod's host veth only, peers with the pod's address over it
// (node status: type local workload) and installs the route the pod
// announces via the pod, which carries traffic to it. Without the label
// the session and the address go away.
func TestPrivilegedBGPLocalWorkload(t *testing.T) {
	c := newLab1(t)
	c.calicoctl(t, noEncapPool+"---\n"+localPeerDoc, "apply", "-f", "-")
	c.startBGP(t)
	peer, other := c.n1.AddCNIPod("peer"), c.n1.AddCNIPod("other")
	pb, ob := podBird(t, peer), podBird(t, other)
	c.calicoctl(t, "", "label", "workloadendpoint", peer.WEPName, "role=bgp-peer", "--namespace", "default")

	got := c.waitEstablished(t, c.n1, 1)
	if want := peer.IP.String() + " local workload"; len(got) != 1 || got[0] != want {
		t.Errorf("n1's sessions %q, want %q", got, want)
	}
	c.eventually(t, "the pod's BIRD is Established", func() error {
		out, err := pb.birdc("show", "protocols", "node")
		if err != nil || !strings.Contains(out, "Established") {
			return fmt.Errorf("%v %s", err, out)
		}
		return nil
	})
	child := netip.MustParsePrefix("10.123.0.0/26")
	c.waitIPRoute(t, c.n1, child, fmt.Sprintf("%s via %s dev %s proto bird", child, peer.IP, peer.HostIf))
	if a := hostAddrs(t, c.n1, peer.HostIf); !strings.Contains(a, "169.254.0.179/32") {
		t.Errorf("peer's host veth lacks the peering address: %s", a)
	}
	if a := hostAddrs(t, c.n1, other.HostIf); strings.Contains(a, "169.254.0.179") {
		t.Errorf("unselected pod's host veth has the peering address: %s", a)
	}
	if out, _ := ob.birdc("show", "protocols", "node"); strings.Contains(out, "Established") {
		t.Errorf("unselected pod's session is up:\n%s", out)
	}
	// Traffic to the announced prefix goes to the pod.
	testutil.RunIn(t, peer.NS, "ip", "addr", "add", "10.123.0.1/32", "dev", "lo")
	if err := labtest.Ping(c.n1.NS, netip.MustParseAddr("10.123.0.1"), 2); err != nil {
		t.Errorf("ping from n1 to 10.123.0.1 behind the pod: %v", err)
	}
	status := c.nodeStatus(t, c.n1)
	if !strings.Contains(status, "| "+peer.IP.String()) || !strings.Contains(status, "local workload") {
		t.Errorf("node status lacks the local workload session:\n%s", status)
	}

	c.calicoctl(t, "", "label", "workloadendpoint", peer.WEPName, "role-", "--namespace", "default")
	c.waitIPRoute(t, c.n1, child, "")
	c.eventually(t, "the peering address leaves the veth", func() error {
		if a := hostAddrs(t, c.n1, peer.HostIf); strings.Contains(a, "169.254.0.179") {
			return fmt.Errorf("still there: %s", a)
		}
		return nil
	})
}

// hostAddrs is `ip addr show dev name` in n's namespace.
func hostAddrs(t *testing.T, n *labtest.Node, name string) string {
	return testutil.RunIn(t, n.NS, "ip", "-o", "addr", "show", "dev", name)
}
