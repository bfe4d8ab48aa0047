package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/bgp"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/kv"
)

// The BGP speaker (backend bird) runs in its own goroutine: it reads the
// model, computes bgp.Calc and converges the embedded GoBGP server. What
// the server learns is read by the reconcile goroutine (bgpView), which
// programs it as protocol 12 routes. The speaker never touches the kernel.

// BGPRouteProtocol marks routes learned over BGP (`proto bird`, as
// upstream's BIRD writes them).
const BGPRouteProtocol = 12

// DefaultBGPSecretDir holds BGP passwords laid out like a mounted
// Kubernetes Secret: <dir>/<secret name>/<key>. CALICO_BGP_SECRET_DIR
// overrides it.
const DefaultBGPSecretDir = "/etc/calico/bgp-secrets"

// bgpSettle is how long every session must have been Established before
// the learned routes are complete enough to own protocol 12 (delete stale
// ones); bgpSyncMax bounds the wait after the speaker starts.
const (
	bgpSettle  = time.Second
	bgpSyncMax = 30 * time.Second
)

var (
	prefixBGPConfigs = mustKind(api.KindBGPConfiguration).ListPrefix("")
	prefixBGPPeers   = mustKind(api.KindBGPPeer).ListPrefix("")
	prefixBGPFilters = mustKind(api.KindBGPFilter).ListPrefix("")
)

// BGPView is the BGP part of the Model: configuration from the datastore
// (written by the sync handlers) and the speaker's state (filled in by
// the reconcile goroutine before each Calc).
type BGPView struct {
	Configs map[string]*api.BGPConfigurationSpec // by name
	Peers   map[string]*api.BGPPeer              // by name
	Filters map[string]*api.BGPFilterSpec        // by name
	// Unconfirmed are this node's blocks whose affinity is pending (or
	// pending deletion): upstream's export filter skips them.
	Unconfirmed map[netip.Prefix]bool
	// Enabled is set when this daemon runs a speaker: the learned routes
	// replace derived ones for pools without VXLAN.
	Enabled bool
	// Synced is set once the learned routes are complete (every session
	// settled, or bgpSyncMax passed): only then are protocol 12 routes
	// that nobody advertises deleted, so a restart keeps them meanwhile.
	Synced  bool
	Learned map[netip.Prefix]bgp.Learned // read-only
	// Static are the speaker's own routes (BGPPeer reachableBy).
	Static []bgp.StaticRoute
	// WorkloadAddrs are the peering addresses for local workload peers.
	WorkloadAddrs []bgp.WorkloadAddr
	// Down says why a wanted speaker is not running ("" when it runs or
	// has not been tried yet).
	Down string
}

func (v BGPView) clone() BGPView {
	v.Configs = maps.Clone(v.Configs)
	v.Peers = maps.Clone(v.Peers)
	v.Filters = maps.Clone(v.Filters)
	v.Unconfirmed = maps.Clone(v.Unconfirmed)
	return v
}

// bgpAgent is the agent's speaker state.
type bgpAgent struct {
	speaker *bgp.Speaker
	kick    chan struct{}
	secrets string

	// recalc is set by every signal (a change besides learned routes);
	// fast is the learned-route fast path (bgp_fast.go).
	recalc atomic.Bool
	fast   learnedFast

	// wanted is fixed at start: this daemon runs a speaker, so BGP is
	// the source of remote routes from the first apply on (a restart
	// must not put derived routes in place of the kept BGP ones).
	wanted bool

	mu       sync.Mutex
	running  bool
	reason   string // why it is not running
	started  time.Time
	synced   bool
	problems []string
	static   []bgp.StaticRoute
	peering  []bgp.WorkloadAddr

	ifaces ifaceScan // the BGP goroutine's (bgp_ifaces.go)
	index  bgpIndex  // under the agent's mu (bgp_index.go)
}

// bgpWanted reports whether this daemon runs a speaker, and why not.
func (a *Agent) bgpWanted() (bool, string) {
	switch {
	case a.cfg.backend() != BackendBird:
		return false, "not enabled (CALICO_NETWORKING_BACKEND=" + a.cfg.backend() + ")"
	case a.cfg.NetNS != "":
		// The speaker's sockets live in the process's namespace, so it
		// runs only when the daemon itself runs in the node's namespace.
		return false, "not running (the daemon is bound to another network namespace)"
	}
	return true, ""
}

func (a *Agent) initBGP() {
	dir := a.cfg.BGPSecretDir
	if dir == "" {
		dir = DefaultBGPSecretDir
	}
	b := &bgpAgent{kick: make(chan struct{}, 1), secrets: dir}
	b.wanted, _ = a.bgpWanted()
	// Learned routes only wake the reconcile goroutine; session changes
	// also wake the BGP goroutine (it decides when routes are synced).
	b.speaker = bgp.NewSpeaker(a.log, func(sessions bool) {
		if sessions {
			a.signal(false)
			return
		}
		select {
		case a.trigger <- struct{}{}:
		default:
		}
	})
	a.bgp = b
	a.met.registry.MustRegister(bgpCollector{a})
}

// kickBGP wakes the BGP goroutine without blocking.
func (a *Agent) kickBGP() {
	if a.bgp == nil {
		return
	}
	select {
	case a.bgp.kick <- struct{}{}:
	default:
	}
}

// bgpLoop converges the speaker on every change until ctx ends, then
// abandons it so that peers keep this node's routes (graceful restart).
func (a *Agent) bgpLoop(ctx context.Context) {
	log := a.log.With("component", "bgp")
	b := a.bgp
	if ok, why := a.bgpWanted(); !ok {
		b.mu.Lock()
		b.reason = why
		b.mu.Unlock()
		log.Info("BGP speaker " + why)
		return
	}
	// The tick checks the sync deadline and polls the secrets and the
	// interfaces while they are not watched (no directory yet, no
	// inotify, no netlink subscription).
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	defer b.speaker.Stop(false)
	defer a.closeIfaces()
	w := a.rewatchSecrets(ctx, nil)
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		case <-a.ifaceEvents():
			if !a.rescanIfaces() {
				continue
			}
		case <-tick.C:
			// Interfaces are polled while not watched, and dropped
			// (with their watch) once no rule needs them.
			ifs := false
			if !a.ifacesWatched() || !a.needIfaces() {
				ifs = a.rescanIfaces()
			}
			if w = a.rewatchSecrets(ctx, w); w != nil && a.bgpSynced() && !ifs {
				continue
			}
		}
		if !a.allSynced() {
			continue
		}
		if a.bgp.ifaces.connected == nil {
			a.rescanIfaces()
		}
		a.mu.Lock()
		in := a.bgpInputLocked()
		a.mu.Unlock()
		d := bgp.Calc(in)
		err := b.speaker.Apply(ctx, d)
		if err != nil && ctx.Err() == nil {
			log.Error("BGP apply failed", "err", err)
		}
		a.bgpAfterApply(d, err)
	}
}

// rewatchSecrets returns w while it still watches the secret directory,
// else a new watcher (nil when that fails: the caller polls).
func (a *Agent) rewatchSecrets(ctx context.Context, w *secretWatcher) *secretWatcher {
	if w != nil && w.watching() {
		return w
	}
	if w != nil {
		w.close()
	}
	w, err := watchSecrets(ctx, a.bgp.secrets, a.log, a.kickBGP)
	if err != nil {
		a.log.Debug("BGP secrets polled", "component", "bgp", "err", err)
		return nil
	}
	a.log.Info("BGP secrets watched", "component", "bgp", "dir", a.bgp.secrets)
	a.kickBGP() // a change may have come before the watch
	return w
}

// bgpSynced reports whether the learned routes are complete.
func (a *Agent) bgpSynced() bool {
	a.bgp.mu.Lock()
	defer a.bgp.mu.Unlock()
	return a.bgp.synced
}

// bgpAfterApply records the speaker's state and decides when learned
// routes are synced.
func (a *Agent) bgpAfterApply(d bgp.Desired, err error) {
	b := a.bgp
	b.mu.Lock()
	wasRunning, wasSynced := b.running, b.synced
	b.running = b.speaker.Running()
	switch {
	case !d.Enabled:
		b.reason = "not running (this node has no IPv4 address)"
	case !b.running && err != nil:
		b.reason = "not running: " + err.Error()
	case b.running:
		b.reason = ""
	}
	if b.running && !wasRunning {
		b.started = time.Now()
	}
	b.problems = d.Problems
	if b.running && !b.synced {
		b.synced = time.Since(b.started) > bgpSyncMax || a.bgpSettled()
	}
	if b.synced && !wasSynced {
		a.log.Info("BGP learned routes complete", "component", "bgp", "after", time.Since(b.started).Round(time.Millisecond))
	}
	changed := wasSynced != b.synced || wasRunning != b.running || !slices.Equal(b.static, d.Static) || !slices.Equal(b.peering, d.WorkloadAddrs)
	b.static, b.peering = d.Static, d.WorkloadAddrs
	b.mu.Unlock()
	if changed {
		a.signal(false)
	}
}

// bgpSettled reports whether every session that should come up has been
// Established for bgpSettle.
func (a *Agent) bgpSettled() bool {
	for _, p := range a.bgp.speaker.Status(context.Background()) {
		if p.Info != "" {
			continue // kept down on purpose
		}
		if p.State != "Established" || time.Since(p.Since) < bgpSettle {
			return false
		}
	}
	return true
}

// bgpView fills the speaker's state into a model copy (reconcile goroutine).
func (a *Agent) bgpView(v BGPView) BGPView {
	if a.bgp == nil {
		return v
	}
	b := a.bgp
	b.mu.Lock()
	v.Enabled, v.Synced, v.Static, v.WorkloadAddrs = b.wanted, b.running && b.synced, b.static, b.peering
	if b.wanted && !b.running {
		v.Down = b.reason
	}
	b.mu.Unlock()
	if v.Enabled {
		v.Learned, _ = b.speaker.Learned()
	}
	return v
}

// bgpInput converts the model into bgp.Calc's input.
func (a *Agent) bgpInput(m *Model) *bgp.Input {
	in := &bgp.Input{NodeName: m.NodeName, Nodes: map[string]bgp.Node{}, Peers: m.BGP.Peers, Filters: m.BGP.Filters, Secret: a.readSecret,
		Workloads: localWorkloads(m), IfaceRoutes: a.ifaceRoutes(m)}
	for name, n := range m.Nodes {
		in.Nodes[name] = bgpNode(name, n)
	}
	in.Global = m.BGP.Configs[api.GlobalConfigName]
	in.Local = m.BGP.Configs[api.NodeConfigName(m.NodeName)]
	for _, name := range sortedKeys(m.Pools) {
		p := m.Pools[name]
		in.Pools = append(in.Pools, bgp.Pool{CIDR: p.CIDR, DisableExport: p.DisableBGPExport})
	}
	for _, b := range m.Blocks {
		aff := b.Affinity
		if aff == m.NodeName && m.BGP.Unconfirmed[b.CIDR] {
			aff = ""
		}
		in.Blocks = append(in.Blocks, bgp.Block{CIDR: b.CIDR, Affinity: aff, Borrowed: b.Borrowed})
	}
	return in
}

func bgpNode(name string, n Node) bgp.Node {
	return bgp.Node{Name: name, Labels: n.Labels, IPv4: n.IPv4, IPv6: n.IPv6, ASNumber: n.ASNumber, RRClusterID: n.RRClusterID}
}

// readSecret reads <secret dir>/<name>/<key>, trimmed of one trailing
// newline (as files written by hand end).
func (a *Agent) readSecret(name, key string) (string, error) {
	if name == "" || key == "" || strings.ContainsAny(name+key, "/\x00") || name == ".." || key == ".." {
		return "", fmt.Errorf("secret %q key %q: not a valid name", name, key)
	}
	path := filepath.Join(a.bgp.secrets, name, key)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("secret %s key %s: %s does not exist (set CALICO_BGP_SECRET_DIR or create it)", name, key, path)
	}
	if err != nil {
		return "", fmt.Errorf("secret %s key %s: %w", name, key, err)
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// bgpStatus is the speaker's part of Status.
func (a *Agent) bgpStatus() (string, []bgp.PeerStatus, []string) {
	if a.bgp == nil {
		return "not enabled", nil, nil
	}
	b := a.bgp
	b.mu.Lock()
	running, reason, problems := b.running, b.reason, b.problems
	b.mu.Unlock()
	if !running {
		if reason == "" {
			reason = "starting"
		}
		return reason, nil, problems
	}
	return "running", b.speaker.Status(context.Background()), problems
}

// bgpHandlers feed BGPConfiguration and BGPPeer objects into the model.
func (a *Agent) bgpHandlers() []*syncHandler {
	cfgKind, peerKind, filterKind := mustKind(api.KindBGPConfiguration), mustKind(api.KindBGPPeer), mustKind(api.KindBGPFilter)
	affinities := api.HostAffinityPrefix(a.cfg.NodeName, 0) // IPv4 and IPv6
	return []*syncHandler{
		{
			// Not in watchedPrefixes: until it syncs, every affinity
			// counts as confirmed (the block's own affinity field).
			a: a, prefix: affinities,
			reset: func(m *Model) { m.BGP.Unconfirmed = map[netip.Prefix]bool{} },
			put: func(m *Model, key string, item *kv.KV) error {
				_, cidr, err := api.ParseAffinityKey(key)
				if err != nil {
					return err
				}
				var aff api.BlockAffinity
				if len(item.Value) > 0 {
					if err := json.Unmarshal(item.Value, &aff); err != nil {
						return fmt.Errorf("decode affinity %s: %w", key, err)
					}
				}
				if aff.Confirmed() && !aff.Deleted {
					delete(m.BGP.Unconfirmed, cidr)
				} else {
					m.BGP.Unconfirmed[cidr] = true
				}
				return nil
			},
			del: func(m *Model, key string) {
				if _, cidr, err := api.ParseAffinityKey(key); err == nil {
					delete(m.BGP.Unconfirmed, cidr)
				}
			},
		},
		{
			a: a, prefix: prefixBGPConfigs,
			reset: func(m *Model) { m.BGP.Configs = map[string]*api.BGPConfigurationSpec{} },
			put: func(m *Model, key string, item *kv.KV) error {
				r, err := datastore.Decode(cfgKind, item)
				if err != nil {
					return err
				}
				m.BGP.Configs[strings.TrimPrefix(key, prefixBGPConfigs)] = &r.(*api.BGPConfiguration).Spec
				return nil
			},
			del: func(m *Model, key string) { delete(m.BGP.Configs, strings.TrimPrefix(key, prefixBGPConfigs)) },
		},
		{
			a: a, prefix: prefixBGPPeers,
			reset: func(m *Model) { m.BGP.Peers = map[string]*api.BGPPeer{} },
			put: func(m *Model, key string, item *kv.KV) error {
				r, err := datastore.Decode(peerKind, item)
				if err != nil {
					return err
				}
				p := r.(*api.BGPPeer)
				if err := p.Validate(); err != nil {
					return err
				}
				m.BGP.Peers[strings.TrimPrefix(key, prefixBGPPeers)] = p
				return nil
			},
			del: func(m *Model, key string) { delete(m.BGP.Peers, strings.TrimPrefix(key, prefixBGPPeers)) },
		},
		{
			a: a, prefix: prefixBGPFilters,
			reset: func(m *Model) { m.BGP.Filters = map[string]*api.BGPFilterSpec{} },
			put: func(m *Model, key string, item *kv.KV) error {
				r, err := datastore.Decode(filterKind, item)
				if err != nil {
					return err
				}
				f := r.(*api.BGPFilter)
				if err := f.Validate(); err != nil {
					return err
				}
				m.BGP.Filters[strings.TrimPrefix(key, prefixBGPFilters)] = &f.Spec
				return nil
			},
			del: func(m *Model, key string) { delete(m.BGP.Filters, strings.TrimPrefix(key, prefixBGPFilters)) },
		},
	}
}
