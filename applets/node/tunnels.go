package node

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/ipam"
)

// tunnelAddresser gives the agent its tunnel addresses from IPAM: handles
// ipip-tunnel-addr-<node> / vxlan-tunnel-addr-<node> / vxlan-v6-tunnel-addr-<node>, attributes
// {node, type}, from pools that allow Tunnel use, as upstream calico-node.
type tunnelAddresser struct{ alloc *ipam.Allocator }

var _ agent.TunnelAddresser = tunnelAddresser{}

func ipamKind(k agent.TunnelKind) (ipam.TunnelKind, error) {
	switch k {
	case agent.TunnelVXLAN:
		return ipam.TunnelVXLAN, nil
	case agent.TunnelIPIP:
		return ipam.TunnelIPIP, nil
	case agent.TunnelVXLANV6:
		return ipam.TunnelVXLANV6, nil
	}
	return 0, fmt.Errorf("unknown tunnel kind %v", k)
}

func (t tunnelAddresser) EnsureTunnelAddress(ctx context.Context, host string, kind agent.TunnelKind, pools []string) (netip.Addr, error) {
	k, err := ipamKind(kind)
	if err != nil {
		return netip.Addr{}, err
	}
	return t.alloc.EnsureTunnelAddress(ctx, host, k, pools)
}

func (t tunnelAddresser) ReleaseTunnelAddress(ctx context.Context, host string, kind agent.TunnelKind) error {
	k, err := ipamKind(kind)
	if err != nil {
		return err
	}
	return t.alloc.ReleaseTunnelAddress(ctx, host, k)
}

var _ agent.TunnelRegistrar = tunnelAddresser{}

func (t tunnelAddresser) EnsureTunnelAddressRegistering(ctx context.Context, host string, labels map[string]string, kind agent.TunnelKind, pools []string) (netip.Addr, error) {
	k, err := ipamKind(kind)
	if err != nil {
		return netip.Addr{}, err
	}
	return t.alloc.EnsureTunnelAddressRegistering(ctx, host, labels, k, pools)
}
