package route

import (
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// learnedRoutes is n /32s via one gateway on eth0, protocol 12: the
// routes a node learns from a ToR (all share one kernel fib_info, so the
// kernel's insert is linear and the user-space cost shows).
func learnedRoutes(n int) []Route {
	rs := make([]Route, n)
	for i := range rs {
		rs[i] = Route{Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 250, byte(i / 256), byte(i)}), 32),
			Gw: addr("10.99.0.1"), LinkName: "eth0", Protocol: 12}
	}
	return rs
}

// A Batcher's chunks with failures in the middle: each failing route is
// named once, every other route is installed, over several chunks (of
// 256) and for IPv6 too.
func TestPrivilegedBatcherFailuresInChunks(t *testing.T) {
	ns, h := node(t)
	b, err := NewBatcher(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	want := learnedRoutes(768)
	var bad []string
	for i := 50; i < len(want); i += 97 {
		want[i].Gw = addr("172.16.0.1") // unreachable
		bad = append(bad, want[i].Dst.String())
	}
	for i := range 20 {
		want = append(want, Route{Dst: pfx(fmt.Sprintf("fd00:250::%x/128", i)), Gw: addr("fd00:99::1"), LinkName: "eth0", Protocol: 12})
	}
	o := Owner{Protocols: []int{12}}
	res, err := ApplyChanges(h, b, o, nil, want)
	if err == nil {
		t.Fatal("unreachable gateways were accepted")
	}
	for _, d := range bad {
		if n := strings.Count(err.Error(), "replace route "+d+" "); n != 1 {
			t.Errorf("%s named %d times in the error", d, n)
		}
	}
	if got := strings.Count(err.Error(), "replace route "); got != len(bad) {
		t.Errorf("%d routes named in the error, want %d", got, len(bad))
	}
	if res.Added != len(want)-len(bad) {
		t.Errorf("added %d, want %d", res.Added, len(want)-len(bad))
	}
	got, err := List(h, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want)-len(bad) {
		t.Errorf("%d routes installed, want %d", len(got), len(want)-len(bad))
	}
}

// BenchmarkBatcherLearned: 10,000 learned routes (learnedRoutes) added
// with one ApplyChanges through a Batcher, into a fresh namespace each
// time; wall time, the process's user and system CPU, and allocations.
func BenchmarkBatcherLearned(b *testing.B) {
	rs := learnedRoutes(10000)
	var wall, user, sys time.Duration
	var allocs, bytes uint64
	for range b.N {
		b.StopTimer()
		ns, h := node(b)
		bt, err := NewBatcher(ns)
		if err != nil {
			b.Fatal(err)
		}
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		var r0, r1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
		b.StartTimer()
		t0 := time.Now()
		res, err := ApplyChanges(h, bt, Owner{Protocols: []int{12}}, nil, rs)
		wall += time.Since(t0)
		b.StopTimer()
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
		runtime.ReadMemStats(&m1)
		if err != nil || res.Added != len(rs) {
			b.Fatal(res, err)
		}
		user += time.Duration(r1.Utime.Nano() - r0.Utime.Nano())
		sys += time.Duration(r1.Stime.Nano() - r0.Stime.Nano())
		allocs += m1.Mallocs - m0.Mallocs
		bytes += m1.TotalAlloc - m0.TotalAlloc
		bt.Close()
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(float64(wall.Microseconds())/1000/n, "wall-ms")
	b.ReportMetric(float64(user.Microseconds())/1000/n, "user-cpu-ms")
	b.ReportMetric(float64(sys.Microseconds())/1000/n, "sys-cpu-ms")
	b.ReportMetric(float64(allocs)/n, "allocs")
	b.ReportMetric(float64(bytes)/n/1024, "alloc-KiB")
}
