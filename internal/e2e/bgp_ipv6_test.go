package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/kv"
	"github.com/onecalico/calico/internal/testutil"
)

const v6Pool = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: bgp6
spec:
  cidr: fd00:244::/112
  blockSize: 122
  ipipMode: Never
  vxlanMode: Never
`

// claimBlock6 writes an empty IPv6 block affine to host, with its
// confirmed affinity, in one transaction (as IPAM's claim does).
func claimBlock6(t *testing.T, l *labtest.Lab, host string, cidr netip.Prefix) {
	t.Helper()
	aff := api.HostAffinity(host)
	n := 1 << (128 - cidr.Bits())
	b := api.Block{CIDR: cidr.String(), Affinity: &aff, Allocations: make([]*int, n), Attributes: []api.AllocationAttribute{},
		SequenceNumberForAllocation: map[string]uint64{}, AffinityClaimTime: time.Now().UTC().Format(time.RFC3339)}
	for i := range n {
		b.Unallocated = append(b.Unallocated, i)
	}
	v, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.Store.Commit(ctx, []kv.Write{
		{Key: api.BlockKey(cidr), Value: v, Rev: 0},
		{Key: api.AffinityKey(host, cidr), Value: []byte(`{"state":"confirmed","deleted":false}`), Rev: kv.Unconditional},
	}); err != nil {
		t.Fatalf("claim %s for %s: %v", cidr, host, err)
	}
}

// ip6Route is `ip -6 route show <dst>` in n's namespace, trimmed.
func ip6Route(t *testing.T, n *labtest.Node, dst netip.Prefix) string {
	return strings.TrimSpace(testutil.RunIn(t, n.NS, "ip", "-6", "route", "show", dst.String()))
}

// TestPrivilegedBGPIPv6: two nodes with IPv6 addresses (Node
// bgp.ipv6Address from IP6) and an IPv6 pool without encapsulation. Each
// pair of nodes has an IPv4 and an IPv6 mesh session; the IPv6 blocks go
// over the IPv6 one and are installed proto bird via the other node's
// IPv6 address. n1 also peers with BIRD 1.6's bird6 on the router: bird6
// learns n1's block, and n1 installs the block bird6 announces.
// `calicoctl node status` prints the IPv6 table.
func TestPrivilegedBGPIPv6(t *testing.T) {
	c, v6 := ipv6Pair(t)
	testutil.RunIn(t, c.lab.Router, "ip", "-6", "addr", "add", "fd99::1/64", "dev", "eth99", "nodad")
	tor := startBirdBin(t, c.lab.Router, `router id 10.99.0.1;
protocol device { scan time 2; }
protocol static s6 { route fd00:244::c0/122 unreachable; }
protocol bgp n1 {
  local fd99::1 as 64512; neighbor fd99::11 as 64512; direct; next hop self;
  import all; export all; graceful restart; connect retry time 1; connect delay time 1; error wait time 1,5;
}
`, "bird6", "birdc6")
	c.calicoctl(t, strings.Join([]string{noEncapPool, v6Pool, peerDoc("tor6", "fd99::1", 64512, "node: n1")}, "---\n"), "apply", "-f", "-")
	c.startBGPv6(t, v6)
	got := c.waitEstablished(t, c.n1, 3)
	slices.Sort(got)
	if want := "10.99.0.12 node-to-node mesh,fd99::1 node specific,fd99::12 node-to-node mesh"; strings.Join(got, ",") != want {
		t.Errorf("n1's sessions %q, want %q", got, want)
	}
	c.waitEstablished(t, c.n2, 2)

	b1, b2 := netip.MustParsePrefix("fd00:244::/122"), netip.MustParsePrefix("fd00:244::40/122")
	claimBlock6(t, c.lab, "n1", b1)
	claimBlock6(t, c.lab, "n2", b2)
	wantRoute := func(n *labtest.Node, dst netip.Prefix, via string) {
		t.Helper()
		want := fmt.Sprintf("%s via %s dev eth0 proto bird metric 1024 pref medium", dst, via)
		c.eventually(t, fmt.Sprintf("ip -6 route %s on %s", dst, n.Name), func() error {
			if got := ip6Route(t, n, dst); got != want {
				return fmt.Errorf("got %q, want %q", got, want)
			}
			return nil
		})
	}
	wantRoute(c.n1, b2, "fd99::12")
	wantRoute(c.n2, b1, "fd99::11")
	wantRoute(c.n1, netip.MustParsePrefix("fd00:244::c0/122"), "fd99::1")
	c.eventually(t, "bird6 learns n1's block", func() error {
		out, err := tor.birdc("show", "route", b1.String())
		if err != nil || !strings.Contains(out, b1.String()) || !strings.Contains(out, "fd99::11") {
			return fmt.Errorf("%v %s", err, out)
		}
		return nil
	})
	out := c.nodeStatus(t, c.n1)
	i := strings.Index(out, "IPv6 BGP status")
	if i < 0 || !strings.Contains(out[i:], "| fd99::12     | node-to-node mesh | up ") || !strings.Contains(out[i:], "| fd99::1      | node specific     | up ") {
		t.Errorf("node status:\n%s", out)
	}
	if j := strings.Index(out, "IPv4 BGP status"); j < 0 || j > i || strings.Contains(out[j:max(i, j)], "fd99::") {
		t.Errorf("IPv6 peers in the IPv4 table:\n%s", out)
	}
}

// dualStackPod adds a pod on n with an IPv4 address from the "bgp" pool
// and an IPv6 one from "bgp6"; it returns the pod's namespace and IPv6
// address.
func dualStackPod(t *testing.T, n *labtest.Node, name string) (string, netip.Addr) {
	t.Helper()
	conf, err := json.Marshal(map[string]any{
		"cniVersion": "1.0.0", "name": labtest.NetworkName, "type": "calico", "etcd_endpoints": n.Lab.Endpoint,
		"nodename": n.Name, "mtu_file": n.MTUFile(), "ipam_lock_file": n.Dir + "/ipam.lock",
		"ipam": map[string]any{"type": "calico-ipam", "assign_ipv4": "true", "assign_ipv6": "true",
			"ipv4_pools": []string{"bgp"}, "ipv6_pools": []string{"bgp6"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ns := testutil.NewNetNS(t)
	out, err := n.CNI(ctx(t), labtest.BinDir(t), "ADD", n.ContainerID(name), ns, conf)
	if err != nil {
		t.Fatalf("CNI ADD %s on %s: %v\n%s", name, n.Name, err, out)
	}
	var res struct {
		IPs []struct{ Address string } `json:"ips"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	for _, ip := range res.IPs {
		if p, err := netip.ParsePrefix(ip.Address); err == nil && p.Addr().Is6() {
			return ns, p.Addr()
		}
	}
	t.Fatalf("no IPv6 address in %s", out)
	return "", netip.Addr{}
}

// TestPrivilegedBGPIPv6Pods: dual-stack pods on two nodes of an IPv6 BGP
// mesh (no encapsulation) ping each other over IPv6; each node routes the
// other's IPv6 block proto bird.
func TestPrivilegedBGPIPv6Pods(t *testing.T) {
	c, v6 := ipv6Pair(t)
	for _, n := range c.nodes {
		testutil.RunIn(t, n.NS, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	}
	c.calicoctl(t, noEncapPool+"---\n"+v6Pool, "apply", "-f", "-")
	c.startBGPv6(t, v6)
	for _, n := range c.nodes {
		c.waitEstablished(t, n, 2)
	}
	ns1, a1 := dualStackPod(t, c.n1, "p1")
	ns2, a2 := dualStackPod(t, c.n2, "p2")
	for _, x := range []struct {
		n   *labtest.Node
		dst netip.Addr
		via string
	}{{c.n1, a2, "fd99::12"}, {c.n2, a1, "fd99::11"}} {
		blk, _ := x.dst.Prefix(122)
		want := fmt.Sprintf("%s via %s dev eth0 proto bird metric 1024 pref medium", blk, x.via)
		c.eventually(t, "ip -6 route "+blk.String()+" on "+x.n.Name, func() error {
			if got := ip6Route(t, x.n, blk); got != want {
				return fmt.Errorf("got %q, want %q", got, want)
			}
			return nil
		})
	}
	for _, x := range []struct {
		ns  string
		dst netip.Addr
	}{{ns1, a2}, {ns2, a1}} {
		c.eventually(t, fmt.Sprintf("ping -6 %s", x.dst), func() error {
			return labtest.Ping(x.ns, x.dst, 1)
		})
	}
}
