package agent_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/testutil"
)

// benchLab is a two-node VXLAN lab with n1's daemon as a real process.
func benchLab(b *testing.B) (*labtest.Lab, *labtest.Node, *labtest.Node, string) {
	b.Helper()
	testutil.RequireRoot(b)
	testutil.RequireCmd(b, "ip")
	e := testutil.StartEtcd(b)
	lab := labtest.New(b, testutil.NewNetNS, e.Endpoint)
	n1, n2 := lab.AddNode("n1", 99, 11), lab.AddNode("n2", 99, 12)
	lab.Pool("pool1", "10.244.0.0/16", api.VXLANModeAlways, api.IPIPModeNever, true)
	lab.Pool("conv", "10.245.0.0/16", api.VXLANModeAlways, api.IPIPModeNever, true)
	lab.TunnelAddress("n1", addr("10.244.1.0"))
	lab.TunnelAddress("n2", addr("10.244.2.0"))
	lab.PutNode("n2", n2.IP, netip.Addr{}) // n2 runs no daemon here
	return lab, n1, n2, labtest.Binary(b)
}

// percentile is nearest-rank (ceil(q*n)), as felix-observed.md uses.
func percentile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkConvergence: a new block for n2 is written to etcd; how long
// until n1's daemon (a real process) has its route in the kernel. The
// route is seen through a netlink route subscription in n1's namespace.
func BenchmarkConvergence(b *testing.B) {
	lab, n1, _, bin := benchLab(b)
	p := n1.StartProcess(bin, n1.Env())
	if _, err := p.WaitReady(20 * time.Second); err != nil {
		b.Fatal(err)
	}
	h, err := vnetns.GetFromPath(n1.NS)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	ch := make(chan netlink.RouteUpdate, 1024)
	done := make(chan struct{})
	defer close(done)
	if err := netlink.RouteSubscribeWithOptions(ch, done, netlink.RouteSubscribeOptions{Namespace: &h}); err != nil {
		b.Fatal(err)
	}
	const samples = 50
	var fromStart, fromAck []time.Duration
	b.ResetTimer()
	for range b.N {
		for i := range samples {
			cidr := netip.MustParsePrefix(fmt.Sprintf("10.245.%d.%d/26", len(fromStart)/4, 64*(len(fromStart)%4)))
			writes := labtest.ClaimWrites("n2", cidr)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			t0 := time.Now()
			_, err := lab.Store.Commit(ctx, writes)
			t1 := time.Now()
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			timeout := time.After(10 * time.Second)
		wait:
			for {
				select {
				case u := <-ch:
					if u.Type == unix.RTM_NEWROUTE && u.Dst != nil && u.Dst.String() == cidr.String() {
						t2 := time.Now()
						fromStart = append(fromStart, t2.Sub(t0))
						fromAck = append(fromAck, t2.Sub(t1))
						break wait
					}
				case <-timeout:
					out, _ := testutil.RunInErr(n1.NS, "ip", "route")
					b.Fatalf("sample %d: no route for %s; routes:\n%s\nlog:\n%s", i, cidr, out, p.Stderr)
				}
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(percentile(fromStart, 0.5)), "p50-ms")
	b.ReportMetric(ms(percentile(fromStart, 0.9)), "p90-ms")
	b.ReportMetric(ms(percentile(fromStart, 1)), "max-ms")
	b.ReportMetric(ms(percentile(fromAck, 0.5)), "p50-after-ack-ms")
	b.ReportMetric(ms(percentile(fromAck, 1)), "max-after-ack-ms")
}

// addPods creates count pods on n with addresses from n's block.
func addPods(n *labtest.Node, from, count int) {
	for i := range count {
		k := from + i
		n.AddPod(fmt.Sprintf("p%d", k), netip.AddrFrom4([4]byte{10, 244, byte(100 + k/250), byte(1 + k%250)}))
	}
}

// BenchmarkStartToReady: calico-node with 50 local workloads, from exec
// to ready (control socket polled every 1 ms): a first start (which also
// registers the node) and two restarts.
func BenchmarkStartToReady(b *testing.B) {
	_, n1, _, bin := benchLab(b)
	addPods(n1, 0, 50)
	b.ResetTimer()
	var first time.Duration
	var restarts []time.Duration
	for range b.N {
		for i := range 3 {
			p := n1.StartProcess(bin, n1.Env())
			d, err := p.WaitReady(20 * time.Second)
			if err != nil {
				b.Fatal(err)
			}
			if s, _ := p.Status(); s.LocalWorkloads != 50 {
				b.Fatalf("daemon sees %d local workloads, want 50", s.LocalWorkloads)
			}
			if code, err := p.Stop(10 * time.Second); err != nil || code != 0 {
				b.Fatalf("stop: %d %v", code, err)
			}
			if i == 0 {
				first = d
			} else {
				restarts = append(restarts, d)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(first), "first-start-ms")
	b.ReportMetric(ms(percentile(restarts, 1)), "restart-max-ms")
	b.ReportMetric(ms(percentile(restarts, 0)), "restart-min-ms")
}

// BenchmarkRSS: the daemon's VmRSS and VmHWM with 50 and 250 local
// workloads, at ready and after 2 s idle.
func BenchmarkRSS(b *testing.B) {
	for _, pods := range []int{50, 250} {
		b.Run(fmt.Sprintf("pods=%d", pods), func(b *testing.B) {
			_, n1, _, bin := benchLab(b)
			addPods(n1, 0, pods)
			var ready, idle labtest.ProcStats
			for range b.N {
				p := n1.StartProcess(bin, n1.Env())
				if _, err := p.WaitReady(30 * time.Second); err != nil {
					b.Fatal(err)
				}
				var err error
				if ready, err = labtest.Stats(p.PID); err != nil {
					b.Fatal(err)
				}
				time.Sleep(2 * time.Second) // the measurement is of an idle daemon
				if idle, err = labtest.Stats(p.PID); err != nil {
					b.Fatal(err)
				}
				if _, err := p.Stop(10 * time.Second); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(ready.RSSKiB)/1024, "rss-ready-MB")
			b.ReportMetric(float64(idle.RSSKiB)/1024, "rss-idle-MB")
			b.ReportMetric(float64(idle.HWMKiB)/1024, "hwm-MB")
		})
	}
}

// BenchmarkCPU50Adds: the daemon's CPU (utime+stime) while 50 pods are
// added one after another, each as the CNI plugin would (IPAM records,
// veth, WorkloadEndpoint).
func BenchmarkCPU50Adds(b *testing.B) {
	_, n1, _, bin := benchLab(b)
	p := n1.StartProcess(bin, n1.Env())
	if _, err := p.WaitReady(20 * time.Second); err != nil {
		b.Fatal(err)
	}
	var cpu, wall time.Duration
	b.ResetTimer()
	for range b.N {
		before, err := labtest.Stats(p.PID)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		addPods(n1, 0, 50)
		if err := labtest.Poll(20*time.Second, func() error {
			s, err := p.Status()
			if err == nil && s.LocalWorkloads != 50 {
				err = fmt.Errorf("daemon sees %d local workloads", s.LocalWorkloads)
			}
			return err
		}); err != nil {
			b.Fatal(err)
		}
		wall = time.Since(start)
		after, err := labtest.Stats(p.PID)
		if err != nil {
			b.Fatal(err)
		}
		cpu = after.CPU - before.CPU
	}
	b.StopTimer()
	b.ReportMetric(cpu.Seconds(), "daemon-cpu-s")
	b.ReportMetric(wall.Seconds(), "wall-s")
}
