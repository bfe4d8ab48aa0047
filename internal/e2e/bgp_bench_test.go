package e2e_test

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gobgpapi "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/server"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/testutil"
)

// routeEvents records, per destination, when routes appeared and went
// (netlink subscription in a namespace).
type routeEvents struct {
	mu       sync.Mutex
	added    map[netip.Prefix]time.Time
	deleted  map[netip.Prefix]time.Time
	newCount int
	kick     chan struct{}
}

func watchRouteEvents(b *testing.B, ns string) *routeEvents {
	b.Helper()
	h, err := vnetns.GetFromPath(ns)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	ch := make(chan netlink.RouteUpdate, 1<<16)
	done := make(chan struct{})
	b.Cleanup(func() { close(done) })
	opts := netlink.RouteSubscribeOptions{Namespace: &h, ReceiveBufferSize: 64 << 20}
	if err := netlink.RouteSubscribeWithOptions(ch, done, opts); err != nil {
		b.Fatal(err)
	}
	w := &routeEvents{added: map[netip.Prefix]time.Time{}, deleted: map[netip.Prefix]time.Time{}, kick: make(chan struct{}, 1)}
	go func() {
		for u := range ch {
			now := time.Now()
			if u.Dst == nil || u.Protocol != 12 {
				continue
			}
			ones, _ := u.Dst.Mask.Size()
			a, _ := netip.AddrFromSlice(u.Dst.IP.To4())
			p := netip.PrefixFrom(a, ones)
			w.mu.Lock()
			switch u.Type {
			case unix.RTM_NEWROUTE:
				w.added[p] = now
				w.newCount++
			case unix.RTM_DELROUTE:
				w.deleted[p] = now
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

// wait polls cond (under the lock) until it is true or timeout passes.
func (w *routeEvents) wait(timeout time.Duration, cond func() bool) bool {
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		ok := cond()
		w.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-w.kick:
		case <-deadline:
			return false
		}
	}
}

// updateTimes captures, with tcpdump in ns, the arrival time of every BGP
// UPDATE on eth0 (the match from reference/lab.md §4).
type updateTimes struct {
	mu    sync.Mutex
	times []time.Time
}

func captureUpdates(b *testing.B, ns string) *updateTimes {
	b.Helper()
	testutil.RequireCmd(b, "tcpdump")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", filepath.Base(ns), "tcpdump", "-i", "eth0", "-n", "-tt", "-l",
		"-Q", "in", "tcp port 179 and tcp[((tcp[12:1] & 0xf0) >> 2) + 18] = 2")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); _ = cmd.Wait() })
	u := &updateTimes{}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 0 {
				continue
			}
			sec, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				continue
			}
			u.mu.Lock()
			u.times = append(u.times, time.Unix(0, int64(sec*1e9)))
			u.mu.Unlock()
		}
	}()
	time.Sleep(500 * time.Millisecond) // tcpdump attaches
	return u
}

// firstAfter is the first UPDATE seen after t0.
func (u *updateTimes) firstAfter(t0 time.Time) (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, t := range u.times {
		if t.After(t0) {
			return t, true
		}
	}
	return time.Time{}, false
}

const benchPoolNoEncap = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: bgp
spec:
  cidr: 10.240.0.0/12
  blockSize: 26
  ipipMode: Never
  vxlanMode: Never
  natOutgoing: false
`

// torPeer makes n1 peer with a BIRD on the router (10.99.0.1) whose
// static protocols are given; the mesh is off.
func torPeer(b *testing.B, c *cluster, statics string) *bird {
	b.Helper()
	tor := startBird(b, c.lab.Router, torBirdConf(statics))
	c.calicoctl(b, benchPoolNoEncap+"---\n"+meshOff+`---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor
spec:
  peerIP: 10.99.0.1
  asNumber: 64512
`, "apply", "-f", "-")
	return tor
}

// torBirdConf is the ToR's BIRD configuration: one iBGP session to n1
// (10.99.0.11) exporting the given static protocols.
func torBirdConf(statics string) string {
	return fmt.Sprintf(`router id 10.99.0.1;
protocol device { scan time 2; }
%s
protocol bgp n1 {
  local 10.99.0.1 as 64512; neighbor 10.99.0.11 as 64512; direct; next hop self;
  import none; export all; graceful restart; connect retry time 1; connect delay time 1; error wait time 1,5;
}
`, statics)
}

// BenchmarkBGPUpdateToKernel: a BIRD ToR announces and withdraws one /26
// at a time (birdc enable/disable of a static protocol); on the node, the
// time from the UPDATE arriving on eth0 (tcpdump timestamp) to the route
// appearing or going in the kernel, as the BIRD figure was
// measured: by a netlink notification to this process and (the -ipmon
// figures, the BIRD figure's exact method) by `ip -ts monitor route`.
// 20 announcements and 20 withdrawals.
func BenchmarkBGPUpdateToKernel(b *testing.B) {
	c := newLab(b)
	c.n1 = c.lab.AddNode("n1", 99, 11)
	c.nodes = []*labtest.Node{c.n1}
	const samples = 20
	var statics strings.Builder
	for i := range samples {
		fmt.Fprintf(&statics, "protocol static s%d { disabled; route 10.241.%d.0/26 blackhole; }\n", i, i)
	}
	tor := torPeer(b, c, statics.String())
	c.startBGP(b)
	c.waitEstablished(b, c.n1, 1)
	// Until its sessions have settled (1 s Established, checked every 2 s)
	// the daemon keeps protocol 12 routes nobody announces (restart
	// protection), which would delay the first withdrawal.
	time.Sleep(3 * time.Second)
	w := watchRouteEvents(b, c.n1.NS)
	mon := monitorRoutes(b, c.n1.NS)
	u := captureUpdates(b, c.n1.NS)
	var add, del, addMon, delMon []time.Duration
	b.ResetTimer()
	for range b.N {
		for i := range samples {
			dst := netip.MustParsePrefix(fmt.Sprintf("10.241.%d.0/26", i))
			for _, op := range []string{"enable", "disable"} {
				t0 := time.Now()
				if out, err := tor.birdc(op, fmt.Sprintf("s%d", i)); err != nil {
					b.Fatalf("birdc %s: %v %s", op, err, out)
				}
				var seen time.Time
				ok := w.wait(10*time.Second, func() bool {
					m := w.added
					if op == "disable" {
						m = w.deleted
					}
					t, ok := m[dst]
					seen = t
					return ok && t.After(t0)
				})
				if !ok {
					b.Fatalf("%s %s: no kernel change", op, dst)
				}
				var upd time.Time
				err := testutil.Poll(3*time.Second, func() error {
					var ok bool
					if upd, ok = u.firstAfter(t0); !ok {
						return fmt.Errorf("none")
					}
					return nil
				})
				if err != nil {
					b.Fatalf("%s %s: no UPDATE captured", op, dst)
				}
				if d := seen.Sub(upd); d > 20*time.Millisecond {
					b.Logf("slow %s of %s: %v (UPDATE at %s, kernel at %s, birdc at %s)", op, dst, d,
						upd.Format("15:04:05.000000"), seen.Format("15:04:05.000000"), t0.Format("15:04:05.000000"))
				}
				mt, ok := mon.after(dst, op == "disable", t0)
				if !ok {
					b.Fatalf("%s %s: no `ip monitor` line", op, dst)
				}
				if op == "enable" {
					add, addMon = append(add, seen.Sub(upd)), append(addMon, mt.Sub(upd))
				} else {
					del, delMon = append(del, seen.Sub(upd)), append(delMon, mt.Sub(upd))
				}
			}
		}
	}
	b.StopTimer()
	for _, l := range strings.Split(c.procs["n1"].Stderr.String(), "\n") {
		if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
			b.Log(l)
		}
	}
	for _, l := range strings.Split(scrape(b, c.n1), "\n") {
		if strings.HasPrefix(l, "calico_node_reconcile_seconds_sum") || strings.HasPrefix(l, "calico_node_reconcile_seconds_count") {
			b.Log(l)
		}
	}
	b.ReportMetric(ms(percentile(add, 0.5)), "announce-p50-ms")
	b.ReportMetric(ms(percentile(add, 0)), "announce-min-ms")
	b.ReportMetric(ms(percentile(add, 1)), "announce-max-ms")
	b.ReportMetric(ms(percentile(del, 0.5)), "withdraw-p50-ms")
	b.ReportMetric(ms(percentile(del, 1)), "withdraw-max-ms")
	b.ReportMetric(ms(percentile(addMon, 0.5)), "announce-ipmon-p50-ms")
	b.ReportMetric(ms(percentile(addMon, 1)), "announce-ipmon-max-ms")
	b.ReportMetric(ms(percentile(delMon, 0.5)), "withdraw-ipmon-p50-ms")
	b.ReportMetric(ms(percentile(delMon, 1)), "withdraw-ipmon-max-ms")
	b.ReportMetric(float64(len(add)), "samples")
}

// BenchmarkBGP10kRoutes: the ToR announces 10,000 /32s; time from the
// session reaching Established (the daemon's log) to all 10,000 routes in
// the kernel (netlink notifications), and the daemon's RSS and CPU before
// the peer exists and after the routes are in. BenchmarkBGP10kFloorGoBGP
// is the same exchange without calico code (the README's Limits has
// both, and how the time splits between GoBGP and the daemon). Under
// load the netlink reader of this process can itself lag the kernel.
func BenchmarkBGP10kRoutes(b *testing.B) {
	c := newLab(b)
	c.n1 = c.lab.AddNode("n1", 99, 11)
	c.nodes = []*labtest.Node{c.n1}
	const n = 10000
	c.calicoctl(b, benchPoolNoEncap+"---\n"+meshOff, "apply", "-f", "-")
	c.startBGP(b)
	p := c.procs["n1"]
	time.Sleep(time.Second)
	before, err := labtest.Stats(p.PID)
	if err != nil {
		b.Fatal(err)
	}
	onCPU := taskCPU(b, p.PID)
	w := watchRouteEvents(b, c.n1.NS)
	b.ResetTimer()
	torPeer(b, c, bulkStatics(n))
	if !w.wait(60*time.Second, func() bool { return w.newCount >= n }) {
		b.Fatalf("only %d routes arrived", w.newCount)
	}
	var times []time.Time
	w.mu.Lock()
	for _, t := range w.added {
		times = append(times, t)
	}
	w.mu.Unlock()
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	last := times[len(times)-1]
	b.StopTimer()
	onCPU = taskCPU(b, p.PID) - onCPU
	after, err := labtest.Stats(p.PID)
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(scrape(b, c.n1), "\n") {
		if strings.HasPrefix(l, "calico_node_reconcile_seconds_sum") || strings.HasPrefix(l, "calico_node_reconcile_seconds_count") {
			b.Log(l)
		}
	}
	for _, l := range strings.Split(p.Stderr.String(), "\n") {
		if strings.Contains(l, "level=ERROR") {
			b.Log(tail(l, 1)[:min(len(l), 300)])
		}
	}
	est, ok := establishedAt(p.Stderr.String(), "10.99.0.1")
	if !ok {
		b.Fatalf("no Established in the log")
	}
	b.ReportMetric(ms(last.Sub(est)), "established-to-all-ms")
	b.ReportMetric(ms(times[0].Sub(est)), "established-to-first-ms")
	b.ReportMetric(ms(times[len(times)/2].Sub(est)), "established-to-half-ms")
	b.ReportMetric(float64(before.RSSKiB)/1024, "rss-before-MiB")
	b.ReportMetric(float64(after.RSSKiB)/1024, "rss-after-MiB")
	b.ReportMetric(float64(after.HWMKiB)/1024, "rss-peak-MiB")
	b.ReportMetric(ms(after.CPU-before.CPU), "cpu-ms")
	b.ReportMetric(ms(onCPU), "oncpu-ms")
}

// taskCPU is the time the threads of process pid have run, from the
// scheduler's statistics (ns, unlike /proc/<pid>/stat's clock ticks of 10
// ms): a cost figure that, unlike wall time, other load on the machine
// barely moves. Threads that ended are not counted (Go keeps its threads).
func taskCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	dirs, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		b.Fatal(err)
	}
	var sum time.Duration
	for _, d := range dirs {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, d.Name()))
		if err != nil {
			continue // the thread ended
		}
		if f := strings.Fields(string(raw)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			sum += time.Duration(ns)
		}
	}
	return sum
}

// bulkStatics is a BIRD static protocol of n /32s in 10.250.0.0/16.
func bulkStatics(n int) string {
	var statics strings.Builder
	statics.WriteString("protocol static bulk {\n")
	for i := range n {
		fmt.Fprintf(&statics, "  route 10.250.%d.%d/32 blackhole;\n", i/256, i%256)
	}
	statics.WriteString("}\n")
	return statics.String()
}

var stateLine = regexp.MustCompile(`^time=(\S+) .*msg="BGP session state" .*peer=(\S+) state=Established`)

// establishedAt finds when the daemon logged peer as Established.
func establishedAt(log, peer string) (time.Time, bool) {
	for _, l := range strings.Split(log, "\n") {
		m := stateLine.FindStringSubmatch(l)
		if m != nil && m[2] == peer {
			t, err := time.Parse(time.RFC3339Nano, m[1])
			return t, err == nil
		}
	}
	return time.Time{}, false
}

// BenchmarkBGPConvergenceFromCNIAdd: as BenchmarkConvergenceFromCNIAdd,
// with the route carried by BGP: two calico-node processes in a mesh, a
// pool without encapsulation per sample; from the start of the ADD on n1
// to the block's route (proto bird) in n2's kernel.
func BenchmarkBGPConvergenceFromCNIAdd(b *testing.B) {
	c := newLab(b)
	c.n1, c.n2 = c.lab.AddNode("n1", 99, 11), c.lab.AddNode("n2", 99, 12)
	c.nodes = []*labtest.Node{c.n1, c.n2}
	c.startBGP(b)
	c.waitEstablished(b, c.n2, 1)
	w := watchRouteEvents(b, c.n2.NS)
	const samples = 20
	var fromStart []time.Duration
	b.ResetTimer()
	for it := range b.N {
		for i := range samples {
			name := fmt.Sprintf("conv%d-%d", it, i)
			cidr := netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", 100+i%100, 2*it))
			b.StopTimer()
			c.lab.Pool(name, cidr.String(), api.VXLANModeNever, api.IPIPModeNever, false)
			time.Sleep(200 * time.Millisecond) // both daemons know the pool
			b.StartTimer()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			t0 := time.Now()
			pod, err := c.n1.CNIAdd(ctx, fmt.Sprintf("c%d-%d", it, i), name)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			var seen time.Time
			if !w.wait(convergeTimeout, func() bool { t, ok := w.added[block(pod)]; seen = t; return ok }) {
				b.Fatalf("no BGP route for %s on n2", block(pod))
			}
			fromStart = append(fromStart, seen.Sub(t0))
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(percentile(fromStart, 0.5)), "start-p50-ms")
	b.ReportMetric(ms(percentile(fromStart, 0.99)), "start-p99-ms")
	b.ReportMetric(ms(percentile(fromStart, 1)), "start-max-ms")
	b.ReportMetric(float64(len(fromStart)), "samples")
}

// BenchmarkBGPMesh3: three calico-node processes start at once; time from
// the first start to the last mesh session Established (daemon logs).
func BenchmarkBGPMesh3(b *testing.B) {
	c := newLab(b)
	c.sameSubnet(3)
	c.calicoctl(b, benchPoolNoEncap, "apply", "-f", "-")
	b.ResetTimer()
	c.startBGP(b)
	for _, n := range c.nodes {
		c.waitEstablished(b, n, 2)
	}
	b.StopTimer()
	first := c.procs["n1"].Start
	var last time.Time
	for _, n := range c.nodes {
		p := c.procs[n.Name]
		if p.Start.Before(first) {
			first = p.Start
		}
		for _, peer := range c.nodes {
			if peer == n {
				continue
			}
			t, ok := establishedAt(p.Stderr.String(), peer.IP.Addr().String())
			if !ok {
				b.Fatalf("%s: no Established for %s", n.Name, peer.Name)
			}
			if t.After(last) {
				last = t
			}
		}
	}
	b.ReportMetric(ms(last.Sub(first)), "start-to-established-ms")
}

// BenchmarkBGP10kFloorGoBGP is BenchmarkBGP10kRoutes's floor set by the
// BGP library alone: a bare GoBGP v3.37.0 server (no calico code: this
// test binary re-run in n1's namespace as BenchmarkBareGoBGPHelper)
// receives the same 10,000 /32s from the same BIRD; time from its
// session's Established event to all 10,000 in its RIB. Variants:
//   - watch: besides the peer watch, a BEST-path watch (with Init), as
//     the daemon's speaker has, whose callback only counts paths: the
//     time to the 10,000th path delivered to a watcher;
//   - rib: no table watch; the global RIB's destination count polled
//     every 2 ms (GetTable), the time it first reads 10,000.
//
// Also reported: the helper's RSS and CPU before the peer exists and
// after the routes are in, as BenchmarkBGP10kRoutes reports the daemon's.
func BenchmarkBGP10kFloorGoBGP(b *testing.B) {
	for _, v := range []string{"watch", "rib"} {
		b.Run(v, func(b *testing.B) { benchFloor10k(b, v) })
	}
}

func benchFloor10k(b *testing.B, mode string) {
	const n = 10000
	c := newLab(b)
	c.n1 = c.lab.AddNode("n1", 99, 11)
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", filepath.Base(c.n1.NS), exe,
		"-test.run", "^$", "-test.bench", "^BenchmarkBareGoBGPHelper$", "-test.benchtime", "1x")
	cmd.Env = append(os.Environ(), bareHelperEnv+"="+mode)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var stderr labtest.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); _ = cmd.Wait() })
	lines := bufio.NewScanner(out)
	next := func(prefix string) []string {
		for lines.Scan() {
			if f := strings.Fields(lines.Text()); len(f) > 0 && f[0] == prefix {
				return f[1:]
			}
		}
		b.Fatalf("helper ended before %s: %s", prefix, stderr.String())
		return nil
	}
	next("READY")
	time.Sleep(time.Second) // as BenchmarkBGP10kRoutes: settled before the peer
	before, err := labtest.Stats(cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	onCPU := taskCPU(b, cmd.Process.Pid)
	b.ResetTimer()
	startBird(b, c.lab.Router, torBirdConf(bulkStatics(n)))
	f := next("DONE") // established and last, Unix µs
	b.StopTimer()
	onCPU = taskCPU(b, cmd.Process.Pid) - onCPU
	after, err := labtest.Stats(cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	est, _ := strconv.ParseInt(f[0], 10, 64)
	last, _ := strconv.ParseInt(f[1], 10, 64)
	b.ReportMetric(float64(last-est)/1000, "established-to-all-ms")
	b.ReportMetric(float64(before.RSSKiB)/1024, "rss-before-MiB")
	b.ReportMetric(float64(after.RSSKiB)/1024, "rss-after-MiB")
	b.ReportMetric(float64(after.HWMKiB)/1024, "rss-peak-MiB")
	b.ReportMetric(ms(after.CPU-before.CPU), "cpu-ms")
	b.ReportMetric(ms(onCPU), "oncpu-ms")
}

// bareHelperEnv selects BenchmarkBareGoBGPHelper's mode (watch or rib).
const bareHelperEnv = "CALICO_BENCH_BARE_GOBGP"

// BenchmarkBareGoBGPHelper is BenchmarkBGP10kFloorGoBGP's helper process
// (skipped unless run by it): in its namespace a GoBGP server (AS 64512,
// router ID 10.99.0.11, passive peer 10.99.0.1) with the peer watch and,
// in watch mode, a counting BEST watch. It prints READY when listening,
// then DONE with the Unix µs of Established and of the 10,000th route.
func BenchmarkBareGoBGPHelper(b *testing.B) {
	mode := os.Getenv(bareHelperEnv)
	if mode == "" {
		b.Skip("helper process of BenchmarkBGP10kFloorGoBGP")
	}
	const n = 10000
	ctx := context.Background()
	srv := server.NewBgpServer(server.LoggerOption(quietLog{}))
	go srv.Serve()
	err := srv.StartBgp(ctx, &gobgpapi.StartBgpRequest{Global: &gobgpapi.Global{
		Asn: 64512, RouterId: "10.99.0.11", ListenPort: 179, ListenAddresses: []string{"0.0.0.0"},
		GracefulRestart: &gobgpapi.GracefulRestart{Enabled: true},
	}})
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var est, last time.Time
	got := 0
	req := &gobgpapi.WatchEventRequest{Peer: &gobgpapi.WatchEventRequest_Peer{}}
	if mode == "watch" {
		req.Table = &gobgpapi.WatchEventRequest_Table{Filters: []*gobgpapi.WatchEventRequest_Table_Filter{{Type: gobgpapi.WatchEventRequest_Table_Filter_BEST, Init: true}}}
	}
	err = srv.WatchEvent(ctx, req, func(r *gobgpapi.WatchEventResponse) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if pe := r.GetPeer(); pe != nil {
			if pe.Peer.GetState().GetSessionState() == gobgpapi.PeerState_ESTABLISHED && est.IsZero() {
				est = now
			}
			return
		}
		for _, p := range r.GetTable().GetPaths() {
			if !p.IsWithdraw && p.NeighborIp == "10.99.0.1" {
				got++
			}
		}
		if got >= n && last.IsZero() {
			last = now
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	family := &gobgpapi.Family{Afi: gobgpapi.Family_AFI_IP, Safi: gobgpapi.Family_SAFI_UNICAST}
	peer := &gobgpapi.Peer{
		Conf:            &gobgpapi.PeerConf{NeighborAddress: "10.99.0.1", PeerAsn: 64512},
		Transport:       &gobgpapi.Transport{PassiveMode: true}, // BIRD dials
		Timers:          &gobgpapi.Timers{Config: &gobgpapi.TimersConfig{ConnectRetry: 1}},
		GracefulRestart: &gobgpapi.GracefulRestart{Enabled: true},
		AfiSafis: []*gobgpapi.AfiSafi{{
			Config:            &gobgpapi.AfiSafiConfig{Family: family, Enabled: true},
			MpGracefulRestart: &gobgpapi.MpGracefulRestart{Config: &gobgpapi.MpGracefulRestartConfig{Enabled: true}},
		}},
	}
	if err := srv.AddPeer(ctx, &gobgpapi.AddPeerRequest{Peer: peer}); err != nil {
		b.Fatal(err)
	}
	fmt.Println("READY")
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("not all %d routes after 90 s (%d delivered to the watch)", n, got)
		}
		if mode == "rib" {
			t, err := srv.GetTable(ctx, &gobgpapi.GetTableRequest{TableType: gobgpapi.TableType_GLOBAL, Family: family})
			if err == nil && t.NumDestination >= n {
				mu.Lock()
				last = time.Now()
				mu.Unlock()
			}
		}
		mu.Lock()
		done := !last.IsZero() && !est.IsZero()
		mu.Unlock()
		if done {
			break
		}
	}
	mu.Lock()
	fmt.Printf("DONE %d %d\n", est.UnixMicro(), last.UnixMicro())
	mu.Unlock()
	srv.Stop()
}

// quietLog discards GoBGP's log (at its default level, info).
type quietLog struct{}

func (quietLog) Panic(string, gobgplog.Fields) {}
func (quietLog) Fatal(string, gobgplog.Fields) {}
func (quietLog) Error(string, gobgplog.Fields) {}
func (quietLog) Warn(string, gobgplog.Fields)  {}
func (quietLog) Info(string, gobgplog.Fields)  {}
func (quietLog) Debug(string, gobgplog.Fields) {}
func (quietLog) SetLevel(gobgplog.LogLevel)    {}
func (quietLog) GetLevel() gobgplog.LogLevel   { return gobgplog.InfoLevel }
