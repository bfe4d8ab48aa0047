package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/testutil"
)

// percentile is nearest-rank (ceil(q*n)), as felix-observed.md uses.
func percentile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// newPair is a lab of two nodes on one subnet (n1 10.99.0.11, n2
// 10.99.0.12) with the first pool applied before calico-node starts.
func newPair(b *testing.B, first pool, vxlan bool) *cluster {
	b.Helper()
	c := newLab(b)
	c.n1, c.n2 = c.lab.AddNode("n1", 99, 11), c.lab.AddNode("n2", 99, 12)
	c.nodes = []*labtest.Node{c.n1, c.n2}
	c.applyPools(b, first)
	c.start(b, vxlan)
	return c
}

// routeWatch records when each route first appears in a namespace, from a
// netlink route subscription (no polling delay).
type routeWatch struct {
	mu   sync.Mutex
	seen map[string]time.Time // dst -> first RTM_NEWROUTE
	kick chan struct{}
}

func watchRoutes(b *testing.B, ns string) *routeWatch {
	b.Helper()
	h, err := vnetns.GetFromPath(ns)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	ch := make(chan netlink.RouteUpdate, 4096)
	done := make(chan struct{})
	b.Cleanup(func() { close(done) })
	if err := netlink.RouteSubscribeWithOptions(ch, done, netlink.RouteSubscribeOptions{Namespace: &h}); err != nil {
		b.Fatal(err)
	}
	w := &routeWatch{seen: map[string]time.Time{}, kick: make(chan struct{}, 1)}
	go func() {
		for u := range ch {
			now := time.Now()
			if u.Type != unix.RTM_NEWROUTE || u.Dst == nil {
				continue
			}
			w.mu.Lock()
			if _, ok := w.seen[u.Dst.String()]; !ok {
				w.seen[u.Dst.String()] = now
			}
			w.mu.Unlock()
			select {
			case w.kick <- struct{}{}:
			default:
			}
		}
	}()
	return w
}

// wait returns when dst first appeared, waiting up to timeout for it.
func (w *routeWatch) wait(dst netip.Prefix, timeout time.Duration) (time.Time, bool) {
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		t, ok := w.seen[dst.String()]
		w.mu.Unlock()
		if ok {
			return t, true
		}
		select {
		case <-w.kick:
		case <-deadline:
			return time.Time{}, false
		}
	}
}

// BenchmarkConvergenceFromCNIAdd: a pod is added on n1 through the real
// CNI exec path with a pool of its own, so IPAM claims a new block for n1;
// how long until n2's calico-node (a real process) has the route for that
// block in the kernel, seen through a netlink route subscription in n2.
// Measured from the start of the ADD (exec of the plugin) and from its
// return (negative: the route was there before the ADD finished), as
// felix-observed.md measured upstream (a pool per sample, 20 samples).
func BenchmarkConvergenceFromCNIAdd(b *testing.B) {
	c := newPair(b, poolAlways, true)
	w := watchRoutes(b, c.n2.NS)
	const samples = 20
	var fromStart, fromReturn, adds []time.Duration
	sample := 0
	b.ResetTimer()
	for range b.N {
		for range samples {
			name := fmt.Sprintf("conv%d", sample)
			// Not adjacent to each other, so the NAT set shows each one as it is.
			cidr := netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", 100+sample%100, 2*(sample/100)))
			sample++
			b.StopTimer()
			c.lab.Pool(name, cidr.String(), api.VXLANModeAlways, api.IPIPModeNever, true)
			// n2 must know the pool before the clock starts, as with a pool
			// created well before the pod (felix-observed waited 1.5 s).
			c.eventually(b, "pool "+name+" on n2", func() error {
				if s := natSet(b, c.n2, "all-ipam-pools-v4"); !strings.Contains(s, cidr.String()) {
					return fmt.Errorf("n2's pool set lacks %s: %s", cidr, s)
				}
				return nil
			})
			b.StartTimer()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			t0 := time.Now()
			p, err := c.n1.CNIAdd(ctx, "c"+name[4:], name)
			t1 := time.Now()
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			seen, ok := w.wait(block(p), convergeTimeout)
			if !ok {
				b.Fatalf("sample %s: no route for %s on n2; routes %q", name, block(p), routes(b, c.n2))
			}
			fromStart = append(fromStart, seen.Sub(t0))
			fromReturn = append(fromReturn, seen.Sub(t1))
			adds = append(adds, t1.Sub(t0))
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(percentile(fromStart, 0.5)), "start-p50-ms")
	b.ReportMetric(ms(percentile(fromStart, 0.9)), "start-p90-ms")
	b.ReportMetric(ms(percentile(fromStart, 1)), "start-max-ms")
	b.ReportMetric(ms(percentile(fromReturn, 0.5)), "return-p50-ms")
	b.ReportMetric(ms(percentile(fromReturn, 0.9)), "return-p90-ms")
	b.ReportMetric(ms(percentile(fromReturn, 1)), "return-max-ms")
	b.ReportMetric(ms(percentile(adds, 0.5)), "add-p50-ms")
	b.ReportMetric(ms(percentile(adds, 1)), "add-max-ms")
	b.ReportMetric(float64(len(fromStart)), "samples")
}

// BenchmarkPodThroughput: single-stream TCP throughput (iperf3, 5 s)
// between pods on two nodes of one subnet, routed directly (a pool without
// encapsulation; its pods are added first and get MTU 1500) and over VXLAN
// (vxlanMode Always; MTU 1450), each as a ratio of a plain routed path on
// the same machine with the same hops and no Calico (netns - veth - router
// - veth - bridge - veth - router - veth - netns, MTU 1500). The three
// paths are measured in turn, twice, and the means compared, so that load
// drifting on the shared machine affects them alike.
func BenchmarkPodThroughput(b *testing.B) {
	requireIPerf3(b)
	c := newPair(b, pool{"direct", "10.246.0.0/16", "Never", true}, false)
	plainA, plainB, plainIP := plainPath(b)
	d := c.addPods(b, "d1", "direct", c.n1, c.n2)
	c.waitRoute(b, c.n1, block(d[1]), directRoute(block(d[1]), c.n2))
	ping(b, d[0], d[1].IP, 1)

	c.applyPools(b, pool{"vx", "10.244.0.0/16", "Always", true})
	for _, n := range c.nodes {
		c.eventually(b, "VXLAN MTU on "+n.Name, func() error {
			if m, err := agent.ReadMTUFile(n.MTUFile()); err != nil || m != 1450 {
				return fmt.Errorf("MTU file: %d %v", m, err)
			}
			return nil
		})
	}
	v := c.addPods(b, "v1", "vx", c.n1, c.n2)
	c.waitRoute(b, c.n1, block(v[1]), c.vxlanRoute(b, block(v[1]), c.n2))
	ping(b, v[0], v[1].IP, 1)

	var plain, direct, vxlan []float64
	b.ResetTimer()
	for range b.N {
		for range 2 {
			plain = append(plain, iperf(b, plainA, plainB, plainIP))
			direct = append(direct, iperf(b, d[0].NS, d[1].NS, d[1].IP))
			vxlan = append(vxlan, iperf(b, v[0].NS, v[1].NS, v[1].IP))
		}
	}
	b.StopTimer()
	mean := func(xs []float64) float64 {
		var sum float64
		for _, x := range xs {
			sum += x
		}
		return sum / float64(len(xs))
	}
	gbit := func(xs []float64) string {
		s := make([]string, len(xs))
		for i, x := range xs {
			s[i] = fmt.Sprintf("%.1f", x/1e9)
		}
		return strings.Join(s, ", ")
	}
	b.Logf("Gbit/s per run: plain %s; direct %s; VXLAN %s", gbit(plain), gbit(direct), gbit(vxlan))
	b.ReportMetric(mean(plain)/1e9, "plain-Gbit/s")
	b.ReportMetric(mean(direct)/1e9, "direct-Gbit/s")
	b.ReportMetric(mean(vxlan)/1e9, "vxlan-Gbit/s")
	b.ReportMetric(mean(direct)/mean(plain), "direct/plain")
	b.ReportMetric(mean(vxlan)/mean(plain), "vxlan/plain")
}

// requireIPerf3 installs iperf3 with apt-get when it is missing, or skips.
func requireIPerf3(b *testing.B) {
	b.Helper()
	testutil.RequireRoot(b)
	if _, err := exec.LookPath("iperf3"); err == nil {
		return
	}
	b.Log("iperf3 is missing: installing it with apt-get")
	cmd := exec.Command("apt-get", "install", "-y", "-qq", "--no-install-recommends", "iperf3")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if _, lerr := exec.LookPath("iperf3"); lerr != nil {
		b.Skipf("iperf3 is not installed and apt-get could not install it (%v): %s", err, out)
	}
}

// plainPath builds the baseline: client netns A (10.77.1.2) - router R1 -
// bridge - router R2 - server netns B (10.77.2.2), veths everywhere, plain
// routes, no Calico. It returns A, B and B's address.
func plainPath(b *testing.B) (string, string, netip.Addr) {
	b.Helper()
	a, r1, fab, r2, srv := testutil.NewNetNS(b), testutil.NewNetNS(b), testutil.NewNetNS(b), testutil.NewNetNS(b), testutil.NewNetNS(b)
	run := func(args ...string) {
		b.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			b.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	link := func(ns1, if1, ns2, if2 string) {
		run("-n", name(ns1), "link", "add", if1, "type", "veth", "peer", "name", if2, "netns", name(ns2))
		run("-n", name(ns1), "link", "set", if1, "up")
		run("-n", name(ns2), "link", "set", if2, "up")
	}
	link(a, "eth0", r1, "ra")
	link(r1, "eth0", fab, "p1")
	link(r2, "eth0", fab, "p2")
	link(srv, "eth0", r2, "rb")
	run("-n", name(fab), "link", "add", "br0", "type", "bridge")
	run("-n", name(fab), "link", "set", "br0", "up")
	run("-n", name(fab), "link", "set", "p1", "master", "br0")
	run("-n", name(fab), "link", "set", "p2", "master", "br0")
	for _, x := range [][]string{
		{a, "10.77.1.2/24", "eth0"}, {r1, "10.77.1.1/24", "ra"}, {r1, "10.77.0.1/24", "eth0"},
		{r2, "10.77.0.2/24", "eth0"}, {r2, "10.77.2.1/24", "rb"}, {srv, "10.77.2.2/24", "eth0"},
	} {
		run("-n", name(x[0]), "addr", "add", x[1], "dev", x[2])
	}
	run("-n", name(a), "route", "add", "default", "via", "10.77.1.1")
	run("-n", name(srv), "route", "add", "default", "via", "10.77.2.1")
	run("-n", name(r1), "route", "add", "10.77.2.0/24", "via", "10.77.0.2")
	run("-n", name(r2), "route", "add", "10.77.1.0/24", "via", "10.77.0.1")
	for _, r := range []string{r1, r2} {
		testutil.RunIn(b, r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	}
	dst := netip.MustParseAddr("10.77.2.2")
	testutil.Eventually(b, convergeTimeout, func() error {
		_, err := testutil.RunInErr(a, "ping", "-c", "1", "-W", "1", dst.String())
		return err
	})
	return a, srv, dst
}

// iperf runs a one-shot iperf3 server in srvNS on addr and a 5 s
// single-stream client in cliNS, and returns the bits per second the
// server received.
func iperf(b *testing.B, cliNS, srvNS string, addr netip.Addr) float64 {
	b.Helper()
	srv := exec.Command("ip", "netns", "exec", name(srvNS), "iperf3", "-s", "-1", "-B", addr.String())
	var srvOut labtest.SyncBuffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Wait() }()
	defer func() {
		select {
		case <-srvDone:
		case <-time.After(10 * time.Second):
			_ = srv.Process.Kill()
			<-srvDone
		}
	}()
	testutil.Eventually(b, convergeTimeout, func() error {
		out, err := testutil.RunInErr(srvNS, "ss", "-Hltn", "sport = :5201")
		if err == nil && !strings.Contains(out, "5201") {
			err = fmt.Errorf("iperf3 server not listening yet: %s", srvOut.String())
		}
		return err
	})
	out, err := testutil.RunInErr(cliNS, "iperf3", "-c", addr.String(), "-t", "5", "-J")
	if err != nil {
		b.Fatalf("iperf3 to %s: %v", addr, err)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.End.SumReceived.BitsPerSecond == 0 {
		b.Fatalf("iperf3 to %s: no result (%v): %s", addr, err, out)
	}
	return res.End.SumReceived.BitsPerSecond
}

func name(ns string) string { return filepath.Base(ns) }
