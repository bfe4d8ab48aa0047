package e2e_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/dataplane/nft"
	"github.com/onecalico/calico/internal/dataplane/route"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/testutil"
)

func TestMain(m *testing.M) { os.Exit(labtest.RunTests(m)) }

// Timeouts are generous: the reference machine has two shared cores.
const (
	convergeTimeout = 20 * time.Second
	readyTimeout    = 30 * time.Second
)

// cluster is the shared three-node lab.
type cluster struct {
	lab        *labtest.Lab
	n1, n2, n3 *labtest.Node
	nodes      []*labtest.Node
	procs      map[string]*labtest.Process
	bin        string
}

// pool describes an IPPool as the tests apply it with calicoctl.
type pool struct {
	name, cidr, vxlan string
	nat               bool
}

func (p pool) yaml() string {
	return fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: %s
spec:
  cidr: %s
  blockSize: 26
  vxlanMode: %s
  ipipMode: Never
  natOutgoing: %t
`, p.name, p.cidr, p.vxlan, p.nat)
}

// newCluster builds the lab: nodes n1 (10.99.0.11) and n2 (10.99.0.12) on
// one subnet, n3 (10.98.0.13) behind the router, the external host, the
// first pool (so every daemon allocates its VXLAN tunnel address from it
// at startup) and one calico-node process per node, all ready.
func newCluster(t testing.TB, first pool) *cluster {
	t.Helper()
	c := newLab(t)
	c.n1, c.n2, c.n3 = c.lab.AddNode("n1", 99, 11), c.lab.AddNode("n2", 99, 12), c.lab.AddNode("n3", 98, 13)
	c.nodes = []*labtest.Node{c.n1, c.n2, c.n3}
	c.lab.AddExternal()
	c.applyPools(t, first)
	c.start(t, true)
	return c
}

// newLab starts etcd and an empty lab.
func newLab(t testing.TB) *cluster {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireCmd(t, "ip", "ping")
	e := testutil.StartEtcd(t)
	return &cluster{lab: labtest.New(t, testutil.NewNetNS, e.Endpoint), procs: map[string]*labtest.Process{}, bin: labtest.Binary(t)}
}

// start runs calico-node on every node and waits until each is ready and,
// with vteps (a VXLAN pool exists), has a VTEP for every other node; env
// is added to each daemon's environment.
func (c *cluster) start(t testing.TB, vteps bool, env ...string) {
	t.Helper()
	for _, n := range c.nodes {
		c.procs[n.Name] = n.StartProcess(c.bin, n.Env(env...))
	}
	for _, n := range c.nodes {
		if _, err := c.procs[n.Name].WaitReady(readyTimeout); err != nil {
			t.Fatalf("calico-node %s: %v", n.Name, err)
		}
	}
	// Each daemon allocates its tunnel address through IPAM and records it;
	// every node then has a VTEP for each other node.
	for _, n := range c.nodes {
		if !vteps {
			break
		}
		c.eventually(t, fmt.Sprintf("VTEPs on %s", n.Name), func() error {
			s, err := c.procs[n.Name].Status()
			if err != nil {
				return err
			}
			if s.VTEPs != len(c.nodes)-1 {
				return fmt.Errorf("%d VTEPs, want %d: %+v", s.VTEPs, len(c.nodes)-1, s)
			}
			return nil
		})
	}
}

// eventually polls cond until it holds or convergeTimeout passes.
func (c *cluster) eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	if err := testutil.Poll(convergeTimeout, cond); err != nil {
		t.Fatalf("%s: not within %v: %v", what, convergeTimeout, err)
	}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// calicoctl runs the real calicoctl against the lab's etcd.
func (c *cluster) calicoctl(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	var in []byte
	if stdin != "" {
		in = []byte(stdin)
	}
	out, err := c.lab.Calicoctl(ctx(t), in, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (c *cluster) applyPools(t testing.TB, pools ...pool) {
	t.Helper()
	var docs []string
	for _, p := range pools {
		docs = append(docs, p.yaml())
	}
	c.calicoctl(t, strings.Join(docs, "---\n"), "apply", "-f", "-")
}

// addPods adds one pod per node (named name) in pool p through CNI, the
// nodes in parallel as their runtimes would.
func (c *cluster) addPods(t testing.TB, name, pool string, nodes ...*labtest.Node) []*labtest.CNIPod {
	t.Helper()
	pods := make([]*labtest.CNIPod, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { pods[i], errs[i] = n.CNIAdd(ctx(t), name, pool) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return pods
}

// block is the /26 holding a pod's address.
func block(p *labtest.CNIPod) netip.Prefix {
	b, _ := p.IP.Prefix(labtest.BlockSize)
	return b
}

// routes renders the daemon-owned routes of node n.
func routes(t testing.TB, n *labtest.Node) []string {
	t.Helper()
	rs, err := route.List(n.Handle(), agent.RouteOwner)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.String()
	}
	return out
}

// routesIn is routes restricted to destinations overlapping cidr, and
// routesOutside to the others.
func routesIn(t testing.TB, n *labtest.Node, cidr netip.Prefix) []string {
	t.Helper()
	return filterRoutes(routes(t, n), cidr, true)
}

func routesOutside(t testing.TB, n *labtest.Node, cidr netip.Prefix) []string {
	t.Helper()
	return filterRoutes(routes(t, n), cidr, false)
}

func filterRoutes(rs []string, cidr netip.Prefix, inside bool) []string {
	var out []string
	for _, r := range rs {
		dst := strings.Fields(strings.TrimPrefix(r, "blackhole "))[0]
		if p, err := netip.ParsePrefix(dst); err == nil && cidr.Overlaps(p) == inside {
			out = append(out, r)
		}
	}
	return out
}

// waitRoute waits until node n has exactly the route want for dst (among
// the daemon's routes); want "" means no route for dst.
func (c *cluster) waitRoute(t testing.TB, n *labtest.Node, dst netip.Prefix, want string) {
	t.Helper()
	c.eventually(t, fmt.Sprintf("route for %s on %s", dst, n.Name), func() error {
		got := routesIn(t, n, dst)
		if want == "" && len(got) == 0 || len(got) == 1 && got[0] == want {
			return nil
		}
		return fmt.Errorf("got %q, want %q", got, want)
	})
}

// tunnelAddr is node name's VXLAN tunnel address from its Node resource.
func (c *cluster) tunnelAddr(t testing.TB, name string) netip.Addr {
	t.Helper()
	n, err := datastore.GetOf[*api.Node](ctx(t), c.lab.Client, api.KindNode, "", name)
	if err != nil {
		t.Fatal(err)
	}
	a, err := netip.ParseAddr(n.Spec.IPv4VXLANTunnelAddr)
	if err != nil {
		t.Fatalf("node %s has no VXLAN tunnel address: %v", name, err)
	}
	return a
}

// vxlanRoute and directRoute are the routes a node should have for a
// remote node's block.
func (c *cluster) vxlanRoute(t testing.TB, dst netip.Prefix, to *labtest.Node) string {
	return fmt.Sprintf("%s via %s dev %s onlink proto %d", dst, c.tunnelAddr(t, to.Name), agent.VXLANDevice, agent.RouteProtocol)
}

func directRoute(dst netip.Prefix, to *labtest.Node) string {
	return fmt.Sprintf("%s via %s dev eth0 proto %d", dst, to.IP.Addr(), agent.RouteProtocol)
}

func blackhole(dst netip.Prefix) string {
	return fmt.Sprintf("blackhole %s proto %d", dst, agent.RouteProtocol)
}

// ping sends count pings (10 ms apart) from pod src to dst and fails
// unless every one is answered; until the first answer it retries for a
// while (a fresh path may still be settling).
func ping(t testing.TB, src *labtest.CNIPod, dst netip.Addr, count int) {
	t.Helper()
	err := testutil.Poll(convergeTimeout, func() error {
		_, err := testutil.RunInErr(src.NS, "ping", "-n", "-q", "-c", "1", "-W", "1", dst.String())
		return err
	})
	if err != nil {
		t.Fatalf("%s/%s -> %s: %v", src.Node.Name, src.Name, dst, err)
	}
	if count > 1 {
		out, err := testutil.RunInErr(src.NS, "ping", "-n", "-q", "-c", fmt.Sprint(count), "-i", "0.01", "-W", "2", dst.String())
		if err != nil || !strings.Contains(out, fmt.Sprintf("%d received", count)) {
			t.Fatalf("%s/%s -> %s: %v\n%s", src.Node.Name, src.Name, dst, err, out)
		}
	}
}

// pingMatrix has every pod ping every other pod.
func pingMatrix(t testing.TB, pods []*labtest.CNIPod) {
	t.Helper()
	for _, a := range pods {
		for _, b := range pods {
			if a != b {
				ping(t, a, b.IP, 3)
			}
		}
	}
}

// vxlanTX is the transmit packet counter of n's vxlan.calico.
func vxlanTX(t testing.TB, n *labtest.Node) uint64 {
	t.Helper()
	l, err := n.Handle().LinkByName(agent.VXLANDevice)
	if err != nil {
		t.Fatalf("%s on %s: %v", agent.VXLANDevice, n.Name, err)
	}
	return l.Attrs().Statistics.TxPackets
}

// natTable renders n's nftables table.
func natTable(t testing.TB, n *labtest.Node) string {
	t.Helper()
	conn, closeConn, err := netns.NewNftConn(n.NS)
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn()
	s, err := nft.Dump(conn, nft.DefaultTableName)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// natSet returns the elements line of set name in n's table.
func natSet(t testing.TB, n *labtest.Node, name string) string {
	t.Helper()
	for _, line := range strings.Split(natTable(t, n), "\n") {
		if strings.Contains(line, "set "+name+" ") {
			return strings.TrimSpace(line)
		}
	}
	t.Fatalf("no set %s on %s", name, n.Name)
	return ""
}

// state is everything the daemon programs in n, for restart comparisons.
func state(t testing.TB, n *labtest.Node) string {
	t.Helper()
	var b strings.Builder
	for _, cmd := range [][]string{
		{"ip", "-d", "link", "show", agent.VXLANDevice},
		{"ip", "addr", "show", "dev", agent.VXLANDevice},
		{"ip", "route", "show", "table", "all"},
		{"ip", "neigh", "show", "dev", agent.VXLANDevice},
		{"bridge", "fdb", "show", "dev", agent.VXLANDevice},
	} {
		out, _ := testutil.RunInErr(n.NS, cmd...)
		fmt.Fprintf(&b, "$ %s\n%s\n", strings.Join(cmd, " "), out)
	}
	b.WriteString(natTable(t, n))
	return b.String()
}

func slicesEqualSorted(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
