package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
)

// tunnelLoop keeps this node's tunnel addresses in step with the pools:
// when a VXLAN (IPIP) pool selects the node it ensures an address through
// the TunnelAddresser and records it on the Node (with a stable VXLAN MAC);
// when none remains it releases the address and clears the fields. It runs
// apart from the reconcile goroutine because it writes to the datastore.
func (a *Agent) tunnelLoop(ctx context.Context) {
	var retry <-chan time.Time
	backoff := 500 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.tunnelTrigger:
		case <-retry:
		}
		retry = nil
		if !a.tunnelInputsSynced() {
			continue
		}
		if err := a.syncTunnels(ctx, a.tunnelModel()); err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Error("tunnel address update failed; retrying", "component", "tunnels", "err", err, "retry_in", backoff)
			// Jittered, so nodes that failed together (an etcd that timed
			// out a cluster's cold start) do not all retry together.
			retry = time.After(backoff/2 + rand.N(backoff/2))
			backoff = min(2*backoff, 8*time.Second)
			continue
		}
		backoff = 500 * time.Millisecond
	}
}

// syncTunnelsOnce is syncTunnels over a fresh read of the pools and the
// node (for -startup, which runs no watches).
func (a *Agent) syncTunnelsOnce(ctx context.Context) error {
	pools, _, err := datastore.ListOf[*api.IPPool](ctx, a.client, api.KindIPPool, "")
	if err != nil {
		return fmt.Errorf("list IP pools: %w", err)
	}
	m := &Model{NodeName: a.cfg.NodeName, Nodes: map[string]Node{}, Pools: map[string]Pool{}}
	for _, p := range pools {
		if pp, ok := poolFromAPI(p); ok {
			m.Pools[p.Name] = pp
		}
	}
	n, err := datastore.GetOf[*api.Node](ctx, a.client, api.KindNode, "", a.cfg.NodeName)
	if err != nil {
		return fmt.Errorf("read node %s: %w", a.cfg.NodeName, err)
	}
	m.Nodes[n.Name] = nodeFromAPI(n)
	return a.syncTunnels(ctx, m)
}

// syncTunnels makes this node's tunnel fields match the pools in m.
func (a *Agent) syncTunnels(ctx context.Context, m *Model) error {
	me, ok := m.Nodes[a.cfg.NodeName]
	if !ok {
		return nil // the node watch has not seen our Node yet
	}
	var errs []error
	for _, kind := range []TunnelKind{TunnelVXLAN, TunnelIPIP, TunnelVXLANV6} {
		if err := a.syncTunnel(ctx, m, me, kind); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (a *Agent) syncTunnel(ctx context.Context, m *Model, me Node, kind TunnelKind) error {
	log := a.log.With("component", "tunnels", "kind", kind.String())
	pools := poolsForTunnel(m, me, kind)
	current := me.tunnelAddr(kind)
	want := current
	if len(pools) > 0 {
		if a.cfg.Tunnels != nil {
			addr, err := a.cfg.Tunnels.EnsureTunnelAddress(ctx, a.cfg.NodeName, kind, pools)
			if err != nil {
				return fmt.Errorf("ensure %s tunnel address for node %s in pools %v: %w", kind, a.cfg.NodeName, pools, err)
			}
			want = addr
		} else if !current.IsValid() {
			a.warnNoAllocator(kind)
		}
	} else if current.IsValid() {
		if a.cfg.Tunnels == nil {
			// Someone else manages the address; leave it.
			return nil
		}
		if err := a.cfg.Tunnels.ReleaseTunnelAddress(ctx, a.cfg.NodeName, kind); err != nil {
			return fmt.Errorf("release %s tunnel address of node %s: %w", kind, a.cfg.NodeName, err)
		}
		want = netip.Addr{}
	}
	_, err := updateNode(ctx, a.client, a.cfg.NodeName, func(n *api.Node) (bool, error) {
		if n.ResourceVersion == "" {
			return false, nil // deleted meanwhile; do not recreate it here
		}
		return recordTunnel(n, kind, want, current.IsValid(), log), nil
	})
	return err
}

// poolsForTunnel lists the CIDRs of the pools that want a tunnel address
// of this kind on node me.
func poolsForTunnel(m *Model, me Node, kind TunnelKind) []string {
	if kind == TunnelVXLANV6 && !me.IPv6.IsValid() {
		return nil // no IPv6 underlay: the device cannot exist
	}
	return tunnelPools(m, me, kind)
}

// tunnelAddr is the node's tunnel address of this kind.
func (n Node) tunnelAddr(kind TunnelKind) netip.Addr {
	switch kind {
	case TunnelIPIP:
		return n.IPIPTunnelAddr
	case TunnelVXLANV6:
		return n.VXLANTunnelAddrV6
	}
	return n.VXLANTunnelAddr
}

// recordTunnel writes the tunnel address want (invalid: none) of this kind
// on n, with the VXLAN MAC when n has none; had says the node held an
// address before, so a MAC we set is cleared with it. It reports whether n
// changed.
func recordTunnel(n *api.Node, kind TunnelKind, want netip.Addr, had bool, log *slog.Logger) bool {
	s := ""
	if want.IsValid() {
		s = want.String()
	}
	switch kind {
	case TunnelVXLANV6:
		return recordVXLANV6(n, s, had, log)
	case TunnelVXLAN:
		wantMAC := ""
		if want.IsValid() {
			wantMAC = VTEPMAC(n.Name).String()
		}
		changed := n.Spec.IPv4VXLANTunnelAddr != s
		n.Spec.IPv4VXLANTunnelAddr = s
		switch {
		case wantMAC == "" && n.Spec.VXLANTunnelMACAddr != "" && s == "" && had:
			n.Spec.VXLANTunnelMACAddr = "" // we cleared the address: clear the MAC we set
			changed = true
		case wantMAC != "" && n.Spec.VXLANTunnelMACAddr == "":
			n.Spec.VXLANTunnelMACAddr = wantMAC
			changed = true
		}
		if changed {
			log.Info("recording VXLAN tunnel address", "addr", s, "mac", n.Spec.VXLANTunnelMACAddr)
		}
		return changed
	default:
		bgp := api.NodeBGPSpec{}
		if n.Spec.BGP != nil {
			bgp = *n.Spec.BGP
		}
		if bgp.IPv4IPIPTunnelAddr == s {
			return false
		}
		bgp.IPv4IPIPTunnelAddr = s
		n.Spec.BGP = nil
		if bgp != (api.NodeBGPSpec{}) {
			n.Spec.BGP = &bgp
		}
		log.Info("recording IPIP tunnel address", "addr", s)
		return true
	}
}

// warnNoAllocator logs once per kind that the node needs a tunnel address
// nobody allocates.
func (a *Agent) warnNoAllocator(kind TunnelKind) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.warnedTunnel == nil {
		a.warnedTunnel = map[TunnelKind]bool{}
	}
	if a.warnedTunnel[kind] {
		return
	}
	a.warnedTunnel[kind] = true
	a.log.Warn("a pool needs a tunnel address on this node but no IPAM allocator is configured; set it on the Node resource",
		"component", "tunnels", "kind", kind.String(), "node", a.cfg.NodeName)
}

// tunnelInputsSynced reports whether the two prefixes syncTunnels decides
// on (the Nodes, for this node's labels and tunnel fields, and the pools)
// have delivered their first snapshot. Before that an empty pool list would
// read as "no pool wants a tunnel" and release the address. It does not wait
// for the other prefixes (blocks, endpoints, policy, BGP): nothing here reads
// them, and at a cold start of many nodes their snapshots queue behind each
// other, which held every node's block claim back.
func (a *Agent) tunnelInputsSynced() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.syncedAll || (a.synced[prefixNodes] && a.synced[prefixPools])
}

// allSynced reports whether every watched prefix has delivered a snapshot.
func (a *Agent) allSynced() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.syncedAll { // a prefix never becomes unsynced
		return true
	}
	for _, p := range a.watchedPrefixes() {
		if !a.synced[p] {
			return false
		}
	}
	a.syncedAll = true
	return true
}
