package e2e_test

import (
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/testutil"
)

// The lab fixture of the BGP tests (bgp_*_test.go): node n1 alone and
// its peers on the lab router or the external host (BIRD 1.6, gobgpd,
// FRR's bgpd), the documents they apply, and the dual-stack pair of the
// IPv6 tests. Each test keeps its own assertions.

// newLab1 is a lab with one node, n1 (10.99.0.11/24, AS 64512), for the
// tests of n1's peerings.
func newLab1(t testing.TB) *cluster {
	c := newLab(t)
	c.n1 = c.lab.AddNode("n1", 99, 11)
	c.nodes = []*labtest.Node{c.n1}
	return c
}

// startPeered applies noEncapPool and docs, starts calico-node on each
// node and waits until n1 has sessions sessions established.
func (c *cluster) startPeered(t testing.TB, sessions int, docs ...string) {
	t.Helper()
	c.calicoctl(t, strings.Join(append([]string{noEncapPool}, docs...), "---\n"), "apply", "-f", "-")
	c.startBGP(t)
	c.waitEstablished(t, c.n1, sessions)
}

// peerDoc is a global BGPPeer named name to ip in AS as; each of spec is
// one more line (or block, indented by two more spaces) under spec.
func peerDoc(name, ip string, as int, spec ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: %s\nspec:\n  peerIP: %s\n  asNumber: %d\n", name, ip, as)
	for _, l := range spec {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	return b.String()
}

// secretPassword is the spec line of a BGPPeer whose password is key of
// the secret name (in CALICO_BGP_SECRET_DIR).
func secretPassword(name, key string) string {
	return fmt.Sprintf("password:\n    secretKeyRef: {name: %s, key: %s}", name, key)
}

// birdN1 is a BIRD 1.6 configuration with one session ("protocol bgp
// n1") to n1 (10.99.0.11, AS 64512) from local, which is also the router
// id, in AS as. how is the kind of session ("direct", "multihop", ...),
// policy its import and export clauses; static are blackhole routes it
// announces. It retries every second.
func birdN1(local string, as int, how, policy string, static ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "router id %s;\nprotocol device { scan time 2; }\n", local)
	if len(static) > 0 {
		b.WriteString("protocol static ext {")
		for _, r := range static {
			fmt.Fprintf(&b, " route %s blackhole;", r)
		}
		b.WriteString(" }\n")
	}
	fmt.Fprintf(&b, "protocol bgp n1 {\n  local %s as %d; neighbor 10.99.0.11 as 64512; %s;\n", local, as, how)
	fmt.Fprintf(&b, "  %s; connect retry time 1; connect delay time 1; error wait time 1,5;\n}\n", policy)
	return b.String()
}

// gobgpCLI runs the gobgp client against one gobgpd.
type gobgpCLI func(args ...string) (string, error)

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

// startEdge runs gobgpdEdge on the lab router announcing routes with the
// router as next hop: each a prefix, then gobgp path attributes (e.g.
// "community", "65001:666").
func (c *cluster) startEdge(t testing.TB, routes ...[]string) gobgpCLI {
	t.Helper()
	cli := startGobgpd(t, c.lab.Router, gobgpdEdge)
	for _, r := range routes {
		a := append([]string{"global", "rib", "add", "-a", "ipv4", r[0], "nexthop", "10.99.0.1"}, r[1:]...)
		if out, err := cli(a...); err != nil {
			t.Fatalf("gobgp %v: %v %s", a, err, out)
		}
	}
	return cli
}

// edgeLearns waits until gobgpd has p from n1 and returns its table of
// what n1 sent (adj-in).
func (c *cluster) edgeLearns(t testing.TB, cli gobgpCLI, p netip.Prefix) string {
	t.Helper()
	var rib string
	c.eventually(t, "gobgpd learns "+p.String(), func() error {
		out, err := cli("neighbor", "10.99.0.11", "adj-in", "-a", "ipv4")
		rib = out
		if err != nil || !strings.Contains(out, p.String()) {
			return fmt.Errorf("%v %s", err, out)
		}
		return nil
	})
	return rib
}

// startInNS runs argv in namespace ns until the test ends (SIGTERM, a
// kill after 5 s); when the test failed, the end of its output (stdout
// and stderr) is logged as name's.
func startInNS(t testing.TB, ns, name string, argv ...string) *labtest.SyncBuffer {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", filepath.Base(ns)}, argv...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	log := &labtest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, tail(log.String(), 30))
		}
	})
	return log
}

// ipv6Pair is the lab of the IPv6 tests: n1 and n2 on 10.99.0.0/24 with
// IPv6 addresses on eth0 too, returned by node name (calico-node's IP6).
func ipv6Pair(t testing.TB) (*cluster, map[string]string) {
	c := newLab(t)
	c.sameSubnet(2)
	v6 := map[string]string{"n1": "fd99::11/64", "n2": "fd99::12/64"}
	for _, n := range c.nodes {
		testutil.RunIn(t, n.NS, "ip", "-6", "addr", "add", v6[n.Name], "dev", "eth0", "nodad")
	}
	return c, v6
}

// startBGPv6 is startBGP with each node's IPv6 address (IP6 from v6).
func (c *cluster) startBGPv6(t testing.TB, v6 map[string]string) {
	t.Helper()
	for _, n := range c.nodes {
		c.procs[n.Name] = n.StartProcess(c.bin, n.Env("CALICO_NETWORKING_BACKEND=bird", "IP6="+v6[n.Name]))
	}
	for _, n := range c.nodes {
		if _, err := c.procs[n.Name].WaitReady(readyTimeout); err != nil {
			t.Fatalf("calico-node %s: %v", n.Name, err)
		}
	}
}
