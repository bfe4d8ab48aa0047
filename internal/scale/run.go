package scale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/ipam"
	"github.com/onecalico/calico/internal/kv"
)

// Env is what a run needs from its surroundings (the tests provide it:
// the etcd cluster is theirs).
type Env struct {
	NewStore StoreFactory
	Dir      string
	// EtcdPIDs are the members' processes (for their memory).
	EtcdPIDs func() []int
	// EtcdRequests is the number of requests the members have served so
	// far, summed (nil: the request rate is not measured).
	EtcdRequests func(ctx context.Context) (float64, error)
	// Logf reports progress.
	Logf func(format string, args ...any)
	// Quick shortens the idle and churn windows (the smoke test).
	Quick bool
	// AgentLog receives the agents' warnings and errors (nil: discarded).
	AgentLog io.Writer
	// OnIdle, if set, runs as the idle window starts (e.g. to profile
	// it) and returns what to run when it ends.
	OnIdle func(n int, win time.Duration) (done func())
}

// Result is one run's figures.
type Result struct {
	N int
	// Cold start: every agent started at once until every one has every
	// other node's routes and VTEP.
	ColdStart     time.Duration
	ColdStartDist Dist
	// ColdRegistered is when the datastore held every Node with its
	// tunnel address and block (as the harness polled it).
	ColdRegistered time.Duration
	// ColdCPU is the process CPU from the start until every node had
	// converged, per node: what one node spends on a cold start.
	ColdCPU      time.Duration
	PeakEtcdRate float64 // requests/s, the highest over 1 s windows (0: not measured)
	EtcdRSS      int64   // all members, after the cold start
	EtcdRSSMax   int64   // the largest member
	// Memory and CPU of the harness process.
	Base              ProcStats // before any agent
	Idle, Churn       ProcStats // after the idle and churn windows
	ChurnPeakRSS      int64
	IdleCPU, ChurnCPU float64 // per agent, in cores (1 = one core busy)
	// IdleProcCores and ChurnProcCores are the whole process's (near the
	// machine's core count: saturated, the per-agent figure is a floor).
	IdleProcCores, ChurnProcCores float64
	// IdleEtcdCores is the members' CPU over the idle window, summed.
	IdleEtcdCores     float64
	ChurnPods         int
	IdleWin, ChurnWin time.Duration
	ChurnLife         time.Duration // how long a churned pod lives
	NewBlock          Dist          // per node and sample
	// NewBlockCPU is the process CPU per node per new block: what one
	// node spends on one remote block (its latency on a core of its own).
	NewBlockCPU        time.Duration
	NewBlockSamples    int
	Join, Delete       Dist
	JoinSelf           time.Duration // until the joining node's tunnel address is written
	DeleteSelf         time.Duration // the deletion's own datastore writes
	Felix, Pool        Dist
	FelixCPU, PoolCPU  time.Duration // process CPU until every node had it
	RoutesPerNode      int
	KernelCallsPerNode float64 // during the churn window
}

// PerAgentRSS is the process's resident memory above Base, per agent.
func (r *Result) PerAgentRSS(s ProcStats) int64 { return (s.RSS - r.Base.RSS) / int64(r.N) }

// PerAgentHeap is the Go heap above Base, per agent.
func (r *Result) PerAgentHeap(s ProcStats) int64 {
	return (int64(s.HeapInuse) - int64(r.Base.HeapInuse)) / int64(r.N)
}

// Run measures a cluster of n agents.
func Run(ctx context.Context, env Env, n int) (*Result, error) {
	f, err := NewFleet(env.Dir, env.NewStore)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	f.AgentLog = env.AgentLog
	r := &Result{N: n}
	steps := []struct {
		name string
		run  func(context.Context, *Env, *Fleet, *Result) error
	}{
		{"cold start", coldStart},
		{"pods", addPods},
		{"idle", idle},
		{"new block", newBlock},
		{"join and delete", joinAndDelete},
		{"FelixConfiguration change", felixChange},
		{"IPPool change", poolChange},
		// Last: the churn's tail (deletes still being processed) must not
		// delay another step's figures.
		{"churn", churn},
	}
	for _, s := range steps {
		t := time.Now()
		if err := s.run(ctx, &env, f, r); err != nil {
			return r, fmt.Errorf("N=%d %s: %w", n, s.name, err)
		}
		env.Logf("N=%d %s done in %s", n, s.name, time.Since(t).Round(time.Millisecond))
	}
	return r, nil
}

// waitFor bounds a wait by how many nodes there are.
func waitFor(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 60*time.Second+time.Duration(n)*200*time.Millisecond)
}

func coldStart(ctx context.Context, env *Env, f *Fleet, r *Result) error {
	if err := retry(ctx, func() error { return f.Setup(ctx) }); err != nil {
		return err
	}
	r.Base = memNow()
	stop := sampleRate(ctx, env, &r.PeakEtcdRate)
	c0, t0 := cpuNow(), time.Now()
	for i := range r.N {
		if _, err := f.Start(ctx, i); err != nil {
			stop()
			return err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 45*time.Minute)
	defer cancel()
	truth, err := completeTruth(wctx, env, f, r.N)
	if err != nil {
		stop()
		return err
	}
	r.ColdRegistered = time.Since(t0)
	env.Logf("N=%d every node registered with its tunnel address and block after %s", r.N, r.ColdRegistered.Round(time.Millisecond))
	ds, err := WaitAll(wctx, f.Nodes(), t0, truth.Converged)
	stop()
	r.ColdCPU = (cpuNow() - c0) / time.Duration(r.N)
	if err != nil {
		return err
	}
	r.ColdStartDist = Summarize(ds)
	r.ColdStart = r.ColdStartDist.Max
	r.RoutesPerNode = len(truth.Blocks) - 1
	for _, pid := range env.EtcdPIDs() {
		m := RSS(pid)
		r.EtcdRSS += m
		r.EtcdRSSMax = max(r.EtcdRSSMax, m)
	}
	return nil
}

// completeTruth polls the datastore until every one of n nodes has its
// tunnel address and block.
func completeTruth(ctx context.Context, env *Env, f *Fleet, n int) (*Truth, error) {
	start, logged := time.Now(), time.Now()
	for {
		t, err := f.ReadTruth(ctx)
		if err == nil && t.Complete(n) {
			return t, nil
		}
		if time.Since(logged) > 10*time.Second {
			if err != nil {
				env.Logf("N=%d after %s: reading the datastore: %v", n, time.Since(start).Round(time.Second), err)
			} else {
				env.Logf("N=%d after %s: %d Nodes, %d blocks in the datastore", n, time.Since(start).Round(time.Second), len(t.Nodes), len(t.Blocks))
			}
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			if t != nil {
				return nil, fmt.Errorf("datastore has %d nodes, %d blocks (want %d complete nodes): %w", len(t.Nodes), len(t.Blocks), n, ctx.Err())
			}
			return nil, errors.Join(err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// sampleRate records the highest etcd request rate over windows of
// about a second (sampled every 250 ms)
// until the returned stop is called.
func sampleRate(ctx context.Context, env *Env, peak *float64) (stop func()) {
	if env.EtcdRequests == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		type sample struct {
			v float64
			t time.Time
		}
		var win []sample // the samples of the last second
		for {
			v, err := env.EtcdRequests(ctx)
			now := time.Now()
			if err == nil {
				win = append(win, sample{v, now})
				for len(win) > 1 && now.Sub(win[0].t) > time.Second {
					win = win[1:]
				}
				if first := win[0]; len(win) > 1 && now.Sub(first.t) >= 500*time.Millisecond {
					*peak = max(*peak, (v-first.v)/now.Sub(first.t).Seconds())
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// Pod is one simulated pod: an address from IPAM and its endpoint.
type Pod struct {
	Node, Handle, WEP, Iface string
	Addr                     netip.Addr
}

// AddPod does what the CNI plugin and calico-ipam do for a pod on node:
// an address from pool A through IPAM, then the WorkloadEndpoint.
func (f *Fleet) AddPod(ctx context.Context, node, id string) (*Pod, error) {
	cid := node + "-" + id
	p := &Pod{Node: node, Handle: "scale." + cid, Iface: "cali" + id}
	v4, _, err := f.IPAM.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, HandleID: p.Handle, Hostname: node,
		IPv4Pools: []string{PoolA}, Attrs: map[string]string{api.AttrNode: node}})
	if err != nil {
		return nil, fmt.Errorf("assign pod %s: %w", cid, err)
	}
	if len(v4) != 1 {
		return nil, fmt.Errorf("assign pod %s: got %d addresses", cid, len(v4))
	}
	p.Addr = v4[0].Addr()
	if p.WEP, err = api.WorkloadEndpointName(api.WorkloadEndpointIdentifiers{Node: node, Orchestrator: api.OrchestratorCNI,
		ContainerID: cid, Endpoint: "eth0"}); err != nil {
		return nil, err
	}
	w := api.NewWorkloadEndpoint()
	w.Name, w.Namespace = p.WEP, "default"
	w.Spec = api.WorkloadEndpointSpec{Orchestrator: api.OrchestratorCNI, Node: node, ContainerID: cid, Endpoint: "eth0",
		IPNetworks: []string{netip.PrefixFrom(p.Addr, 32).String()}, InterfaceName: p.Iface}
	// ErrExists: an earlier attempt wrote it and then failed (retry).
	if _, err := f.Client.Create(ctx, w); err != nil && !errors.Is(err, kv.ErrExists) {
		return nil, fmt.Errorf("create endpoint %s: %w", p.WEP, err)
	}
	return p, nil
}

// DeletePod undoes AddPod.
func (f *Fleet) DeletePod(ctx context.Context, p *Pod) error {
	if _, err := f.Client.Delete(ctx, api.KindWorkloadEndpoint, "default", p.WEP, ""); err != nil && !errors.Is(err, kv.ErrNotFound) {
		return fmt.Errorf("delete endpoint %s: %w", p.WEP, err)
	}
	return f.IPAM.ReleaseByHandle(ctx, p.Handle)
}

// setupPods is how many pods the cluster gets before the idle window,
// spread evenly over the nodes (one per node up to 100 nodes). Every pod
// is an event for every node, and in one process N nodes compute each
// event on the same cores, so N pods would cost the harness N² passes
// before it measures anything; the churn adds pods on any node.
const setupPods = 100

func addPods(ctx context.Context, env *Env, f *Fleet, r *Result) error {
	nodes := f.Nodes()
	var pods []*Pod
	var mu sync.Mutex
	slices.SortFunc(nodes, func(a, b *Node) int { return compareName(a.Name, b.Name) })
	count := min(setupPods, len(nodes))
	if err := parallel(ctx, 16, count, func(ctx context.Context, i int) error {
		n := nodes[i*len(nodes)/count]
		var p *Pod
		err := retry(ctx, func() (err error) { p, err = f.AddPod(ctx, n.Name, fmt.Sprintf("p%d", i/len(nodes))); return err })
		if err != nil {
			return err
		}
		mu.Lock()
		pods = append(pods, p)
		mu.Unlock()
		return nil
	}); err != nil {
		return err
	}
	byNode := map[string][]*Pod{}
	for _, p := range pods {
		byNode[p.Node] = append(byNode[p.Node], p)
	}
	wctx, cancel := waitFor(ctx, len(nodes))
	defer cancel()
	_, err := WaitAll(wctx, nodes, time.Now(), func(n *Node) (time.Time, bool) {
		for _, p := range byNode[n.Name] {
			if _, ok := n.Kernel.Sysctl(agent.WorkloadSysctls(p.Iface)[0].Key); !ok {
				return time.Time{}, false
			}
		}
		return time.Now(), true
	})
	return err
}

// retry runs do until it succeeds: the harness's own reads and writes meet
// the same etcd hiccups as the agents (a leader election, requests timed
// out while N agents start at once on a loaded machine), which the agents
// retry too. An error that is not a datastore timeout is retried five
// times at most; timeouts are retried until RetryDeadline has passed since
// the first attempt, with a pause growing to 5 s between attempts.
func retry(ctx context.Context, do func() error) error {
	start, wait := time.Now(), 500*time.Millisecond
	var err error
	for i := 0; ; i++ {
		if err = do(); err == nil || ctx.Err() != nil {
			return err
		}
		if !transient(err) && i >= 4 || time.Since(start) > RetryDeadline {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// RetryDeadline bounds how long the harness retries one of its own
// datastore operations that etcd keeps timing out.
const RetryDeadline = 10 * time.Minute

// transient reports whether err is etcd not answering in time (the
// client's deadline, or the server's "request timed out", a leader change
// or no leader): worth retrying while the cluster is overloaded.
func transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"request timed out", "leader changed", "no leader", "too many requests", "Unavailable", "timed out waiting for read index"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// parallel runs do(0..count-1) on width goroutines; the first error stops it.
func parallel(ctx context.Context, width, count int, do func(context.Context, int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, width)
	for w := range width {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= count || ctx.Err() != nil {
					return
				}
				if err := do(ctx, i); err != nil {
					errs[w] = err
					next.Store(int64(count))
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func memNow() ProcStats { return SelfStats(true) }

func cpuNow() time.Duration { return SelfStats(false).CPU }

// etcdCPU is the members' CPU so far, summed.
func etcdCPU(env *Env) time.Duration {
	var sum time.Duration
	for _, pid := range env.EtcdPIDs() {
		sum += ProcCPU(pid)
	}
	return sum
}

// The churn: churnRate pods a second are added on random nodes, each
// deleted churnLife after it was added.
const (
	churnRate = 10
	churnLife = 5 * time.Second
)

// idle measures CPU and memory over a window in which nothing changes.
func idle(ctx context.Context, env *Env, f *Fleet, r *Result) error {
	r.IdleWin = 10 * time.Second
	if env.Quick {
		r.IdleWin = 2 * time.Second
	}
	done := func() {}
	if env.OnIdle != nil {
		done = env.OnIdle(r.N, r.IdleWin)
	}
	c0, e0 := cpuNow(), etcdCPU(env)
	time.Sleep(r.IdleWin) // a measurement window, not a wait for a condition
	c1, e1 := cpuNow(), etcdCPU(env)
	done()
	r.Idle = memNow()
	r.IdleProcCores = float64(c1-c0) / float64(r.IdleWin)
	r.IdleCPU = r.IdleProcCores / float64(r.N)
	r.IdleEtcdCores = float64(e1-e0) / float64(r.IdleWin)
	env.Logf("N=%d idle: harness process %.3f cores (%.4f%% of a core per agent), etcd members %.3f cores",
		r.N, r.IdleProcCores, 100*r.IdleCPU, r.IdleEtcdCores)
	return nil
}

// churn adds churnRate pods a second on random nodes for the churn
// window, each deleted churnLife later, and measures CPU and memory.
func churn(ctx context.Context, env *Env, f *Fleet, r *Result) error {
	r.ChurnWin, r.ChurnLife = 20*time.Second, churnLife
	if env.Quick {
		r.ChurnWin, r.ChurnLife = 3*time.Second, time.Second
	}
	life := r.ChurnLife
	nodes := f.Nodes()
	calls0 := kernelCalls(nodes)
	rng := rand.New(rand.NewPCG(uint64(r.N), 12))
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		peakRSS int64
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	c2 := cpuNow()
	start := time.Now()
	tick := time.NewTicker(time.Second / churnRate)
	for i := 0; time.Since(start) < r.ChurnWin; i++ {
		<-tick.C
		n := nodes[rng.IntN(len(nodes))]
		wg.Go(func() {
			var p *Pod
			if err := retry(ctx, func() (err error) { p, err = f.AddPod(ctx, n.Name, fmt.Sprintf("c%d", i)); return err }); err != nil {
				fail(err)
				return
			}
			time.Sleep(life) // the pod's lifetime
			if err := retry(ctx, func() error { return f.DeletePod(ctx, p) }); err != nil {
				fail(err)
			}
		})
		r.ChurnPods++
		if i%churnRate == 0 {
			peakRSS = max(peakRSS, RSS(os.Getpid()))
		}
	}
	tick.Stop()
	c3 := cpuNow()
	r.ChurnProcCores = float64(c3-c2) / float64(time.Since(start))
	r.ChurnCPU = r.ChurnProcCores / float64(r.N)
	r.KernelCallsPerNode = float64(kernelCalls(nodes)-calls0) / float64(len(nodes))
	r.Churn = memNow()
	r.ChurnPeakRSS = max(peakRSS, r.Churn.RSS)
	wg.Wait()
	return errors.Join(errs...)
}

func kernelCalls(nodes []*Node) int {
	s := 0
	for _, n := range nodes {
		s += n.Kernel.Counts().Calls
	}
	return s
}

// NewBlockSamples is how many fresh blocks the new-block measurement claims.
const NewBlockSamples = 5

func newBlock(ctx context.Context, env *Env, f *Fleet, r *Result) error {
	nodes := f.Nodes()
	slices.SortFunc(nodes, func(a, b *Node) int { return compareName(a.Name, b.Name) })
	var all []time.Duration
	var cpu time.Duration
	for s := range NewBlockSamples {
		owner := nodes[s*len(nodes)/NewBlockSamples]
		c0, t0 := cpuNow(), time.Now()
		var v4 []netip.Prefix
		if err := retry(ctx, func() (err error) {
			v4, _, err = f.IPAM.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, HandleID: fmt.Sprintf("scale.nb%d", s),
				Hostname: owner.Name, IPv4Pools: []string{PoolB}})
			return err
		}); err != nil {
			return err
		}
		blk := netip.PrefixFrom(v4[0].Addr(), BlockBits).Masked()
		others := slices.DeleteFunc(slices.Clone(nodes), func(n *Node) bool { return n == owner })
		wctx, cancel := waitFor(ctx, len(nodes))
		ds, err := WaitAll(wctx, others, t0, func(n *Node) (time.Time, bool) {
			_, at, ok := n.Kernel.Route(blk)
			return at, ok
		})
		cancel()
		cpu += cpuNow() - c0
		if err != nil {
			return fmt.Errorf("route to %s (claimed by %s): %w", blk, owner.Name, err)
		}
		all = append(all, ds...)
	}
	r.NewBlock, r.NewBlockSamples = Summarize(all), NewBlockSamples
	r.NewBlockCPU = cpu / time.Duration(NewBlockSamples*r.N)
	// Logged now: a later step's failure prints no table.
	env.Logf("N=%d new block → route on every other node: %s (p50 / p99 / max), CPU per node %s",
		r.N, r.NewBlock, r.NewBlockCPU.Round(10*time.Microsecond))
	return nil
}

func compareName(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func joinAndDelete(ctx context.Context, env *Env, f *Fleet, r *Result) error {
	others := f.Nodes()
	t0 := time.Now()
	n, err := f.Start(ctx, r.N)
	if err != nil {
		return err
	}
	wctx, cancel := waitFor(ctx, len(others))
	defer cancel()
	var tip netip.Addr
	var blk netip.Prefix
	for !blk.IsValid() {
		t, err := f.ReadTruth(wctx)
		if err != nil && (!transient(err) || wctx.Err() != nil) {
			return err
		}
		if err != nil {
			t = &Truth{}
		}
		tip = t.Nodes[n.Name].TunnelIP
		for b, owner := range t.Blocks {
			if owner == n.Name && tip.IsValid() && b.Contains(tip) {
				blk = b
				r.JoinSelf = time.Since(t0)
			}
		}
		if !blk.IsValid() {
			select {
			case <-wctx.Done():
				return fmt.Errorf("node %s has no tunnel address: %w", n.Name, wctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	ds, err := WaitAll(wctx, others, t0, func(o *Node) (time.Time, bool) {
		_, rt, ok := o.Kernel.Route(blk)
		v, vt, ok2 := o.Kernel.VTEP(tip)
		return later(rt, vt), ok && ok2 && v.NodeIP == n.Addr.Addr()
	})
	if err != nil {
		return fmt.Errorf("join of %s: %w", n.Name, err)
	}
	r.Join = Summarize(ds)
	if err := f.Stop(n); err != nil {
		return err
	}
	t0 = time.Now()
	if err := retry(ctx, func() error { return f.DeleteNode(ctx, n.Name) }); err != nil {
		return err
	}
	r.DeleteSelf = time.Since(t0)
	ds, err = WaitAll(wctx, others, t0, func(o *Node) (time.Time, bool) {
		rt, ok := o.Kernel.RouteGone(blk)
		vt, ok2 := o.Kernel.VTEPGone(tip)
		return later(rt, vt), ok && ok2
	})
	if err != nil {
		return fmt.Errorf("delete of %s: %w", n.Name, err)
	}
	r.Delete = Summarize(ds)
	return nil
}

// felixMTU is what the FelixConfiguration change sets (vxlanMTU).
const felixMTU = 1400

func felixChange(ctx context.Context, env *Env, f *Fleet, r *Result) error {
	c0, t0 := cpuNow(), time.Now()
	if err := retry(ctx, func() error {
		res, err := f.Client.Get(ctx, api.KindFelixConfiguration, "", "default")
		if err != nil {
			return err
		}
		fc := res.(*api.FelixConfiguration)
		fc.Spec.VXLANMTU = new(int)
		*fc.Spec.VXLANMTU = felixMTU
		_, err = f.Client.Update(ctx, fc)
		return err
	}); err != nil {
		return err
	}
	wctx, cancel := waitFor(ctx, r.N)
	defer cancel()
	ds, err := WaitAll(wctx, f.Nodes(), t0, func(n *Node) (time.Time, bool) {
		v, ok := n.Kernel.VXLAN(agent.VXLANDevice)
		return n.Kernel.ChangedAt("link:" + agent.VXLANDevice), ok && v.MTU == felixMTU
	})
	r.FelixCPU = cpuNow() - c0
	r.Felix = Summarize(ds)
	return err
}

func poolChange(ctx context.Context, env *Env, f *Fleet, r *Result) error {
	cidr := netip.MustParsePrefix(PoolACIDR)
	c0, t0 := cpuNow(), time.Now()
	if err := retry(ctx, func() error {
		res, err := f.Client.Get(ctx, api.KindIPPool, "", PoolA)
		if err != nil {
			return err
		}
		p := res.(*api.IPPool)
		p.Spec.NATOutgoing = false
		_, err = f.Client.Update(ctx, p)
		return err
	}); err != nil {
		return err
	}
	wctx, cancel := waitFor(ctx, r.N)
	defer cancel()
	ds, err := WaitAll(wctx, f.Nodes(), t0, func(n *Node) (time.Time, bool) {
		t := n.Kernel.NAT()
		return n.Kernel.ChangedAt("nat"), t.Name != "" && !slices.Contains(t.NAT.MasqPools, cidr)
	})
	r.PoolCPU = cpuNow() - c0
	r.Pool = Summarize(ds)
	return err
}
