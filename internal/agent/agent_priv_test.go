package agent_test

import (
	"context"
	"encoding/json"
	"errors"
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

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/dataplane/route"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/testutil"
)

func TestMain(m *testing.M) {
	testutil.ServeEtcdChild() // for testutil.StartEtcdProcess; returns at once here
	os.Exit(labtest.RunTests(m))
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// newLab starts a real etcd and an empty lab (root only).
func newLab(t *testing.T) *labtest.Lab {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireCmd(t, "ip", "bridge", "ping")
	e := testutil.StartEtcd(t)
	return labtest.New(t, testutil.NewNetNS, e.Endpoint)
}

// ownedRoutes renders the daemon's routes in node n.
func ownedRoutes(t *testing.T, n *labtest.Node) []string {
	t.Helper()
	rs, err := route.List(n.Handle(), agent.RouteOwner)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return out
}

func waitRoutes(t *testing.T, n *labtest.Node, want ...string) {
	t.Helper()
	err := labtest.Poll(10*time.Second, func() error {
		if got := ownedRoutes(t, n); !slices.Equal(got, want) {
			return fmt.Errorf("routes in %s:\n got  %q\n want %q", n.Name, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, ns string, cmd ...string) string {
	t.Helper()
	return testutil.RunIn(t, ns, cmd...)
}

func waitOutput(t *testing.T, ns string, want string, cmd ...string) {
	t.Helper()
	err := labtest.Poll(10*time.Second, func() error {
		out, err := testutil.RunInErr(ns, cmd...)
		if err != nil {
			return err
		}
		if !strings.Contains(out, want) {
			return fmt.Errorf("%s: output lacks %q:\n%s", strings.Join(cmd, " "), want, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// dataplaneState dumps everything the daemon programs in n, for restart
// comparisons.
func dataplaneState(t *testing.T, n *labtest.Node) string {
	t.Helper()
	var b strings.Builder
	for _, cmd := range [][]string{
		{"ip", "-d", "link", "show", "vxlan.calico"},
		{"ip", "addr", "show", "dev", "vxlan.calico"},
		{"ip", "route", "show", "table", "main"},
		{"ip", "neigh", "show", "dev", "vxlan.calico"},
		{"bridge", "fdb", "show", "dev", "vxlan.calico"},
		{"nft", "list", "table", "inet", "calico"},
	} {
		out, _ := testutil.RunInErr(n.NS, cmd...)
		fmt.Fprintf(&b, "$ %s\n%s\n", strings.Join(cmd, " "), out)
	}
	return b.String()
}

// httpIn GETs url from inside namespace ns (the socket is created there).
func httpIn(ns, url string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			var conn net.Conn
			err := netns.Do(ns, func() error {
				var err error
				conn, err = (&net.Dialer{}).DialContext(ctx, network, a)
				return err
			})
			return conn, err
		},
	}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestPrivilegedAgentDataplane runs the daemon in-process inside a node
// namespace against a real etcd, and follows the dataplane through
// datastore changes, a restart and the removal of the pool.
func TestPrivilegedAgentDataplane(t *testing.T) {
	lab := newLab(t)
	n1 := lab.AddNode("n1", 99, 11)
	// A route nobody of ours owns must survive everything.
	run(t, n1.NS, "ip", "route", "add", "10.55.0.0/24", "via", "10.99.0.1", "proto", "static")

	// Node n1 exists already with a tunnel address but no IP: startup must
	// add the autodetected address and keep the rest.
	lab.Pool("pool1", "10.244.0.0/16", api.VXLANModeAlways, api.IPIPModeNever, true)
	lab.TunnelAddress("n1", addr("10.244.1.0"))
	lab.UpdateNode("n1", func(n *api.Node) { n.Labels = map[string]string{"rack": "a"} })
	lab.PutNode("n2", netip.MustParsePrefix("10.99.0.12/24"), addr("10.244.2.0"))
	lab.ClaimBlock("n2", addr("10.244.2.0"))

	cfg := n1.AgentConfig()
	cfg.IP = "autodetect"
	cfg.IPAutodetect = "interface=eth0"
	cfg.DisableListeners = false
	cfg.FelixOverrides = map[string]string{"healthport": "9099", "prometheusmetricsenabled": "true", "prometheusmetricsport": "9091", "prometheusmetricshost": "127.0.0.1"}
	a := n1.StartAgent(cfg)
	if err := a.WaitReady(20 * time.Second); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, a.Log)
	}

	ctx := context.Background()
	// The tunnel manager records the VXLAN MAC shortly after the first sync.
	if err := labtest.Poll(10*time.Second, func() error {
		node, err := datastore.GetOf[*api.Node](ctx, lab.Client, api.KindNode, "", "n1")
		if err != nil {
			return err
		}
		if node.Spec.BGP == nil || node.Spec.BGP.IPv4Address != "10.99.0.11/24" || node.Spec.IPv4VXLANTunnelAddr != "10.244.1.0" ||
			node.Labels["rack"] != "a" || node.Spec.VXLANTunnelMACAddr != agent.VTEPMAC("n1").String() {
			b, _ := json.Marshal(node)
			return fmt.Errorf("node n1 after startup: %s", b)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	for _, name := range []string{"default", "node.n1"} {
		if _, err := lab.Store.Get(ctx, api.ResourcePrefix+"felixconfigurations/"+name); err != nil {
			t.Errorf("FelixConfiguration %s: %v", name, err)
		}
	}
	if b, err := os.ReadFile(n1.NodenameFile()); err != nil || string(b) != "n1" {
		t.Errorf("nodename file: %q %v", b, err)
	}

	waitRoutes(t, n1,
		"blackhole 10.244.1.0/26 proto 80",
		"10.244.2.0/26 via 10.244.2.0 dev vxlan.calico onlink proto 80")
	link := run(t, n1.NS, "ip", "-d", "link", "show", "vxlan.calico")
	for _, want := range []string{"mtu 1450", "link/ether " + agent.VTEPMAC("n1").String(), "vxlan id 4096 local 10.99.0.11 dev eth0", "dstport 4789", "nolearning"} {
		if !strings.Contains(link, want) {
			t.Errorf("vxlan.calico lacks %q:\n%s", want, link)
		}
	}
	waitOutput(t, n1.NS, "10.244.1.0/32", "ip", "addr", "show", "dev", "vxlan.calico")
	waitOutput(t, n1.NS, "10.244.2.0 lladdr "+agent.VTEPMAC("n2").String()+" PERMANENT", "ip", "neigh", "show", "dev", "vxlan.calico")
	waitOutput(t, n1.NS, agent.VTEPMAC("n2").String()+" dst 10.99.0.12 self permanent", "bridge", "fdb", "show", "dev", "vxlan.calico")
	waitOutput(t, n1.NS, "10.244.0.0/16", "nft", "list", "table", "inet", "calico")
	if v, _ := netns.GetSysctl(n1.NS, "net/ipv4/ip_forward"); v != "1" {
		t.Errorf("ip_forward = %q", v)
	}
	if mtu, err := agent.ReadMTUFile(n1.MTUFile()); err != nil || mtu != 1450 {
		t.Errorf("MTU file: %d %v", mtu, err)
	}

	// Health and metrics, served inside the node's namespace.
	code, body, err := httpIn(n1.NS, "http://127.0.0.1:9099/readiness")
	if err != nil || code != 200 || !strings.Contains(body, `"ready":true`) {
		t.Errorf("readiness: %d %q %v", code, body, err)
	}
	code, body, err = httpIn(n1.NS, "http://127.0.0.1:9091/metrics")
	if err != nil || code != 200 || !strings.Contains(body, "calico_node_routes_programmed 2") || !strings.Contains(body, "go_goroutines") ||
		!strings.Contains(body, `calico_node_reconcile_seconds_count{part="routes"}`) {
		t.Errorf("metrics: %d %v\n%s", code, err, body)
	}
	st, err := agent.QueryStatus(ctx, filepath.Join(n1.RunDir(), agent.ControlSocketName))
	if err != nil || !st.Ready || st.NodeName != "n1" || st.IPv4Address != "10.99.0.11/24" || st.Routes != 2 || st.VTEPs != 1 {
		t.Errorf("control socket status: %+v %v", st, err)
	}
	// "resync" on the control socket is a full resync: it puts back a route
	// removed behind the daemon's back (the periodic one is 90 s away).
	run(t, n1.NS, "ip", "route", "del", "10.244.2.0/26")
	if _, err := agent.RequestResyncAt(ctx, filepath.Join(n1.RunDir(), agent.ControlSocketName)); err != nil {
		t.Fatalf("resync request: %v", err)
	}
	waitRoutes(t, n1,
		"blackhole 10.244.1.0/26 proto 80",
		"10.244.2.0/26 via 10.244.2.0 dev vxlan.calico onlink proto 80")

	// A local workload: the agent sets its sysctls; its /32 route is the
	// CNI plugin's and stays.
	pod := n1.AddPodHook("p1", addr("10.244.1.2"), func(p *labtest.Pod) {
		// Undo what the plumbing set, before the endpoint is written.
		if err := netns.SetSysctl(n1.NS, netns.SysctlKey("net", "ipv4", "conf", p.HostIf, "proxy_arp"), "0"); err != nil {
			t.Fatal(err)
		}
	})

	// A new remote node and block appear; then n2 changes its tunnel address.
	lab.PutNode("n3", netip.MustParsePrefix("10.99.0.13/24"), addr("10.244.3.0"))
	lab.ClaimBlock("n3", addr("10.244.3.0"))
	waitRoutes(t, n1,
		"blackhole 10.244.1.0/26 proto 80",
		"10.244.2.0/26 via 10.244.2.0 dev vxlan.calico onlink proto 80",
		"10.244.3.0/26 via 10.244.3.0 dev vxlan.calico onlink proto 80")
	waitOutput(t, n1.NS, "10.244.3.0 lladdr "+agent.VTEPMAC("n3").String()+" PERMANENT", "ip", "neigh", "show", "dev", "vxlan.calico")
	lab.UpdateNode("n2", func(n *api.Node) { n.Spec.IPv4VXLANTunnelAddr = "10.244.2.1" })
	waitRoutes(t, n1,
		"blackhole 10.244.1.0/26 proto 80",
		"10.244.2.0/26 via 10.244.2.1 dev vxlan.calico onlink proto 80",
		"10.244.3.0/26 via 10.244.3.0 dev vxlan.calico onlink proto 80")
	waitOutput(t, n1.NS, "10.244.2.1 lladdr", "ip", "neigh", "show", "dev", "vxlan.calico")
	// The workload's sysctl was reset by the daemon (once, on sight).
	if err := labtest.Poll(10*time.Second, func() error {
		v, err := netns.GetSysctl(n1.NS, netns.SysctlKey("net", "ipv4", "conf", pod.HostIf, "proxy_arp"))
		if err == nil && v != "1" {
			err = fmt.Errorf("proxy_arp on %s = %s", pod.HostIf, v)
		}
		return err
	}); err != nil {
		t.Error(err)
	}

	// n3 goes away: its route and VTEP go; the block of a node we cannot
	// reach produces nothing.
	lab.DeleteNode("n3")
	waitRoutes(t, n1,
		"blackhole 10.244.1.0/26 proto 80",
		"10.244.2.0/26 via 10.244.2.1 dev vxlan.calico onlink proto 80")
	if out := run(t, n1.NS, "ip", "neigh", "show", "dev", "vxlan.calico"); strings.Contains(out, "10.244.3.0") {
		t.Errorf("n3's neighbour is still there:\n%s", out)
	}
	lab.DeleteBlock("n3", netip.MustParsePrefix("10.244.3.0/26"))

	// The CNI route and the foreign route are untouched.
	if out := run(t, n1.NS, "ip", "route", "show", "10.244.1.2"); !strings.Contains(out, "dev "+pod.HostIf) {
		t.Errorf("workload route gone: %q", out)
	}
	if out := run(t, n1.NS, "ip", "route", "show", "10.55.0.0/24"); !strings.Contains(out, "proto static") {
		t.Errorf("foreign route gone: %q", out)
	}

	// Restart: the new daemon re-adopts everything without a single change,
	// as the kernel reports it (netlink), while the node pings its pod.
	labtest.WaitIPv6DAD(t, n1.NS, 10*time.Second)
	before := dataplaneState(t, n1)
	routes := labtest.WatchRoutes(t, n1.NS)
	pg := labtest.StartPing(t, "ping n1 -> pod", n1.NS, addr("10.244.1.2"))
	pg.WaitReplies(t, 20, 10*time.Second)
	if err := a.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if after := dataplaneState(t, n1); after != before {
		t.Fatalf("stopping changed the dataplane:\n%s\nvs\n%s", before, after)
	}
	pg.WaitReplies(t, pg.Replies()+20, 10*time.Second) // no daemon runs
	a2 := n1.StartAgent(n1.AgentConfig())
	if err := a2.WaitReady(20 * time.Second); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, a2.Log)
	}
	pg.WaitReplies(t, pg.Replies()+50, 10*time.Second)
	if sent, lost := pg.Stop(t); len(lost) > 0 {
		t.Errorf("ping across the restart: %d sent, lost icmp_seq %v", sent, lost)
	}
	if changes := routes.Changes(); len(changes) > 0 {
		t.Errorf("the restart changed n1's routes (seen by netlink):\n%s", strings.Join(changes, "\n"))
	}
	if after := dataplaneState(t, n1); after != before {
		t.Errorf("restart changed the dataplane:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if s := a2.Status(); s.RouteChanges != 0 {
		t.Errorf("restart made %d route changes, want 0", s.RouteChanges)
	}

	// Removing the pool removes what it produced.
	lab.DeletePool("pool1")
	waitRoutes(t, n1)
	if err := labtest.Poll(10*time.Second, func() error {
		if _, err := testutil.RunInErr(n1.NS, "ip", "link", "show", "vxlan.calico"); err == nil {
			return fmt.Errorf("vxlan.calico still exists")
		}
		if m, _ := agent.ReadMTUFile(n1.MTUFile()); m != 1500 {
			return fmt.Errorf("MTU file %d, want 1500", m)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if out := run(t, n1.NS, "nft", "list", "table", "inet", "calico"); strings.Contains(out, "10.244.0.0/16") {
		t.Errorf("NAT still lists the deleted pool:\n%s", out)
	}
	if out := run(t, n1.NS, "ip", "route", "show", "10.244.1.2"); !strings.Contains(out, "dev "+pod.HostIf) {
		t.Errorf("workload route gone after pool deletion: %q", out)
	}
}

// ipipSupported asks the kernel, through netlink in n's namespace, whether
// it can make an IPIP link. (An earlier probe, `ip link add t type ipip`,
// always failed whatever the kernel: iproute2 reads "t" as txqueuelen.) An
// error other than "not supported" fails the test: the probe must not
// decide by accident.
func ipipSupported(t *testing.T, n *labtest.Node) bool {
	t.Helper()
	err := n.Handle().LinkAdd(&netlink.Iptun{LinkAttrs: netlink.LinkAttrs{Name: "ipipprobe"}})
	switch {
	case err == nil:
		if l, err := n.Handle().LinkByName("ipipprobe"); err == nil {
			_ = n.Handle().LinkDel(l)
		}
		return true
	case errors.Is(err, unix.EOPNOTSUPP):
		return false
	}
	t.Fatalf("IPIP probe in %s: %v (want success or EOPNOTSUPP)", n.Name, err)
	return false
}

// TestPrivilegedIPIPUnsupported: on this kernel (no ipip) an IPIP pool
// gives one clear log line and a readiness detail, never an apply loop;
// same-subnet CrossSubnet routes are still programmed.
func TestPrivilegedIPIPUnsupported(t *testing.T) {
	lab := newLab(t)
	n1 := lab.AddNode("n1", 99, 11)
	if ipipSupported(t, n1) {
		t.Skip("this kernel supports IPIP; the test is about kernels without it")
	}
	lab.Pool("ipip", "10.244.0.0/16", api.VXLANModeNever, api.IPIPModeCrossSubnet, true)
	lab.PutNode("n2", netip.MustParsePrefix("10.99.0.12/24"), netip.Addr{})
	lab.PutNode("n3", netip.MustParsePrefix("10.98.0.13/24"), netip.Addr{})
	lab.ClaimBlock("n1", addr("10.244.1.0"))
	lab.ClaimBlock("n2", addr("10.244.2.0"))
	lab.ClaimBlock("n3", addr("10.244.3.0"))
	cfg := n1.AgentConfig()
	cfg.Backend = agent.BackendBird
	cfg.DisableListeners = false
	cfg.FelixOverrides = map[string]string{"healthport": "9099", "prometheusmetricsport": "9091"}
	a := n1.StartAgent(cfg)
	if err := a.WaitReady(20 * time.Second); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, a.Log)
	}
	waitRoutes(t, n1,
		"blackhole 10.244.1.0/26 proto 80",
		"10.244.2.0/26 via 10.99.0.12 dev eth0 proto 80")
	const line = "ipip: IPIP is not supported by this kernel: routes for IPIP pools ipip are not programmed; use vxlanMode"
	if s := a.Status(); !slices.Contains(s.Degraded, line) || len(s.Errors) != 0 {
		t.Errorf("status: degraded %q errors %q", s.Degraded, s.Errors)
	}
	code, body, err := httpIn(n1.NS, "http://localhost:9099/readiness")
	if err != nil || code != 200 || !strings.Contains(body, line) {
		t.Errorf("readiness: %d %v %s", code, err, body)
	}
	// More events (a node and its block on our subnet, processed in
	// order): still one log line, no apply errors.
	want := []string{"blackhole 10.244.1.0/26 proto 80", "10.244.2.0/26 via 10.99.0.12 dev eth0 proto 80"}
	for i := range 3 {
		lab.PutNode(fmt.Sprintf("x%d", i), netip.MustParsePrefix(fmt.Sprintf("10.99.0.%d/24", 20+i)), netip.Addr{})
		lab.ClaimBlock(fmt.Sprintf("x%d", i), addr(fmt.Sprintf("10.244.%d.0", 20+i)))
		want = append(want, fmt.Sprintf("10.244.%d.0/26 via 10.99.0.%d dev eth0 proto 80", 20+i, 20+i))
	}
	waitRoutes(t, n1, want...)
	if n := strings.Count(a.Log.String(), "IPIP is not supported by this kernel"); n != 1 {
		t.Errorf("IPIP warning logged %d times, want once:\n%s", n, a.Log)
	}
	_, body, _ = httpIn(n1.NS, "http://127.0.0.1:9091/metrics")
	if strings.Contains(body, "calico_node_apply_errors_total") {
		t.Errorf("apply errors counted:\n%s", body)
	}
}

// TestPrivilegedTwoNodeVXLAN runs two real calico-node processes (ip netns
// exec) on one subnet with a VXLAN pool, pings pod to pod across them,
// checks calicoctl node status, and restarts one daemon under a running
// ping without losing a packet.
func TestPrivilegedTwoNodeVXLAN(t *testing.T) {
	lab := newLab(t)
	bin := labtest.Binary(t)
	n1, n2 := lab.AddNode("n1", 99, 11), lab.AddNode("n2", 99, 12)
	lab.Pool("pool1", "10.244.0.0/16", api.VXLANModeAlways, api.IPIPModeNever, true)
	lab.TunnelAddress("n1", addr("10.244.1.0"))
	lab.TunnelAddress("n2", addr("10.244.2.0"))
	// Upstream's "calico-node -startup" mode registers the node and exits.
	if out, err := runCmd(t, "ip", append(n1.Env(), "LANG=C"), "netns", "exec", filepath.Base(n1.NS), bin, "-startup"); err != nil {
		t.Fatalf("calico-node -startup: %v %s", err, out)
	}
	if b, err := os.ReadFile(n1.NodenameFile()); err != nil || string(b) != "n1" {
		t.Fatalf("nodename file after -startup: %q %v", b, err)
	}
	node, err := datastore.GetOf[*api.Node](context.Background(), lab.Client, api.KindNode, "", "n1")
	if err != nil || node.Spec.BGP == nil || node.Spec.BGP.IPv4Address != "10.99.0.11/24" || node.Spec.VXLANTunnelMACAddr != agent.VTEPMAC("n1").String() {
		t.Fatalf("node after -startup: %+v %v", node, err)
	}
	p1, p2 := n1.StartProcess(bin, n1.Env()), n2.StartProcess(bin, n2.Env())
	for _, p := range []*labtest.Process{p1, p2} {
		if _, err := p.WaitReady(20 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	a := n1.AddPod("a", addr("10.244.1.2"))
	b := n2.AddPod("b", addr("10.244.2.2"))
	waitRoutes(t, n1,
		"blackhole 10.244.1.0/26 proto 80",
		"10.244.2.0/26 via 10.244.2.0 dev vxlan.calico onlink proto 80")
	waitRoutes(t, n2,
		"10.244.1.0/26 via 10.244.1.0 dev vxlan.calico onlink proto 80",
		"blackhole 10.244.2.0/26 proto 80")
	if err := labtest.Ping(a.NS, b.IP, 3); err != nil {
		t.Fatalf("ping a -> b: %v\nn1:\n%s\nn2:\n%s", err, dataplaneState(t, n1), dataplaneState(t, n2))
	}
	if err := labtest.Ping(b.NS, a.IP, 3); err != nil {
		t.Fatalf("ping b -> a: %v", err)
	}
	if out := run(t, n1.NS, "ip", "route", "get", b.IP.String()); !strings.Contains(out, "dev vxlan.calico") {
		t.Errorf("n1 does not route to b over VXLAN: %s", out)
	}
	if l, err := n1.Handle().LinkByName("vxlan.calico"); err != nil || l.Attrs().Statistics == nil || l.Attrs().Statistics.TxPackets == 0 {
		t.Errorf("nothing was sent through vxlan.calico: %v", err)
	}

	// calicoctl node status talks to the daemon through its control socket.
	calico := filepath.Join(filepath.Dir(bin), "calico")
	out, err := runCmd(t, calico, []string{"CALICO_RUN_DIR=" + n1.RunDir()}, "ctl", "node", "status")
	if err != nil || !strings.HasPrefix(out, "Calico process is running.\n") || !strings.Contains(out, "10.99.0.11/24") ||
		!strings.Contains(out, "No BGP peers (BGP speaker not enabled)") || !strings.Contains(out, "VXLAN peers:      1") {
		t.Errorf("calicoctl node status: %v\n%s", err, out)
	}

	// Restart n1's daemon while a 10 ms ping runs across it, with n1's
	// routes watched from the kernel (not the daemon's own counter).
	labtest.WaitIPv6DAD(t, n1.NS, 10*time.Second) // the kernel's own route changes
	routes := labtest.WatchRoutes(t, n1.NS)
	pg := labtest.StartPing(t, "ping a -> b", a.NS, b.IP)
	pg.WaitReplies(t, 20, 10*time.Second)
	code, err := p1.Stop(10 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("SIGTERM: exit %d %v\n%s", code, err, p1.Stderr)
	}
	waitRoutes(t, n1, // left in place
		"blackhole 10.244.1.0/26 proto 80",
		"10.244.2.0/26 via 10.244.2.0 dev vxlan.calico onlink proto 80")
	out, err = runCmd(t, calico, []string{"CALICO_RUN_DIR=" + n1.RunDir()}, "ctl", "node", "status")
	if err == nil || out != "Calico process is not running.\n" {
		t.Errorf("calicoctl node status with no daemon: %v %q", err, out)
	}
	// Traffic flows while no daemon runs.
	down := pg.Replies()
	pg.WaitReplies(t, down+20, 10*time.Second)
	p1b := n1.StartProcess(bin, n1.Env())
	if _, err := p1b.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	pg.WaitReplies(t, pg.Replies()+100, 10*time.Second) // and after the new daemon's full apply
	sent, lost := pg.Stop(t)
	if len(lost) > 0 || sent < 140 {
		t.Errorf("ping across the restart: %d sent, lost icmp_seq %v", sent, lost)
	}
	t.Logf("ping across the restart: %d sent, none lost (replies before the stop, while no daemon ran, and after the new one was ready)", sent)
	if changes := routes.Changes(); len(changes) > 0 {
		t.Errorf("the restart changed n1's routes (seen by netlink):\n%s", strings.Join(changes, "\n"))
	}
	if s, err := p1b.Status(); err != nil || s.RouteChanges != 0 {
		t.Errorf("restarted daemon: %+v %v (want no route changes)", s, err)
	}
}

// runCmd runs a program with extra environment and returns its stdout.
func runCmd(t *testing.T, bin string, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, stderr.String())
	}
	return string(out), err
}

// TestPrivilegedCrossSubnet: three in-process daemons, n1 and n2 on one
// subnet, n3 behind the router. A CrossSubnet VXLAN pool routes n1<->n2
// directly and everything to or from n3 over VXLAN; pods ping each other.
func TestPrivilegedCrossSubnet(t *testing.T) {
	lab := newLab(t)
	n1, n2, n3 := lab.AddNode("n1", 99, 11), lab.AddNode("n2", 99, 12), lab.AddNode("n3", 98, 13)
	lab.Pool("pool1", "10.244.0.0/16", api.VXLANModeCrossSubnet, api.IPIPModeNever, true)
	for i, n := range []*labtest.Node{n1, n2, n3} {
		lab.TunnelAddress(n.Name, addr(fmt.Sprintf("10.244.%d.0", i+1)))
	}
	for _, n := range []*labtest.Node{n1, n2, n3} {
		a := n.StartAgent(n.AgentConfig())
		if err := a.WaitReady(20 * time.Second); err != nil {
			t.Fatalf("%s: %v\n%s", n.Name, err, a.Log)
		}
	}
	pa := n1.AddPod("a", addr("10.244.1.2"))
	pb := n2.AddPod("b", addr("10.244.2.2"))
	pc := n3.AddPod("c", addr("10.244.3.2"))
	waitRoutes(t, n1,
		"blackhole 10.244.1.0/26 proto 80",
		"10.244.2.0/26 via 10.99.0.12 dev eth0 proto 80",
		"10.244.3.0/26 via 10.244.3.0 dev vxlan.calico onlink proto 80")
	waitRoutes(t, n3,
		"10.244.1.0/26 via 10.244.1.0 dev vxlan.calico onlink proto 80",
		"10.244.2.0/26 via 10.244.2.0 dev vxlan.calico onlink proto 80",
		"blackhole 10.244.3.0/26 proto 80")
	for _, c := range []struct {
		from *labtest.Pod
		to   *labtest.Pod
	}{{pa, pb}, {pb, pa}, {pa, pc}, {pc, pb}} {
		if err := labtest.Ping(c.from.NS, c.to.IP, 2); err != nil {
			t.Errorf("ping %s -> %s: %v", c.from.Name, c.to.Name, err)
		}
	}
	if out := run(t, n1.NS, "ip", "route", "get", pb.IP.String()); !strings.Contains(out, "via 10.99.0.12 dev eth0") {
		t.Errorf("n1 -> b is not direct: %s", out)
	}
	if out := run(t, n1.NS, "ip", "route", "get", pc.IP.String()); !strings.Contains(out, "dev vxlan.calico") {
		t.Errorf("n1 -> c is not over VXLAN: %s", out)
	}
}

// TestPrivilegedResyncAndOwnChanges: the periodic full resync repairs
// drift (a deleted route, a stray proto-80 route, a removed neighbour), and
// changes to this node's own Node resource (tunnel address) are applied in
// place without a restart.
func TestPrivilegedResyncAndOwnChanges(t *testing.T) {
	lab, n1, a := resyncLab(t)
	want := []string{"blackhole 10.244.1.0/26 proto 80", "10.244.2.0/26 via 10.244.2.0 dev vxlan.calico onlink proto 80"}
	waitRoutes(t, n1, want...)
	run(t, n1.NS, "ip", "route", "del", "10.244.2.0/26")
	run(t, n1.NS, "ip", "route", "add", "10.77.0.0/24", "via", "10.99.0.1", "proto", "80")
	run(t, n1.NS, "ip", "neigh", "del", "10.244.2.0", "dev", "vxlan.calico")
	waitRoutes(t, n1, want...)
	waitOutput(t, n1.NS, "10.244.2.0 lladdr", "ip", "neigh", "show", "dev", "vxlan.calico")

	// Our own tunnel address moves: the device follows, no restart.
	lab.UpdateNode("n1", func(n *api.Node) { n.Spec.IPv4VXLANTunnelAddr = "10.244.1.1" })
	waitOutput(t, n1.NS, "inet 10.244.1.1/32", "ip", "addr", "show", "dev", "vxlan.calico")
	if out := run(t, n1.NS, "ip", "addr", "show", "dev", "vxlan.calico"); strings.Contains(out, "10.244.1.0/32") {
		t.Errorf("old tunnel address still on the device:\n%s", out)
	}
	if err := a.Stop(); err != nil {
		t.Errorf("agent ended with %v", err)
	}
}
