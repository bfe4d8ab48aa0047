package scale_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	rpprof "runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"

	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/kv"
	"github.com/onecalico/calico/internal/scale"
	"github.com/onecalico/calico/internal/testutil"
)

// newEnv starts a 3-member etcd cluster (testutil.StartEtcdCluster:
// `calico etcd` processes with TLS, members talking on the loopback of a
// namespace of their own, clients on unix sockets) and returns the
// harness's environment on it.
func newEnv(t *testing.T) scale.Env {
	t.Helper()
	env, _, _ := newEnvCluster(t)
	return env
}

// newEnvCluster is newEnv that also returns the cluster and its scraper.
func newEnvCluster(t *testing.T) (scale.Env, *testutil.EtcdCluster, *scraper) {
	t.Helper()
	if os.Geteuid() != 0 {
		testutil.Unavailable(t, "the etcd cluster runs in a network namespace of its own: needs root")
	}
	bin := os.Getenv("CALICO_BIN")
	if bin == "" {
		testutil.Unavailable(t, "needs the make-built binary with the embedded etcd server: run `make test` or `make scale` (CALICO_BIN unset)")
	}
	cl := testutil.StartEtcdClusterWith(t, bin, 3, etcdOptions())
	cfg := etcd.Config{Endpoints: cl.Endpoints(), CACertFile: cl.CACertFile, CertFile: cl.CertFile, KeyFile: cl.KeyFile,
		DialTimeout: 30 * time.Second, RequestTimeout: 60 * time.Second}
	scrape := newScraper(t, cl)
	var onIdle func(int, time.Duration) func()
	if dir := os.Getenv("SCALE_IDLE_PROFILE"); dir != "" {
		onIdle = func(n int, win time.Duration) func() { return scrape.profile(t, dir, n, win) }
	}
	return scale.Env{
		OnIdle:   onIdle,
		NewStore: func() (kv.Store, error) { return etcd.New(cfg) },
		Dir:      t.TempDir(),
		EtcdPIDs: func() []int {
			var pids []int
			for _, m := range cl.Members {
				pids = append(pids, m.PID())
			}
			return pids
		},
		EtcdRequests: scrape.requests,
		Logf:         t.Logf,
		AgentLog:     agentLog(t),
	}, cl, scrape
}

// agentLog is where the agents' warnings and errors go: the file
// SCALE_AGENT_LOG names (appended to), or nowhere.
func agentLog(t *testing.T) io.Writer {
	path := os.Getenv("SCALE_AGENT_LOG")
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("SCALE_AGENT_LOG: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// etcdOptions simulate three machines on this one (docs/scale.md, method):
// the members keep their data on tmpfs (/dev/shm), since three members on
// one disk would fsync every commit three times over on the same device;
// SCALE_ETCD_DATA=<dir> puts it elsewhere (SCALE_ETCD_DATA=disk: in the
// cluster's temporary directory, on disk). Heartbeat 200 ms and election
// timeout 5 s: a 2-core machine running N agents stalls a member for
// longer than etcd's 1 s default now and then, and each stall would be a
// spurious election. SCALE_PPROF and SCALE_IDLE_PROFILE also have the
// members serve pprof.
func etcdOptions() testutil.EtcdClusterOptions {
	o := testutil.EtcdClusterOptions{HeartbeatMS: 200, ElectionMS: 5000,
		Pprof: os.Getenv("SCALE_PPROF") != "" || os.Getenv("SCALE_IDLE_PROFILE") != ""}
	switch d := os.Getenv("SCALE_ETCD_DATA"); d {
	case "":
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			o.DataIn = "/dev/shm"
		}
	case "disk":
	default:
		o.DataIn = d
	}
	return o
}

// scraper reads the members' /metrics (served on their client sockets).
type scraper struct {
	members []*testutil.EtcdMember
	clients []*http.Client
}

func newScraper(t *testing.T, cl *testutil.EtcdCluster) *scraper {
	tlsCfg, err := transport.TLSInfo{CertFile: cl.CertFile, KeyFile: cl.KeyFile, TrustedCAFile: cl.CACertFile}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	s := &scraper{members: cl.Members}
	for _, m := range cl.Members {
		path := strings.TrimPrefix(m.Endpoint, "unixs://")
		c := tlsCfg.Clone()
		c.ServerName = "localhost"
		tr := &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
			TLSClientConfig: c,
		}
		t.Cleanup(tr.CloseIdleConnections)
		s.clients = append(s.clients, &http.Client{Transport: tr, Timeout: 5 * time.Second})
	}
	return s
}

// requests sums grpc_server_started_total (every RPC a member started,
// unary or stream) over the members.
func (s *scraper) requests(ctx context.Context) (float64, error) {
	total := 0.0
	for _, c := range s.clients {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://localhost/metrics", nil)
		if err != nil {
			return 0, err
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		v, err := sumMetric(bufio.NewScanner(resp.Body), "grpc_server_started_total")
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
		total += v
	}
	return total, nil
}

// profile writes CPU profiles of the idle window into dir: the harness
// process's (idle-<n>-harness.prof) and each member's
// (idle-<n>-<member>.prof, fetched from its pprof endpoint). It returns
// what to call when the window ends.
func (s *scraper) profile(t *testing.T, dir string, n int, win time.Duration) func() {
	path := filepath.Join(dir, fmt.Sprintf("idle-%d-harness.prof", n))
	f, err := os.Create(path)
	if err != nil {
		t.Errorf("idle profile: %v", err)
		return func() {}
	}
	if err := rpprof.StartCPUProfile(f); err != nil {
		t.Errorf("idle profile: %v", err)
	}
	var wg sync.WaitGroup
	for i, c := range s.clients {
		wg.Go(func() {
			name := filepath.Join(dir, fmt.Sprintf("idle-%d-%s.prof", n, s.members[i].Name))
			if err := fetch(c, fmt.Sprintf("https://localhost/debug/pprof/profile?seconds=%d", int(win.Seconds())), name); err != nil {
				t.Errorf("profile of %s: %v", s.members[i].Name, err)
			}
		})
	}
	return func() {
		rpprof.StopCPUProfile()
		f.Close()
		wg.Wait()
		t.Logf("N=%d: idle profiles in %s", n, dir)
	}
}

func fetch(c *http.Client, url, path string) error {
	cc := *c
	cc.Timeout = time.Minute
	resp, err := cc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func sumMetric(sc *bufio.Scanner, name string) (float64, error) {
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	found, sum := false, 0.0
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum, found = sum+v, true
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("no %s in the member's metrics", name)
	}
	return sum, nil
}

// TestScaleSmoke runs the whole harness with 10 agents: every step must
// converge (cold start, pods, churn, new block, join, delete,
// FelixConfiguration and IPPool changes).
func TestScaleSmoke(t *testing.T) {
	env := newEnv(t)
	env.Quick = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const n = 10
	if _, err := env.EtcdRequests(ctx); err != nil {
		t.Errorf("etcd request counter: %v", err)
	}
	r, err := scale.Run(ctx, env, n)
	if err != nil {
		t.Fatal(err)
	}
	if r.RoutesPerNode != n-1 {
		t.Errorf("every node has %d remote blocks, want %d", r.RoutesPerNode, n-1)
	}
	if r.ColdStartDist.N != n || r.NewBlock.N != scale.NewBlockSamples*(n-1) || r.Join.N != n || r.Delete.N != n {
		t.Errorf("samples: cold start %d, new block %d, join %d, delete %d", r.ColdStartDist.N, r.NewBlock.N, r.Join.N, r.Delete.N)
	}
	t.Log("\n" + scale.Tables([]*scale.Result{r}))
}

// TestScale is the full harness that `make scale` runs: SCALE_N lists
// the cluster sizes (e.g. 100,300,1000), each on a fresh 3-member
// cluster; without it the test skips. The tables are printed; with
// SCALE_DOCS=<dir> they and the plots also go into <dir>/scale.md and
// <dir>/scale-*.svg.
func TestScale(t *testing.T) {
	spec := os.Getenv("SCALE_N")
	if spec == "" {
		t.Skip("SCALE_N unset: the full harness runs with `make scale` (SCALE_N=100,300,1000)")
	}
	var sizes []int
	for _, s := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			t.Fatalf("SCALE_N=%q: want a comma-separated list of node counts, each at least 2", spec)
		}
		sizes = append(sizes, n)
	}
	if path := os.Getenv("SCALE_PPROF"); path != "" {
		servePprof(t, path)
	}
	// SIGINT or SIGTERM ends the run through the test's cleanups (members
	// killed, their namespace removed), not around them, and starts no
	// further size.
	sctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var results []*scale.Result
	for _, n := range sizes {
		if sctx.Err() != nil {
			t.Fatalf("stopped by a signal before N=%d", n)
		}
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			env := newEnv(t)
			ctx, cancel := context.WithTimeout(sctx, 90*time.Minute)
			defer cancel()
			r, err := scale.Run(ctx, env, n)
			if err != nil {
				t.Fatal(err)
			}
			results = append(results, r)
			t.Log("\n" + scale.Tables([]*scale.Result{r}))
			// After every size, so that a run stopped later keeps these.
			if dir := os.Getenv("SCALE_DOCS"); dir != "" {
				if err := scale.WriteDocs(dir, results, machine()); err != nil {
					t.Fatal(err)
				}
				t.Logf("wrote %s/scale.md and its plots", dir)
			}
		})
	}
	if len(results) > 0 {
		fmt.Println(scale.Tables(results))
	}
}

// servePprof serves net/http/pprof on a unix socket at path, for
// `go tool pprof http+unix://...`-style inspection of a long run (e.g.
// curl --unix-socket path http://x/debug/pprof/goroutine?debug=1).
func servePprof(t *testing.T, path string) {
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("SCALE_PPROF=%s: %v", path, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); os.Remove(path) })
}

// machine describes this machine for the docs: CPU model, cores, memory.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 1 {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			mem = fmt.Sprintf(", %d GB RAM", (kb+(1<<19))>>20)
		}
	}
	return fmt.Sprintf("%d × %s%s, %s/%s", runtime.NumCPU(), model, mem, runtime.GOOS, runtime.GOARCH)
}

// TestScaleFloor measures the cold start's datastore floor (floor.go):
// SCALE_FLOOR_N lists the sizes (e.g. 1000); without it the test skips.
// `make test` runs it with 10 floor nodes as a check that it converges.
func TestScaleFloor(t *testing.T) {
	sizes := []int{10}
	if spec := os.Getenv("SCALE_FLOOR_N"); spec != "" {
		sizes = nil
		for _, s := range strings.Split(spec, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 2 {
				t.Fatalf("SCALE_FLOOR_N=%q: want a comma-separated list of node counts, each at least 2", spec)
			}
			sizes = append(sizes, n)
		}
	}
	for _, n := range sizes {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			env, cl, scrape := newEnvCluster(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			defer cancel()
			before, err := scrape.stats(ctx, cl.Members)
			if err != nil {
				t.Fatalf("etcd metrics: %v", err)
			}
			r, err := scale.RunFloor(ctx, env, n)
			if err != nil {
				t.Fatal(err)
			}
			if after, err := scrape.stats(ctx, cl.Members); err == nil {
				t.Log(after.since(before))
			}
			if r.Events == 0 {
				t.Errorf("no watch events delivered")
			}
			t.Log(r)
		})
	}
}
