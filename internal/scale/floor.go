package scale

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/ipam"
	"github.com/onecalico/calico/internal/kv"
)

// The cold start's datastore floor: what N agents starting at once cost
// with the calculation switched off. Each floor node does to the
// datastore what an agent's cold start does (its own client; it lists the
// Nodes to check its address is free, gets its VXLAN tunnel address
// through IPAM, which claims its block, and registers its Node with the
// address in it) and lists, watches and decodes every prefix an
// agent's routes depend on (Nodes, pools, blocks, endpoints,
// FelixConfigurations), but computes and applies nothing. It is done when
// every floor node has seen every Node with its tunnel address and every
// node's block: the point a cold start of agents converges at, less the
// agents' own work.

// FloorResult is one floor run.
type FloorResult struct {
	N      int
	Wall   time.Duration // start → every floor node has seen everything
	CPU    time.Duration // this process's CPU over Wall
	Events int64         // watch events delivered (all floor nodes)
	// Relists are the snapshots taken after the first one of a prefix
	// (a watch failed: a lost connection, no leader, compaction).
	Relists int64
	// Requests counts the registrations' and claims' requests per floor
	// node by step, method and outcome (floorCounts).
	Requests string
}

func (r FloorResult) String() string {
	return fmt.Sprintf("N=%d: datastore floor of the cold start %s (process CPU %s, %.1f ms per node; %d watch events, %d relists)",
		r.N, r.Wall.Round(time.Millisecond), r.CPU.Round(time.Millisecond), float64(r.CPU.Microseconds())/1000/float64(r.N), r.Events, r.Relists) +
		"\n" + r.Requests
}

// floorWatcher is one floor node's view: which nodes have a tunnel
// address and which have a block.
type floorWatcher struct {
	n      int
	events *atomic.Int64
	lists  *atomic.Int64 // snapshots taken (all floor nodes)
	mu     sync.Mutex
	tunnel map[string]bool
	blocks map[string]bool
	done   chan struct{}
	closed bool
}

func (w *floorWatcher) handler(kind string) kv.SyncHandler { return floorHandler{w, kind} }

type floorHandler struct {
	w    *floorWatcher
	kind string // "" for blocks
}

func (h floorHandler) OnSnapshot(kvs []*kv.KV, _ int64) {
	h.w.lists.Add(1)
	for _, item := range kvs {
		h.one(item)
	}
}

func (h floorHandler) OnEvents(evs []kv.Event) {
	h.w.events.Add(int64(len(evs)))
	for _, ev := range evs {
		if ev.Type != kv.EventDelete {
			h.one(&kv.KV{Key: ev.Key, Value: ev.Value, Revision: ev.Revision})
		}
	}
}

// one decodes an item as the agent does and notes what it tells.
func (h floorHandler) one(item *kv.KV) {
	w := h.w
	switch h.kind {
	case "":
		if b, err := agent.BlockFromJSON(item.Key, item.Value); err == nil && b.Affinity != "" {
			w.note(w.blocks, b.Affinity)
		}
	case api.KindNode:
		if n, err := agent.NodeFromJSON(item.Key, item.Value); err == nil && n.VXLANTunnelAddr.IsValid() {
			w.note(w.tunnel, n.Name)
		}
	default:
		ki, _ := api.LookupKind(h.kind)
		_, _ = datastore.Decode(ki, item)
	}
}

func (w *floorWatcher) note(set map[string]bool, name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	set[name] = true
	if !w.closed && len(w.tunnel) >= w.n && len(w.blocks) >= w.n {
		w.closed = true
		close(w.done)
	}
}

// RunFloor starts n floor nodes at once on a fresh cluster (pools
// created) and waits until every one has seen everything.
func RunFloor(ctx context.Context, env Env, n int) (FloorResult, error) {
	f, err := NewFleet(env.Dir, env.NewStore)
	if err != nil {
		return FloorResult{}, err
	}
	defer f.Close()
	if err := f.Setup(ctx); err != nil {
		return FloorResult{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	var events, lists atomic.Int64
	var counts floorCounts
	ws := make([]*floorWatcher, n)
	errs := make(chan error, n)
	cpu0, t0 := SelfStats(false).CPU, time.Now()
	for i := range n {
		ws[i] = &floorWatcher{n: n, events: &events, lists: &lists, tunnel: map[string]bool{}, blocks: map[string]bool{}, done: make(chan struct{})}
		wg.Go(func() {
			if err := floorNode(ctx, env, i, ws[i], &counts, &wg); err != nil && ctx.Err() == nil {
				errs <- err
			}
		})
	}
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for i := 0; i < len(ws); {
		select {
		case <-ws[i].done:
			i++
		case <-tick.C:
			if env.Logf != nil {
				env.Logf("floor N=%d after %s: %d floor nodes have seen everything; %d watch events, %d relists so far",
					n, time.Since(t0).Round(time.Second), doneCount(ws), events.Load(), lists.Load()-int64(floorPrefixes*n))
			}
		case err := <-errs:
			return FloorResult{}, err
		case <-ctx.Done():
			return FloorResult{}, ctx.Err()
		}
	}
	return FloorResult{N: n, Wall: time.Since(t0), CPU: SelfStats(false).CPU - cpu0, Events: events.Load(),
		Relists: lists.Load() - int64(floorPrefixes*n), Requests: counts.String(n)}, nil
}

func doneCount(ws []*floorWatcher) int {
	c := 0
	for _, w := range ws {
		select {
		case <-w.done:
			c++
		default:
		}
	}
	return c
}

// floorNode is floor node i: its watches (until ctx ends) and its
// registration.
func floorNode(ctx context.Context, env Env, i int, w *floorWatcher, counts *floorCounts, wg *sync.WaitGroup) error {
	st, err := env.NewStore()
	if err != nil {
		return err
	}
	context.AfterFunc(ctx, func() { st.Close() })
	for _, k := range []string{api.KindNode, api.KindIPPool, api.KindWorkloadEndpoint, api.KindFelixConfiguration} {
		ki, _ := api.LookupKind(k)
		wg.Go(func() { _ = kv.Sync(ctx, st, ki.ListPrefix(""), w.handler(k)) })
	}
	wg.Go(func() { _ = kv.Sync(ctx, st, api.IPAMBlockPrefix, w.handler("")) })
	name := NodeName(i)
	// Each step is retried, as the agent's startup and tunnel manager
	// retry (an overloaded etcd times requests out). The steps are the
	// agent's since it registers once: check the address is free, get the
	// tunnel address (claiming the block) before the Node exists, then
	// create the Node with it.
	c := datastore.NewClient(countedStore{st, counts, "list"})
	if err := floorRetry(ctx, func() error {
		_, _, err := datastore.ListOf[*api.Node](ctx, c, api.KindNode, "")
		return err
	}); err != nil {
		return fmt.Errorf("floor node %s: list nodes: %w", name, err)
	}
	var a netip.Addr
	alloc := ipam.New(countedStore{st, counts, "claim"}, ipam.Options{})
	if err := floorRetry(ctx, func() (err error) {
		a, err = alloc.EnsureTunnelAddressRegistering(ctx, name, nil, ipam.TunnelVXLAN, []string{PoolACIDR})
		return err
	}); err != nil {
		return fmt.Errorf("floor node %s: tunnel address: %w", name, err)
	}
	c = datastore.NewClient(countedStore{st, counts, "register"})
	if err := floorRetry(ctx, func() error {
		node := api.NewNode()
		node.Name = name
		node.Spec.BGP = &api.NodeBGPSpec{IPv4Address: NodeAddr(i).String()}
		node.Spec.IPv4VXLANTunnelAddr = a.String()
		node.Spec.VXLANTunnelMACAddr = agent.VTEPMAC(name).String()
		_, err := c.Create(ctx, node)
		if errors.Is(err, kv.ErrExists) {
			return nil // an earlier try that timed out went through
		}
		return err
	}); err != nil {
		return fmt.Errorf("floor node %s: register: %w", name, err)
	}
	return nil
}

// floorPrefixes is how many prefixes a floor node syncs (the kinds and
// the blocks).
const floorPrefixes = 5

// floorRetry runs f until it succeeds or ctx ends, waiting a little longer
// after each failure (at most 5 s).
func floorRetry(ctx context.Context, f func() error) error {
	wait := 100 * time.Millisecond
	for {
		err := f()
		if err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}
