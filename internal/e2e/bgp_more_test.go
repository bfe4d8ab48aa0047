package e2e_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/testutil"
)

const meshOff = `apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: false
`

// sameSubnet makes n1..n<k> on 10.99.0.0/24.
func (c *cluster) sameSubnet(k int) {
	c.nodes = nil
	for i := 1; i <= k; i++ {
		c.nodes = append(c.nodes, c.lab.AddNode(fmt.Sprintf("n%d", i), 99, 10+i))
	}
	c.n1, c.n2 = c.nodes[0], c.nodes[1]
	if k > 2 {
		c.n3 = c.nodes[2]
	}
}

// TestPrivilegedBGPRouteReflector: n1 is a route reflector (a cluster ID
// and a label), the mesh is off, every other node peers with it through a
// peerSelector BGPPeer; routes between the clients are reflected.
func TestPrivilegedBGPRouteReflector(t *testing.T) {
	c := newLab(t)
	c.sameSubnet(3)
	c.calicoctl(t, noEncapPool+"---\n"+meshOff+`---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: to-rr
spec:
  peerSelector: has(route-reflector)
`, "apply", "-f", "-")
	c.startBGP(t)
	c.lab.UpdateNode("n1", func(n *api.Node) {
		n.Labels = map[string]string{"route-reflector": "true"}
		n.Spec.BGP.RouteReflectorClusterID = "224.0.0.1"
	})
	if got := c.waitEstablished(t, c.n1, 2); strings.Join(got, ",") != "10.99.0.12 global,10.99.0.13 global" {
		t.Errorf("reflector peers %q", got)
	}
	for _, n := range c.nodes[1:] {
		if got := c.waitEstablished(t, n, 1); strings.Join(got, ",") != "10.99.0.11 global" {
			t.Errorf("%s peers %q", n.Name, got)
		}
	}
	pods := c.addPods(t, "a", "bgp", c.nodes...)
	// n2 learns n3's block from the reflector with n3 as next hop.
	c.waitIPRoute(t, c.n2, block(pods[2]), bgpRoute(block(pods[2]), c.n3.IP.Addr()))
	c.waitIPRoute(t, c.n3, block(pods[1]), bgpRoute(block(pods[1]), c.n2.IP.Addr()))
	pingMatrix(t, pods)
}

// TestPrivilegedBGPExport: an address n1 holds in n2's block is
// advertised as a /32 and withdrawn when released; blocks of a pool with
// disableBGPExport are not advertised.
func TestPrivilegedBGPExport(t *testing.T) {
	c := newLab(t)
	c.sameSubnet(2)
	c.startPeered(t, 1, `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: quiet
spec:
  cidr: 10.245.0.0/16
  blockSize: 26
  ipipMode: Never
  vxlanMode: Never
  disableBGPExport: true
`)
	b2 := c.lab.ClaimBlock("n2", netip.MustParseAddr("10.244.2.0"))
	c.waitIPRoute(t, c.n1, b2, bgpRoute(b2, c.n2.IP.Addr()))

	borrowed := netip.MustParseAddr("10.244.2.7")
	c.lab.Assign("n2", borrowed, "h-borrowed", map[string]string{"node": "n1"})
	host := netip.PrefixFrom(borrowed, 32)
	c.waitIPRoute(t, c.n2, host, bgpRoute(host, c.n1.IP.Addr()))
	c.lab.Release("n2", borrowed, "h-borrowed")
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.nodes {
				s, err := c.procs[n.Name].Status()
				t.Logf("%s: %+v %v", n.Name, s, err)
			}
		}
	})
	c.waitIPRoute(t, c.n2, host, "")

	quiet := c.lab.ClaimBlock("n1", netip.MustParseAddr("10.245.1.0"))
	b1 := c.lab.ClaimBlock("n1", netip.MustParseAddr("10.244.1.0"))
	c.waitIPRoute(t, c.n2, b1, bgpRoute(b1, c.n1.IP.Addr()))
	// The export pool's block arrived after the quiet one: the quiet one
	// would have been announced by now.
	if rs := ipRoutes(t, c.n2, quiet); len(rs) != 0 {
		t.Errorf("block of a disableBGPExport pool reached n2: %q", rs)
	}
}

// TestPrivilegedBGPPassword: TCP MD5 with a BIRD ToR. n1's BGPPeer points
// at the right key of a secret in the local secret directory, n2's at a
// wrong one: only n1's session comes up, and n2 says why it is not.
func TestPrivilegedBGPPassword(t *testing.T) {
	c := newLab(t)
	c.sameSubnet(2)
	gw := map[string]string{"n1": "10.99.0.1", "n2": "10.99.0.1"}
	tor := startBird(t, c.lab.Router, torConf("10.99.0.1", c.nodes, gw, ` password "s3cret";`))
	secrets := t.TempDir()
	if err := os.MkdirAll(filepath.Join(secrets, "bgp-pw"), 0o700); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"right": "s3cret\n", "wrong": "nope"} {
		if err := os.WriteFile(filepath.Join(secrets, "bgp-pw", k), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	doc := func(node, key string) string {
		return peerDoc("tor-"+node, "10.99.0.1", 64512, "node: "+node, secretPassword("bgp-pw", key))
	}
	c.calicoctl(t, strings.Join([]string{noEncapPool, meshOff, doc("n1", "right"), doc("n2", "wrong")}, "---\n"), "apply", "-f", "-")
	c.startBGP(t, "CALICO_BGP_SECRET_DIR="+secrets)
	c.waitEstablished(t, c.n1, 1)
	// n2 stays down; BIRD reports the bad key.
	time.Sleep(0) // (the check below polls)
	c.eventually(t, "ToR sees n1 only", func() error {
		out, err := tor.birdc("show", "protocols")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "n1       BGP      master   up") || strings.Contains(out, "n2       BGP      master   up") {
			return fmt.Errorf("%s", out)
		}
		return nil
	})
	s, err := c.procs["n2"].Status()
	if err != nil || len(s.BGPPeers) != 1 || s.BGPPeers[0].State == "Established" {
		t.Errorf("n2 with the wrong key: %+v %v", s.BGPPeers, err)
	}
	// Fix n2's secret reference: its session comes up.
	c.calicoctl(t, doc("n2", "right"), "apply", "-f", "-")
	c.waitEstablished(t, c.n2, 1)
	// A missing secret keeps the peer down with a reason.
	c.calicoctl(t, doc("n2", "absent"), "apply", "-f", "-")
	c.eventually(t, "n2 kept down", func() error {
		s, err := c.procs["n2"].Status()
		if err != nil {
			return err
		}
		if len(s.BGPPeers) != 1 || !strings.Contains(s.BGPPeers[0].Info, "does not exist") || s.BGPPeers[0].State == "Established" {
			return fmt.Errorf("%+v", s.BGPPeers)
		}
		return nil
	})
	if out := c.nodeStatus(t, c.n2); !strings.Contains(out, "| down  |") || !strings.Contains(out, "is kept down") {
		t.Errorf("node status of n2:\n%s", out)
	}
}

// TestPrivilegedBGPRestart restarts n2's calico-node while a pod on n1
// pings a pod on n2 every 10 ms: graceful restart on both sides and the
// kept kernel routes lose no packet.
func TestPrivilegedBGPRestart(t *testing.T) {
	c := newLab(t)
	c.sameSubnet(2)
	c.startPeered(t, 1)
	pods := c.addPods(t, "a", "bgp", c.nodes...)
	c.waitIPRoute(t, c.n1, block(pods[1]), bgpRoute(block(pods[1]), c.n2.IP.Addr()))
	c.waitIPRoute(t, c.n2, block(pods[0]), bgpRoute(block(pods[0]), c.n1.IP.Addr()))
	ping(t, pods[0], pods[1].IP, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Route changes on both nodes, for the failure message.
	var mon labtest.SyncBuffer
	for _, n := range c.nodes {
		m := exec.CommandContext(ctx, "ip", "netns", "exec", filepath.Base(n.NS), "ip", "-ts", "monitor", "route")
		m.Stdout = &mon
		if err := m.Start(); err == nil {
			defer func() { _ = m.Process.Kill(); _ = m.Wait() }()
		}
	}
	const count = 800 // 8 s at 10 ms
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", filepath.Base(pods[0].NS),
		"ping", "-n", "-q", "-i", "0.01", "-c", fmt.Sprint(count), "-W", "1", pods[1].IP.String())
	var out labtest.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // let the ping run before the restart
	if _, err := c.procs["n2"].Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	p := c.n2.StartProcess(c.bin, c.n2.Env("CALICO_NETWORKING_BACKEND=bird"))
	c.procs["n2"] = p
	if _, err := p.WaitReady(readyTimeout); err != nil {
		t.Fatal(err)
	}
	c.waitEstablished(t, c.n2, 1)
	err := cmd.Wait()
	if err != nil || !strings.Contains(out.String(), fmt.Sprintf("%d packets transmitted, %d received", count, count)) {
		t.Errorf("ping across the restart: %v\n%s\nroute changes:\n%s", err, out.String(), mon.String())
	}
	// After the restart the routes are still (again) BGP's.
	c.waitIPRoute(t, c.n2, block(pods[0]), bgpRoute(block(pods[0]), c.n1.IP.Addr()))
	c.waitIPRoute(t, c.n1, block(pods[1]), bgpRoute(block(pods[1]), c.n2.IP.Addr()))
	_ = testutil.RunIn
}
