package scale_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	rpprof "runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/kv"
	"github.com/onecalico/calico/internal/scale"
)

// TestProbeCost measures what a once-a-second datastore liveness check
// costs N idle clients and the 3 members, for each way of checking
// (docs/scale.md, "What limits it"): SCALE_PROBE_N=<n> (without it the
// test skips). Each client has its own etcd client and probeWatches
// require-leader watches, as an agent has; every client checks once a
// second (random phase) for probeWindow, the ways interleaved, twice.
// "none" is the clients idle with their watches and no check.
func TestProbeCost(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SCALE_PROBE_N"))
	if n == 0 {
		t.Skip("SCALE_PROBE_N unset")
	}
	env, cl, _ := newEnvCluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const probeWatches = 8
	stores := make([]*etcd.Store, n)
	var progress atomic.Int64
	for i := range stores {
		s, err := env.NewStore()
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = s.(*etcd.Store)
		t.Cleanup(func() { s.Close() })
		for w := range probeWatches {
			ch := s.Watch(ctx, fmt.Sprintf("/probe/%d/", w), 0)
			go func() {
				for r := range ch {
					if r.Err == nil && len(r.Events) == 0 {
						progress.Add(1)
					}
				}
			}()
		}
	}
	key := "/calico/resources/v3/projectcalico.org/nodes/n1"
	ways := map[string]func(ctx context.Context, s *etcd.Store) error{
		"none": nil,
		"linearizable Get": func(ctx context.Context, s *etcd.Store) error {
			_, err := s.Get(ctx, key)
			if err != nil && !isNotFound(err) {
				return err
			}
			return nil
		},
		"Probe (serializable, count-only, require leader)": func(ctx context.Context, s *etcd.Store) error { return s.Probe(ctx, key) },
		"RequestProgress on the watch stream": func(ctx context.Context, s *etcd.Store) error {
			return s.Client().RequestProgress(clientv3.WithRequireLeader(ctx))
		},
	}
	order := []string{"none", "linearizable Get", "Probe (serializable, count-only, require leader)", "RequestProgress on the watch stream"}
	time.Sleep(3 * time.Second) // the watches settle
	for round := range probeRounds() {
		for _, name := range order {
			p0 := progress.Load()
			stop := probeProfile(t, round, name)
			self, members := runProbes(ctx, env.EtcdPIDs, stores, ways[name])
			stop()
			t.Logf("round %d, N=%d, %s: clients %.3f cores (%.1f µs per client-second), etcd members %.3f cores; progress notifications seen %d",
				round+1, n, name, self, 1e6*self/float64(n), members, progress.Load()-p0)
		}
	}
	_ = cl
}

// probeProfile writes a CPU profile of the clients over one way's window
// into $SCALE_PROBE_PROFILE, if set.
func probeProfile(t *testing.T, round int, name string) (stop func()) {
	dir := os.Getenv("SCALE_PROBE_PROFILE")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("probe-%d-%s.prof", round+1, strings.Fields(name)[0])))
	if err != nil {
		t.Fatal(err)
	}
	if err := rpprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	return func() { rpprof.StopCPUProfile(); f.Close() }
}

const probeWindow = 15 * time.Second

// runProbes runs check on every store once a second for probeWindow and
// returns the CPU of this process and of the members, in cores.
func runProbes(ctx context.Context, pids func() []int, stores []*etcd.Store, check func(context.Context, *etcd.Store) error) (self, members float64) {
	etcdCPU := func() time.Duration {
		var sum time.Duration
		for _, p := range pids() {
			sum += scale.ProcCPU(p)
		}
		return sum
	}
	c0, e0 := scale.SelfStats(false).CPU, etcdCPU()
	start := time.Now()
	var wg sync.WaitGroup
	if check != nil {
		for _, s := range stores {
			wg.Go(func() {
				time.Sleep(rand.N(time.Second))
				for time.Since(start) < probeWindow-time.Second {
					next := time.Now().Add(time.Second)
					pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
					_ = check(pctx, s)
					cancel()
					time.Sleep(time.Until(next))
				}
			})
		}
	}
	time.Sleep(probeWindow)
	wg.Wait()
	c1, e1 := scale.SelfStats(false).CPU, etcdCPU()
	el := time.Since(start)
	return float64(c1-c0) / float64(el), float64(e1-e0) / float64(el)
}

func isNotFound(err error) bool { return err != nil && errors.Is(err, kv.ErrNotFound) }

// probeRounds is $SCALE_PROBE_ROUNDS, 3 by default.
func probeRounds() int {
	if r, err := strconv.Atoi(os.Getenv("SCALE_PROBE_ROUNDS")); err == nil && r > 0 {
		return r
	}
	return 3
}
