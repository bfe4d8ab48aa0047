package ipam

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/kv"
)

// mutable returns a private copy of the block to modify, leaving ref.b as
// read (a retry starts again from what was read).
func (r *blockRef) mutable() *api.Block {
	b, _, err := decodeBlock(r.key, encodeBlock(r.b))
	if err != nil {
		panic(fmt.Sprintf("copy block %s: %v", r.key, err)) // re-decoding our own encoding
	}
	return b
}

// set records that b was committed at rev (b == nil: deleted).
func (r *blockRef) set(b *api.Block, rev int64) {
	r.b = b
	if b == nil {
		r.rev = 0
	} else {
		r.rev = rev
	}
}

// blockWrite is the conditioned write storing b in ref's key (or deleting
// the key when del is true).
func (r *blockRef) blockWrite(b *api.Block, del bool) kv.Write {
	if del {
		return kv.Write{Key: r.key, Rev: r.rev, Delete: true}
	}
	return kv.Write{Key: r.key, Value: encodeBlock(b), Rev: r.rev}
}

// readBlockAndHandle re-reads a block and (when h != nil) a handle in one
// round trip, replacing what ref and h hold.
func (a *Allocator) readBlockAndHandle(ctx context.Context, ref *blockRef, h *handleRef) error {
	keys := []string{ref.key}
	if h != nil {
		keys = append(keys, api.HandleKey(h.id))
	}
	res, err := a.store.Read(ctx, keys, nil)
	if err != nil {
		return fmt.Errorf("read block %s: %w", ref.cidr, err)
	}
	nref, err := loadBlock(ref.cidr, res.Keys[0])
	if err != nil {
		return err
	}
	*ref = *nref
	if h != nil {
		nh, err := loadHandle(h.id, res.Keys[1])
		if err != nil {
			return err
		}
		*h = *nh
	}
	return nil
}

// readBlocks reads several blocks in one round trip.
func (a *Allocator) readBlocks(ctx context.Context, cidrs []netip.Prefix) ([]*blockRef, error) {
	if len(cidrs) == 0 {
		return nil, nil
	}
	keys := make([]string, len(cidrs))
	for i, c := range cidrs {
		keys[i] = api.BlockKey(c)
	}
	res, err := a.store.Read(ctx, keys, nil)
	if err != nil {
		return nil, fmt.Errorf("read blocks: %w", err)
	}
	out := make([]*blockRef, len(cidrs))
	for i, c := range cidrs {
		ref, err := loadBlock(c, res.Keys[i])
		if err != nil {
			a.log.Warn("skipping unreadable block", "block", c, "err", err)
			ref = nil
		}
		out[i] = ref
	}
	return out, nil
}

// listBlocks lists the blocks of a family (0 = both), indexed by CIDR, not
// yet decoded.
func (a *Allocator) listBlocks(ctx context.Context, fam int) (map[netip.Prefix]*kv.KV, error) {
	items, _, err := a.store.List(ctx, api.BlockPrefix(fam))
	if err != nil {
		return nil, fmt.Errorf("list blocks: %w", err)
	}
	out := make(map[netip.Prefix]*kv.KV, len(items))
	for _, item := range items {
		c, err := api.ParseBlockKey(item.Key)
		if err != nil {
			continue
		}
		out[c.Masked()] = item
	}
	return out, nil
}
