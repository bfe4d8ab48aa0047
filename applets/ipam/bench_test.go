package ipam

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// timed runs one plugin process and returns its wall time from start to
// exit, as upstream's latency figures were measured (fork/exec included).
func timed(b *testing.B, cmd *exec.Cmd) (time.Duration, result) {
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		b.Fatalf("%v: %v\nstdout %s\nstderr %s", cmd.Args, err, out.String(), errb.String())
	}
	return d, result{stdout: out.String(), stderr: errb.String()}
}

func percentile(ds []time.Duration, p float64) float64 {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s))*p+0.999999) - 1 // nearest rank
	if i < 0 {
		i = 0
	}
	return float64(s[i].Microseconds()) / 1000
}

var insideRE = regexp.MustCompile(`setup=([0-9.]+[µm]?s) ipam=([0-9.]+[µm]?s) "since start"=([0-9.]+[µm]?s)`)

// BenchmarkCNIAdd measures calico-ipam ADD and DEL latency with a warm
// block: 50 sequential ADDs then 50 DELs, then 50 ADDs by 8 concurrent
// processes. It also reports the process start-up floor (`calico version`)
// and, from the plugin's debug log, the time spent inside the applet.
func BenchmarkCNIAdd(b *testing.B) {
	e := newEnv(b)
	e.pool("p", "10.244.0.0/16", nil)
	e.node("node1")
	conf := e.netconf("0.3.1", "node1", nil)
	debug := e.netconf("0.3.1", "node1", map[string]any{"log_level": "debug"})
	// Warm up: the block is claimed and the page cache holds the binary.
	if _, r := timed(b, cniCmd("ADD", "warm", "", conf)); !strings.Contains(r.stdout, "10.244.") {
		b.Fatalf("warm-up ADD: %+v", r)
	}
	const n = 50
	var startup, adds, dels, conc, inside, setupT, ipamT []time.Duration
	b.ResetTimer()
	for it := range b.N {
		for i := range n {
			d, _ := timed(b, exec.Command(filepath.Join(binDir, "calico"), "version"))
			startup = append(startup, d)
			_ = i
		}
		for i := range n {
			d, r := timed(b, cniCmd("ADD", fmt.Sprintf("s%d-%d", it, i), "", conf))
			if !strings.Contains(r.stdout, `"address": "10.244.`) {
				b.Fatalf("ADD: %+v", r)
			}
			adds = append(adds, d)
		}
		for i := range n {
			d, _ := timed(b, cniCmd("DEL", fmt.Sprintf("s%d-%d", it, i), "", conf))
			dels = append(dels, d)
		}
		// Inside the applet: the plugin logs its own timings at debug level.
		for i := range 20 {
			_, r := timed(b, cniCmd("ADD", fmt.Sprintf("d%d-%d", it, i), "", debug))
			if m := insideRE.FindStringSubmatch(r.stderr); m != nil {
				su, _ := time.ParseDuration(m[1])
				ip, _ := time.ParseDuration(m[2])
				st, _ := time.ParseDuration(m[3])
				setupT, ipamT, inside = append(setupT, su), append(ipamT, ip), append(inside, st)
			}
			timed(b, cniCmd("DEL", fmt.Sprintf("d%d-%d", it, i), "", conf))
		}
		// 8 concurrent processes on one node (the host lock serialises IPAM).
		jobs := make(chan int, n)
		for i := range n {
			jobs <- i
		}
		close(jobs)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					d, _ := timed(b, cniCmd("ADD", fmt.Sprintf("c%d-%d", it, i), "", conf))
					mu.Lock()
					conc = append(conc, d)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		for i := range n {
			timed(b, cniCmd("DEL", fmt.Sprintf("c%d-%d", it, i), "", conf))
		}
	}
	b.StopTimer()
	b.ReportMetric(percentile(adds, 0.5), "add-p50-ms")
	b.ReportMetric(percentile(adds, 0.9), "add-p90-ms")
	b.ReportMetric(percentile(dels, 0.5), "del-p50-ms")
	b.ReportMetric(percentile(dels, 0.9), "del-p90-ms")
	b.ReportMetric(percentile(conc, 0.5), "add8-p50-ms")
	b.ReportMetric(percentile(conc, 0.9), "add8-p90-ms")
	b.ReportMetric(percentile(startup, 0.5), "startup-p50-ms")
	if len(inside) > 0 {
		b.ReportMetric(percentile(inside, 0.5), "in-applet-p50-ms")
		b.ReportMetric(percentile(ipamT, 0.5), "in-ipam-p50-ms")
		b.ReportMetric(percentile(setupT, 0.5), "in-setup-p50-ms")
	}
}
