package agent

import (
	"context"
	"net/netip"
	"time"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
)

// tunnelReleaseTimeout bounds the release of an address allocated for a
// Node that was then not registered.
const tunnelReleaseTimeout = 10 * time.Second

// TunnelRegistrar is a TunnelAddresser that can also allocate before this
// node's Node exists (IPAM otherwise refuses a host without one): the
// daemon's first start then creates its Node with the tunnel addresses in
// it, one write that every node watching Nodes sees, instead of a create
// and an update. labels are the labels the Node will have.
type TunnelRegistrar interface {
	EnsureTunnelAddressRegistering(ctx context.Context, host string, labels map[string]string, kind TunnelKind, pools []string) (netip.Addr, error)
}

// tunnelsForNewNode records on n, a Node about to be created, the tunnel
// addresses the existing pools want it to have, allocating them first. It
// returns the kinds it allocated. It never fails the registration: what it
// cannot do here, the tunnel manager does after it (a second write of the
// Node, as before).
func (a *Agent) tunnelsForNewNode(ctx context.Context, n *api.Node) []TunnelKind {
	reg, ok := a.cfg.Tunnels.(TunnelRegistrar)
	if !ok {
		return nil
	}
	log := a.log.With("component", "tunnels")
	pools, _, err := datastore.ListOf[*api.IPPool](ctx, a.client, api.KindIPPool, "")
	if err != nil {
		log.Debug("cannot list the pools before registering; the tunnel manager allocates later", "err", err)
		return nil
	}
	m := &Model{NodeName: a.cfg.NodeName, Pools: map[string]Pool{}}
	for _, p := range pools {
		if pp, ok := poolFromAPI(p); ok {
			m.Pools[p.Name] = pp
		}
	}
	me := nodeFromAPI(n)
	me.Name = a.cfg.NodeName
	var done []TunnelKind
	for _, kind := range []TunnelKind{TunnelVXLAN, TunnelIPIP, TunnelVXLANV6} {
		want := poolsForTunnel(m, me, kind)
		if len(want) == 0 {
			continue
		}
		addr, err := reg.EnsureTunnelAddressRegistering(ctx, a.cfg.NodeName, n.Labels, kind, want)
		if err != nil {
			log.Debug("cannot allocate the tunnel address before registering; the tunnel manager retries", "kind", kind.String(), "err", err)
			continue
		}
		recordTunnel(n, kind, addr, false, log.With("kind", kind.String()))
		done = append(done, kind)
	}
	return done
}

// releaseUnregistered gives back the tunnel addresses tunnelsForNewNode
// allocated for a Node that will not be created (a configuration error
// stops the daemon).
func (a *Agent) releaseUnregistered(kinds []TunnelKind) {
	for _, kind := range kinds {
		// Its own context: the registration's may be what failed.
		ctx, cancel := context.WithTimeout(context.Background(), tunnelReleaseTimeout)
		if err := a.cfg.Tunnels.ReleaseTunnelAddress(ctx, a.cfg.NodeName, kind); err != nil {
			a.log.Warn("could not release the tunnel address of a Node that was not registered; calicoctl ipam check reports it",
				"component", "tunnels", "kind", kind.String(), "err", err)
		}
		cancel()
	}
}
