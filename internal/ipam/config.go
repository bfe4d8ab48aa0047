package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/kv"
)

// GetConfig returns the IPAM config, or upstream's default (in memory,
// nothing written) when none is stored.
func (a *Allocator) GetConfig(ctx context.Context) (api.IPAMConfig, error) {
	item, err := a.store.Get(ctx, api.IPAMConfigKey)
	if errors.Is(err, kv.ErrNotFound) {
		return api.DefaultIPAMConfig(), nil
	}
	if err != nil {
		return api.IPAMConfig{}, fmt.Errorf("read IPAM config: %w", err)
	}
	return decodeConfig(item)
}

// ValidateConfig applies upstream's rules: strict affinity and automatic
// block allocation cannot both be off, and a block limit needs strict
// affinity (the limit is checked before borrowing, so without strict
// affinity it would behave confusingly).
func ValidateConfig(c api.IPAMConfig) error {
	if !c.StrictAffinity && !c.AutoAllocateBlocks {
		return errors.New("invalid IPAM config: strictAffinity and autoAllocateBlocks cannot both be false")
	}
	if c.MaxBlocksPerHost < 0 {
		return fmt.Errorf("invalid IPAM config: maxBlocksPerHost %d is negative", c.MaxBlocksPerHost)
	}
	if c.IPCooldownSeconds < 0 {
		return fmt.Errorf("invalid IPAM config: ipCooldownSeconds %d is negative", c.IPCooldownSeconds)
	}
	if c.MaxBlocksPerHost > 0 && !c.StrictAffinity {
		return errors.New("invalid IPAM config: maxBlocksPerHost requires strictAffinity to be true (set --strictaffinity=true)")
	}
	return nil
}

// SetConfig validates c and stores it, compare-and-swap on what was read.
// Storing the value already there writes nothing.
func (a *Allocator) SetConfig(ctx context.Context, c api.IPAMConfig) error {
	if err := ValidateConfig(c); err != nil {
		return err
	}
	value, err := json.Marshal(c)
	if err != nil {
		return err
	}
	for range a.maxRetries {
		item, err := a.store.Get(ctx, api.IPAMConfigKey)
		switch {
		case errors.Is(err, kv.ErrNotFound):
			_, err = a.store.Create(ctx, api.IPAMConfigKey, value)
		case err != nil:
			return fmt.Errorf("read IPAM config: %w", err)
		default:
			cur, derr := decodeConfig(item)
			if derr == nil && cur == c {
				return nil
			}
			_, err = a.store.Update(ctx, api.IPAMConfigKey, value, item.Revision)
		}
		if err == nil {
			return nil
		}
		if !isCASFailure(err) {
			return fmt.Errorf("write IPAM config: %w", err)
		}
	}
	return a.tooMany("write IPAM config")
}

// TunnelKind is the kind of tunnel address a node needs.
type TunnelKind int

// Tunnel kinds.
const (
	TunnelIPIP TunnelKind = iota + 1
	TunnelVXLAN
	TunnelVXLANV6
)

// handle is upstream's handle for a node's tunnel address.
func (k TunnelKind) handle(host string) string {
	switch k {
	case TunnelIPIP:
		return "ipip-tunnel-addr-" + host
	case TunnelVXLAN:
		return "vxlan-tunnel-addr-" + host
	default:
		return "vxlan-v6-tunnel-addr-" + host
	}
}

// attrType is the allocation's "type" attribute.
func (k TunnelKind) attrType() string {
	switch k {
	case TunnelIPIP:
		return api.TypeIPIPTunnelAddress
	case TunnelVXLAN:
		return api.TypeVXLANTunnelAddress
	default:
		return api.TypeVXLANV6TunnelAddress
	}
}

func (k TunnelKind) family() int {
	if k == TunnelVXLANV6 {
		return 6
	}
	return 4
}

func (k TunnelKind) valid() bool { return k >= TunnelIPIP && k <= TunnelVXLANV6 }

// TunnelHandle is the handle of host's tunnel address of this kind.
func TunnelHandle(host string, k TunnelKind) string { return k.handle(host) }

// EnsureTunnelAddress makes sure host has a tunnel address of this kind
// and returns it. It is idempotent: when the handle already holds an
// address in a pool that is still valid for it (enabled, allows Tunnel, and
// is one of pools, or selects the node when pools is empty), that address
// is returned (extra ones are released); otherwise the handle's addresses
// are released and a new one is allocated with attributes {node, type}.
func (a *Allocator) EnsureTunnelAddress(ctx context.Context, host string, kind TunnelKind, pools []string) (netip.Addr, error) {
	return a.ensureTunnel(ctx, host, kind, pools, nil)
}

// EnsureTunnelAddressRegistering is EnsureTunnelAddress for a node daemon
// that has not created its Node yet and will record the address on the Node
// it creates (one write of the Node instead of a create and an update, each
// an event for every node that watches Nodes). labels are the labels the
// Node will have; a Node that exists meanwhile is read as usual.
func (a *Allocator) EnsureTunnelAddressRegistering(ctx context.Context, host string, labels map[string]string, kind TunnelKind, pools []string) (netip.Addr, error) {
	if labels == nil {
		labels = map[string]string{}
	}
	return a.ensureTunnel(ctx, host, kind, pools, labels)
}

// ensureTunnel is EnsureTunnelAddress; regLabels != nil: the host is
// registering (AutoAssignArgs.Registering) with those labels.
func (a *Allocator) ensureTunnel(ctx context.Context, host string, kind TunnelKind, pools []string, regLabels map[string]string) (netip.Addr, error) {
	if !kind.valid() {
		return netip.Addr{}, fmt.Errorf("ensure tunnel address for host %s: unknown tunnel kind %d", host, kind)
	}
	if host == "" {
		return netip.Addr{}, errors.New("ensure tunnel address: the host name is empty")
	}
	handle := kind.handle(host)
	fam := kind.family()
	res, err := a.store.Read(ctx, []string{api.HandleKey(handle), nodeKey(host)}, []string{poolsPrefix()})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("ensure tunnel address %s: %w", handle, err)
	}
	node, err := decodeNode(res.Keys[1])
	if err != nil {
		return netip.Addr{}, err
	}
	labels := regLabels
	if node != nil {
		labels = node.Labels
	}
	var keep *ReleaseOptions
	var extra []ReleaseOptions
	if res.Keys[0] != nil {
		valid, verr := selectPools(decodePools(res.Prefixes[0]), fam, pools, host, labels, api.AllowedUseTunnel)
		h, err := loadHandle(handle, res.Keys[0])
		if err != nil {
			return netip.Addr{}, err
		}
		var cidrs []netip.Prefix
		for k := range h.h.Block {
			if c, err := netip.ParsePrefix(k); err == nil {
				cidrs = append(cidrs, c.Masked())
			}
		}
		refs, err := a.readBlocks(ctx, cidrs)
		if err != nil {
			return netip.Addr{}, err
		}
		for _, ref := range refs {
			if ref == nil || ref.b == nil {
				continue
			}
			for _, o := range ordinalsOfHandle(ref.b, handle) {
				addr := ordinalAddr(ref.cidr, o)
				seq := seqForOrdinal(ref.b, o)
				ro := ReleaseOptions{Address: addr, HandleID: handle, SequenceNumber: &seq}
				_, inValid := poolFor(valid, addr)
				if keep == nil && verr == nil && inValid && familyOf(ref.cidr) == fam {
					keep = &ro
				} else {
					extra = append(extra, ro)
				}
			}
		}
	}
	if len(extra) > 0 {
		if _, err := a.ReleaseIPs(ctx, extra); err != nil && !errors.Is(err, ErrReleaseMismatch) {
			return netip.Addr{}, fmt.Errorf("ensure tunnel address %s: release stale addresses: %w", handle, err)
		}
	}
	if keep != nil {
		return keep.Address, nil
	}
	args := AutoAssignArgs{
		HandleID:    handle,
		Attrs:       map[string]string{api.AttrNode: host, api.AttrType: kind.attrType()},
		Hostname:    host,
		IntendedUse: api.AllowedUseTunnel,
		Registering: regLabels != nil,
		HostLabels:  regLabels,
	}
	if fam == 4 {
		args.Num4, args.IPv4Pools = 1, pools
	} else {
		args.Num6, args.IPv6Pools = 1, pools
	}
	v4, v6, err := a.AutoAssign(ctx, args)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("ensure tunnel address %s: %w", handle, err)
	}
	if fam == 4 {
		return v4[0].Addr(), nil
	}
	return v6[0].Addr(), nil
}

// ReleaseTunnelAddress releases host's tunnel address of this kind.
func (a *Allocator) ReleaseTunnelAddress(ctx context.Context, host string, kind TunnelKind) error {
	if !kind.valid() {
		return fmt.Errorf("release tunnel address for host %s: unknown tunnel kind %d", host, kind)
	}
	return a.ReleaseByHandle(ctx, kind.handle(host))
}
