package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/ifaces"
	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/kv"
	"github.com/onecalico/calico/internal/version"
)

// startup does what upstream's `calico-node -startup` does: datastore
// initialisation, the Node resource (IP, AS), the nodename file, the
// default IP pool and the default FelixConfigurations. Every write is
// create-if-absent or compare-and-swap, so concurrent nodes and restarts
// are safe.
func (a *Agent) startup(ctx context.Context) error {
	log := a.log.With("component", "startup")
	if err := a.client.RecordClusterVersion(ctx, version.Version, a.cfg.ClusterType); err != nil {
		return fmt.Errorf("initialise datastore: %w", err)
	}
	node, err := a.registerNode(ctx)
	if err != nil {
		return err
	}
	a.st.mu.Lock()
	if node.Spec.BGP != nil {
		a.st.ipv4, a.st.ipv6 = node.Spec.BGP.IPv4Address, node.Spec.BGP.IPv6Address
	}
	a.st.mu.Unlock()
	if _, err := writeFileAtomic(a.cfg.NodenameFile, []byte(a.cfg.NodeName)); err != nil {
		return fmt.Errorf("%w: nodename file: %v", ErrConfig, err)
	}
	if err := a.ensureDefaultPool(ctx); err != nil {
		return err
	}
	if err := a.ensureDefaultPoolV6(ctx); err != nil {
		return err
	}
	if err := a.ensureFelixConfigs(ctx); err != nil {
		return err
	}
	if err := a.loadFelixConfigs(ctx); err != nil {
		return err
	}
	log.Info("node registered", "node", a.cfg.NodeName, "ipv4", a.st.ipv4, "nodename_file", a.cfg.NodenameFile)
	return nil
}

// interfaces lists the node's interfaces in its namespace (through
// Config.Kernel when set).
func (a *Agent) interfaces() ([]ifaces.Interface, error) {
	if a.cfg.Kernel != nil {
		return a.cfg.Kernel.Interfaces()
	}
	h, err := netns.NewHandle(a.cfg.NetNS)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return ifaces.List(h)
}

func (a *Agent) reach(dest string, version int) (netip.Addr, error) {
	return ifaces.SourceAddr(a.cfg.NetNS, dest, version)
}

// registerNode creates or updates this node's Node resource with its
// addresses and AS number, keeping every other field. A Node it creates
// carries its tunnel addresses already when the allocator can give them
// before the Node exists (tunnelsForNewNode).
func (a *Agent) registerNode(ctx context.Context) (*api.Node, error) {
	var ifs []ifaces.Interface
	if a.cfg.backend() != BackendNone {
		var err error
		if ifs, err = a.interfaces(); err != nil {
			return nil, fmt.Errorf("list interfaces: %w", err)
		}
	}
	m4, _ := ParseAutodetectMethod(a.cfg.IPAutodetect)
	m6, _ := ParseAutodetectMethod(a.cfg.IP6Autodetect)
	var as *api.ASNumber
	if a.cfg.AS != "" {
		n, _ := api.ParseASNumber(a.cfg.AS)
		as = &n
	}
	var allocated []TunnelKind
	n, err := updateNode(ctx, a.client, a.cfg.NodeName, func(n *api.Node) (bool, error) {
		changed, err := a.nodeFields(ctx, n, ifs, m4, m6, as)
		if err == nil && n.ResourceVersion == "" && a.cfg.backend() != BackendNone && allocated == nil {
			allocated = a.tunnelsForNewNode(ctx, n)
		}
		return changed, err
	})
	if errors.Is(err, ErrConfig) && len(allocated) > 0 {
		// The daemon stops here. Any other failure is retried (the
		// datastore timed out, or the Node may even have been written):
		// the next try finds the address under its handle and keeps it.
		a.releaseUnregistered(allocated)
	}
	return n, err
}

// nodeFields sets the node's addresses and AS number on n (read, or new
// when its ResourceVersion is empty) and reports whether it changed.
func (a *Agent) nodeFields(ctx context.Context, n *api.Node, ifs []ifaces.Interface, m4, m6 AutodetectMethod, as *api.ASNumber) (bool, error) {
	log := a.log.With("component", "startup")
	changed := n.ResourceVersion == ""
	if a.cfg.backend() == BackendNone {
		// Policy-only mode: upstream writes no addresses.
		return changed, nil
	}
	bgp := api.NodeBGPSpec{}
	if n.Spec.BGP != nil {
		bgp = *n.Spec.BGP
	}
	v4, warn, err := resolveIP(a.cfg.IP, bgp.IPv4Address, 4, m4, ifs, a.reach)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if warn != "" {
		log.Warn(warn)
	}
	v6, warn, err := resolveIP(a.cfg.IP6, bgp.IPv6Address, 6, m6, ifs, a.reach)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if warn != "" {
		log.Warn(warn)
	}
	if v4 == "" && v6 == "" {
		return false, cfgErr("no IPv4 or IPv6 address configured or detected; Calico networking needs one (set IP, or CALICO_NETWORKING_BACKEND=none)")
	}
	if v4 != bgp.IPv4Address || v6 != bgp.IPv6Address {
		log.Info("node address", "ipv4", v4, "ipv6", v6, "was_ipv4", bgp.IPv4Address, "was_ipv6", bgp.IPv6Address)
		if err := a.checkConflicts(ctx, v4, v6); err != nil {
			return false, err
		}
		bgp.IPv4Address, bgp.IPv6Address = v4, v6
		changed = true
	}
	if as != nil && (bgp.ASNumber == nil || *bgp.ASNumber != *as) {
		bgp.ASNumber = as
		changed = true
	}
	if bgp != (api.NodeBGPSpec{}) {
		n.Spec.BGP = &bgp
	}
	return changed, nil
}

// checkConflicts refuses an address another node already uses.
func (a *Agent) checkConflicts(ctx context.Context, v4, v6 string) error {
	nodes, _, err := datastore.ListOf[*api.Node](ctx, a.client, api.KindNode, "")
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	addr := func(s string) netip.Addr {
		p, err := api.ParseAddrOrCIDR(s)
		if err != nil {
			return netip.Addr{}
		}
		return p.Addr()
	}
	my4, my6 := addr(v4), addr(v6)
	for _, n := range nodes {
		if n.Name == a.cfg.NodeName || n.Spec.BGP == nil {
			continue
		}
		if t := addr(n.Spec.BGP.IPv4Address); my4.IsValid() && t == my4 {
			return cfgErr("IPv4 address %s is already used by node %s", my4, n.Name)
		}
		if t := addr(n.Spec.BGP.IPv6Address); my6.IsValid() && t == my6 {
			return cfgErr("IPv6 address %s is already used by node %s", my6, n.Name)
		}
	}
	return nil
}

// updateNode reads the Node (or starts a new one), lets mutate change it,
// and writes it back with compare-and-swap, re-reading on conflicts.
// mutate reports whether it changed anything; nothing is written if not.
func updateNode(ctx context.Context, c *datastore.Client, name string, mutate func(*api.Node) (bool, error)) (*api.Node, error) {
	for attempt := 0; ; attempt++ {
		n, err := datastore.GetOf[*api.Node](ctx, c, api.KindNode, "", name)
		if errors.Is(err, kv.ErrNotFound) {
			n = api.NewNode()
			n.Name = name
		} else if err != nil {
			return nil, fmt.Errorf("read node %s: %w", name, err)
		}
		changed, err := mutate(n)
		if err != nil || !changed {
			return n, err
		}
		if n.ResourceVersion == "" {
			_, err = c.Create(ctx, n)
		} else {
			_, err = c.Update(ctx, n)
		}
		if err == nil {
			return n, nil
		}
		if (errors.Is(err, kv.ErrConflict) || errors.Is(err, kv.ErrExists) || errors.Is(err, kv.ErrNotFound)) && attempt < 10 {
			continue
		}
		var fe *api.FieldError
		if errors.As(err, &fe) {
			return nil, fmt.Errorf("%w: node %s: %v", ErrConfig, name, err)
		}
		return nil, fmt.Errorf("write node %s: %w", name, err)
	}
}

// ensureDefaultPool creates default-ipv4-ippool unless pools are turned
// off or any pool exists.
func (a *Agent) ensureDefaultPool(ctx context.Context) error {
	if a.cfg.NoDefaultPools || a.cfg.DefaultPool.CIDR == "none" {
		return nil
	}
	pools, _, err := datastore.ListOf[*api.IPPool](ctx, a.client, api.KindIPPool, "")
	if err != nil {
		return fmt.Errorf("list IP pools: %w", err)
	}
	for _, p := range pools {
		if c := p.Prefix(); c.IsValid() && c.Addr().Is4() {
			return nil
		}
	}
	p, err := a.cfg.defaultPool()
	if err != nil {
		return err
	}
	return a.createDefaultPool(ctx, p, "IP pool")
}

// createDefaultPool creates p unless a pool of that name exists; what
// names it in errors ("IP pool", "IPv6 pool"). A pool the validation
// refuses is a configuration error.
func (a *Agent) createDefaultPool(ctx context.Context, p *api.IPPool, what string) error {
	if _, err := a.client.Create(ctx, p); err != nil {
		if errors.Is(err, kv.ErrExists) {
			return nil
		}
		var fe *api.FieldError
		if errors.As(err, &fe) {
			return fmt.Errorf("%w: default %s: %v", ErrConfig, what, err)
		}
		return fmt.Errorf("create default %s %s: %w", what, p.Spec.CIDR, err)
	}
	a.log.Info("created the default "+what, "component", "startup", "name", p.Name, "cidr", p.Spec.CIDR,
		"ipipMode", p.Spec.IPIPMode, "vxlanMode", p.Spec.VXLANMode, "natOutgoing", p.Spec.NATOutgoing, "blockSize", p.Spec.BlockSize)
	return nil
}

// felixKey is the etcd key of a FelixConfiguration.
func felixKey(name string) string { return mustKind(api.KindFelixConfiguration).Key("", name) }

// ensureFelixConfigs creates FelixConfiguration "default" (reportingInterval
// 0s, logSeverityScreen Info) and "node.<name>" (defaultEndpointToHostAction
// Return), or fills those fields in when the objects exist without them.
func (a *Agent) ensureFelixConfigs(ctx context.Context) error {
	err := a.ensureFelix(ctx, FelixConfigGlobal, func(s *api.FelixConfigurationSpec) (changed bool) {
		if s.ReportingInterval == nil {
			s.ReportingInterval, changed = api.Dur(0), true
		}
		if s.LogSeverityScreen == "" {
			s.LogSeverityScreen, changed = "Info", true
		}
		return changed
	})
	if err != nil {
		return err
	}
	return a.ensureFelix(ctx, FelixConfigNodePrefix+a.cfg.NodeName, func(s *api.FelixConfigurationSpec) bool {
		if s.DefaultEndpointToHostAction != "" {
			return false
		}
		s.DefaultEndpointToHostAction = "Return"
		return true
	})
}

// ensureFelix creates FelixConfiguration name with the fields fill sets,
// or, when it exists, lets fill set the fields it leaves unset and writes
// it back with a compare-and-swap update, re-reading on conflicts. fill
// reports whether it changed anything. An object that does not decode or
// does not validate is left alone with a warning.
func (a *Agent) ensureFelix(ctx context.Context, name string, fill func(*api.FelixConfigurationSpec) bool) error {
	log := a.log.With("component", "startup", "name", name)
	for attempt := 0; ; attempt++ {
		var f *api.FelixConfiguration
		item, err := a.store.Get(ctx, felixKey(name))
		switch {
		case errors.Is(err, kv.ErrNotFound):
			f = api.NewFelixConfiguration()
			f.Name = name
			fill(&f.Spec)
			_, err = a.client.Create(ctx, f)
		case err != nil:
			return fmt.Errorf("read FelixConfiguration %s: %w", name, err)
		default:
			r, derr := datastore.Decode(mustKind(api.KindFelixConfiguration), item)
			if derr != nil {
				log.Warn("FelixConfiguration does not parse; leaving it alone", "err", derr)
				return nil
			}
			f = r.(*api.FelixConfiguration)
			if !fill(&f.Spec) {
				return nil
			}
			// f carries the revision read: Update is a compare-and-swap on it.
			_, err = a.client.Update(ctx, f)
		}
		if err == nil {
			return nil
		}
		if (errors.Is(err, kv.ErrConflict) || errors.Is(err, kv.ErrExists) || errors.Is(err, kv.ErrNotFound)) && attempt < 10 {
			continue
		}
		var fe *api.FieldError
		if errors.As(err, &fe) && f.ResourceVersion != "" {
			log.Warn("FelixConfiguration is not valid; leaving it alone", "err", err)
			return nil
		}
		return fmt.Errorf("write FelixConfiguration %s: %w", name, err)
	}
}

// loadFelixConfigs reads the FelixConfiguration layers once, so that the
// health and metrics listeners start with the configured addresses.
func (a *Agent) loadFelixConfigs(ctx context.Context) error {
	var layers felixLayers
	for _, n := range []string{FelixConfigGlobal, FelixConfigNodePrefix + a.cfg.NodeName} {
		item, err := a.store.Get(ctx, felixKey(n))
		if errors.Is(err, kv.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read FelixConfiguration %s: %w", n, err)
		}
		s, err := decodeFelix(n, item)
		if err != nil {
			a.log.Error("ignoring FelixConfiguration", "component", "startup", "err", err)
			continue
		}
		if n == FelixConfigGlobal {
			layers.global = s
		} else {
			layers.node = s
		}
	}
	a.mu.Lock()
	a.felix = layers
	a.resolveFelixLocked()
	a.mu.Unlock()
	return nil
}
