package ipam

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/kv"
)

// AutoAssignArgs is an allocation request.
type AutoAssignArgs struct {
	// Num4 and Num6 are how many addresses of each family to assign.
	Num4, Num6 int
	// HandleID names the allocation (e.g. "<network>.<containerID>"), so
	// it can be released by handle; "" for none.
	HandleID string
	// Attrs are stored with the allocation (node, timestamp, pod, ...).
	Attrs map[string]string
	// Hostname is the host (Node name) the addresses are for. Required.
	Hostname string
	// IPv4Pools and IPv6Pools name the pools to use, by IPPool name or
	// CIDR; empty means automatic selection.
	IPv4Pools, IPv6Pools []string
	// IntendedUse is what the addresses are for; "" means Workload.
	IntendedUse api.IPPoolAllowedUse
	// MaxBlocksPerHost caps the host's blocks for this request; 0 means
	// the IPAM config's value, or DefaultMaxBlocksPerHost.
	MaxBlocksPerHost int
	// Registering says the caller is about to create Hostname's Node (the
	// node daemon's first start, which records the address on the Node it
	// creates): the Node need not exist yet, and until it does its labels
	// are HostLabels. A stored Node's labels win.
	Registering bool
	HostLabels  map[string]string
}

// AssignIPArgs is a request for one specific address.
type AssignIPArgs struct {
	IP          netip.Addr
	HandleID    string
	Attrs       map[string]string
	Hostname    string
	IntendedUse api.IPPoolAllowedUse // "" = no check of allowedUses (as upstream)
}

// assignState is what one Read returns for an allocation: the config, the
// node, every pool, the reservations, the host's affinities and the handle.
type assignState struct {
	config     api.IPAMConfig
	node       *api.Node
	pools      []pool
	rsv        reservations
	affinities []affinityRef
}

// readAssignState fetches everything an allocation decides on in ONE
// consistent read.
func (a *Allocator) readAssignState(ctx context.Context, host, handleID string) (*assignState, *handleRef, error) {
	keys := []string{api.IPAMConfigKey, nodeKey(host)}
	if handleID != "" {
		keys = append(keys, api.HandleKey(handleID))
	}
	prefixes := []string{poolsPrefix(), reservationsPrefix(), api.HostAffinityPrefix(host, 0)}
	res, err := a.store.Read(ctx, keys, prefixes)
	if err != nil {
		return nil, nil, fmt.Errorf("read IPAM state for host %s: %w", host, err)
	}
	st := &assignState{
		pools:      decodePools(res.Prefixes[0]),
		rsv:        decodeReservations(res.Prefixes[1]),
		affinities: decodeAffinities(res.Prefixes[2]),
	}
	if st.config, err = decodeConfig(res.Keys[0]); err != nil {
		return nil, nil, err
	}
	if st.node, err = decodeNode(res.Keys[1]); err != nil {
		return nil, nil, err
	}
	var h *handleRef
	if handleID != "" {
		if h, err = loadHandle(handleID, res.Keys[2]); err != nil {
			return nil, nil, err
		}
	}
	return st, h, nil
}

// maxBlocks merges the request's and the config's block limits: the more
// restrictive wins, and neither set means DefaultMaxBlocksPerHost.
func maxBlocks(req, cfg int) int {
	switch {
	case cfg > 0 && req > 0 && req > cfg:
		req = cfg
	case req == 0:
		req = cfg
	}
	if req <= 0 {
		req = DefaultMaxBlocksPerHost
	}
	return req
}

// assignOp is one AutoAssign in progress. Addresses are first planned in
// private copies of the blocks; the plan is then committed in ONE
// transaction with the handle, conditioned on every block's revision. A
// failed request therefore writes no allocation at all, and a conflict
// means re-reading and planning again. (Claiming a block, which does not
// allocate anything, is committed as soon as it is done, as upstream does.)
type assignOp struct {
	a        *Allocator
	host     string
	handleID *string
	handle   *handleRef // nil without a handle
	attrs    map[string]string
	rsv      reservations
	strict   bool
	cool     cooldown
	planned  map[netip.Prefix]*plannedBlock
	order    []netip.Prefix
	// deferClaims: a block this op claims is not created at once but with
	// the plan's commit, its first addresses already in it, together with
	// its affinity's confirmation (claimed holds those writes). AutoAssign
	// sets it; see claim.
	deferClaims bool
	claimed     map[netip.Prefix]kv.Write
}

// plannedBlock is a block with the allocations planned in it.
type plannedBlock struct {
	ref  *blockRef
	b    *api.Block // private copy with the planned allocations
	ords []int
}

// current returns the block as the plan sees it (with planned allocations).
func (op *assignOp) current(ref *blockRef) *api.Block {
	if pb := op.planned[ref.cidr]; pb != nil {
		return pb.b
	}
	return ref.b
}

// assignFrom plans up to need addresses from the block. It returns
// errBlockGone when the block no longer exists or (with affine) is no
// longer this host's.
func (op *assignOp) assignFrom(ref *blockRef, need int, affine bool) ([]netip.Prefix, error) {
	if ref.b == nil || (affine && !isAffineTo(ref.b, op.host)) {
		return nil, errBlockGone
	}
	if op.strict && !isAffineTo(ref.b, op.host) {
		return nil, errBlockGone
	}
	pb := op.planned[ref.cidr]
	if pb == nil {
		pb = &plannedBlock{ref: ref, b: ref.mutable()}
		op.planned[ref.cidr] = pb
		op.order = append(op.order, ref.cidr)
	}
	reclaimCooled(pb.b, op.cool)
	ords := autoAssignOrdinals(pb.b, ref.cidr, need, op.handleID, op.attrs, op.rsv)
	pb.ords = append(pb.ords, ords...)
	out := make([]netip.Prefix, len(ords))
	for i, o := range ords {
		out[i] = netip.PrefixFrom(ordinalAddr(ref.cidr, o), ref.cidr.Bits())
	}
	return out, nil
}

// commit writes every planned block and the handle in one transaction.
func (op *assignOp) commit(ctx context.Context) error {
	var writes []kv.Write
	inc := map[netip.Prefix]int{}
	for _, c := range op.order {
		pb := op.planned[c]
		confirm, claimed := op.claimed[c]
		if len(pb.ords) == 0 && !claimed {
			continue
		}
		if len(pb.ords) > 0 {
			pb.b.SequenceNumber++
			inc[c] += len(pb.ords)
		}
		writes = append(writes, pb.ref.blockWrite(pb.b, false))
		if claimed {
			writes = append(writes, confirm)
		}
	}
	if len(writes) == 0 {
		return nil
	}
	if op.handle != nil {
		writes = append(writes, op.handle.increment(inc))
	}
	rev, err := op.a.store.Commit(ctx, writes)
	if err != nil {
		return err
	}
	op.a.log.Debug("assigned", "host", op.host, "blocks", op.order, "rev", rev)
	return nil
}

// AutoAssign assigns args.Num4 IPv4 and args.Num6 IPv6 addresses to
// args.Hostname, returning them with the block's mask (e.g. 10.65.0.5/26).
// It is all-or-nothing: every address of the request (both families) is
// committed in one transaction together with the handle, or none is. The
// error says why (ErrNoPool, ErrPoolExhausted, ErrBlockLimit,
// ErrStrictAffinity, ErrNodeNotFound, ErrTooManyConflicts).
func (a *Allocator) AutoAssign(ctx context.Context, args AutoAssignArgs) (v4, v6 []netip.Prefix, err error) {
	if args.Hostname == "" {
		return nil, nil, errors.New("auto-assign: the host name is empty")
	}
	if args.Num4 < 0 || args.Num6 < 0 {
		return nil, nil, fmt.Errorf("auto-assign for host %s: negative address count (%d IPv4, %d IPv6)", args.Hostname, args.Num4, args.Num6)
	}
	if args.Num4 == 0 && args.Num6 == 0 {
		return nil, nil, nil
	}
	use := args.IntendedUse
	if use == "" {
		use = api.AllowedUseWorkload
	}
	handleID := sanitizeHandle(args.HandleID)
	for range a.maxRetries {
		st, h, err := a.readAssignState(ctx, args.Hostname, handleID)
		if err != nil {
			return nil, nil, err
		}
		if st.node == nil && use != api.AllowedUseLoadBalancer && !args.Registering {
			return nil, nil, fmt.Errorf("auto-assign for host %s: %w: start calico-node on that host or create its Node resource (the node's labels decide which pools apply)", args.Hostname, ErrNodeNotFound)
		}
		labels := args.HostLabels
		if st.node != nil {
			labels = st.node.Labels
		}
		// Choose the pools of every family first, so that a request that
		// cannot be served at all fails before anything is written.
		var pools4, pools6 []pool
		if args.Num4 > 0 {
			if pools4, err = selectPools(st.pools, 4, args.IPv4Pools, args.Hostname, labels, use); err != nil {
				return nil, nil, fmt.Errorf("assign IPv4 address for host %s: %w", args.Hostname, err)
			}
		}
		if args.Num6 > 0 {
			if pools6, err = selectPools(st.pools, 6, args.IPv6Pools, args.Hostname, labels, use); err != nil {
				return nil, nil, fmt.Errorf("assign IPv6 address for host %s: %w", args.Hostname, err)
			}
		}
		op := &assignOp{a: a, host: args.Hostname, handle: h, attrs: args.Attrs, rsv: st.rsv,
			strict: st.config.StrictAffinity, cool: cooldownOf(st.config, a.now()), planned: map[netip.Prefix]*plannedBlock{},
			deferClaims: true, claimed: map[netip.Prefix]kv.Write{}}
		if handleID != "" {
			op.handleID = &handleID
		}
		if args.Num4 > 0 {
			if v4, err = op.autoAssign(ctx, st, 4, args.Num4, pools4, labels, args.MaxBlocksPerHost); err != nil {
				return nil, nil, err
			}
		}
		if args.Num6 > 0 {
			if v6, err = op.autoAssign(ctx, st, 6, args.Num6, pools6, labels, args.MaxBlocksPerHost); err != nil {
				return nil, nil, err
			}
		}
		err = op.commit(ctx)
		if err == nil {
			return v4, v6, nil
		}
		if !isCASFailure(err) {
			return nil, nil, fmt.Errorf("auto-assign for host %s: commit: %w", args.Hostname, err)
		}
		a.log.Debug("conflict committing allocation, planning again", "host", args.Hostname, "err", err)
	}
	return nil, nil, a.tooMany(fmt.Sprintf("auto-assign for host %s", args.Hostname))
}

// autoAssign plans num addresses of one family from the given pools:
// affine blocks first, then newly claimed blocks, then (without strict
// affinity) borrowed ones.
func (op *assignOp) autoAssign(ctx context.Context, st *assignState, fam, num int, pools []pool, labels map[string]string, reqMax int) ([]netip.Prefix, error) {
	a := op.a
	what := fmt.Sprintf("assign %d %s address(es) for host %s", num, familyName(fam), op.host)

	// The host's affinities in pools we may use, in key order; release
	// empty ones whose pool no longer selects this node.
	var affine []affinityRef
	enabled := enabledOfFamily(st.pools, fam)
	for _, af := range st.affinities {
		if (af.cidr.Addr().Is6()) != (fam == 6) {
			continue
		}
		if inPools(pools, af.cidr) {
			affine = append(affine, af)
			continue
		}
		if p, ok := poolFor(enabled, af.cidr.Addr()); ok {
			if sel, err := selectsNode(p, labels); err == nil && !sel {
				if err := a.releaseAffinity(ctx, op.host, af.cidr, true, nil); err != nil && !ignorableRelease(err) {
					a.log.Warn("could not release affinity of a block whose pool no longer selects the node", "block", af.cidr, "err", err)
				}
			}
		}
	}
	limit := maxBlocks(reqMax, st.config.MaxBlocksPerHost)
	owned := len(affine)

	var got []netip.Prefix
	need := func() int { return num - len(got) }

	// 1. Affine blocks, all read in one round trip.
	var cidrs []netip.Prefix
	var affs []affinityRef
	for _, af := range affine {
		if !op.rsv.covers(af.cidr) {
			cidrs = append(cidrs, af.cidr)
			affs = append(affs, af)
		}
	}
	refs, err := a.readBlocks(ctx, cidrs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	// Stale affinities (the block belongs to another host, or to none)
	// are deleted now that all the blocks are read, and do not count.
	for i, ref := range refs {
		if ref != nil && ref.b != nil && !isAffineTo(ref.b, op.host) && op.planned[ref.cidr] == nil {
			if _, err := op.useAffine(ctx, &affs[i], ref); errors.Is(err, errBlockGone) {
				refs[i] = nil
				owned--
			}
		}
	}
	for i := 0; i < len(refs) && need() > 0; i++ {
		if refs[i] == nil {
			continue
		}
		ref := refs[i]
		if pb := op.planned[ref.cidr]; pb != nil {
			ref = pb.ref
		} else if ref, err = op.useAffine(ctx, &affs[i], ref); errors.Is(err, errBlockGone) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if freeCount(op.current(ref), ref.cidr, op.rsv, op.cool) == 0 {
			continue
		}
		ips, err := op.assignFrom(ref, need(), true)
		if errors.Is(err, errBlockGone) {
			continue
		}
		got = append(got, ips...)
	}

	// 2. Claim new blocks.
	noFreeBlock := false
	for attempts := 0; need() > 0; attempts++ {
		if attempts >= a.maxRetries {
			return nil, a.tooMany(what)
		}
		if owned >= limit {
			return nil, fmt.Errorf("%s: %w: the host already has %d blocks and the limit is %d; release addresses on this host or raise the limit (calicoctl ipam configure --max-blocks-per-host)", what, ErrBlockLimit, owned, limit)
		}
		if !st.config.AutoAllocateBlocks {
			break
		}
		existing, err := a.listBlockKeys(ctx, fam)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if err := a.fillWalk(ctx, pools, existing, op.host, op.rsv); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		op.addClaimed(existing)
		cidr, ok, err := a.findUsableBlock(ctx, pools, existing, op.host, op.rsv, op.cool, op.current)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if !ok {
			noFreeBlock = true
			break
		}
		ref, newly, err := op.claim(ctx, cidr)
		if errors.Is(err, errClaimConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if newly {
			owned++
		}
		if pb := op.planned[cidr]; pb != nil {
			ref = pb.ref
		}
		ips, err := op.assignFrom(ref, need(), true)
		if err != nil && !errors.Is(err, errBlockGone) {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		got = append(got, ips...)
	}

	// 3. Borrow from any block of the pools, unless strict affinity.
	if need() > 0 && !st.config.StrictAffinity {
		existing, err := a.listBlocks(ctx, fam)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		for _, p := range pools {
			for _, c := range blocksInWalkOrder(p, existing, op.host, a.now) {
				if need() == 0 {
					break
				}
				if op.rsv.covers(c) {
					continue
				}
				var ref *blockRef
				if pb := op.planned[c]; pb != nil {
					ref = pb.ref
				} else if ref, err = loadBlock(c, existing[c]); err != nil {
					continue
				}
				if freeCount(op.current(ref), ref.cidr, op.rsv, op.cool) == 0 {
					continue
				}
				ips, err := op.assignFrom(ref, need(), false)
				if errors.Is(err, errBlockGone) {
					continue
				}
				got = append(got, ips...)
			}
		}
	}

	if need() > 0 {
		names := make([]string, len(pools))
		for i, p := range pools {
			names[i] = p.String()
		}
		if st.config.StrictAffinity {
			why := "no block of the pools is free to claim"
			if !noFreeBlock {
				why = "autoAllocateBlocks is off"
			}
			return nil, fmt.Errorf("%s: %w: this host's blocks are full and %s (pools %s); free addresses, add a pool, or turn strict affinity off (calicoctl ipam configure --strictaffinity=false)", what, ErrStrictAffinity, why, strings.Join(names, ", "))
		}
		return nil, fmt.Errorf("%s: %w: %s; release unused addresses (calicoctl ipam check) or add a pool", what, ErrPoolExhausted, strings.Join(names, ", "))
	}
	return got, nil
}

// blocksInWalkOrder returns the existing blocks of a pool in the order
// upstream's random block walk would visit them for this host. It sorts the
// existing blocks by their position in the walk instead of walking every
// block of the pool, which for an IPv6 pool would never end.
func blocksInWalkOrder(p pool, existing map[netip.Prefix]*kv.KV, host string, now func() time.Time) []netip.Prefix {
	g := newBlockOrder(p.cidr, p.Spec.BlockSize, host, now)
	type entry struct {
		c   netip.Prefix
		pos *big.Int
	}
	var es []entry
	for c := range existing {
		if pos := g.position(c); pos != nil {
			es = append(es, entry{c, pos})
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].pos.Cmp(es[j].pos) < 0 })
	out := make([]netip.Prefix, len(es))
	for i, e := range es {
		out[i] = e.c
	}
	return out
}

// useAffine makes an affine block usable: it creates the block if the
// affinity has none (claim), deletes a stale affinity whose block belongs
// to someone else, and confirms an unconfirmed affinity (bumping the block
// in the same transaction, which invalidates anyone holding the old one).
func (op *assignOp) useAffine(ctx context.Context, af *affinityRef, ref *blockRef) (*blockRef, error) {
	a := op.a
	for range a.maxRetries {
		var writes []kv.Write
		var b *api.Block
		switch {
		case af.rev == 0:
			return nil, errBlockGone // the affinity was deleted under us
		case ref.b == nil:
			b = newBlock(ref.cidr, api.HostAffinity(op.host), a.now())
			writes = []kv.Write{
				{Key: ref.key, Value: encodeBlock(b), Rev: 0},
				{Key: af.key, Value: encodeAffinity(api.AffinityConfirmed), Rev: af.rev},
			}
		case !isAffineTo(ref.b, op.host):
			if err := a.store.Delete(ctx, af.key, af.rev); err != nil && !isCASFailure(err) {
				a.log.Warn("could not delete stale affinity", "key", af.key, "err", err)
			}
			return nil, errBlockGone
		case !af.aff.Confirmed():
			b = ref.mutable()
			b.SequenceNumber++
			writes = []kv.Write{
				ref.blockWrite(b, false),
				{Key: af.key, Value: encodeAffinity(api.AffinityConfirmed), Rev: af.rev},
			}
		default:
			return ref, nil
		}
		rev, err := a.store.Commit(ctx, writes)
		if err == nil {
			ref.set(b, rev)
			af.rev, af.aff = rev, api.BlockAffinity{State: api.AffinityConfirmed}
			return ref, nil
		}
		if !isCASFailure(err) {
			return nil, fmt.Errorf("claim block %s: %w", ref.cidr, err)
		}
		if err := a.rereadAffinity(ctx, af, ref); err != nil {
			return nil, err
		}
	}
	return nil, a.tooMany(fmt.Sprintf("claim block %s", ref.cidr))
}

// rereadAffinity re-reads an affinity and its block in one round trip.
func (a *Allocator) rereadAffinity(ctx context.Context, af *affinityRef, ref *blockRef) error {
	res, err := a.store.Read(ctx, []string{af.key, ref.key}, nil)
	if err != nil {
		return fmt.Errorf("read block %s: %w", ref.cidr, err)
	}
	if item := res.Keys[0]; item == nil {
		af.rev = 0
	} else {
		af.aff, af.rev = decodeAffinity(item), item.Revision
	}
	nref, err := loadBlock(ref.cidr, res.Keys[1])
	if err != nil {
		return err
	}
	*ref = *nref
	return nil
}

// claim claims block cidr for the host with upstream's protocol: create
// the affinity "pending", then create the block and confirm the affinity
// (one transaction here). If the block already exists and is this host's
// (another process here claimed it), it makes sure the affinity is
// confirmed and returns it; if it is someone else's, it deletes the pending
// affinity and returns errClaimConflict.
func (op *assignOp) claim(ctx context.Context, cidr netip.Prefix) (*blockRef, bool, error) {
	a := op.a
	affKey := api.AffinityKey(op.host, cidr)
	if pb := op.planned[cidr]; pb != nil && op.claimed != nil {
		if _, ok := op.claimed[cidr]; ok {
			return pb.ref, false, nil // claimed earlier in this op, not yet written
		}
	}
	for range a.maxRetries {
		res, err := a.store.Read(ctx, []string{affKey, api.BlockKey(cidr)}, nil)
		if err != nil {
			return nil, false, fmt.Errorf("claim block %s: %w", cidr, err)
		}
		ref, err := loadBlock(cidr, res.Keys[1])
		if err != nil {
			return nil, false, err
		}
		affItem := res.Keys[0]
		if ref.b != nil {
			if !isAffineTo(ref.b, op.host) {
				if affItem != nil {
					if err := a.store.Delete(ctx, affKey, affItem.Revision); err != nil && !isCASFailure(err) {
						a.log.Warn("could not delete pending affinity", "key", affKey, "err", err)
					}
				}
				return nil, false, errClaimConflict
			}
			af := affinityRef{key: affKey, host: op.host, cidr: cidr}
			if affItem != nil {
				af.aff, af.rev = decodeAffinity(affItem), affItem.Revision
				if af.aff.Confirmed() {
					return ref, false, nil
				}
			}
			// Ours but not confirmed (or its affinity key is missing):
			// bump the block and write the affinity confirmed, together.
			b := ref.mutable()
			b.SequenceNumber++
			_, err := a.store.Commit(ctx, []kv.Write{
				ref.blockWrite(b, false),
				{Key: affKey, Value: encodeAffinity(api.AffinityConfirmed), Rev: af.rev},
			})
			if err != nil && !isCASFailure(err) {
				return nil, false, fmt.Errorf("confirm affinity %s: %w", affKey, err)
			}
			continue // re-read either way: on success to return it as stored
		}
		affRev := int64(0)
		if affItem == nil {
			affRev, err = a.store.Create(ctx, affKey, encodeAffinity(api.AffinityPending))
			if err != nil {
				if isCASFailure(err) {
					continue
				}
				return nil, false, fmt.Errorf("claim block %s: write pending affinity: %w", cidr, err)
			}
		} else {
			affRev = affItem.Revision
		}
		b := newBlock(cidr, api.HostAffinity(op.host), a.now())
		confirm := kv.Write{Key: affKey, Value: encodeAffinity(api.AffinityConfirmed), Rev: affRev}
		if op.deferClaims {
			// The plan's commit creates the block (revision 0: only if it
			// still does not exist) with its first addresses and confirms
			// the affinity: one write of the block instead of a create and
			// an update, each an event for every node watching blocks. If
			// that commit fails, the pending affinity stays, as after a
			// crash here, and the next assignment on this host completes
			// or drops it (useAffine).
			ref.set(b, 0)
			op.claimed[cidr] = confirm
			return ref, true, nil
		}
		rev, err := a.store.Commit(ctx, []kv.Write{
			{Key: ref.key, Value: encodeBlock(b), Rev: 0},
			confirm,
		})
		if err == nil {
			ref.set(b, rev)
			a.log.Debug("claimed block", "host", op.host, "block", cidr, "rev", rev)
			return ref, true, nil
		}
		if !isCASFailure(err) {
			return nil, false, fmt.Errorf("claim block %s: %w", cidr, err)
		}
	}
	return nil, false, a.tooMany(fmt.Sprintf("claim block %s", cidr))
}

// EmptyBlockMinReclaimAge is how long after its claim an empty block of
// another host may be taken over (upstream's v3.32 reclaim rule).
const EmptyBlockMinReclaimAge = time.Minute

// findUsableBlock walks each pool in upstream's random order and returns
// the first block that does not exist yet, or that is this host's and has
// room. When every block exists, it reclaims an empty block another host
// claimed more than EmptyBlockMinReclaimAge ago.
func (a *Allocator) findUsableBlock(ctx context.Context, pools []pool, existing map[netip.Prefix]*kv.KV, host string, rsv reservations, cd cooldown, current func(*blockRef) *api.Block) (netip.Prefix, bool, error) {
	type empty struct {
		ref   *blockRef
		owner string
	}
	var empties []empty
	for _, p := range pools {
		var found netip.Prefix
		newBlockOrder(p.cidr, p.Spec.BlockSize, host, a.now).each(func(c netip.Prefix) bool {
			if rsv.covers(c) {
				return true
			}
			item, ok := existing[c]
			if !ok {
				found = c
				return false
			}
			ref, err := loadBlock(c, item)
			if err != nil {
				return true
			}
			free := freeCount(current(ref), c, rsv, cd)
			if isAffineTo(ref.b, host) && free > 0 {
				found = c
				return false
			}
			if free > 0 && blockEmpty(ref.b) {
				owner, _ := ref.b.AffineHost()
				empties = append(empties, empty{ref, owner})
			}
			return true
		})
		if found.IsValid() {
			return found, true, nil
		}
	}
	for _, e := range empties {
		claimed, _ := time.Parse(time.RFC3339, e.ref.b.AffinityClaimTime)
		if age := a.now().Sub(claimed); age < EmptyBlockMinReclaimAge {
			a.log.Debug("empty block claimed too recently to reclaim", "block", e.ref.cidr, "age", age)
			continue
		}
		var err error
		if e.ref.b.Affinity == nil {
			err = a.store.Delete(ctx, e.ref.key, e.ref.rev)
		} else if e.owner != "" {
			seq := e.ref.b.SequenceNumber
			err = a.releaseAffinity(ctx, e.owner, e.ref.cidr, true, &seq)
		} else {
			continue // a non-host affinity (virtual): leave it
		}
		if err != nil {
			if ctx.Err() != nil {
				return netip.Prefix{}, false, ctx.Err()
			}
			a.log.Debug("could not reclaim empty block", "block", e.ref.cidr, "err", err)
			continue
		}
		a.log.Info("reclaimed empty block of another host", "block", e.ref.cidr, "from", e.owner)
		return e.ref.cidr, true, nil
	}
	return netip.Prefix{}, false, nil
}

// AssignIP assigns one given address to a host. The address must be in an
// enabled pool (allowing IntendedUse when given); its block is claimed for
// the host if it does not exist. It returns the address with its block's
// mask. ErrAlreadyAllocated if someone holds it; ErrStrictAffinity if it is
// in another host's block and strict affinity is on.
func (a *Allocator) AssignIP(ctx context.Context, args AssignIPArgs) (netip.Prefix, error) {
	if args.Hostname == "" {
		return netip.Prefix{}, errors.New("assign IP: the host name is empty")
	}
	if !args.IP.IsValid() {
		return netip.Prefix{}, errors.New("assign IP: no address given")
	}
	ip := args.IP.Unmap()
	what := fmt.Sprintf("assign %s to host %s", ip, args.Hostname)
	handleID := sanitizeHandle(args.HandleID)
	keys := []string{api.IPAMConfigKey}
	if handleID != "" {
		keys = append(keys, api.HandleKey(handleID))
	}
	res, err := a.store.Read(ctx, keys, []string{poolsPrefix()})
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s: %w", what, err)
	}
	cfg, err := decodeConfig(res.Keys[0])
	if err != nil {
		return netip.Prefix{}, err
	}
	fam := 4
	if ip.Is6() {
		fam = 6
	}
	p, ok := poolFor(enabledOfFamily(decodePools(res.Prefixes[0]), fam), ip)
	if !ok {
		return netip.Prefix{}, fmt.Errorf("%s: %w: the address is not in any enabled IP pool", what, ErrNoPool)
	}
	if args.IntendedUse != "" && !p.Allows(args.IntendedUse) {
		return netip.Prefix{}, fmt.Errorf("%s: %w: pool %s does not allow use %s (allowedUses %v)", what, ErrNoPool, p, args.IntendedUse, p.Spec.AllowedUses)
	}
	op := &assignOp{a: a, host: args.Hostname, attrs: args.Attrs, strict: cfg.StrictAffinity, cool: cooldownOf(cfg, a.now())}
	if handleID != "" {
		op.handleID = &handleID
		if op.handle, err = loadHandle(handleID, res.Keys[1]); err != nil {
			return netip.Prefix{}, err
		}
	}
	cidr := blockCIDRFor(ip, p.Spec.BlockSize)
	ord, _ := addrOrdinal(cidr, ip)
	ref := &blockRef{key: api.BlockKey(cidr), cidr: cidr}
	if err := a.readBlockAndHandle(ctx, ref, op.handle); err != nil {
		return netip.Prefix{}, fmt.Errorf("%s: %w", what, err)
	}
	for range a.maxRetries {
		if ref.b == nil {
			nref, _, err := op.claim(ctx, cidr)
			if errors.Is(err, errClaimConflict) {
				if err := a.readBlockAndHandle(ctx, ref, op.handle); err != nil {
					return netip.Prefix{}, fmt.Errorf("%s: %w", what, err)
				}
				continue
			}
			if err != nil {
				return netip.Prefix{}, fmt.Errorf("%s: %w", what, err)
			}
			ref = nref
		}
		if cfg.StrictAffinity && !isAffineTo(ref.b, args.Hostname) {
			owner := "no host"
			if ref.b.Affinity != nil {
				owner = *ref.b.Affinity
			}
			return netip.Prefix{}, fmt.Errorf("%s: %w: the address is in block %s, which belongs to %s", what, ErrStrictAffinity, cidr, owner)
		}
		b := ref.mutable()
		reclaimCooled(b, op.cool)
		if t, ok := coolingAt(b, ord); ok {
			return netip.Prefix{}, fmt.Errorf("%s: %w", what, coolingError(t, op.cool))
		}
		if err := assignOrdinal(b, ord, op.handleID, op.attrs); err != nil {
			holder := attrHandle(b.Attributes[*b.Allocations[ord]])
			return netip.Prefix{}, fmt.Errorf("%s: %w (held by handle %q)", what, err, holder)
		}
		b.SequenceNumber++
		writes := []kv.Write{ref.blockWrite(b, false)}
		var next *api.Handle
		if op.handle != nil {
			w, ok, n := op.handle.write(cidr, 1)
			if ok {
				writes = append(writes, w)
			}
			next = n
		}
		rev, err := a.store.Commit(ctx, writes)
		if err == nil {
			if op.handle != nil {
				op.handle.applied(next, rev)
			}
			return netip.PrefixFrom(ip, cidr.Bits()), nil
		}
		if !isCASFailure(err) {
			return netip.Prefix{}, fmt.Errorf("%s: %w", what, err)
		}
		if err := a.readBlockAndHandle(ctx, ref, op.handle); err != nil {
			return netip.Prefix{}, fmt.Errorf("%s: %w", what, err)
		}
	}
	return netip.Prefix{}, a.tooMany(what)
}

// CheckPools reports whether an allocation for host could be served by
// some pool (the CNI STATUS check): the datastore answers, the node
// exists, and for each family asked for a pool is selected as AutoAssign
// would select it. It writes nothing.
func (a *Allocator) CheckPools(ctx context.Context, host string, v4, v6 bool, v4Pools, v6Pools []string, use api.IPPoolAllowedUse) error {
	st, _, err := a.readAssignState(ctx, host, "")
	if err != nil {
		return err
	}
	if st.node == nil {
		return fmt.Errorf("host %s: %w", host, ErrNodeNotFound)
	}
	if v4 {
		if _, err := selectPools(st.pools, 4, v4Pools, host, st.node.Labels, use); err != nil {
			return err
		}
	}
	if v6 {
		if _, err := selectPools(st.pools, 6, v6Pools, host, st.node.Labels, use); err != nil {
			return err
		}
	}
	return nil
}
