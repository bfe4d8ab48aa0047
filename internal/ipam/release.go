package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/kv"
)

// ReleaseOptions names one address to release. With HandleID or
// SequenceNumber set, the address is released only if it is still held by
// that handle and still carries that sequence number: a report made earlier
// can then never release an address that was re-allocated since.
type ReleaseOptions struct {
	Address        netip.Addr
	HandleID       string
	SequenceNumber *uint64
}

// MismatchError lists addresses ReleaseIPs skipped because their handle or
// sequence number no longer matched. It wraps ErrReleaseMismatch.
type MismatchError struct{ Addresses []netip.Addr }

func (e *MismatchError) Error() string {
	s := make([]string, len(e.Addresses))
	for i, a := range e.Addresses {
		s[i] = a.String()
	}
	return fmt.Sprintf("%v: %s", ErrReleaseMismatch, strings.Join(s, ", "))
}

// Unwrap lets errors.Is see ErrReleaseMismatch.
func (e *MismatchError) Unwrap() error { return ErrReleaseMismatch }

// ReleaseIPs releases addresses. It returns the ones that were not
// allocated. Addresses whose handle or sequence number do not match are
// skipped (never released) and reported in a *MismatchError; the others are
// released all the same. Each block and the handles it changes are
// committed together.
func (a *Allocator) ReleaseIPs(ctx context.Context, ips []ReleaseOptions) (notAllocated []netip.Addr, err error) {
	if len(ips) == 0 {
		return nil, nil
	}
	for _, o := range ips {
		if !o.Address.IsValid() {
			return nil, errors.New("release addresses: an entry has no address")
		}
	}
	res, err := a.store.Read(ctx, []string{api.IPAMConfigKey}, []string{poolsPrefix()})
	if err != nil {
		return nil, fmt.Errorf("release addresses: %w", err)
	}
	cfg, err := decodeConfig(res.Keys[0])
	if err != nil {
		return nil, err
	}
	pools := decodePools(res.Prefixes[0]) // all pools, disabled ones included
	byBlock := map[netip.Prefix][]ReleaseOptions{}
	var listed map[netip.Prefix]*kv.KV
	for _, o := range ips {
		o.Address = o.Address.Unmap()
		o.HandleID = sanitizeHandle(o.HandleID)
		if p, ok := poolFor(pools, o.Address); ok {
			c := blockCIDRFor(o.Address, p.Spec.BlockSize)
			byBlock[c] = append(byBlock[c], o)
			continue
		}
		// Not in any pool (the pool was deleted): find the block by scan.
		if listed == nil {
			if listed, err = a.listBlocks(ctx, 0); err != nil {
				return nil, fmt.Errorf("release addresses: %w", err)
			}
		}
		found := false
		for c := range listed {
			if c.Contains(o.Address) {
				byBlock[c] = append(byBlock[c], o)
				found = true
				break
			}
		}
		if !found {
			notAllocated = append(notAllocated, o.Address)
		}
	}
	blocks := make([]netip.Prefix, 0, len(byBlock))
	for c := range byBlock {
		blocks = append(blocks, c)
	}
	sort.Slice(blocks, func(i, j int) bool { return blocks[i].Addr().Less(blocks[j].Addr()) })
	var mismatched []netip.Addr
	var errs []error
	for _, c := range blocks {
		na, mm, err := a.releaseFromBlock(ctx, c, byBlock[c], cfg)
		notAllocated = append(notAllocated, na...)
		mismatched = append(mismatched, mm...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(mismatched) > 0 {
		errs = append(errs, &MismatchError{Addresses: mismatched})
	}
	return notAllocated, errors.Join(errs...)
}

// releaseFromBlock releases the given addresses of one block.
func (a *Allocator) releaseFromBlock(ctx context.Context, cidr netip.Prefix, opts []ReleaseOptions, cfg api.IPAMConfig) (notAllocated, mismatched []netip.Addr, err error) {
	ref := &blockRef{key: api.BlockKey(cidr), cidr: cidr}
	if err := a.readBlockAndHandle(ctx, ref, nil); err != nil {
		return nil, nil, err
	}
	var handles map[string]*handleRef
	for range a.maxRetries {
		notAllocated, mismatched = nil, nil
		if ref.b == nil {
			for _, o := range opts {
				notAllocated = append(notAllocated, o.Address)
			}
			return notAllocated, nil, nil
		}
		b := ref.mutable()
		var ords []int
		seen := map[int]bool{}
		for _, o := range opts {
			ord, ok := addrOrdinal(cidr, o.Address)
			if !ok || seen[ord] {
				continue
			}
			seen[ord] = true
			if !allocated(b, ord) {
				notAllocated = append(notAllocated, o.Address)
				continue
			}
			idx := b.Allocations[ord]
			if o.SequenceNumber != nil && *o.SequenceNumber != seqForOrdinal(b, ord) {
				mismatched = append(mismatched, o.Address)
				continue
			}
			if o.HandleID != "" && o.HandleID != attrHandle(b.Attributes[*idx]) {
				mismatched = append(mismatched, o.Address)
				continue
			}
			ords = append(ords, ord)
		}
		if len(ords) == 0 {
			return notAllocated, mismatched, nil
		}
		perHandle := releaseOrdinals(b, ords, true, cooldownOf(cfg, a.now()))
		if handles == nil {
			if handles, err = a.readHandles(ctx, perHandle); err != nil {
				return nil, nil, err
			}
		}
		rev, nexts, err := a.commitRelease(ctx, ref, b, handles, perHandle)
		if err == nil {
			a.afterRelease(ctx, ref.cidr, b)
			for id, n := range nexts {
				handles[id].applied(n, rev)
			}
			return notAllocated, mismatched, nil
		}
		if !isCASFailure(err) {
			return nil, nil, fmt.Errorf("release from block %s: %w", cidr, err)
		}
		if err := a.readBlockAndHandle(ctx, ref, nil); err != nil {
			return nil, nil, err
		}
		handles = nil
	}
	return nil, nil, a.tooMany(fmt.Sprintf("release from block %s", cidr))
}

// readHandles reads the named handles in one round trip.
func (a *Allocator) readHandles(ctx context.Context, ids map[string]int) (map[string]*handleRef, error) {
	out := make(map[string]*handleRef, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	names := make([]string, 0, len(ids))
	keys := make([]string, 0, len(ids))
	for id := range ids {
		names = append(names, id)
		keys = append(keys, api.HandleKey(id))
	}
	res, err := a.store.Read(ctx, keys, nil)
	if err != nil {
		return nil, fmt.Errorf("read handles: %w", err)
	}
	for i, id := range names {
		h, err := loadHandle(id, res.Keys[i])
		if err != nil {
			return nil, err
		}
		out[id] = h
	}
	return out, nil
}

// commitRelease writes the released block b (deleting it when it is empty
// and has no affinity) together with the handles' decrements.
func (a *Allocator) commitRelease(ctx context.Context, ref *blockRef, b *api.Block, handles map[string]*handleRef, perHandle map[string]int) (int64, map[string]*api.Handle, error) {
	b.SequenceNumber++
	del := b.Affinity == nil && blockEmpty(b)
	writes := []kv.Write{ref.blockWrite(b, del)}
	nexts := map[string]*api.Handle{}
	ids := make([]string, 0, len(perHandle))
	for id := range perHandle {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		h := handles[id]
		if h == nil {
			continue
		}
		w, ok, next := h.write(ref.cidr, -perHandle[id])
		if ok {
			writes = append(writes, w)
			nexts[id] = next
		}
	}
	rev, err := a.store.Commit(ctx, writes)
	if err != nil {
		return 0, nil, err
	}
	if del {
		ref.set(nil, rev)
	} else {
		ref.set(b, rev)
	}
	return rev, nexts, nil
}

// afterRelease runs upstream's ensureConsistentAffinity on a block that
// became empty: if its pool no longer selects its host, the affinity goes.
func (a *Allocator) afterRelease(ctx context.Context, cidr netip.Prefix, b *api.Block) {
	host, ok := b.AffineHost()
	if !ok || !blockEmpty(b) {
		return
	}
	res, err := a.store.Read(ctx, []string{nodeKey(host)}, []string{poolsPrefix()})
	if err != nil {
		a.log.Warn("could not check the affinity of an emptied block", "block", cidr, "err", err)
		return
	}
	node, err := decodeNode(res.Keys[0])
	if err != nil || node == nil {
		return
	}
	p, ok := poolFor(enabledOfFamily(decodePools(res.Prefixes[0]), familyOf(cidr)), cidr.Addr())
	if !ok {
		return
	}
	if sel, err := selectsNode(p, node.Labels); err != nil || sel {
		return
	}
	if err := a.releaseAffinity(ctx, host, cidr, true, nil); err != nil && !ignorableRelease(err) {
		a.log.Warn("could not release the affinity of a block whose pool no longer selects its node", "block", cidr, "err", err)
	}
}

func familyOf(p netip.Prefix) int {
	if p.Addr().Is6() {
		return 6
	}
	return 4
}

// ReleaseByHandle releases every address held by handleID. A missing
// handle or block is not an error.
func (a *Allocator) ReleaseByHandle(ctx context.Context, handleID string) error {
	return a.ReleaseByHandles(ctx, handleID)
}

// ReleaseByHandles releases every address of several handles, reading all
// the handles in one round trip (the CNI DEL releases "<net>.<cid>" and the
// legacy "<cid>").
func (a *Allocator) ReleaseByHandles(ctx context.Context, handleIDs ...string) error {
	var ids, keys []string
	for _, id := range handleIDs {
		id = sanitizeHandle(id)
		if id == "" || contains(ids, id) {
			continue
		}
		ids = append(ids, id)
		keys = append(keys, api.HandleKey(id))
	}
	if len(ids) == 0 {
		return nil
	}
	res, err := a.store.Read(ctx, append(keys, api.IPAMConfigKey), nil)
	if err != nil {
		return fmt.Errorf("release handles %s: %w", strings.Join(ids, ", "), err)
	}
	cfg, err := decodeConfig(res.Keys[len(ids)])
	if err != nil {
		return err
	}
	var errs []error
	for i, id := range ids {
		h, err := loadHandle(id, res.Keys[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if h.h == nil {
			continue
		}
		if err := a.releaseHandle(ctx, h, cfg); err != nil {
			errs = append(errs, fmt.Errorf("release handle %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// releaseHandle releases every allocation of one handle, block by block,
// each block committed together with the handle.
func (a *Allocator) releaseHandle(ctx context.Context, h *handleRef, cfg api.IPAMConfig) error {
	var cidrs []netip.Prefix
	for k := range h.h.Block {
		c, err := netip.ParsePrefix(k)
		if err != nil {
			a.log.Warn("handle refers to a malformed block CIDR", "handle", h.id, "block", k)
			continue
		}
		cidrs = append(cidrs, c.Masked())
	}
	sort.Slice(cidrs, func(i, j int) bool { return cidrs[i].Addr().Less(cidrs[j].Addr()) })
	refs, err := a.readBlocks(ctx, cidrs)
	if err != nil {
		return err
	}
	for i, c := range cidrs {
		ref := refs[i]
		if ref == nil {
			ref = &blockRef{key: api.BlockKey(c), cidr: c}
			if err := a.readBlockAndHandle(ctx, ref, nil); err != nil {
				return err
			}
		}
		if err := a.releaseHandleInBlock(ctx, h, ref, cfg); err != nil {
			return err
		}
	}
	return nil
}

func (a *Allocator) releaseHandleInBlock(ctx context.Context, h *handleRef, ref *blockRef, cfg api.IPAMConfig) error {
	for range a.maxRetries {
		var ords []int
		if ref.b != nil {
			ords = ordinalsOfHandle(ref.b, h.id)
		}
		count := h.count(ref.cidr)
		if len(ords) == 0 && count == 0 {
			return nil
		}
		var writes []kv.Write
		var b *api.Block
		del := false
		if len(ords) > 0 {
			b = ref.mutable()
			releaseOrdinals(b, ords, false, cooldownOf(cfg, a.now()))
			b.SequenceNumber++
			del = b.Affinity == nil && blockEmpty(b)
			writes = append(writes, ref.blockWrite(b, del))
		}
		// After this commit the handle holds nothing in this block, so its
		// entry goes whatever it said (invariant 2: count == allocations).
		var next *api.Handle
		wroteHandle := false
		if count != 0 {
			var w kv.Write
			if w, wroteHandle, next = h.write(ref.cidr, -count); wroteHandle {
				writes = append(writes, w)
			}
		}
		rev, err := a.store.Commit(ctx, writes)
		if err == nil {
			if b != nil {
				if del {
					ref.set(nil, rev)
				} else {
					ref.set(b, rev)
				}
				a.afterRelease(ctx, ref.cidr, b)
			}
			if wroteHandle {
				h.applied(next, rev)
			}
			return nil
		}
		if !isCASFailure(err) {
			return fmt.Errorf("release block %s: %w", ref.cidr, err)
		}
		if err := a.readBlockAndHandle(ctx, ref, h); err != nil {
			return err
		}
	}
	return a.tooMany(fmt.Sprintf("release handle %s in block %s", h.id, ref.cidr))
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// IPsByHandle lists the addresses a handle holds (ErrHandleNotFound if
// there is no such handle).
func (a *Allocator) IPsByHandle(ctx context.Context, handleID string) ([]netip.Addr, error) {
	handleID = sanitizeHandle(handleID)
	item, err := a.store.Get(ctx, api.HandleKey(handleID))
	if errors.Is(err, kv.ErrNotFound) {
		return nil, fmt.Errorf("handle %s: %w", handleID, ErrHandleNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read handle %s: %w", handleID, err)
	}
	h, err := loadHandle(handleID, item)
	if err != nil {
		return nil, err
	}
	var cidrs []netip.Prefix
	for k := range h.h.Block {
		if c, err := netip.ParsePrefix(k); err == nil {
			cidrs = append(cidrs, c.Masked())
		}
	}
	sort.Slice(cidrs, func(i, j int) bool { return cidrs[i].Addr().Less(cidrs[j].Addr()) })
	refs, err := a.readBlocks(ctx, cidrs)
	if err != nil {
		return nil, err
	}
	out := []netip.Addr{}
	for _, ref := range refs {
		if ref == nil || ref.b == nil {
			continue
		}
		for _, o := range ordinalsOfHandle(ref.b, handleID) {
			out = append(out, ordinalAddr(ref.cidr, o))
		}
	}
	return out, nil
}

// HandlesOnHost returns the handles (with the given prefix, "" = all)
// whose allocations carry the attribute node == host, sorted. The CNI GC
// uses it to find this node's allocations of one network.
func (a *Allocator) HandlesOnHost(ctx context.Context, host, handlePrefix string) ([]string, error) {
	items, _, err := a.store.List(ctx, api.BlockPrefix(0))
	if err != nil {
		return nil, fmt.Errorf("list blocks: %w", err)
	}
	set := map[string]bool{}
	for _, item := range items {
		b, _, err := decodeBlock(item.Key, item.Value)
		if err != nil {
			continue
		}
		used := make([]bool, len(b.Attributes))
		for _, idx := range b.Allocations {
			if idx != nil {
				used[*idx] = true
			}
		}
		for i, at := range b.Attributes {
			h := attrHandle(at)
			if used[i] && h != "" && strings.HasPrefix(h, handlePrefix) && at.ActiveOwnerAttrs[api.AttrNode] == host {
				set[h] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for h := range set {
		out = append(out, h)
	}
	sort.Strings(out)
	return out, nil
}

// errNoAffinity: releaseAffinity found no such affinity.
var errNoAffinity = errors.New("no such affinity")

// errBlockChanged: a reclaim found the block modified since it was read.
var errBlockChanged = errors.New("block was modified since it was read")

// ignorableRelease reports errors of releaseAffinity that callers doing a
// best-effort cleanup ignore.
func ignorableRelease(err error) bool {
	return errors.Is(err, errClaimConflict) || errors.Is(err, errBlockNotEmpty) || errors.Is(err, errNoAffinity) || errors.Is(err, errBlockChanged)
}

// releaseAffinity releases host's affinity to block cidr. An empty block is
// deleted; a non-empty one loses its affinity (its addresses stay
// allocated). Block and affinity change in one transaction. With
// requireEmpty a non-empty block gives errBlockNotEmpty; with requiredSeq
// the block must still carry that sequence number.
func (a *Allocator) releaseAffinity(ctx context.Context, host string, cidr netip.Prefix, requireEmpty bool, requiredSeq *uint64) error {
	affKey := api.AffinityKey(host, cidr)
	for range a.maxRetries {
		res, err := a.store.Read(ctx, []string{affKey, api.BlockKey(cidr)}, nil)
		if err != nil {
			return fmt.Errorf("release affinity %s: %w", affKey, err)
		}
		affItem := res.Keys[0]
		ref, err := loadBlock(cidr, res.Keys[1])
		if err != nil {
			return err
		}
		if ref.b != nil && requiredSeq != nil && *requiredSeq != ref.b.SequenceNumber {
			return errBlockChanged
		}
		if affItem == nil && (ref.b == nil || !isAffineTo(ref.b, host)) {
			return errNoAffinity
		}
		var writes []kv.Write
		switch {
		case ref.b == nil:
			writes = []kv.Write{{Key: affKey, Rev: affItem.Revision, Delete: true}}
		case !isAffineTo(ref.b, host):
			// A stale affinity: the block belongs to someone else.
			if err := a.store.Delete(ctx, affKey, affItem.Revision); err != nil && !isCASFailure(err) {
				return fmt.Errorf("delete stale affinity %s: %w", affKey, err)
			}
			return errClaimConflict
		case blockEmpty(ref.b):
			writes = []kv.Write{ref.blockWrite(nil, true)}
		case requireEmpty:
			return fmt.Errorf("block %s has %d addresses in use: %w", cidr, inUse(ref.b), errBlockNotEmpty)
		default:
			b := ref.mutable()
			b.Affinity, b.AffinityClaimTime = nil, ""
			b.SequenceNumber++
			writes = []kv.Write{ref.blockWrite(b, false)}
		}
		if affItem != nil && ref.b != nil {
			writes = append(writes, kv.Write{Key: affKey, Rev: affItem.Revision, Delete: true})
		}
		if _, err := a.store.Commit(ctx, writes); err == nil {
			return nil
		} else if !isCASFailure(err) {
			return fmt.Errorf("release affinity %s: %w", affKey, err)
		}
	}
	return a.tooMany(fmt.Sprintf("release affinity %s", affKey))
}

// ReleaseHostAffinities releases every block affinity of host (both
// families). With mustBeEmpty, non-empty blocks keep their affinity and are
// reported in the error.
func (a *Allocator) ReleaseHostAffinities(ctx context.Context, host string, mustBeEmpty bool) error {
	if host == "" {
		return errors.New("release host affinities: the host name is empty")
	}
	items, _, err := a.store.List(ctx, api.HostAffinityPrefix(host, 0))
	if err != nil {
		return fmt.Errorf("release affinities of host %s: %w", host, err)
	}
	var errs []error
	for _, af := range decodeAffinities(items) {
		err := a.releaseAffinity(ctx, host, af.cidr, mustBeEmpty, nil)
		if err == nil || errors.Is(err, errClaimConflict) || errors.Is(err, errNoAffinity) {
			continue
		}
		errs = append(errs, fmt.Errorf("release affinity of host %s to block %s: %w", host, af.cidr, err))
	}
	return errors.Join(errs...)
}

// ReleasePoolAffinities releases every host's affinity to blocks of pool
// (IPPool deletion: after the pool is disabled, before it is deleted).
func (a *Allocator) ReleasePoolAffinities(ctx context.Context, pool netip.Prefix) error {
	pool = pool.Masked()
	for range a.maxRetries {
		items, _, err := a.store.List(ctx, api.IPAMHostPrefix)
		if err != nil {
			return fmt.Errorf("release affinities in pool %s: %w", pool, err)
		}
		again := false
		for _, af := range decodeAffinities(items) {
			if !pool.Contains(af.cidr.Addr()) {
				continue
			}
			err := a.releaseAffinity(ctx, af.host, af.cidr, false, nil)
			switch {
			case err == nil, errors.Is(err, errNoAffinity):
			case errors.Is(err, errClaimConflict):
				again = true
			default:
				return fmt.Errorf("release affinities in pool %s: %w", pool, err)
			}
		}
		if !again {
			return nil
		}
	}
	return a.tooMany(fmt.Sprintf("release affinities in pool %s", pool))
}
