package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/ifaces"
	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/kv"
)

// startup does what upstream's `calico-node -startup` does: datastore
// initialisation, the Node resource (IP, AS), the nodename file, the
// default IP pool and the default FelixConfigurations. Every write is
// create-if-absent or compare-and-swap, so concurrent nodes and restarts
// are safe.
func (a *Agent) startup(ctx context.Context) error {
	log := a.log.With("component", "startup")
	if err := a.client.EnsureInitialized(ctx); err != nil {
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
	if err := a.ensureFelixConfigs(ctx); err != nil {
		return err
	}
	if err := a.loadFelixConfigs(ctx); err != nil {
		return err
	}
	log.Info("node registered", "node", a.cfg.NodeName, "ipv4", a.st.ipv4, "nodename_file", a.cfg.NodenameFile)
	return nil
}

// interfaces lists the node's interfaces in its namespace.
func (a *Agent) interfaces() ([]ifaces.Interface, error) {
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
// addresses and AS number, keeping every other field.
func (a *Agent) registerNode(ctx context.Context) (*api.Node, error) {
	log := a.log.With("component", "startup")
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
	return updateNode(ctx, a.client, a.cfg.NodeName, func(n *api.Node) (bool, error) {
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
	})
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
	if _, err := a.client.Create(ctx, p); err != nil {
		if errors.Is(err, kv.ErrExists) {
			return nil
		}
		var fe *api.FieldError
		if errors.As(err, &fe) {
			return fmt.Errorf("%w: default IP pool: %v", ErrConfig, err)
		}
		return fmt.Errorf("create default IP pool %s: %w", p.Spec.CIDR, err)
	}
	a.log.Info("created the default IPv4 pool", "component", "startup", "cidr", p.Spec.CIDR,
		"ipipMode", p.Spec.IPIPMode, "vxlanMode", p.Spec.VXLANMode, "natOutgoing", p.Spec.NATOutgoing, "blockSize", p.Spec.BlockSize)
	return nil
}

// felixKey is the etcd key of a FelixConfiguration.
func felixKey(name string) string { return prefixFelix + name }

// storedFelix is a FelixConfiguration as stored, with spec fields kept raw
// so that fields this daemon does not know survive an update.
type storedFelix struct {
	Kind       string                     `json:"kind"`
	APIVersion string                     `json:"apiVersion"`
	Metadata   json.RawMessage            `json:"metadata"`
	Spec       map[string]json.RawMessage `json:"spec"`
}

// ensureFelixConfigs creates FelixConfiguration "default" (reportingInterval
// 0s, logSeverityScreen Info) and "node.<name>" (defaultEndpointToHostAction
// Return), or fills those fields in when the objects exist without them.
func (a *Agent) ensureFelixConfigs(ctx context.Context) error {
	if err := a.ensureFelix(ctx, FelixConfigGlobal, map[string]string{"reportingInterval": "0s", "logSeverityScreen": "Info"}); err != nil {
		return err
	}
	return a.ensureFelix(ctx, FelixConfigNodePrefix+a.cfg.NodeName, map[string]string{"defaultEndpointToHostAction": "Return"})
}

func (a *Agent) ensureFelix(ctx context.Context, name string, defaults map[string]string) error {
	key := felixKey(name)
	item, err := a.store.Get(ctx, key)
	if errors.Is(err, kv.ErrNotFound) {
		spec := map[string]json.RawMessage{}
		for k, v := range defaults {
			spec[k], _ = json.Marshal(v)
		}
		meta, _ := json.Marshal(struct {
			Name              string `json:"name"`
			UID               string `json:"uid"`
			CreationTimestamp string `json:"creationTimestamp"`
		}{name, newUID(), time.Now().UTC().Format(time.RFC3339)})
		b, _ := json.Marshal(storedFelix{Kind: "FelixConfiguration", APIVersion: api.APIVersion, Metadata: meta, Spec: spec})
		if _, err := a.store.Create(ctx, key, b); err != nil && !errors.Is(err, kv.ErrExists) {
			return fmt.Errorf("create FelixConfiguration %s: %w", name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read FelixConfiguration %s: %w", name, err)
	}
	var f storedFelix
	if err := json.Unmarshal(item.Value, &f); err != nil {
		a.log.Warn("FelixConfiguration does not parse; leaving it alone", "component", "startup", "name", name, "err", err)
		return nil
	}
	if f.Spec == nil {
		f.Spec = map[string]json.RawMessage{}
	}
	changed := false
	for k, v := range defaults {
		cur, ok := f.Spec[k]
		if ok && string(cur) != `""` && string(cur) != "null" {
			continue
		}
		f.Spec[k], _ = json.Marshal(v)
		changed = true
	}
	if !changed {
		return nil
	}
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode FelixConfiguration %s: %w", name, err)
	}
	if _, err := a.store.Update(ctx, key, b, item.Revision); err != nil && !errors.Is(err, kv.ErrConflict) {
		return fmt.Errorf("update FelixConfiguration %s: %w", name, err)
	}
	return nil
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
		s, err := decodeFelixSpec(n, item.Value)
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

// newUID returns a random RFC 4122 version 4 UUID, the form of metadata.uid.
func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
