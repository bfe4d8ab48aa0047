package scale_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/onecalico/calico/internal/testutil"
)

// etcdStats is what the members report about a run: the RPCs they handled
// by method (grpc_server_handled_total, summed over members) and the
// warnings in their logs that mean etcd was the bottleneck.
type etcdStats struct {
	methods  map[string]float64
	warnings map[string]int
	cpu      time.Duration // the members' CPU (user + system), summed
}

// logSigns are the etcd log messages that show it struggling.
var logSigns = []string{"apply request took too long", "request timed out", "elected leader", "slow fdatasync",
	"leader failed to send out heartbeat", "lost leader", "watch stream got", "slow"}

// stats reads the members' counters and scans their logs.
func (s *scraper) stats(ctx context.Context, members []*testutil.EtcdMember) (etcdStats, error) {
	st := etcdStats{methods: map[string]float64{}, warnings: map[string]int{}}
	for _, c := range s.clients {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://localhost/metrics", nil)
		if err != nil {
			return st, err
		}
		resp, err := c.Do(req)
		if err != nil {
			return st, err
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "grpc_server_handled_total{") {
				continue
			}
			_, rest, ok := strings.Cut(line, `grpc_method="`)
			if !ok {
				continue
			}
			method, _, _ := strings.Cut(rest, `"`)
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err == nil {
				st.methods[method] += v
			}
		}
		resp.Body.Close()
	}
	for _, m := range members {
		st.cpu += procCPU(m.PID())
		for _, l := range strings.Split(m.Log(), "\n") {
			for _, sign := range logSigns {
				if strings.Contains(l, sign) {
					st.warnings[sign]++
					break
				}
			}
		}
	}
	return st, nil
}

// since is the difference of two readings of the counters (logs: b's).
func (b etcdStats) since(a etcdStats) etcdStats {
	d := etcdStats{methods: map[string]float64{}, warnings: b.warnings, cpu: b.cpu - a.cpu}
	for k, v := range b.methods {
		if v-a.methods[k] > 0 {
			d.methods[k] = v - a.methods[k]
		}
	}
	return d
}

func (s etcdStats) String() string {
	var keys []string
	for k := range s.methods {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "etcd CPU (3 members) %s; RPCs handled:", s.cpu.Round(time.Millisecond))
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%.0f", k, s.methods[k])
	}
	b.WriteString("; etcd log:")
	if len(s.warnings) == 0 {
		b.WriteString(" no warnings")
	}
	for _, sign := range logSigns {
		if n := s.warnings[sign]; n > 0 {
			fmt.Fprintf(&b, " %q×%d", sign, n)
		}
	}
	return b.String()
}

// procCPU is a process's user + system time from /proc (0 if unreadable).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil || pid == 0 {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * time.Second / 100 // USER_HZ
}
