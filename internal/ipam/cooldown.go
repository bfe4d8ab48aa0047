package ipam

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/kv"
)

// IP cooldown (upstream master's ipCooldownSeconds, calico#12638).
//
// With a cooldown configured, releasing an address does not put its
// ordinal back on the free list: the ordinal points at an attribute that
// carries only releasedAt. Such an address is held by nobody (no handle
// counts it, check does not call it leaked) and is handed out by nobody.
// Once the cooldown has passed, the next write of that block by this
// package (an allocation, a release, or ReclaimCooled) returns the ordinal
// to the END of the free list in the same compare-and-swap as the rest of
// that write: there is no background writer, so "never hand out an address
// twice" still rests only on the block's mod revision.
//
// With the cooldown at 0 (the default) nothing is ever marked, and blocks
// are byte-identical to before; addresses marked while a cooldown was set
// are all expired and are reclaimed by the next write of their block.

// ErrCoolingDown: AssignIP of an address that was released less than the
// IP cooldown ago.
var ErrCoolingDown = errors.New("address was released recently and is cooling down")

// cooldown is the IP cooldown in force for one operation, with the time the
// operation looks at.
type cooldown struct {
	d   time.Duration
	now time.Time
}

// cooldownOf is the cooldown of config c at now.
func cooldownOf(c api.IPAMConfig, now time.Time) cooldown {
	d := time.Duration(0)
	if c.IPCooldownSeconds > 0 {
		d = time.Duration(c.IPCooldownSeconds) * time.Second
	}
	return cooldown{d: d, now: now}
}

// stamp is the releasedAt a release at cd.now writes (second resolution,
// UTC, as a metav1.Time), or nil when no cooldown is configured.
func (cd cooldown) stamp() *time.Time {
	if cd.d <= 0 {
		return nil
	}
	t := cd.now.UTC().Truncate(time.Second)
	return &t
}

// ends is when an address released at t may be handed out again. A time
// with no sub-second part may have been truncated (ours always are), so
// it waits one more second: the cooldown is never cut short.
func (cd cooldown) ends(t time.Time) time.Time {
	e := t.Add(cd.d)
	if t.Nanosecond() == 0 {
		e = e.Add(time.Second)
	}
	return e
}

// expired reports whether an address released at t may be reused.
func (cd cooldown) expired(t time.Time) bool { return !cd.now.Before(cd.ends(t)) }

// allocated reports whether ordinal o is held (cooling ordinals are not).
func allocated(b *api.Block, o int) bool {
	idx := b.Allocations[o]
	return idx != nil && !b.Attributes[*idx].Cooling()
}

// coolingAt returns when ordinal o was released, if it is cooling down.
func coolingAt(b *api.Block, o int) (time.Time, bool) {
	idx := b.Allocations[o]
	if idx == nil || !b.Attributes[*idx].Cooling() {
		return time.Time{}, false
	}
	return *b.Attributes[*idx].ReleasedAt, true
}

// markCooling points ordinal o at the attribute {releasedAt: t}, sharing
// an identical one if the block has it.
func markCooling(b *api.Block, o int, t time.Time) {
	for i, a := range b.Attributes {
		if a.Cooling() && a.ReleasedAt.Equal(t) && a.HandleID == nil && len(a.ActiveOwnerAttrs) == 0 {
			idx := i
			b.Allocations[o] = &idx
			return
		}
	}
	rt := t
	b.Attributes = append(b.Attributes, api.AllocationAttribute{ReleasedAt: &rt})
	idx := len(b.Attributes) - 1
	b.Allocations[o] = &idx
}

// expiredCooling lists, in ordinal order, the cooling ordinals whose
// cooldown has passed.
func expiredCooling(b *api.Block, cd cooldown) []int {
	var out []int
	for o := range b.Allocations {
		if t, ok := coolingAt(b, o); ok && cd.expired(t) {
			out = append(out, o)
		}
	}
	return out
}

// reclaimCooled returns the expired cooling ordinals to the end of the
// free list (oldest release first, then ordinal order) and drops the
// attributes nobody refers to any more. It reports whether it changed b.
func reclaimCooled(b *api.Block, cd cooldown) bool {
	ords := expiredCooling(b, cd)
	if len(ords) == 0 {
		return false
	}
	sort.SliceStable(ords, func(i, j int) bool {
		ti, _ := coolingAt(b, ords[i])
		tj, _ := coolingAt(b, ords[j])
		return ti.Before(tj)
	})
	for _, o := range ords {
		b.Allocations[o] = nil
		b.Unallocated = append(b.Unallocated, o)
	}
	compactAttributes(b)
	return true
}

// coolingCount counts the ordinals that are cooling down (expired or not).
func coolingCount(b *api.Block) int {
	n := 0
	for o := range b.Allocations {
		if _, ok := coolingAt(b, o); ok {
			n++
		}
	}
	return n
}

// ReclaimCooled is the garbage collection of cooled-down addresses: every
// block with an address whose cooldown has passed is rewritten (CAS on
// what was read, re-read on conflict) with those addresses back on its
// free list; a block left empty with no affinity is deleted, as a release
// would. It returns how many addresses went back to the free lists.
// Allocations and releases do the same for the blocks they write, so this
// is only needed for blocks nobody writes.
func (a *Allocator) ReclaimCooled(ctx context.Context) (int, error) {
	res, err := a.store.Read(ctx, []string{api.IPAMConfigKey}, []string{api.BlockPrefix(0)})
	if err != nil {
		return 0, fmt.Errorf("reclaim cooled addresses: %w", err)
	}
	cfg, err := decodeConfig(res.Keys[0])
	if err != nil {
		return 0, err
	}
	total := 0
	var errs []error
	for _, item := range res.Prefixes[0] {
		b, cidr, err := decodeBlock(item.Key, item.Value)
		if err != nil || len(expiredCooling(b, cooldownOf(cfg, a.now()))) == 0 {
			continue
		}
		ref := &blockRef{key: item.Key, cidr: cidr, b: b, rev: item.Revision}
		n, err := a.reclaimBlock(ctx, ref, cfg)
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// reclaimBlock reclaims the expired cooling ordinals of one block.
func (a *Allocator) reclaimBlock(ctx context.Context, ref *blockRef, cfg api.IPAMConfig) (int, error) {
	for range a.maxRetries {
		if ref.b == nil {
			return 0, nil
		}
		b := ref.mutable()
		cd := cooldownOf(cfg, a.now())
		n := len(expiredCooling(b, cd))
		if !reclaimCooled(b, cd) {
			return 0, nil
		}
		b.SequenceNumber++
		del := b.Affinity == nil && blockEmpty(b)
		rev, err := a.store.Commit(ctx, []kv.Write{ref.blockWrite(b, del)})
		if err == nil {
			if del {
				ref.set(nil, rev)
			} else {
				ref.set(b, rev)
			}
			return n, nil
		}
		if !isCASFailure(err) {
			return 0, fmt.Errorf("reclaim cooled addresses in block %s: %w", ref.cidr, err)
		}
		if err := a.readBlockAndHandle(ctx, ref, nil); err != nil {
			return 0, err
		}
	}
	return 0, a.tooMany(fmt.Sprintf("reclaim cooled addresses in block %s", ref.cidr))
}

// CoolingError describes an address that is cooling down. It wraps
// ErrCoolingDown.
type CoolingError struct {
	ReleasedAt time.Time
	ReusableAt time.Time
	Seconds    int // the ipCooldownSeconds in force
}

func (e *CoolingError) Error() string {
	return fmt.Sprintf("%v: released at %s, reusable from %s (ipCooldownSeconds %d)", ErrCoolingDown,
		e.ReleasedAt.UTC().Format(time.RFC3339), e.ReusableAt.UTC().Format(time.RFC3339), e.Seconds)
}

// Unwrap lets errors.Is see ErrCoolingDown.
func (e *CoolingError) Unwrap() error { return ErrCoolingDown }

// coolingError describes an address released at t under cooldown cd.
func coolingError(t time.Time, cd cooldown) *CoolingError {
	return &CoolingError{ReleasedAt: t, ReusableAt: cd.ends(t), Seconds: int(cd.d / time.Second)}
}
