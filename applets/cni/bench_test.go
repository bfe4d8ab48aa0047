package cni

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// benchPods is the batch size of calico-observed.md §4's method.
const benchPods = 50

// timedRun runs the plugin binary once from the calling thread (which is
// in the node namespace) and returns its wall time from start to exit.
func timedRun(b *testing.B, command, cid, podNS string, conf []byte) (time.Duration, outcome) {
	cmd := exec.Command(filepath.Join(binDir, "calico"))
	cmd.Env = []string{
		"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + cid, "CNI_NETNS=" + podNS, "CNI_IFNAME=eth0",
		"CNI_PATH=" + binDir, "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
	}
	cmd.Stdin = bytes.NewReader(conf)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	o := outcome{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		b.Errorf("%s %s: %v\nstdout %s\nstderr %s", command, cid, err, o.stdout, o.stderr)
		o.rc = -1
	}
	if command == "ADD" && !strings.Contains(o.stdout, `"10.244.`) {
		b.Errorf("ADD %s: no address in %q", cid, o.stdout)
	}
	return d, o
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pct is the nearest-rank percentile of ds, in milliseconds.
func pct(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s))*p+0.999999) - 1
	return ms(s[max(i, 0)])
}

var debugFieldRE = regexp.MustCompile(`(\w+)=([0-9.]+(?:ns|µs|ms|s))\b`)
var tripsRE = regexp.MustCompile(`trips=(\d+)`)

// phaseTimes extracts name=duration pairs and the round trips from the
// plugin's "... done" debug line.
func phaseTimes(stderr string) (map[string]time.Duration, int) {
	out := map[string]time.Duration{}
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.Contains(line, ` done"`) {
			continue
		}
		for _, m := range debugFieldRE.FindAllStringSubmatch(line, -1) {
			if d, err := time.ParseDuration(m[2]); err == nil {
				out[m[1]] = d
			}
		}
		if m := tripsRE.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			return out, n
		}
	}
	return out, 0
}

// BenchmarkCNI measures the calico plugin as upstream was measured
// (calico-observed.md §4): 50 pods ADDed one after another then DELeted,
// then the same with 4 at a time; each operation is a fork/exec of the
// real binary timed from start to exit; namespace creation is not timed;
// the node's block is warm. It also reports the process start-up floor
// (`calico version`) and, from 20 ADD/DEL pairs at debug level, where the
// time goes inside the plugin and how many etcd round trips each makes.
func BenchmarkCNI(b *testing.B) {
	e := newEnv(b)
	conf := e.conf("0.3.1", nil)
	debug := e.conf("0.3.1", map[string]any{"log_level": "debug"})
	var startup, adds, dels, cadds, cdels []time.Duration
	type split struct{ main, wall time.Duration }
	var addPhases, delPhases []map[string]time.Duration
	var addSplit, delSplit []split
	var addTrips, delTrips []int
	mkPods := func(prefix string, n int) []*pod {
		ps := make([]*pod, n)
		for i := range ps {
			ps[i] = e.newPod(fmt.Sprintf("%s%03d", prefix, i))
		}
		return ps
	}
	b.ResetTimer()
	for it := range b.N {
		b.StopTimer()
		warm := e.newPod(fmt.Sprintf("warm%d", it))
		seq := mkPods(fmt.Sprintf("s%d-", it), benchPods)
		conc := mkPods(fmt.Sprintf("c%d-", it), benchPods)
		dbg := mkPods(fmt.Sprintf("d%d-", it), 20)
		b.StartTimer()
		err := e.inNode(func() error {
			// Warm up: the block is claimed, the binary is in the page cache.
			timedRun(b, "ADD", warm.rt.ContainerID, warm.ns, conf)
			timedRun(b, "DEL", warm.rt.ContainerID, warm.ns, conf)
			for range benchPods {
				t0 := time.Now()
				if err := exec.Command(filepath.Join(binDir, "calico"), "version").Run(); err != nil {
					return err
				}
				startup = append(startup, time.Since(t0))
			}
			for _, p := range seq {
				d, _ := timedRun(b, "ADD", p.rt.ContainerID, p.ns, conf)
				adds = append(adds, d)
			}
			for _, p := range seq {
				d, _ := timedRun(b, "DEL", p.rt.ContainerID, p.ns, conf)
				dels = append(dels, d)
			}
			for _, p := range dbg {
				d, o := timedRun(b, "ADD", p.rt.ContainerID, p.ns, debug)
				ph, trips := phaseTimes(o.stderr)
				addPhases, addTrips = append(addPhases, ph), append(addTrips, trips)
				addSplit = append(addSplit, split{ph["main"], d})
				d, o = timedRun(b, "DEL", p.rt.ContainerID, p.ns, debug)
				ph, trips = phaseTimes(o.stderr)
				delPhases, delTrips = append(delPhases, ph), append(delTrips, trips)
				delSplit = append(delSplit, split{ph["main"], d})
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		// 4 at a time: each worker is a thread in the node namespace.
		for _, op := range []string{"ADD", "DEL"} {
			jobs := make(chan *pod, len(conc))
			for _, p := range conc {
				jobs <- p
			}
			close(jobs)
			var mu sync.Mutex
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_ = e.inNode(func() error {
						for p := range jobs {
							d, _ := timedRun(b, op, p.rt.ContainerID, p.ns, conf)
							mu.Lock()
							if op == "ADD" {
								cadds = append(cadds, d)
							} else {
								cdels = append(cdels, d)
							}
							mu.Unlock()
						}
						return nil
					})
				}()
			}
			wg.Wait()
		}
	}
	b.StopTimer()
	e.requireClean(b)
	report := func(name string, ds []time.Duration) {
		b.ReportMetric(pct(ds, 0.5), name+"-p50-ms")
		b.ReportMetric(pct(ds, 0.9), name+"-p90-ms")
		b.ReportMetric(pct(ds, 1), name+"-max-ms")
	}
	report("add", adds)
	report("del", dels)
	report("add4", cadds)
	report("del4", cdels)
	b.ReportMetric(pct(startup, 0.5), "startup-p50-ms")
	median := func(ms []map[string]time.Duration, key string) float64 {
		var ds []time.Duration
		for _, m := range ms {
			ds = append(ds, m[key])
		}
		return pct(ds, 0.5)
	}
	execInit := func(ss []split) float64 {
		var ds []time.Duration
		for _, s := range ss {
			ds = append(ds, s.wall-s.main)
		}
		return pct(ds, 0.5)
	}
	b.ReportMetric(execInit(addSplit), "add-execinit-ms")
	for _, k := range []string{"main", "parse", "read", "ipam", "netlink", "record", "datastore"} {
		b.ReportMetric(median(addPhases, k), "add-"+k+"-ms")
	}
	b.ReportMetric(execInit(delSplit), "del-execinit-ms")
	for _, k := range []string{"main", "parse", "read", "record", "ipam", "wait", "routes", "teardown", "datastore"} {
		b.ReportMetric(median(delPhases, k), "del-"+k+"-ms")
	}
	trips := func(ts []int) float64 {
		s := append([]int(nil), ts...)
		sort.Ints(s)
		return float64(s[len(s)/2])
	}
	b.ReportMetric(trips(addTrips), "add-trips")
	b.ReportMetric(trips(delTrips), "del-trips")
}
