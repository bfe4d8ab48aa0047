package agent_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/kv"
	"github.com/onecalico/calico/internal/testutil"
)

// scalePool holds every remote node's block: 10.128.0.0/10 has 65,536
// /26 blocks. Remote node i has block i and the block's first address as
// its VXLAN tunnel address; its underlay address is in 10.200.0.0/16
// (nothing needs to reach it: only the FDB points there).
const scalePool = "10.128.0.0/10"

func scaleBlock(i int) netip.Prefix {
	b := netip.MustParsePrefix(scalePool).Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(i) << (32 - labtest.BlockSize)
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), labtest.BlockSize)
}

// remoteNodeWrites are the writes for remote node i: its Node (address,
// VXLAN tunnel address and MAC) and one confirmed empty block with its
// affinity, in upstream's key layout.
func remoteNodeWrites(i int) ([]kv.Write, error) {
	name := fmt.Sprintf("r%05d", i)
	n := api.NewNode()
	n.Name = name
	n.Spec.BGP = &api.NodeBGPSpec{IPv4Address: fmt.Sprintf("10.200.%d.%d/16", i/250, 1+i%250)}
	cidr := scaleBlock(i)
	n.Spec.IPv4VXLANTunnelAddr = cidr.Addr().String()
	n.Spec.VXLANTunnelMACAddr = agent.VTEPMAC(name).String()
	v, err := datastore.Encode(n)
	if err != nil {
		return nil, err
	}
	k, _ := api.LookupKind(api.KindNode)
	return append([]kv.Write{{Key: k.Key("", name), Value: v, Rev: kv.Unconditional}}, labtest.ClaimWrites(name, cidr)...), nil
}

// writeRemoteNodes writes nodes [from, to) in transactions of about 100
// operations (etcd's default limit is 128 per transaction).
func writeRemoteNodes(b *testing.B, st kv.Store, from, to int) {
	b.Helper()
	var batch []kv.Write
	flush := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := st.Commit(ctx, batch); err != nil {
			b.Fatalf("write remote nodes: %v", err)
		}
		batch = batch[:0]
	}
	for i := from; i < to; i++ {
		w, err := remoteNodeWrites(i)
		if err != nil {
			b.Fatal(err)
		}
		batch = append(batch, w...)
		if len(batch) >= 99 {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
}

// kernelCounts are the daemon's objects in a namespace: routes via the
// VXLAN device, its permanent neighbours and its permanent FDB entries.
type kernelCounts struct{ routes, arp, fdb int }

func countKernel(h *netlink.Handle) (kernelCounts, error) {
	var c kernelCounts
	l, err := h.LinkByName(agent.VXLANDevice)
	if err != nil {
		return c, nil // not created yet
	}
	idx := l.Attrs().Index
	rs, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{LinkIndex: idx}, netlink.RT_FILTER_OIF)
	if err != nil {
		return c, err
	}
	c.routes = len(rs)
	ns, err := h.NeighList(idx, unix.AF_INET)
	if err != nil {
		return c, err
	}
	for _, n := range ns {
		if n.State&unix.NUD_PERMANENT != 0 {
			c.arp++
		}
	}
	fdb, err := h.NeighList(idx, unix.AF_BRIDGE)
	if err != nil {
		return c, err
	}
	for _, e := range fdb {
		if e.State&unix.NUD_PERMANENT != 0 && len(e.HardwareAddr) == 6 && e.HardwareAddr.String() != "00:00:00:00:00:00" {
			c.fdb++
		}
	}
	return c, nil
}

// BenchmarkRemoteNodes: one real calico-node (the binary, in a throwaway
// namespace) whose datastore holds 1,000 and then 10,000 other nodes
// (Node with VXLAN tunnel address and MAC, one confirmed /26 block each),
// written straight into etcd; pool 10.128.0.0/10, VXLAN Always.
//
// Reported per size: wall clock from process start to the poll (every
// 20 ms, as felix-observed.md §(a)) that first sees every route, ARP and
// FDB entry in the kernel; the daemon's VmHWM and CPU (utime+stime) at
// that point; then the CPU of a full resync that finds nothing to change
// (asked for on the control socket, 20 in a row, mean; the route change
// counter must not move), and the kernel objects after a restart.
//
// For a breakdown: SCALE_NODE_ENV="FELIX_LOGSEVERITYSCREEN=Debug
// GODEBUG=gctrace=1" adds to the daemon's environment (later entries win),
// and SCALE_LOG=<file> writes its log there after the no-op resyncs.
func BenchmarkRemoteNodes(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) { benchRemoteNodes(b, n) })
	}
}

func benchRemoteNodes(b *testing.B, n int) {
	testutil.RequireRoot(b)
	e := testutil.StartEtcd(b)
	lab := labtest.New(b, testutil.NewNetNS, e.Endpoint)
	n1 := lab.AddNode("n1", 99, 11)
	lab.Pool("scale", scalePool, api.VXLANModeAlways, api.IPIPModeNever, true)
	// n1's own block is past every remote node's.
	own := scaleBlock(n)
	lab.ClaimBlock("n1", own.Addr())
	lab.TunnelAddress("n1", own.Addr())
	t0 := time.Now()
	writeRemoteNodes(b, lab.Store, 0, n)
	b.Logf("wrote %d remote nodes in %v", n, time.Since(t0).Round(time.Millisecond))
	bin := labtest.Binary(b)
	h := n1.Handle()
	want := kernelCounts{routes: n, arp: n, fdb: n}
	sock := filepath.Join(n1.RunDir(), agent.ControlSocketName)

	var toKernel time.Duration
	var atKernel, after labtest.ProcStats
	var resyncCPU time.Duration
	var anon, file float64
	b.ResetTimer()
	for range b.N {
		p := n1.StartProcess(bin, n1.Env(strings.Fields(os.Getenv("SCALE_NODE_ENV"))...))
		var last kernelCounts
		err := labtest.Poll(60*time.Second, func() error {
			time.Sleep(20 * time.Millisecond)
			c, err := countKernel(h)
			if err == nil && c != want {
				err = fmt.Errorf("kernel has %+v, want %+v", c, want)
			}
			last = c
			return err
		})
		if err != nil {
			b.Fatalf("%v (last %+v); log:\n%s", err, last, p.Stderr)
		}
		toKernel = time.Since(p.Start)
		if atKernel, err = labtest.Stats(p.PID); err != nil {
			b.Fatal(err)
		}
		if _, err := p.WaitReady(30 * time.Second); err != nil {
			b.Fatal(err)
		}
		resyncCPU = noopResyncs(b, p, sock, 20)
		if path := os.Getenv("SCALE_LOG"); path != "" {
			log := fmt.Sprintf("kernel complete after %v; log to the end of the no-op resyncs:\n%s", toKernel, p.Stderr)
			if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		if after, err = labtest.Stats(p.PID); err != nil {
			b.Fatal(err)
		}
		anon, file = rssParts(b, p.PID)
		if _, err := p.Stop(10 * time.Second); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if c, err := countKernel(h); err != nil || c != want {
		b.Fatalf("after the resyncs and stop the kernel has %+v (%v), want %+v", c, err, want)
	}
	b.ReportMetric(ms(toKernel), "to-kernel-ms")
	b.ReportMetric(float64(atKernel.HWMKiB)/1024, "hwm-at-kernel-MB")
	b.ReportMetric(atKernel.CPU.Seconds(), "cpu-at-kernel-s")
	b.ReportMetric(float64(after.HWMKiB)/1024, "hwm-MB")
	b.ReportMetric(ms(resyncCPU), "noop-resync-cpu-ms")
	b.ReportMetric(anon, "rss-anon-end-MB")
	b.ReportMetric(file, "rss-file-end-MB")
}

// rssParts reads the daemon's resident anonymous memory (Go's heap,
// stacks and runtime) and file-backed memory (the binary's pages) from
// /proc, in MB, to tell what VmHWM is made of.
func rssParts(b *testing.B, pid int) (anon, file float64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		var kib float64
		fmt.Sscan(f[1], &kib)
		switch f[0] {
		case "RssAnon:":
			anon = kib / 1024
		case "RssFile:":
			file = kib / 1024
		}
	}
	return anon, file
}

// noopResyncs asks the daemon for count full resyncs one after another,
// each waiting for the daemon's next completed apply, and returns the mean
// CPU per resync. The daemon must make no route changes.
func noopResyncs(b *testing.B, p *labtest.Process, sock string, count int) time.Duration {
	b.Helper()
	s0, err := p.Status()
	if err != nil {
		b.Fatal(err)
	}
	before, err := labtest.Stats(p.PID)
	if err != nil {
		b.Fatal(err)
	}
	for i := range count {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		prev, err := agent.RequestResyncAt(ctx, sock)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		if err := labtest.Poll(30*time.Second, func() error {
			s, err := p.Status()
			if err == nil && !s.LastApply.After(prev.LastApply) {
				err = fmt.Errorf("resync %d not done", i)
			}
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
	after, err := labtest.Stats(p.PID)
	if err != nil {
		b.Fatal(err)
	}
	s1, err := p.Status()
	if err != nil {
		b.Fatal(err)
	}
	if s1.RouteChanges != s0.RouteChanges || len(s1.Errors) > 0 {
		b.Fatalf("no-op resyncs changed routes: %d -> %d (errors %v)", s0.RouteChanges, s1.RouteChanges, s1.Errors)
	}
	return (after.CPU - before.CPU) / time.Duration(count)
}

// BenchmarkRemoteNodesInProcess is BenchmarkRemoteNodes with the daemon
// in the test process, for profiling: 10,000 remote nodes to ready, then
// 20 no-op full resyncs. RESYNC_CPUPROFILE=<file> writes a CPU profile of
// the resyncs alone, START_CPUPROFILE=<file> one from start to ready;
// READY_HEAPPROFILE=<file> a heap profile when the
// daemon is ready; PEAK_HEAPPROFILE=<file> one when the first route is in
// the kernel (the start's peak); -cpuprofile/-memprofile cover the whole run (etcd runs
// in the same process, so its cost shows too, as in heap-inuse-MB).
func BenchmarkRemoteNodesInProcess(b *testing.B) {
	testutil.RequireRoot(b)
	const n = 10000
	e := testutil.StartEtcd(b)
	lab := labtest.New(b, testutil.NewNetNS, e.Endpoint)
	n1 := lab.AddNode("n1", 99, 11)
	lab.Pool("scale", scalePool, api.VXLANModeAlways, api.IPIPModeNever, true)
	own := scaleBlock(n)
	lab.ClaimBlock("n1", own.Addr())
	lab.TunnelAddress("n1", own.Addr())
	writeRemoteNodes(b, lab.Store, 0, n)
	cfg := n1.AgentConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if path := os.Getenv("PEAK_HEAPPROFILE"); path != "" {
			go heapAtFirstRoute(b, n1.Handle(), path)
		}
		stopStart := func() {}
		if path := os.Getenv("START_CPUPROFILE"); path != "" {
			stopStart = resyncProfile(b, path)
		}
		r := n1.StartAgent(cfg)
		if err := r.WaitReady(60 * time.Second); err != nil {
			b.Fatal(err)
		}
		ready := time.Since(t0)
		stopStart()
		if path := os.Getenv("READY_HEAPPROFILE"); path != "" {
			writeHeapProfile(b, path)
		}
		stop := func() {}
		if path := os.Getenv("RESYNC_CPUPROFILE"); path != "" {
			stop = resyncProfile(b, path)
		}
		t1 := time.Now()
		for range 20 {
			prev := r.Status().LastApply
			r.RequestResync()
			if err := labtest.Poll(30*time.Second, func() error {
				if !r.Status().LastApply.After(prev) {
					return fmt.Errorf("resync not done")
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
		resyncs := time.Since(t1)
		stop()
		b.ReportMetric(ms(ready), "ready-ms")
		b.ReportMetric(ms(resyncs)/20, "resync-wall-ms")
		var mem runtime.MemStats
		runtime.ReadMemStats(&mem)
		b.ReportMetric(float64(mem.HeapInuse)/(1<<20), "heap-inuse-MB")
		if err := r.Stop(); err != nil {
			b.Fatal(err)
		}
	}
}

// heapAtFirstRoute writes a heap profile to path (for PEAK_HEAPPROFILE)
// once the first route is in the kernel, after a collection: what is live
// while the routes go in, where the daemon's heap peaks.
func heapAtFirstRoute(b *testing.B, h *netlink.Handle, path string) {
	for range 3000 {
		if c, err := countKernel(h); err == nil && c.routes > 0 {
			runtime.GC()
			writeHeapProfile(b, path)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// writeHeapProfile writes a heap profile (allocations since the start
// and what is live now) to path, for READY_HEAPPROFILE.
func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// resyncProfile writes a CPU profile of the resyncs to path (for
// RESYNC_CPUPROFILE) and returns the function that ends it.
func resyncProfile(b *testing.B, path string) func() {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
