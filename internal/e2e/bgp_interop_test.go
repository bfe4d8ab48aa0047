package e2e_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/testutil"
)

// startGobgpd runs Debian's gobgpd (a BGP implementation we did not
// write) in ns with a TOML configuration; its API listens on the
// namespace's own loopback only. It is stopped at test end.
func startGobgpd(t testing.TB, ns, conf string) func(args ...string) (string, error) {
	t.Helper()
	testutil.RequireCmd(t, "gobgpd", "gobgp")
	dir := t.TempDir()
	path := filepath.Join(dir, "gobgpd.toml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	log := startInNS(t, ns, "gobgpd", "gobgpd", "-f", path, "-t", "toml", "--api-hosts", "127.0.0.1:50051", "--pprof-disable")
	cli := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a := append([]string{"netns", "exec", filepath.Base(ns), "gobgp", "-p", "50051"}, args...)
		out, err := exec.CommandContext(ctx, "ip", a...).CombinedOutput()
		return string(out), err
	}
	if err := testutil.Poll(10*time.Second, func() error { _, err := cli("global"); return err }); err != nil {
		t.Fatalf("gobgpd did not start: %v\n%s", err, log.String())
	}
	return cli
}

// TestPrivilegedBGPGobgpdReflector: gobgpd on the lab router reflects
// routes between two calico-node processes (mesh off, a global BGPPeer);
// it learns both blocks, each node learns the other's with the other node
// as next hop, and the pods reach each other.
func TestPrivilegedBGPGobgpdReflector(t *testing.T) {
	c := newLab(t)
	c.sameSubnet(2)
	var conf strings.Builder
	conf.WriteString(`[global.config]
  as = 64512
  router-id = "10.99.0.1"
  local-address-list = ["10.99.0.1"]
`)
	for _, n := range c.nodes {
		fmt.Fprintf(&conf, `[[neighbors]]
  [neighbors.config]
    neighbor-address = "%s"
    peer-as = 64512
  [neighbors.timers.config]
    connect-retry = 1
  [neighbors.route-reflector.config]
    route-reflector-client = true
    route-reflector-cluster-id = "10.99.0.1"
`, n.IP.Addr())
	}
	cli := startGobgpd(t, c.lab.Router, conf.String())
	c.calicoctl(t, noEncapPool+"---\n"+meshOff+"---\n"+peerDoc("rr", "10.99.0.1", 64512), "apply", "-f", "-")
	c.startBGP(t)
	for _, n := range c.nodes {
		c.waitEstablished(t, n, 1)
	}
	pods := c.addPods(t, "a", "bgp", c.nodes...)
	c.eventually(t, "gobgpd learns both blocks", func() error {
		out, err := cli("global", "rib", "-a", "ipv4")
		if err != nil {
			return err
		}
		for _, p := range pods {
			if !strings.Contains(out, block(p).String()) || !strings.Contains(out, p.Node.IP.Addr().String()) {
				return fmt.Errorf("rib lacks %s via %s:\n%s", block(p), p.Node.IP.Addr(), out)
			}
		}
		return nil
	})
	c.waitIPRoute(t, c.n1, block(pods[1]), bgpRoute(block(pods[1]), c.n2.IP.Addr()))
	c.waitIPRoute(t, c.n2, block(pods[0]), bgpRoute(block(pods[0]), c.n1.IP.Addr()))
	pingMatrix(t, pods)
}

// TestPrivilegedBGPFRRReflector is the gobgpd test with FRR's bgpd (run
// alone: no zebra, no kernel routes) as the route reflector.
func TestPrivilegedBGPFRRReflector(t *testing.T) {
	const bgpd = "/usr/lib/frr/bgpd"
	if _, err := os.Stat(bgpd); err != nil {
		t.Skipf("test needs FRR's %s: %v", bgpd, err)
	}
	c := newLab(t)
	c.sameSubnet(2)
	dir := t.TempDir()
	var conf strings.Builder
	conf.WriteString("frr defaults traditional\nhostname tor\n!\nrouter bgp 64512\n bgp router-id 10.99.0.1\n no bgp ebgp-requires-policy\n")
	for _, n := range c.nodes {
		fmt.Fprintf(&conf, " neighbor %s remote-as 64512\n neighbor %s timers connect 1\n", n.IP.Addr(), n.IP.Addr())
	}
	conf.WriteString(" address-family ipv4 unicast\n")
	for _, n := range c.nodes {
		fmt.Fprintf(&conf, "  neighbor %s route-reflector-client\n", n.IP.Addr())
	}
	conf.WriteString(" exit-address-family\n!\n")
	path := filepath.Join(dir, "bgpd.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	startInNS(t, c.lab.Router, "bgpd", bgpd, "-f", path, "-i", filepath.Join(dir, "bgpd.pid"),
		"--vty_socket", dir, "-Z", "-S", "-n", "--log", "stdout")
	c.calicoctl(t, noEncapPool+"---\n"+meshOff+"---\n"+peerDoc("rr", "10.99.0.1", 64512), "apply", "-f", "-")
	c.startBGP(t)
	for _, n := range c.nodes {
		c.waitEstablished(t, n, 1)
	}
	pods := c.addPods(t, "a", "bgp", c.nodes...)
	c.waitIPRoute(t, c.n1, block(pods[1]), bgpRoute(block(pods[1]), c.n2.IP.Addr()))
	c.waitIPRoute(t, c.n2, block(pods[0]), bgpRoute(block(pods[0]), c.n1.IP.Addr()))
	pingMatrix(t, pods)
}
