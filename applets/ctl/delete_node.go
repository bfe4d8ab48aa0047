package ctl

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/ipam"
	"github.com/onecalico/calico/internal/kv"
)

// deleteNode deletes a Node the way upstream's client does, cleaning up
// what belongs to it first so that nothing keeps routing to a node that is
// gone and its addresses can be reused:
//
//  1. release the addresses of its workload endpoints and its tunnel
//     addresses, then delete those endpoints;
//  2. release its block affinities (empty blocks are deleted, blocks still
//     in use lose their affinity);
//  3. delete its BGPPeers, its per-node FelixConfiguration and
//     BGPConfiguration ("node.<name>") and its HostEndpoints;
//  4. delete the Node (compare-and-swap on the revision the checks saw).
//
// Stop calico-node on the node first, or it registers the node again.
func deleteNode(ctx context.Context, e *Env, c *datastore.Client, n *api.Node, rv string) error {
	name := n.Name
	store, err := e.KV()
	if err != nil {
		return err
	}
	alloc := ipam.New(store, ipam.Options{})

	weps, _, err := datastore.ListOf[*api.WorkloadEndpoint](ctx, c, api.KindWorkloadEndpoint, "")
	if err != nil {
		return fmt.Errorf("list workload endpoints of node %s: %w", name, err)
	}
	var release []ipam.ReleaseOptions
	var mine []*api.WorkloadEndpoint
	for _, w := range weps {
		if w.Spec.Node != name {
			continue
		}
		mine = append(mine, w)
		for _, s := range w.Spec.IPNetworks {
			if a, ok := parseAddrOrPrefix(s); ok {
				release = append(release, ipam.ReleaseOptions{Address: a})
			}
		}
	}
	var tunnels []string
	if n.Spec.BGP != nil {
		tunnels = append(tunnels, n.Spec.BGP.IPv4IPIPTunnelAddr)
	}
	tunnels = append(tunnels, n.Spec.IPv4VXLANTunnelAddr, n.Spec.IPv6VXLANTunnelAddr)
	if n.Spec.Wireguard != nil {
		tunnels = append(tunnels, n.Spec.Wireguard.InterfaceIPv4Address, n.Spec.Wireguard.InterfaceIPv6Address)
	}
	for _, s := range tunnels {
		if a, ok := parseAddrOrPrefix(s); ok {
			release = append(release, ipam.ReleaseOptions{Address: a})
		}
	}
	if _, err := alloc.ReleaseIPs(ctx, release); err != nil {
		return fmt.Errorf("release the addresses of node %s: %w", name, err)
	}
	for _, w := range mine {
		if err := deleteIgnoringMissing(ctx, c, api.KindWorkloadEndpoint, w.Namespace, w.Name); err != nil {
			return fmt.Errorf("delete workload endpoint %s/%s of node %s: %w", w.Namespace, w.Name, name, err)
		}
	}
	if err := alloc.ReleaseHostAffinities(ctx, name, false); err != nil {
		return fmt.Errorf("release the block affinities of node %s: %w", name, err)
	}

	peers, _, err := datastore.ListOf[*api.BGPPeer](ctx, c, api.KindBGPPeer, "")
	if err != nil {
		return fmt.Errorf("list BGP peers of node %s: %w", name, err)
	}
	for _, p := range peers {
		if p.Spec.Node == name {
			if err := deleteIgnoringMissing(ctx, c, api.KindBGPPeer, "", p.Name); err != nil {
				return fmt.Errorf("delete BGP peer %s of node %s: %w", p.Name, name, err)
			}
		}
	}
	for _, kind := range []string{api.KindFelixConfiguration, api.KindBGPConfiguration} {
		if err := deleteIgnoringMissing(ctx, c, kind, "", "node."+name); err != nil {
			return fmt.Errorf("delete %s node.%s: %w", kind, name, err)
		}
	}
	heps, _, err := datastore.ListOf[*api.HostEndpoint](ctx, c, api.KindHostEndpoint, "")
	if err != nil {
		return fmt.Errorf("list host endpoints of node %s: %w", name, err)
	}
	for _, h := range heps {
		if h.Spec.Node == name {
			if err := deleteIgnoringMissing(ctx, c, api.KindHostEndpoint, "", h.Name); err != nil {
				return fmt.Errorf("delete host endpoint %s of node %s: %w", h.Name, name, err)
			}
		}
	}
	_, err = c.Delete(ctx, api.KindNode, "", name, rv)
	return storeError(resourceID(api.KindInfo{Kind: api.KindNode}, "", name), err)
}

// deleteIgnoringMissing deletes a resource; one that is already gone is
// not an error.
func deleteIgnoringMissing(ctx context.Context, c *datastore.Client, kind, namespace, name string) error {
	_, err := c.Delete(ctx, kind, namespace, name, "")
	if errors.Is(err, kv.ErrNotFound) {
		return nil
	}
	return err
}

// parseAddrOrPrefix reads "10.0.0.1" or "10.0.0.1/32"; "" is not an address.
func parseAddrOrPrefix(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Addr(), err == nil
	}
	a, err := netip.ParseAddr(s)
	return a, err == nil
}
