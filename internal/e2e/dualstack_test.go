package e2e_test

import (
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
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/testutil"
)

// TestPrivilegedDualStack is the dual-stack lab: three calico-node
// processes (n1, n2 on one subnet, n3 behind the router) with IPv4 and
// IPv6 underlays, IP6=autodetect, an IPv4 VXLAN pool applied with
// calicoctl and the IPv6 VXLAN pool the daemons create from
// CALICO_IPV6POOL_*; one dual-stack CNI pod per node. Every pod pings
// every other over both families, reaches the external host's IPv6
// address through NAT outgoing, and each node routes the other nodes'
// /122 blocks over vxlan-v6.calico with a blackhole for its own.
func TestPrivilegedDualStack(t *testing.T) {
	c := newLab(t)
	c.n1, c.n2, c.n3 = c.lab.AddNode("n1", 99, 11), c.lab.AddNode("n2", 99, 12), c.lab.AddNode("n3", 98, 13)
	c.nodes = []*labtest.Node{c.n1, c.n2, c.n3}
	c.lab.AddExternal()
	c.lab.AddIPv6()
	c.applyPools(t, pool{name: "pool4", cidr: "10.244.0.0/16", vxlan: "Always", nat: true})
	env := []string{"IP6=autodetect", "NO_DEFAULT_POOLS=false",
		"CALICO_IPV6POOL_CIDR=fd00:244::/64", "CALICO_IPV6POOL_VXLAN=Always", "CALICO_IPV6POOL_NAT_OUTGOING=true"}
	c.start(t, true, env...)

	p6 := c.pool6(t)
	if p6.Spec.CIDR != "fd00:244::/64" || p6.Spec.BlockSize != 122 || p6.Spec.VXLANMode != api.VXLANModeAlways || !p6.Spec.NATOutgoing {
		t.Errorf("default-ipv6-ippool spec %+v", p6.Spec)
	}
	for _, n := range c.nodes {
		c.eventually(t, "IPv6 VTEPs on "+n.Name, func() error {
			s, err := c.procs[n.Name].Status()
			if err != nil {
				return err
			}
			if s.IPv6Address != n.IP6.String() || s.VTEPsV6 != len(c.nodes)-1 {
				return fmt.Errorf("ipv6Address %q (want %s), %d IPv6 VTEPs: %+v", s.IPv6Address, n.IP6, s.VTEPsV6, s)
			}
			return nil
		})
		res := c.node(t, n.Name)
		if res.Spec.BGP == nil || res.Spec.BGP.IPv6Address != n.IP6.String() {
			t.Errorf("node %s bgp %+v, want ipv6Address %s", n.Name, res.Spec.BGP, n.IP6)
		}
		if want := agent.VTEPMACV6(n.Name).String(); res.Spec.VXLANTunnelMACAddrV6 != want {
			t.Errorf("node %s vxlanTunnelMACAddrV6 %q, want %s", n.Name, res.Spec.VXLANTunnelMACAddrV6, want)
		}
	}

	// VXLAN over IPv6 costs 70 bytes of the lab's 1500: the pod MTU.
	for _, n := range c.nodes {
		c.eventually(t, "MTU file on "+n.Name, func() error {
			b, err := os.ReadFile(n.MTUFile())
			if err != nil || string(b) != "1430" {
				return fmt.Errorf("MTU file %q, %v; want 1430", b, err)
			}
			return nil
		})
	}
	pods := c.addDualPods(t, "p")
	pingMatrix(t, pods)
	pingMatrix6(t, pods)
	for _, p := range pods {
		if err := labtest.Ping6(p.NS, labtest.ExternalIP6, 2); err != nil {
			t.Errorf("NAT outgoing for IPv6 from %s/%s: %v", p.Node.Name, p.Name, err)
		}
	}

	for i, n := range c.nodes {
		var want []string
		for j, p := range pods {
			b := block6(p)
			if i == j {
				want = append(want, blackhole(b))
				continue
			}
			want = append(want, fmt.Sprintf("%s via %s dev %s onlink proto %d", b, c.tunnelAddr6(t, p.Node.Name), agent.VXLANV6Device, agent.RouteProtocol))
		}
		if got := routesIn(t, n, netip.MustParsePrefix("fd00:244::/64")); !slicesEqualSorted(got, want) {
			t.Errorf("IPv6 routes on %s:\n got  %q\n want %q", n.Name, got, want)
		}
		out, err := labtest.IPv6Routes(n.NS)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("ip -6 route on %s:\n%s", n.Name, out)
		for j, p := range pods {
			if !hasRouteLine(out, block6(p).String(), i == j) {
				t.Errorf("ip -6 route on %s lacks %s (blackhole: %v):\n%s", n.Name, block6(p), i == j, out)
			}
		}
	}
	if table := natTable(t, c.n1); !strings.Contains(table, "fd00:244::") {
		t.Errorf("no IPv6 pool in n1's NAT table:\n%s", table)
	}
	c.checkSysctls6(t, pods)
	c.checkStatus6(t)
	c.restart6(t, pods, env)

	// Without natOutgoing on the IPv6 pool the external host cannot answer
	// (neither it nor the router has a route to the pool).
	c.calicoctl(t, pool6YAML(false), "apply", "-f", "-")
	c.eventually(t, "IPv6 NAT outgoing off", func() error {
		if err := labtest.Ping6(pods[0].NS, labtest.ExternalIP6, 1); err == nil {
			return fmt.Errorf("the external host still answers %s", pods[0].IP6)
		}
		return nil
	})

	// Deleting the IPv6 pool removes the IPv6 device, routes and tunnel
	// addresses; IPv4 keeps working.
	c.calicoctl(t, "", "delete", "ippool", agent.DefaultIPv6PoolName)
	for _, n := range c.nodes {
		c.eventually(t, "IPv6 cleanup on "+n.Name, func() error {
			if _, err := n.Handle().LinkByName(agent.VXLANV6Device); err == nil {
				return fmt.Errorf("%s still exists", agent.VXLANV6Device)
			}
			if rs := routesIn(t, n, netip.MustParsePrefix("fd00:244::/64")); len(rs) > 0 {
				return fmt.Errorf("IPv6 routes left: %q", rs)
			}
			if a := c.node(t, n.Name).Spec.IPv6VXLANTunnelAddr; a != "" {
				return fmt.Errorf("ipv6VXLANTunnelAddr still %s", a)
			}
			return nil
		})
	}
	ping(t, pods[0], pods[2].IP, 3)
}

// pool6YAML is default-ipv6-ippool as the daemons created it, with nat.
func pool6YAML(nat bool) string {
	return fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: %s
spec:
  cidr: fd00:244::/64
  blockSize: 122
  vxlanMode: Always
  ipipMode: Never
  natOutgoing: %t
`, agent.DefaultIPv6PoolName, nat)
}

// checkSysctls6 checks the IPv6 settings Felix keeps: forwarding on the
// node, proxy NDP and forwarding on each workload interface.
func (c *cluster) checkSysctls6(t testing.TB, pods []*labtest.CNIPod) {
	t.Helper()
	for _, p := range pods {
		for key, want := range map[string]string{
			"net/ipv6/conf/all/forwarding":              "1",
			"net/ipv6/conf/" + p.HostIf + "/proxy_ndp":  "1",
			"net/ipv6/conf/" + p.HostIf + "/forwarding": "1",
		} {
			c.eventually(t, key+" on "+p.Node.Name, func() error {
				got, err := netns.GetSysctl(p.Node.NS, key)
				if err != nil || got != want {
					return fmt.Errorf("%s = %q (%v), want %s", key, got, err, want)
				}
				return nil
			})
		}
	}
}

// checkStatus6 checks the IPv6 rows of calicoctl node status.
func (c *cluster) checkStatus6(t testing.TB) {
	t.Helper()
	for _, n := range c.nodes {
		out := c.calicoctl(t, "", "node", "status", "--run-dir="+n.RunDir())
		for _, want := range []string{"IPv6 address:     " + n.IP6.String(), "IPv6 routes:      3 (of the 6)", "IPv6 VXLAN peers: 2"} {
			if !strings.Contains(out, want) {
				t.Errorf("calicoctl node status on %s lacks %q:\n%s", n.Name, want, out)
			}
		}
	}
}

// pool6 reads default-ipv6-ippool.
func (c *cluster) pool6(t testing.TB) *api.IPPool {
	t.Helper()
	p, err := datastore.GetOf[*api.IPPool](ctx(t), c.lab.Client, api.KindIPPool, "", agent.DefaultIPv6PoolName)
	if err != nil {
		t.Fatalf("read %s: %v", agent.DefaultIPv6PoolName, err)
	}
	return p
}

func (c *cluster) node(t testing.TB, name string) *api.Node {
	t.Helper()
	n, err := datastore.GetOf[*api.Node](ctx(t), c.lab.Client, api.KindNode, "", name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// tunnelAddr6 is node name's IPv6 VXLAN tunnel address.
func (c *cluster) tunnelAddr6(t testing.TB, name string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(c.node(t, name).Spec.IPv6VXLANTunnelAddr)
	if err != nil || !a.Is6() {
		t.Fatalf("node %s has no IPv6 VXLAN tunnel address: %v", name, err)
	}
	return a
}

// addDualPods adds one dual-stack pod per node through CNI, in parallel.
func (c *cluster) addDualPods(t testing.TB, name string) []*labtest.CNIPod {
	t.Helper()
	pods := make([]*labtest.CNIPod, len(c.nodes))
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Go(func() { pods[i], errs[i] = n.CNIAddDual(ctx(t), name, "", "") })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return pods
}

// block6 is the /122 holding a pod's IPv6 address.
func block6(p *labtest.CNIPod) netip.Prefix {
	b, _ := p.IP6.Prefix(api.DefaultBlockSizeV6)
	return b
}

// pingMatrix6 has every pod ping every other pod's IPv6 address.
func pingMatrix6(t testing.TB, pods []*labtest.CNIPod) {
	t.Helper()
	for _, a := range pods {
		for _, b := range pods {
			if a == b {
				continue
			}
			if err := labtest.Poll(convergeTimeout, func() error { return labtest.Ping6(a.NS, b.IP6, 1) }); err != nil {
				t.Fatalf("%s/%s -> %s: %v", a.Node.Name, a.Name, b.IP6, err)
			}
			if err := labtest.Ping6(a.NS, b.IP6, 3); err != nil {
				t.Fatalf("%s/%s -> %s: %v", a.Node.Name, a.Name, b.IP6, err)
			}
		}
	}
}

// hasRouteLine reports whether `ip -6 route` output has the route for dst:
// a blackhole, or one via vxlan-v6.calico.
func hasRouteLine(out, dst string, blackhole bool) bool {
	return slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool {
		f := strings.Fields(l)
		if blackhole {
			return len(f) > 1 && f[0] == "blackhole" && f[1] == dst
		}
		return len(f) > 0 && f[0] == dst && strings.Contains(l, "dev "+agent.VXLANV6Device) && strings.Contains(l, "onlink")
	})
}

// restart6 restarts n1's daemon under IPv6 traffic through n1 in both
// directions (to n3, over VXLAN across the router): no packet is lost, no
// route changes and the IPv6 device, neighbours and FDB stay as they were.
func (c *cluster) restart6(t testing.TB, pods []*labtest.CNIPod, env []string) {
	t.Helper()
	before := state6(t, c.n1)
	routes := labtest.WatchRoutes(t, c.n1.NS)
	var pingers []*labtest.Pinger
	for _, pr := range [][2]*labtest.CNIPod{{pods[0], pods[2]}, {pods[2], pods[0]}} {
		name := fmt.Sprintf("ping %s/%s -> %s", pr[0].Node.Name, pr[0].Name, pr[1].IP6)
		pingers = append(pingers, labtest.StartPing(t, name, pr[0].NS, pr[1].IP6))
	}
	for _, pg := range pingers {
		pg.WaitReplies(t, 20, convergeTimeout)
	}
	if code, err := c.procs["n1"].Stop(10 * time.Second); err != nil || code != 0 {
		t.Fatalf("stop calico-node n1: exit %d, %v", code, err)
	}
	p := c.n1.StartProcess(c.bin, c.n1.Env(env...))
	c.procs["n1"] = p
	if _, err := p.WaitReady(readyTimeout); err != nil {
		t.Fatal(err)
	}
	for _, pg := range pingers {
		pg.WaitReplies(t, pg.Replies()+100, convergeTimeout)
	}
	for _, pg := range pingers {
		sent, lost := pg.Stop(t)
		if len(lost) > 0 {
			t.Errorf("%s lost %d of %d packets during the restart: icmp_seq %v", pg.Name, len(lost), sent, lost)
		}
	}
	if changes := routes.Changes(); len(changes) > 0 {
		t.Errorf("the restart changed n1's routes:\n%s", strings.Join(changes, "\n"))
	}
	if after := state6(t, c.n1); after != before {
		t.Errorf("n1's IPv6 dataplane differs after the restart:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// state6 is the IPv6 part of what the daemon programs in n.
func state6(t testing.TB, n *labtest.Node) string {
	t.Helper()
	var b strings.Builder
	for _, cmd := range [][]string{
		{"ip", "-d", "link", "show", agent.VXLANV6Device},
		{"ip", "-6", "addr", "show", "dev", agent.VXLANV6Device},
		{"ip", "-6", "route", "show", "table", "all"},
		{"ip", "-6", "neigh", "show", "dev", agent.VXLANV6Device},
		{"bridge", "fdb", "show", "dev", agent.VXLANV6Device},
	} {
		out, _ := testutil.RunInErr(n.NS, cmd...)
		fmt.Fprintf(&b, "$ %s\n%s\n", strings.Join(cmd, " "), out)
	}
	return b.String()
}

// TestPrivilegedDualStackCrossSubnet: with an IPv6 pool in CrossSubnet
// mode, n1 and n2 (same IPv6 subnet) route each other's /122 blocks
// straight over eth0 and n3's over vxlan-v6.calico, and every pod still
// reaches every other over IPv6.
func TestPrivilegedDualStackCrossSubnet(t *testing.T) {
	c := newLab(t)
	c.n1, c.n2, c.n3 = c.lab.AddNode("n1", 99, 11), c.lab.AddNode("n2", 99, 12), c.lab.AddNode("n3", 98, 13)
	c.nodes = []*labtest.Node{c.n1, c.n2, c.n3}
	c.lab.AddIPv6()
	c.applyPools(t, pool{name: "pool4", cidr: "10.244.0.0/16", vxlan: "Always", nat: true})
	c.start(t, true, "IP6=autodetect", "NO_DEFAULT_POOLS=false",
		"CALICO_IPV6POOL_CIDR=fd00:244::/64", "CALICO_IPV6POOL_VXLAN=CrossSubnet")
	pods := c.addDualPods(t, "p")
	for i, n := range c.nodes {
		var want []string
		for j, p := range pods {
			b := block6(p)
			switch {
			case i == j:
				want = append(want, blackhole(b))
			case n.IP6.Masked().Contains(p.Node.IP6.Addr()):
				want = append(want, fmt.Sprintf("%s via %s dev eth0 proto %d", b, p.Node.IP6.Addr(), agent.RouteProtocol))
			default:
				want = append(want, fmt.Sprintf("%s via %s dev %s onlink proto %d", b, c.tunnelAddr6(t, p.Node.Name), agent.VXLANV6Device, agent.RouteProtocol))
			}
		}
		c.eventually(t, "IPv6 routes on "+n.Name, func() error {
			if got := routesIn(t, n, netip.MustParsePrefix("fd00:244::/64")); !slicesEqualSorted(got, want) {
				return fmt.Errorf("got %q, want %q", got, want)
			}
			return nil
		})
	}
	pingMatrix6(t, pods)
}
