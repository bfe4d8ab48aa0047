package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/bgp"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/kv"
	"github.com/onecalico/calico/internal/policy"
	"github.com/onecalico/calico/internal/version"
)

// Agent is one running node daemon. Create it with New, run it with Run.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	store  kv.Store // counts errors
	client *datastore.Client
	met    *metrics

	// mu guards the model and everything the sync handlers write.
	mu     sync.Mutex
	model  *Model
	synced map[string]bool
	// syncedAll: every watched prefix has been synced (allSynced).
	syncedAll bool
	felix     felixLayers
	felixEnv  api.FelixConfigurationSpec
	// dirty is what the sync handlers changed since the last pass took it
	// (dirty.go); peers the other nodes' addresses for the policy options.
	dirty dirtySet
	peers peerList
	// polGen changes with what the policy options depend on (Felix
	// settings, Node addresses).
	polGen uint64
	// anyChange is dirty.global for signals from outside the sync
	// handlers, which may hold other locks.
	anyChange atomic.Bool

	// trigger and tunnelTrigger coalesce "something changed" signals:
	// buffer 1, non-blocking send.
	trigger       chan struct{}
	tunnelTrigger chan struct{}
	// resyncReq asks for a full resync now (the control socket's
	// "resync"); buffer 1, non-blocking send.
	resyncReq chan struct{}

	st      statusState
	readyCh chan struct{}
	started time.Time // when New ran

	// dp and pol (policy_apply.go) are owned by the reconcile goroutine.
	dp  *dataplane
	pol *policyPlane
	// warnedTunnel remembers warnings logged once (under mu).
	warnedTunnel map[TunnelKind]bool
	// policy is the policy calculator (under mu; see policy.go).
	policy *policy.Calculator
	// bgp is the BGP speaker (bgp.go).
	bgp *bgpAgent
}

// statusState is what health, metrics and the control socket report.
type statusState struct {
	mu        sync.Mutex
	live      bool
	beat      time.Time // last report of the reconcile loop; zero before it starts
	ready     bool
	lastApply time.Time
	degraded  []string
	errors    []string
	ipv4      string
	ipv6      string
	local     int
	routes    int
	vteps     int
	routes6   int
	vteps6    int
	changes   int64 // routes added, replaced or deleted since start
	ds        dsHealth
}

// Status is the daemon's state as the control socket reports it.
type Status struct {
	NodeName       string    `json:"nodeName"`
	IPv4Address    string    `json:"ipv4Address,omitempty"`
	IPv6Address    string    `json:"ipv6Address,omitempty"`
	Live           bool      `json:"live"`
	Ready          bool      `json:"ready"`
	LastApply      time.Time `json:"lastApply,omitzero"`
	Degraded       []string  `json:"degraded,omitempty"`
	Errors         []string  `json:"errors,omitempty"`
	LocalWorkloads int       `json:"localWorkloads"`
	Routes         int       `json:"routes"`
	VTEPs          int       `json:"vteps"`
	// RoutesV6 is how many of Routes are IPv6, and VTEPsV6 the IPv6
	// VXLAN peers (vxlan-v6.calico), apart from VTEPs (status6.go).
	RoutesV6     int    `json:"routesV6"`
	VTEPsV6      int    `json:"vtepsV6"`
	RouteChanges int64  `json:"routeChanges"`
	BGP          string `json:"bgp"`
	// BGPPeers and BGPProblems come from the BGP speaker (bgp.go).
	BGPPeers    []bgp.PeerStatus `json:"bgpPeers,omitempty"`
	BGPProblems []string         `json:"bgpProblems,omitempty"`
	Version     string           `json:"version"`
	PID         int              `json:"pid"`
	StartTime   time.Time        `json:"startTime"`
	// Datastore is "connected", or why the daemon is not ready because of
	// the datastore (see dshealth.go).
	Datastore string `json:"datastore,omitempty"`
}

// New checks cfg and prepares an agent. It does no I/O.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Store == nil {
		return nil, cfgErr("no datastore: set ETCD_ENDPOINTS")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.NodenameFile == "" {
		cfg.NodenameFile = DefaultNodenameFile
	}
	if cfg.MTUFile == "" {
		cfg.MTUFile = DefaultMTUFile
	}
	if cfg.RunDir == "" {
		cfg.RunDir = DefaultRunDir
	}
	env, unknown, err := felixEnvLayer(cfg.FelixOverrides)
	if err != nil {
		return nil, cfgErr("%v", err)
	}
	a := &Agent{
		cfg:           cfg,
		log:           cfg.Logger,
		met:           newMetrics(),
		synced:        map[string]bool{},
		felixEnv:      env,
		trigger:       make(chan struct{}, 1),
		tunnelTrigger: make(chan struct{}, 1),
		resyncReq:     make(chan struct{}, 1),
		readyCh:       make(chan struct{}),
		started:       time.Now(),
	}
	a.initBGP()
	a.store = countingStore{Store: cfg.Store, count: a.met.datastoreErrs.Inc}
	a.client = datastore.NewClient(a.store)
	a.model = &Model{
		NodeName: cfg.NodeName,
		Nodes:    map[string]Node{},
		Pools:    map[string]Pool{},
		Blocks:   map[netip.Prefix]Block{},
		WEPs:     map[string]WEP{},
	}
	a.mu.Lock()
	a.resolveFelixLocked()
	a.mu.Unlock()
	for _, u := range unknown {
		a.log.Info("FELIX_ setting not used by this daemon", "component", "config", "name", "FELIX_"+u)
	}
	return a, nil
}

// Ready is closed after the first complete dataplane apply.
func (a *Agent) Ready() <-chan struct{} { return a.readyCh }

// Status returns the daemon's current state.
func (a *Agent) Status() Status {
	st := a.statusLocked()
	st.BGP, st.BGPPeers, st.BGPProblems = a.bgpStatus()
	return st
}

func (a *Agent) statusLocked() Status {
	s := &a.st
	s.mu.Lock()
	defer s.mu.Unlock()
	ds := s.datastoreReason(time.Now())
	if ds == "" && s.ds.checked {
		ds = "connected"
	}
	return Status{
		NodeName:       a.cfg.NodeName,
		IPv4Address:    s.ipv4,
		IPv6Address:    s.ipv6,
		Live:           s.live && (s.beat.IsZero() || time.Since(s.beat) < livenessTimeout),
		Ready:          s.ready && !s.ds.lost,
		LastApply:      s.lastApply,
		Degraded:       append([]string(nil), s.degraded...),
		Errors:         append([]string(nil), s.errors...),
		LocalWorkloads: s.local,
		Routes:         s.routes,
		VTEPs:          s.vteps,
		RoutesV6:       s.routes6,
		VTEPsV6:        s.vteps6,
		RouteChanges:   s.changes,
		BGP:            "not enabled",
		Version:        version.Version,
		PID:            os.Getpid(),
		StartTime:      a.started,
		Datastore:      ds,
	}
}

// signal wakes the reconcile goroutine (and the tunnel address manager)
// without blocking: a pending signal already covers this change. The
// next pass recalculates everything (wake is for changes recorded in
// a.dirty).
func (a *Agent) signal(tunnels bool) {
	a.anyChange.Store(true)
	a.wake(tunnels, true)
}

// wake is signal for changes recorded in a.dirty; kickBGP says whether they
// matter to the BGP speaker (bgp_index.go).
func (a *Agent) wake(tunnels, kickBGP bool) {
	a.needCalc()
	if kickBGP {
		a.kickBGP()
	}
	select {
	case a.trigger <- struct{}{}:
	default:
	}
	if tunnels {
		select {
		case a.tunnelTrigger <- struct{}{}:
		default:
		}
	}
}

// Run registers the node, then runs the dataplane until ctx ends. It leaves
// the dataplane in place when it returns. Configuration mistakes are
// returned at once (errors.Is(err, ErrConfig)); datastore outages during
// startup are retried.
func (a *Agent) Run(ctx context.Context) error {
	log := a.log.With("component", "agent")
	log.Info("starting", "node", a.cfg.NodeName, "version", version.Version, "netns", a.cfg.NetNS)

	ctl, err := a.listenControl()
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if ctl != nil {
		wg.Go(func() { a.serveControl(ctx, ctl) })
	}
	a.setLive(true)

	if err := a.startupWithRetry(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if a.cfg.StartupOnly {
		if err := a.syncTunnelsOnce(ctx); err != nil && ctx.Err() == nil {
			return err
		}
		log.Info("startup complete")
		return nil
	}
	if err := a.startListeners(ctx, &wg); err != nil {
		return err
	}
	dp, err := newDataplane(a)
	if err != nil {
		return err
	}
	a.dp = dp
	defer dp.close()
	defer a.closePolicy()

	for _, h := range append(a.handlers(), a.bgpHandlers()...) {
		wg.Go(func() { _ = kv.Sync(ctx, a.store, h.prefix, h) })
	}
	wg.Go(func() { a.tunnelLoop(ctx) })
	wg.Go(func() { a.datastoreMonitor(ctx) })
	wg.Go(func() { a.bgpLoop(ctx) })
	a.reconcileLoop(ctx)
	log.Info("stopping; the dataplane stays in place")
	return nil
}

func (a *Agent) setLive(v bool) {
	a.st.mu.Lock()
	a.st.live = v
	a.st.mu.Unlock()
}

// startupWithRetry runs startup until it succeeds, retrying datastore
// failures with back-off; configuration errors end it.
func (a *Agent) startupWithRetry(ctx context.Context) error {
	backoff := 250 * time.Millisecond
	for {
		err := a.startup(ctx)
		if err == nil || errors.Is(err, ErrConfig) || ctx.Err() != nil {
			if err == nil {
				a.noteDatastore(nil)
			}
			return err
		}
		a.log.Error("startup failed; retrying", "component", "startup", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// listenControl opens the control socket in the run dir, replacing a stale
// socket file left by a previous run.
func (a *Agent) listenControl() (net.Listener, error) {
	path := filepath.Join(a.cfg.RunDir, ControlSocketName)
	if err := os.MkdirAll(a.cfg.RunDir, 0o755); err != nil {
		return nil, fmt.Errorf("create run dir %s: %w", a.cfg.RunDir, err)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("%w: another calico-node is serving %s; give each node its own run dir", ErrConfig, path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale control socket %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on control socket %s: %w", path, err)
	}
	return l, nil
}
