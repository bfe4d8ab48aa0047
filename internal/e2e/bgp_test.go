package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/testutil"
)

// BGP tests: real calico-node processes with the bird backend (the
// embedded GoBGP speaker) and, where a peer is needed that we did not
// write, Debian's BIRD 1.6 in a lab namespace.

const noEncapPool = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: bgp
spec:
  cidr: 10.244.0.0/16
  blockSize: 26
  ipipMode: Never
  vxlanMode: Never
  natOutgoing: false
`

// startBGP runs calico-node with the bird backend on each node (plus
// extra env) and waits until each is ready.
func (c *cluster) startBGP(t testing.TB, extra ...string) {
	t.Helper()
	for _, n := range c.nodes {
		// Metrics are off by default (as upstream); the tests scrape them.
		env := append(n.Env("CALICO_NETWORKING_BACKEND=bird", "FELIX_PROMETHEUSMETRICSENABLED=true"), extra...)
		p := n.StartProcess(c.bin, env)
		c.procs[n.Name] = p
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("calico-node %s log:\n%s", n.Name, tail(p.Stderr.String(), 60))
			}
		})
	}
	for _, n := range c.nodes {
		if _, err := c.procs[n.Name].WaitReady(readyTimeout); err != nil {
			t.Fatalf("calico-node %s: %v", n.Name, err)
		}
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	ls := strings.Split(s, "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n")
}

// bgpRoute is the `ip route` line of a BGP-learned no-encap route.
func bgpRoute(dst netip.Prefix, via netip.Addr) string {
	return fmt.Sprintf("%s via %s dev eth0 proto bird", dst, via)
}

// ipRoutes is `ip route` in n's namespace for destinations inside cidr.
func ipRoutes(t testing.TB, n *labtest.Node, cidr netip.Prefix) []string {
	t.Helper()
	out := testutil.RunIn(t, n.NS, "ip", "-4", "route", "show")
	var rs []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(strings.TrimPrefix(l, "blackhole "))
		if len(f) == 0 {
			continue
		}
		l = strings.TrimSpace(l)
		if a, err := netip.ParseAddr(f[0]); err == nil {
			// ip prints host routes without "/32".
			l = strings.Replace(l, f[0], netip.PrefixFrom(a, a.BitLen()).String(), 1)
			f[0] = netip.PrefixFrom(a, a.BitLen()).String()
		}
		if p, err := netip.ParsePrefix(f[0]); err == nil && cidr.Overlaps(p) {
			rs = append(rs, l)
		}
	}
	slices.Sort(rs)
	return rs
}

// waitIPRoute waits until `ip route` on n shows want for dst ("" = none).
func (c *cluster) waitIPRoute(t testing.TB, n *labtest.Node, dst netip.Prefix, want string) {
	t.Helper()
	c.eventually(t, fmt.Sprintf("ip route %s on %s", dst, n.Name), func() error {
		var got []string
		for _, r := range ipRoutes(t, n, dst) {
			if strings.HasPrefix(r, dst.String()+" ") || strings.HasPrefix(r, "blackhole "+dst.String()+" ") {
				got = append(got, r)
			}
		}
		if want == "" && len(got) == 0 || len(got) == 1 && got[0] == want {
			return nil
		}
		return fmt.Errorf("got %q, want %q", got, want)
	})
}

// waitEstablished waits until n's daemon reports want sessions, all
// Established.
func (c *cluster) waitEstablished(t testing.TB, n *labtest.Node, want int) []string {
	t.Helper()
	var peers []string
	c.eventually(t, "BGP sessions on "+n.Name, func() error {
		s, err := c.procs[n.Name].Status()
		if err != nil {
			return err
		}
		peers = peers[:0]
		for _, p := range s.BGPPeers {
			if p.State != "Established" {
				return fmt.Errorf("peer %s is %s (%s); bgp %q", p.Address, p.State, p.Info, s.BGP)
			}
			peers = append(peers, p.Address+" "+string(p.Type))
		}
		if len(peers) != want {
			return fmt.Errorf("%d established peers %q, want %d; bgp %q problems %q", len(peers), peers, want, s.BGP, s.BGPProblems)
		}
		return nil
	})
	return peers
}

// TestPrivilegedBGPMesh is seed 003's cluster with three nodes: a pool
// with no encapsulation, the bird backend, a node-to-node mesh; every node
// gets the others' blocks `proto bird` and every pod reaches every other.
func TestPrivilegedBGPMesh(t *testing.T) {
	c := newLab(t)
	c.n1, c.n2, c.n3 = c.lab.AddNode("n1", 99, 11), c.lab.AddNode("n2", 99, 12), c.lab.AddNode("n3", 99, 13)
	c.nodes = []*labtest.Node{c.n1, c.n2, c.n3}
	c.calicoctl(t, noEncapPool, "apply", "-f", "-")
	c.startBGP(t)
	for _, n := range c.nodes {
		got := c.waitEstablished(t, n, 2)
		for _, p := range got {
			if !strings.HasSuffix(p, "node-to-node mesh") {
				t.Errorf("%s: peer %q is not a mesh peer", n.Name, p)
			}
		}
	}
	pods := c.addPods(t, "a", "bgp", c.nodes...)
	for _, n := range c.nodes {
		for _, p := range pods {
			want := bgpRoute(block(p), p.Node.IP.Addr())
			if p.Node == n {
				want = fmt.Sprintf("blackhole %s proto 80", block(p))
			}
			c.waitIPRoute(t, n, block(p), want)
		}
	}
	pingMatrix(t, pods)

	// One TCP connection per pair (upstream's passive rule).
	out := testutil.RunIn(t, c.n1.NS, "ss", "-tn", "state", "established", "( sport = :179 or dport = :179 )")
	if got := strings.Count(out, ":179"); got != 2 {
		t.Errorf("n1 has %d BGP connections, want 2:\n%s", got, out)
	}

	metrics := scrape(t, c.n1)
	for _, want := range []string{
		`calico_node_bgp_session_established{peer="10.99.0.12",type="node-to-node mesh"} 1`,
		`calico_node_bgp_session_flaps_total{peer="10.99.0.13",type="node-to-node mesh"} 0`,
		`calico_node_bgp_prefixes{direction="received",peer="10.99.0.12",type="node-to-node mesh"} 1`,
		`calico_node_bgp_learned_routes 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	status := c.nodeStatus(t, c.n1)
	for _, want := range []string{
		"Calico process is running.", "IPv4 BGP status",
		"| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |",
		"| 10.99.0.12   | node-to-node mesh | up    |",
		"| 10.99.0.13   | node-to-node mesh | up    |", "Established |",
	} {
		if !strings.Contains(status, want) {
			t.Errorf("node status lacks %q:\n%s", want, status)
		}
	}
}

// scrape fetches n's Prometheus metrics (port 9091 inside its namespace).
func scrape(t testing.TB, n *labtest.Node) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := netns.Do(n.NS, func() error {
				var err error
				conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		},
	}}
	resp, err := c.Get("http://127.0.0.1:9091/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", n.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// nodeStatus runs `calicoctl node status` against n's daemon.
func (c *cluster) nodeStatus(t testing.TB, n *labtest.Node) string {
	t.Helper()
	out, err := c.lab.Calicoctl(ctx(t), nil, "node", "status", "--run-dir", n.RunDir())
	if err != nil {
		t.Fatalf("calicoctl node status: %v\n%s", err, out)
	}
	return out
}

// bird is a BIRD 1.6 daemon in a lab namespace.
type bird struct {
	ns, ctl string
	client  string // birdc or birdc6
}

// startBird runs BIRD in ns with conf; the control socket and pid file
// are in a private temp dir; it is killed at test end.
func startBird(t testing.TB, ns, conf string) *bird {
	t.Helper()
	return startBirdBin(t, ns, conf, "bird", "birdc")
}

// startBirdBin is startBird with the daemon and client named (bird6 and
// birdc6 for BIRD 1.6's IPv6 daemon).
func startBirdBin(t testing.TB, ns, conf, daemon, client string) *bird {
	t.Helper()
	testutil.RequireCmd(t, daemon, client)
	dir := t.TempDir()
	path := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	b := &bird{ns: ns, ctl: filepath.Join(dir, "bird.ctl"), client: client}
	log := startInNS(t, ns, daemon, daemon, "-f", "-c", path, "-s", b.ctl, "-P", filepath.Join(dir, "bird.pid"))
	if err := testutil.Poll(5*time.Second, func() error {
		_, err := b.birdc("show", "status")
		return err
	}); err != nil {
		t.Fatalf("bird did not start: %v\n%s", err, log.String())
	}
	return b
}

func (b *bird) birdc(args ...string) (string, error) {
	out, err := exec.Command(b.client, append([]string{"-s", b.ctl}, args...)...).CombinedOutput()
	return string(out), err
}

// torConf is a ToR's BIRD configuration: one iBGP session per node (route
// reflector clients, next hop self so that nodes on other subnets route
// through the ToR), routes learned into the ToR's kernel.
func torConf(routerID string, nodes []*labtest.Node, local map[string]string, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `router id %s;
protocol device { scan time 2; }
protocol kernel { learn; persist; scan time 2; import none; export all; graceful restart; }
`, routerID)
	for _, n := range nodes {
		fmt.Fprintf(&b, `protocol bgp %s {
  local %s as 64512; neighbor %s as 64512; rr client; next hop self; direct; gateway direct;
  import all; export all; graceful restart; connect retry time 1; connect delay time 1; error wait time 1,5;%s
}
`, n.Name, local[n.Name], n.IP.Addr(), extra)
	}
	return b.String()
}

// TestPrivilegedBGPToR has a node on another subnet: no mesh, every node
// peers (a node-specific BGPPeer) with a ToR that is a real BIRD on the
// lab router. The ToR learns every block; pods on both subnets reach each
// other over no-encap routes via the ToR, and the cross-subnet no-encap
// case is not reported as degraded.
func TestPrivilegedBGPToR(t *testing.T) {
	c := newLab(t)
	c.n1, c.n2, c.n3 = c.lab.AddNode("n1", 99, 11), c.lab.AddNode("n2", 99, 12), c.lab.AddNode("n3", 98, 13)
	c.nodes = []*labtest.Node{c.n1, c.n2, c.n3}
	gw := map[string]string{"n1": "10.99.0.1", "n2": "10.99.0.1", "n3": "10.98.0.1"}
	tor := startBird(t, c.lab.Router, torConf("10.99.0.1", c.nodes, gw, ""))
	docs := []string{noEncapPool, `apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: false
  asNumber: 64512
`}
	for _, n := range c.nodes {
		docs = append(docs, fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor-%s
spec:
  node: %s
  peerIP: %s
  asNumber: 64512
`, n.Name, n.Name, gw[n.Name]))
	}
	c.calicoctl(t, strings.Join(docs, "---\n"), "apply", "-f", "-")
	c.startBGP(t)
	for _, n := range c.nodes {
		got := c.waitEstablished(t, n, 1)
		if want := gw[n.Name] + " node specific"; len(got) != 1 || got[0] != want {
			t.Errorf("%s: peers %q, want %q", n.Name, got, want)
		}
	}
	pods := c.addPods(t, "a", "bgp", c.nodes...)
	for _, p := range pods {
		// The ToR has every block in its kernel, via the owning node.
		c.eventually(t, "ToR route to "+block(p).String(), func() error {
			out := testutil.RunIn(t, c.lab.Router, "ip", "route", "show", block(p).String())
			if !strings.Contains(out, "via "+p.Node.IP.Addr().String()) || !strings.Contains(out, "proto bird") {
				return fmt.Errorf("router: %q", out)
			}
			return nil
		})
		for _, n := range c.nodes {
			if n != p.Node {
				c.waitIPRoute(t, n, block(p), bgpRoute(block(p), netip.MustParseAddr(gw[n.Name])))
			}
		}
	}
	pingMatrix(t, pods)
	if s, err := c.procs["n3"].Status(); err != nil || len(s.Degraded) != 0 {
		t.Errorf("n3 status: degraded %q, err %v", s.Degraded, err)
	}
	if out, err := tor.birdc("show", "protocols"); err != nil || strings.Count(out, "Established") != 3 {
		t.Errorf("ToR protocols: %v\n%s", err, out)
	}
	// Removing one node's BGPPeer drops that session only.
	before, err := c.procs["n2"].Status()
	if err != nil || len(before.BGPPeers) != 1 {
		t.Fatalf("n2 status %+v %v", before, err)
	}
	c.calicoctl(t, "", "delete", "bgppeer", "tor-n1")
	c.eventually(t, "n1 without peers", func() error {
		s, err := c.procs["n1"].Status()
		if err != nil || len(s.BGPPeers) != 0 {
			return fmt.Errorf("n1 peers %+v %v", s.BGPPeers, err)
		}
		return nil
	})
	for _, n := range []string{"n2", "n3"} {
		s, err := c.procs[n].Status()
		if err != nil || len(s.BGPPeers) != 1 || s.BGPPeers[0].State != "Established" || s.BGPPeers[0].Flaps != 0 {
			t.Errorf("%s after removing n1's peer: %+v %v", n, s.BGPPeers, err)
		}
	}
	_ = agent.BGPRouteProtocol
}
