// Package scale simulates a cluster of node agents in one process for
// measuring how the daemon's cost grows with the cluster: every agent is
// a real agent.Agent with its own datastore client and watches (as N
// machines would have), registering its Node and claiming its blocks
// through the real IPAM code; only the last step, the kernel, is swapped
// for a counted.Kernel that records what would change. The measurements
// and the report (tables, SVG plots) live here too; the etcd cluster the
// fleet runs against is started by the tests (scale_test.go), which are
// what `make scale` runs.
package scale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/agent/counted"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/ipam"
	"github.com/onecalico/calico/internal/kv"
)

// The cluster's address plan. Pool A (VXLAN, NAT outgoing) holds every
// node's tunnel address and pods; pool B (VXLAN, workloads only) is where
// the "new block" measurement claims a fresh block on one node. Node i's
// underlay address is in 172.16.0.0/12.
const (
	PoolA      = "scale-a"
	PoolACIDR  = "10.64.0.0/12"
	PoolB      = "scale-b"
	PoolBCIDR  = "10.96.0.0/12"
	BlockBits  = 26
	underlayIf = "eth0"
)

// StoreFactory opens a new datastore client (one per agent, as each
// machine has its own).
type StoreFactory func() (kv.Store, error)

// Fleet is the simulated cluster: its agents and the harness's own
// datastore client (for pools, pods and measurements).
type Fleet struct {
	dir      string
	newStore StoreFactory
	Store    kv.Store
	Client   *datastore.Client
	IPAM     *ipam.Allocator
	// AgentLog receives the agents' warnings and errors (each line names
	// its node); nil discards them. SCALE_AGENT_LOG=<file> sets it.
	AgentLog io.Writer

	mu    sync.Mutex
	nodes map[string]*Node
}

// Node is one simulated machine: its agent, its datastore client and its
// counted kernel.
type Node struct {
	Name   string
	Addr   netip.Prefix // underlay address
	Kernel *counted.Kernel

	store  kv.Store
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// NewFleet prepares a fleet whose agents keep their files under dir.
func NewFleet(dir string, newStore StoreFactory) (*Fleet, error) {
	st, err := newStore()
	if err != nil {
		return nil, err
	}
	return &Fleet{dir: dir, newStore: newStore, Store: st, Client: datastore.NewClient(st),
		IPAM: ipam.New(st, ipam.Options{}), nodes: map[string]*Node{}}, nil
}

// Setup creates the two pools.
func (f *Fleet) Setup(ctx context.Context) error {
	for _, p := range []struct {
		name, cidr string
		nat        bool
		uses       []api.IPPoolAllowedUse
	}{
		{PoolA, PoolACIDR, true, nil},
		{PoolB, PoolBCIDR, false, []api.IPPoolAllowedUse{api.AllowedUseWorkload}},
	} {
		pool := api.NewIPPool()
		pool.Name = p.name
		pool.Spec = api.IPPoolSpec{CIDR: p.cidr, VXLANMode: api.VXLANModeAlways, IPIPMode: api.IPIPModeNever,
			NATOutgoing: p.nat, BlockSize: BlockBits, NodeSelector: "all()", AllowedUses: p.uses}
		if _, err := f.Client.Create(ctx, pool); err != nil && !errors.Is(err, kv.ErrExists) {
			return fmt.Errorf("create pool %s: %w", p.name, err)
		}
	}
	return nil
}

// NodeName is the name of node i.
func NodeName(i int) string { return fmt.Sprintf("n%04d", i) }

// NodeAddr is node i's underlay address.
func NodeAddr(i int) netip.Prefix {
	v := 172<<24 | 16<<16 | uint32(i+1)
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 12)
}

// Start starts the agent of node i (its own datastore client, files and
// counted kernel) and returns at once.
func (f *Fleet) Start(ctx context.Context, i int) (*Node, error) {
	name := NodeName(i)
	dir := filepath.Join(f.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	st, err := f.newStore()
	if err != nil {
		return nil, fmt.Errorf("datastore client for %s: %w", name, err)
	}
	n := &Node{Name: name, Addr: NodeAddr(i), store: st, done: make(chan struct{})}
	n.Kernel = counted.New(counted.Host{Iface: underlayIf, Addr: n.Addr})
	a, err := agent.New(agent.Config{
		Store: st, NodeName: name, IP: n.Addr.String(), Backend: agent.BackendVXLAN, NoDefaultPools: true,
		NodenameFile: filepath.Join(dir, "nodename"), MTUFile: filepath.Join(dir, "mtu"), RunDir: dir,
		DisableListeners: true, Tunnels: tunnelAddresser{ipam.New(st, ipam.Options{})}, Kernel: n.Kernel,
		Logger: f.agentLogger(name),
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	actx, cancel := context.WithCancel(ctx)
	n.cancel = cancel
	f.mu.Lock()
	f.nodes[name] = n
	f.mu.Unlock()
	go func() {
		defer close(n.done)
		n.err = a.Run(actx)
	}()
	return n, nil
}

// agentLogger is node name's logger: AgentLog at warning level, or nil.
func (f *Fleet) agentLogger(name string) *slog.Logger {
	if f.AgentLog == nil {
		return nil
	}
	return slog.New(slog.NewTextHandler(f.AgentLog, &slog.HandlerOptions{Level: slog.LevelWarn})).With("agent", name)
}

// Stop stops node's agent and closes its client (its datastore records
// stay, as when a machine stops).
func (f *Fleet) Stop(n *Node) error {
	n.cancel()
	<-n.done
	n.store.Close()
	f.mu.Lock()
	delete(f.nodes, n.Name)
	f.mu.Unlock()
	return n.err
}

// Nodes returns the running nodes.
func (f *Fleet) Nodes() []*Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*Node, 0, len(f.nodes))
	for _, n := range f.nodes {
		out = append(out, n)
	}
	return out
}

// Close stops every agent and closes the harness's client.
func (f *Fleet) Close() {
	var wg sync.WaitGroup
	for _, n := range f.Nodes() {
		wg.Go(func() { _ = f.Stop(n) })
	}
	wg.Wait()
	f.Store.Close()
}

// DeleteNode removes a stopped node's records as `calicoctl delete node`
// does for a node without pods: its tunnel address, its block
// affinities (empty blocks go with them), its FelixConfiguration and
// the Node.
func (f *Fleet) DeleteNode(ctx context.Context, name string) error {
	r, err := f.Client.Get(ctx, api.KindNode, "", name)
	if errors.Is(err, kv.ErrNotFound) {
		return nil // deleted by an earlier attempt whose answer was lost
	}
	if err != nil {
		return err
	}
	n := r.(*api.Node)
	if a, err := netip.ParseAddr(n.Spec.IPv4VXLANTunnelAddr); err == nil {
		if _, err := f.IPAM.ReleaseIPs(ctx, []ipam.ReleaseOptions{{Address: a}}); err != nil {
			return fmt.Errorf("release tunnel address of %s: %w", name, err)
		}
	}
	if err := f.IPAM.ReleaseHostAffinities(ctx, name, false); err != nil {
		return fmt.Errorf("release affinities of %s: %w", name, err)
	}
	if _, err := f.Client.Delete(ctx, api.KindFelixConfiguration, "", "node."+name, ""); err != nil && !errors.Is(err, kv.ErrNotFound) {
		return err
	}
	if _, err = f.Client.Delete(ctx, api.KindNode, "", name, ""); err != nil && !errors.Is(err, kv.ErrNotFound) {
		return err
	}
	return nil
}

// tunnelAddresser gives an agent its tunnel address from IPAM, as the
// node applet's adapter does (applets/node/tunnels.go).
type tunnelAddresser struct{ alloc *ipam.Allocator }

func ipamKind(k agent.TunnelKind) ipam.TunnelKind {
	if k == agent.TunnelIPIP {
		return ipam.TunnelIPIP
	}
	return ipam.TunnelVXLAN
}

func (t tunnelAddresser) EnsureTunnelAddress(ctx context.Context, host string, kind agent.TunnelKind, pools []string) (netip.Addr, error) {
	return t.alloc.EnsureTunnelAddress(ctx, host, ipamKind(kind), pools)
}

func (t tunnelAddresser) EnsureTunnelAddressRegistering(ctx context.Context, host string, labels map[string]string, kind agent.TunnelKind, pools []string) (netip.Addr, error) {
	return t.alloc.EnsureTunnelAddressRegistering(ctx, host, labels, ipamKind(kind), pools)
}

func (t tunnelAddresser) ReleaseTunnelAddress(ctx context.Context, host string, kind agent.TunnelKind) error {
	return t.alloc.ReleaseTunnelAddress(ctx, host, ipamKind(kind))
}
