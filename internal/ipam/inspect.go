package ipam

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/kv"
)

// BlockUsage is one block's utilisation.
type BlockUsage struct {
	CIDR     netip.Prefix
	Affinity string // "host:<name>", or "" for none
	Capacity int
	InUse    int
	// Cooling counts released addresses still cooling down: neither in
	// use nor free.
	Cooling int
}

// PoolUsage is one pool's utilisation, with its blocks. The pseudo-pool
// for blocks outside every pool has Name "" and an invalid CIDR.
type PoolUsage struct {
	Name     string
	CIDR     netip.Prefix
	Capacity float64 // 2^(host bits): may exceed int64 for IPv6
	InUse    int
	Cooling  int
	Blocks   []BlockUsage
}

// Usage reports how full every pool and block is, as `calicoctl ipam
// show` prints it: pools in name order, each with the blocks that overlap
// it in key order, then the blocks outside every pool.
func (a *Allocator) Usage(ctx context.Context) ([]PoolUsage, error) {
	res, err := a.store.Read(ctx, nil, []string{poolsPrefix(), api.BlockPrefix(0)})
	if err != nil {
		return nil, fmt.Errorf("read pools and blocks: %w", err)
	}
	pools := decodePools(res.Prefixes[0])
	out := make([]PoolUsage, len(pools))
	for i, p := range pools {
		out[i] = PoolUsage{Name: p.Name, CIDR: p.cidr, Capacity: math.Exp2(float64(p.cidr.Addr().BitLen() - p.cidr.Bits()))}
	}
	orphans := PoolUsage{}
	for _, item := range res.Prefixes[1] {
		b, cidr, err := decodeBlock(item.Key, item.Value)
		if err != nil {
			a.log.Warn("skipping unreadable block", "key", item.Key, "err", err)
			continue
		}
		cooling := coolingCount(b)
		bu := BlockUsage{CIDR: cidr, Capacity: len(b.Allocations), InUse: len(b.Allocations) - len(b.Unallocated) - cooling, Cooling: cooling}
		if b.Affinity != nil {
			bu.Affinity = *b.Affinity
		}
		dst := &orphans
		for i := range out {
			if out[i].CIDR.Overlaps(cidr) {
				dst = &out[i]
				break
			}
		}
		dst.Blocks = append(dst.Blocks, bu)
		dst.InUse += bu.InUse
		dst.Cooling += bu.Cooling
	}
	if len(orphans.Blocks) > 0 {
		out = append(out, orphans)
	}
	return out, nil
}

// BorrowedIP is an address allocated by a node other than its block's owner.
type BorrowedIP struct {
	Addr          netip.Addr
	BorrowingNode string
	Block         netip.Prefix
	BlockOwner    string
	Type          string // "pod", or the "type" attribute
	AllocatedTo   string // "<namespace>/<pod>" for pods
}

// Borrowed lists borrowed addresses, and counts allocations with no node
// attribute (which cannot be classified).
func (a *Allocator) Borrowed(ctx context.Context) ([]BorrowedIP, int, error) {
	items, _, err := a.store.List(ctx, api.BlockPrefix(0))
	if err != nil {
		return nil, 0, fmt.Errorf("list blocks: %w", err)
	}
	var out []BorrowedIP
	unclassified := 0
	for _, item := range items {
		b, cidr, err := decodeBlock(item.Key, item.Value)
		if err != nil {
			continue
		}
		owner := ""
		if b.Affinity != nil {
			owner = *b.Affinity
			if _, rest, ok := strings.Cut(owner, ":"); ok {
				owner = rest
			}
		}
		for o, idx := range b.Allocations {
			if idx == nil || b.Attributes[*idx].Cooling() {
				continue
			}
			at := b.Attributes[*idx].ActiveOwnerAttrs
			node, ok := at[api.AttrNode]
			if !ok {
				unclassified++
				continue
			}
			if node == owner {
				continue
			}
			bi := BorrowedIP{Addr: ordinalAddr(cidr, o), BorrowingNode: node, Block: cidr, BlockOwner: owner}
			if pod, ok := at[api.AttrPod]; ok {
				bi.Type, bi.AllocatedTo = api.AttrPod, at[api.AttrNamespace]+"/"+pod
			} else {
				bi.Type = at[api.AttrType]
			}
			out = append(out, bi)
		}
	}
	return out, unclassified, nil
}

// AllocationInfo is who holds one address.
type AllocationInfo struct {
	Addr           netip.Addr
	Block          netip.Prefix
	HandleID       *string
	Attrs          map[string]string
	SequenceNumber uint64
}

// Lookup says who holds addr, or returns ErrNotAllocated (also wrapping a
// *CoolingError when the address was released and is cooling down).
func (a *Allocator) Lookup(ctx context.Context, addr netip.Addr) (*AllocationInfo, error) {
	addr = addr.Unmap()
	res, err := a.store.Read(ctx, []string{api.IPAMConfigKey}, []string{poolsPrefix()})
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", addr, err)
	}
	cfg, err := decodeConfig(res.Keys[0])
	if err != nil {
		return nil, err
	}
	var item *kv.KV
	if p, ok := poolFor(decodePools(res.Prefixes[0]), addr); ok {
		c := blockCIDRFor(addr, p.Spec.BlockSize)
		item, err = a.store.Get(ctx, api.BlockKey(c))
		if err != nil && !errors.Is(err, kv.ErrNotFound) {
			return nil, fmt.Errorf("look up %s: %w", addr, err)
		}
	} else {
		blocks, err := a.listBlocks(ctx, 0)
		if err != nil {
			return nil, err
		}
		for c, it := range blocks {
			if c.Contains(addr) {
				item = it
				break
			}
		}
	}
	if item == nil {
		return nil, fmt.Errorf("%s: %w", addr, ErrNotAllocated)
	}
	b, cidr, err := decodeBlock(item.Key, item.Value)
	if err != nil {
		return nil, err
	}
	ord, ok := addrOrdinal(cidr, addr)
	if ok {
		if t, cooling := coolingAt(b, ord); cooling {
			return nil, fmt.Errorf("%s: %w: %w", addr, ErrNotAllocated, coolingError(t, cooldownOf(cfg, a.now())))
		}
	}
	if !ok || b.Allocations[ord] == nil {
		return nil, fmt.Errorf("%s: %w", addr, ErrNotAllocated)
	}
	at := b.Attributes[*b.Allocations[ord]]
	info := &AllocationInfo{Addr: addr, Block: cidr, Attrs: at.ActiveOwnerAttrs, SequenceNumber: seqForOrdinal(b, ord)}
	if at.HandleID != nil {
		h := sanitizeHandle(*at.HandleID)
		info.HandleID = &h
	}
	return info, nil
}
