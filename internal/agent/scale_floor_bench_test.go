package agent_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/dataplane/route"
	"github.com/onecalico/calico/internal/dataplane/tunnel"
	"github.com/onecalico/calico/internal/testutil"
)

// BenchmarkRouteFloor: the kernel's own cost of the 10,000 routes of
// BenchmarkRemoteNodes (`<block> via <tunnel addr> dev vxlan.calico
// onlink proto 80`), each variant in a fresh namespace with a VXLAN
// device and nothing else:
//
//   - ours: route.ApplyWith with a Batcher, the daemon's own call;
//   - ip-batch: `ip -batch` with one `route replace` line per route;
//   - ip-batch-no-gw: the same routes as plain device routes, the control;
//   - ip-batch-nhid: one nexthop object per gateway (`nexthop add id N via
//     <gw> dev vxlan.calico onlink`) and the routes through them (`nhid
//     N`): the same forwarding, a different route shape (the hash then
//     includes the nexthop id), counted with the nexthop inserts;
//   - vteps: not routes but the 10,000 VTEPs' permanent neighbours and FDB
//     entries (20,000 entries), tunnel.SyncVTEPsWith with a Batcher, the
//     daemon's own call.
//
// The kernel keys its fib_info hash on the device, protocol, scope and
// metrics, not the gateway, so routes that differ only by gateway all
// land in one bucket and each insert walks every earlier one: quadratic.
// Without gateways all routes share one fib_info and it is linear.
// Reported: wall ms, and the system CPU of the inserting thread or
// process (the insert runs in its sendmsg), which a busy machine does not
// inflate as much.
func BenchmarkRouteFloor(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, v := range []string{"ours", "ip-batch", "ip-batch-no-gw", "ip-batch-nhid", "vteps"} {
			b.Run(fmt.Sprintf("routes=%d/%s", n, v), func(b *testing.B) { benchRouteFloor(b, n, v) })
		}
	}
}

func benchRouteFloor(b *testing.B, n int, variant string) {
	testutil.RequireRoot(b)
	testutil.RequireCmd(b, "ip")
	var wall, sys time.Duration
	for range b.N {
		ns := testutil.NewNetNS(b)
		h := testutil.Handle(b, ns)
		vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: agent.VXLANDevice}, VxlanId: 4096, Port: 4789}
		if err := h.LinkAdd(vx); err != nil {
			b.Fatal(err)
		}
		if err := h.LinkSetUp(vx); err != nil {
			b.Fatal(err)
		}
		routes := floorRoutes(n, variant != "ip-batch-no-gw")
		var w, s time.Duration
		if variant == "vteps" {
			w, s = insertVTEPs(b, h, ns, n)
			wall, sys = wall+w, sys+s
			testutil.DeleteNetNS(b, ns)
			continue
		}
		if variant == "ours" {
			w, s = insertOurs(b, h, ns, routes)
		} else {
			w, s = insertIPBatch(b, ns, routes, variant == "ip-batch-nhid")
		}
		wall, sys = wall+w, sys+s
		if got := countRoutes(b, h); got != n {
			b.Fatalf("%d routes installed, want %d", got, n)
		}
		testutil.DeleteNetNS(b, ns)
	}
	b.ReportMetric(ms(wall)/float64(b.N), "insert-ms")
	b.ReportMetric(ms(sys)/float64(b.N), "insert-sys-cpu-ms")
}

func floorRoutes(n int, gw bool) []route.Route {
	out := make([]route.Route, n)
	for i := range out {
		blk := scaleBlock(i)
		r := route.Route{Dst: blk, LinkName: agent.VXLANDevice, Protocol: 80}
		if gw {
			r.Gw, r.OnLink = blk.Addr(), true
		} else {
			r.Scope = netlink.SCOPE_LINK
		}
		out[i] = r
	}
	return out
}

// insertOurs runs the daemon's route call on a locked thread and returns
// its wall time and the thread's system CPU.
func insertOurs(b *testing.B, h *netlink.Handle, ns string, routes []route.Route) (time.Duration, time.Duration) {
	bt, err := route.NewBatcher(ns)
	if err != nil {
		b.Fatal(err)
	}
	defer bt.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s0 := threadSys(b)
	t0 := time.Now()
	res, err := route.ApplyWith(h, bt, route.Owner{Protocols: []int{80}}, routes)
	w := time.Since(t0)
	if err != nil || res.Added != len(routes) {
		b.Fatalf("apply: %+v %v", res, err)
	}
	return w, threadSys(b) - s0
}

// insertVTEPs sets n VTEPs' neighbours and FDB entries on the VXLAN
// device with the daemon's call on a locked thread, checks they are all
// there and returns the call's wall time and the thread's system CPU.
func insertVTEPs(b *testing.B, h *netlink.Handle, ns string, n int) (time.Duration, time.Duration) {
	vteps := make([]tunnel.VTEP, n)
	for i := range vteps {
		name := fmt.Sprintf("r%05d", i)
		vteps[i] = tunnel.VTEP{TunnelIP: scaleBlock(i).Addr(), MAC: agent.VTEPMAC(name),
			NodeIP: netip.AddrFrom4([4]byte{10, 200, byte(i / 250), byte(1 + i%250)})}
	}
	bt, err := tunnel.NewBatcher(ns)
	if err != nil {
		b.Fatal(err)
	}
	defer bt.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s0 := threadSys(b)
	t0 := time.Now()
	err = tunnel.SyncVTEPsWith(h, bt, agent.VXLANDevice, vteps)
	w := time.Since(t0)
	s := threadSys(b) - s0
	if err != nil {
		b.Fatal(err)
	}
	if c, err := countKernel(h); err != nil || c.arp != n || c.fdb != n {
		b.Fatalf("kernel has %+v (%v), want %d neighbours and FDB entries", c, err, n)
	}
	return w, s
}

func threadSys(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Stime.Nano())
}

// insertIPBatch writes one `route replace` line per route (with nhid, one
// `nexthop add` per route first and the routes through them) and runs `ip
// -batch` in the namespace; it returns ip's wall and system time.
func insertIPBatch(b *testing.B, ns string, routes []route.Route, nhid bool) (time.Duration, time.Duration) {
	var sb strings.Builder
	for i, r := range routes {
		if nhid {
			fmt.Fprintf(&sb, "nexthop add id %d via %s dev %s onlink proto 80\n", i+1, r.Gw, r.LinkName)
			continue
		}
		if r.Gw.IsValid() {
			fmt.Fprintf(&sb, "route replace %s via %s dev %s onlink proto 80\n", r.Dst, r.Gw, r.LinkName)
		} else {
			fmt.Fprintf(&sb, "route replace %s dev %s proto 80 scope link\n", r.Dst, r.LinkName)
		}
	}
	for i, r := range routes {
		if nhid {
			fmt.Fprintf(&sb, "route replace %s nhid %d proto 80\n", r.Dst, i+1)
		}
	}
	file := filepath.Join(b.TempDir(), "routes")
	if err := os.WriteFile(file, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command("ip", "-n", filepath.Base(ns), "-batch", file)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	w := time.Since(t0)
	if err != nil {
		b.Fatalf("ip -batch: %v: %s", err, out)
	}
	return w, cmd.ProcessState.SystemTime()
}

func countRoutes(b *testing.B, h *netlink.Handle) int {
	l, err := h.LinkByName(agent.VXLANDevice)
	if err != nil {
		b.Fatal(err)
	}
	rs, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{LinkIndex: l.Attrs().Index}, netlink.RT_FILTER_OIF)
	if err != nil {
		b.Fatal(err)
	}
	return len(rs)
}
