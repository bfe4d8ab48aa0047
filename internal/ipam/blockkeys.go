package ipam

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/kv"
)

// Finding a block to claim needs to know which blocks exist, but the
// values of only the few the host's walk passes before it finds a free
// one. With N nodes each holding a block, listing the blocks with their
// values costs every claim N values (about 1 KB each); when N nodes start
// at once that is N² KB out of etcd. So the claim lists the keys only and
// then reads, in one round trip, the values of the blocks its walk meets
// before the first free one (fillWalk).

// maxReadKeys bounds the keys of one Read (etcd allows 128 operations in
// one transaction by default).
const maxReadKeys = 100

// listBlockKeys lists the blocks of a family like listBlocks, with the
// values left out when the store can do that (kv.KeyLister).
func (a *Allocator) listBlockKeys(ctx context.Context, fam int) (map[netip.Prefix]*kv.KV, error) {
	kl, ok := a.store.(kv.KeyLister)
	if !ok {
		return a.listBlocks(ctx, fam)
	}
	items, _, err := kl.ListKeys(ctx, api.BlockPrefix(fam))
	if err != nil {
		return nil, fmt.Errorf("list blocks: %w", err)
	}
	out := make(map[netip.Prefix]*kv.KV, len(items))
	for _, item := range items {
		if c, err := api.ParseBlockKey(item.Key); err == nil {
			out[c.Masked()] = item
		}
	}
	return out, nil
}

// fillWalk reads the values findUsableBlock will look at: for each pool,
// in the host's walk order, the existing blocks before the first block
// that does not exist (all of them when the pool is full), until a pool
// with a free block. A block gone since the listing is removed from
// existing (it is free now).
func (a *Allocator) fillWalk(ctx context.Context, pools []pool, existing map[netip.Prefix]*kv.KV, host string, rsv reservations) error {
	var need []netip.Prefix
	for _, p := range pools {
		free := false
		newBlockOrder(p.cidr, p.Spec.BlockSize, host, a.now).each(func(c netip.Prefix) bool {
			if rsv.covers(c) {
				return true
			}
			item, ok := existing[c]
			if !ok {
				free = true
				return false
			}
			if item.Value == nil {
				need = append(need, c)
			}
			return true
		})
		if free {
			break
		}
	}
	for len(need) > 0 {
		chunk := need[:min(len(need), maxReadKeys)]
		need = need[len(chunk):]
		keys := make([]string, len(chunk))
		for i, c := range chunk {
			keys[i] = api.BlockKey(c)
		}
		res, err := a.store.Read(ctx, keys, nil)
		if err != nil {
			return fmt.Errorf("read blocks: %w", err)
		}
		for i, c := range chunk {
			if res.Keys[i] == nil {
				delete(existing, c)
			} else {
				existing[c] = res.Keys[i]
			}
		}
	}
	return nil
}

// addClaimed adds the blocks this op claimed but has not written yet to
// existing, as the plan has them, so that the walk for a further block
// passes them (or fills them, when they still have room).
func (op *assignOp) addClaimed(existing map[netip.Prefix]*kv.KV) {
	for c := range op.claimed {
		if pb := op.planned[c]; pb != nil {
			existing[c] = &kv.KV{Key: pb.ref.key, Value: encodeBlock(pb.b)}
		}
	}
}
