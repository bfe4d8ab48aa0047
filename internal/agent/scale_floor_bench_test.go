package agent_test

import (
	"fmt"
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
	"github.com/onecalico/calico/internal/testutil"
)

// BenchmarkRouteFloor: the kernel's own cost of the 10,000 routes of
// BenchmarkRemoteNodes (`<block> via <tunnel addr> dev vxlan.calico
// onlink proto 80`), each variant in a fresh namespace with a VXLAN
// device and nothing else:
//
//   - ours: route.ApplyWith with a Batcher, the daemon's own call;
//   - ip-batch: `ip -batch` with one `route replace` line per route;
//   - ip-batch-no-gw: the same routes as plain device routes, the control.
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
		for _, v := range []string{"ours", "ip-batch", "ip-batch-no-gw"} {
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
		if variant == "ours" {
			w, s = insertOurs(b, h, ns, routes)
		} else {
			w, s = insertIPBatch(b, ns, routes)
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

func threadSys(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Stime.Nano())
}

// insertIPBatch writes one `route replace` line per route and runs
// `ip -batch` in the namespace; it returns ip's wall and system time.
func insertIPBatch(b *testing.B, ns string, routes []route.Route) (time.Duration, time.Duration) {
	var sb strings.Builder
	for _, r := range routes {
		if r.Gw.IsValid() {
			fmt.Fprintf(&sb, "route replace %s via %s dev %s onlink proto 80\n", r.Dst, r.Gw, r.LinkName)
		} else {
			fmt.Fprintf(&sb, "route replace %s dev %s proto 80 scope link\n", r.Dst, r.LinkName)
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
