package nft

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/ruleset"
)

// PolicyApplier keeps the policy table in step with a Ruleset. It
// remembers what it applied last: later Applies send only the chains
// whose content changed (flushed and refilled), the set and map members
// that changed, and the objects that appeared or went, in one batch. The
// first Apply (and the first after a failure, after Invalidate, or once
// the table changed behind our back) reads the table back from the
// kernel and sends the difference from that, so a restarted daemon keeps
// an unchanged table (and its counters) and a damaged one is repaired in
// place; only a table of another shape (see errForeign) or a repair that
// failed twice is replaced whole. The kernel commits a batch as one
// transaction, and a diff never deactivates a set member, map entry or
// rule that stays, so a packet sees the old policy or the new one.
//
// Why never "delete the table, add it again" in one batch while the
// table carries traffic: that transaction is atomic for the ruleset but
// not for packets. Under a stream of new flows it dropped an allowed flow
// every 10 to 50 replaces (TestPrivilegedPolicyRewriteKeepsNewFlows's
// traffic, kernel 6.18). nft trace showed two ways: the "forward" chain's
// "iifname vmap @wl-egress" missed, so the unknown-interface rule dropped
// the packet; or "ri/net"'s "ip saddr @s:net" missed and the endpoint's
// default drop took it. The kernel explains both: deleting a map
// deactivates its entries for the next generation at once, while a packet
// keeps the rules of the generation it entered the chain in, so one that
// straddles the commit looks the old rules up in a map that is already
// empty; and an interval set built in the transaction gets its lookup
// array only at the very end of the commit, after the new rules went live.
// A diff in place never deactivates a member that stays, and an interval
// set that changes keeps answering from its old array until the new one is
// published: the same traffic lost nothing.
//
// Apply and Check are meant for one goroutine; CounterLabels may be
// called from another.
type PolicyApplier struct {
	conn  *nftables.Conn
	batch *BatchSocket // nil: batches go through conn's Flush
	table string

	last  *policyState // nil: read the table back at the next Apply
	cache chainCache   // built policy chains, for the next build
	// gen is the nftables generation at which the kernel's table was
	// known to hold last (when genOK): see Check.
	gen   uint32
	genOK bool
	// verified: the kernel's table held last at generation verifiedGen
	// (read back, or replaced whole) and, if nobody else changed it
	// since, holds it now (this applier's own changes keep it so); with a
	// watch, Check then needs no read back.
	verified    bool
	verifiedGen uint32
	watch       *tableWatch
	readBacks   int // tables read back (for tests)
	// kernel is the table as Check last read it back and found changed,
	// at generation kernelGen: the next Apply diffs against it if nothing
	// was committed since.
	kernel    *policyState
	kernelGen uint32

	mu       sync.Mutex
	counters map[string]CounterInfo
}

// NewPolicyApplier returns an applier for table (PolicyTableName normally)
// over c. Open c (AsLasting) with BigBuffers, or better with a
// BatchSocket's Grab and then call SendThrough: one batch can carry many
// thousands of messages.
func NewPolicyApplier(c *nftables.Conn, table string) *PolicyApplier {
	return &PolicyApplier{conn: c, table: table}
}

// SendThrough makes p send its batches through b (see BatchSocket), b
// being a socket option of p's Conn. It returns p.
func (p *PolicyApplier) SendThrough(b *BatchSocket) *PolicyApplier {
	p.batch = b
	return p
}

// queueConn is the Conn batches are queued on.
func (p *PolicyApplier) queueConn() (*nftables.Conn, error) {
	if p.batch == nil {
		return p.conn, nil
	}
	return p.batch.conn()
}

// flush sends the batch queued on c.
func (p *PolicyApplier) flush(c *nftables.Conn) error {
	if p.batch == nil {
		return c.Flush()
	}
	return p.batch.flush(c)
}

// BigBuffers is a socket option for the Conn of a PolicyApplier: large
// (forced, root only) send and receive buffers, so that a batch of
// thousands of rules goes in one message and its acknowledgements fit.
func BigBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		for _, opt := range []int{unix.SO_SNDBUFFORCE, unix.SO_RCVBUFFORCE} {
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, 64<<20); e != nil {
				serr = e
			}
		}
	}); err != nil {
		return err
	}
	return serr
}

// PolicyStats says what one Apply sent.
type PolicyStats struct {
	Full bool // the table was replaced
	// Adopted: the table was read back from the kernel and only what
	// differed from the desired content was sent (nothing, for an
	// unchanged table).
	Adopted                    bool
	ChainsWritten, ChainsGone  int
	ElemsAdded, ElemsDeleted   int
	SetsAdded, SetsGone        int
	Rules, CountersAdded, Msgs int
	CountersGone               int
	// Skipped are the endpoints the table could not hold, with the
	// reason (see usableEndpoints); they get no policy dispatch.
	Skipped []string
}

// Changed reports whether the Apply sent anything.
func (s PolicyStats) Changed() bool {
	return s.Full || s.ChainsWritten+s.ChainsGone+s.ElemsAdded+s.ElemsDeleted+s.SetsAdded+s.SetsGone+s.CountersAdded+s.CountersGone > 0
}

// Invalidate makes the applier forget what it applied: the next Apply
// reads the table back and sends what differs (in place; see
// PolicyApplier for why the table is not deleted and added again).
func (p *PolicyApplier) Invalidate() {
	p.last, p.genOK, p.verified, p.kernel = nil, false, false, nil
}

// Apply makes the policy table match rs (nil: no endpoints, an empty
// policy table) under options o, in one batch. A second identical call
// sends nothing.
func (p *PolicyApplier) Apply(rs *ruleset.Ruleset, o PolicyOptions) (PolicyStats, error) {
	want, cache, err := buildPolicyCached(p.table, rs, o, p.cache)
	if err != nil {
		return PolicyStats{}, err
	}
	p.cache = cache
	p.dropStaleView()
	st, err := p.apply(want, false)
	for try := 0; err != nil && st.Adopted; try++ {
		// The repair in place failed: the table changed again since it
		// was read (read it again, once), or it holds something a diff
		// cannot undo (replace it whole).
		st, err = p.apply(want, try > 0)
	}
	return st, err
}

// dropStaleView forgets the last applied state when the kernel's table
// may no longer hold it (another socket committed to it since, say a
// second applier): a difference from it would be the wrong one, leaving
// the other writer's changes in place or failing on what it removed. Then
// apply diffs against the table read back. With no generation to compare
// (no BatchSocket), the last state is trusted, as before.
func (p *PolicyApplier) dropStaleView() {
	if p.last == nil || p.batch == nil || p.batch.nl == nil {
		return
	}
	if ok, err := p.Check(); err != nil || !ok {
		p.last, p.genOK, p.verified = nil, false, false
	}
}

// apply sends what turns the table into want: the difference from the
// last applied state, from the kernel's table read back, or (rebuild, or
// no table) a whole new table.
func (p *PolicyApplier) apply(want *policyState, rebuild bool) (PolicyStats, error) {
	st := PolicyStats{Skipped: want.skipped}
	old := p.last
	if old == nil && !rebuild {
		old = p.adopt(want)
		st.Adopted = old != nil
	}
	p.kernel = nil
	c, err := p.queueConn()
	if err != nil {
		return st, err
	}
	if old == nil {
		st.Full = true
		old = &policyState{chains: map[string]*pChain{}, sets: map[string]*pSet{}, counters: map[string]CounterInfo{}}
		c.AddTable(want.table)
		c.DelTable(want.table)
		c.AddTable(want.table)
	}
	if err := p.queue(c, old, want, &st); err != nil {
		p.last, p.genOK, p.verified = nil, false, false
		return st, fmt.Errorf("queue policy table %s: %w", p.table, discard(c, err))
	}
	if !st.Changed() {
		p.setLast(want)
		return st, nil
	}
	var left uint32
	paused := false
	if p.watch != nil && (st.Full || st.Adopted || st.Rules+st.ElemsAdded+st.ElemsDeleted > bigBatch) {
		left, paused = p.watch.pause(p.batch)
	}
	g0, gerr := p.batch.genID()
	if err := p.flush(c); err != nil {
		if paused {
			p.watch.resume(p.batch, left, 0)
		}
		p.last, p.genOK, p.verified = nil, false, false
		return st, fmt.Errorf("apply policy table inet %s: %w", p.table, err)
	}
	if paused {
		p.watch.resume(p.batch, left, 1)
	}
	g1, gerr1 := p.batch.genID()
	// Ours was the only commit since g0: the table holds want if it held
	// old at g0 (or was replaced whole).
	p.genOK = gerr == nil && gerr1 == nil && g1 == g0+1 && (st.Full || p.genOK && p.gen == g0)
	p.gen = g1
	if st.Full {
		p.verified, p.verifiedGen = gerr == nil, g0+1
	}
	p.setLast(want)
	return st, nil
}

func (p *PolicyApplier) setLast(want *policyState) {
	p.last = want
	p.mu.Lock()
	p.counters = want.counters
	p.mu.Unlock()
}

// adopt reads the kernel's table to diff want against; nil when there is
// none or it cannot be diffed (then it is replaced whole).
func (p *PolicyApplier) adopt(want *policyState) *policyState {
	g0, gerr := p.batch.genID()
	if p.kernel != nil && gerr == nil && g0 == p.kernelGen {
		p.gen, p.genOK = g0, true
		p.verified, p.verifiedGen = true, g0
		return p.kernel
	}
	kst, err := p.readBack(want)
	if err != nil || kst == nil {
		p.genOK, p.verified = false, false
		return nil
	}
	g1, gerr1 := p.batch.genID()
	p.gen, p.genOK = g0, gerr == nil && gerr1 == nil && g0 == g1
	p.verified, p.verifiedGen = p.genOK, g0
	return kst
}

// Check reports whether the kernel's table still holds what the last
// Apply wrote; when it does not (a rule, chain, set member or counter
// changed, added or removed behind the applier's back, or the table
// gone), the next Apply repairs it. While the namespace's nftables
// generation has not moved since the table was last known good, Check
// costs one netlink round trip (see policy_kernel.go); so it does, with a
// Watch, while no other socket changed the table; otherwise it reads the
// table back and compares.
func (p *PolicyApplier) Check() (bool, error) {
	if p.last == nil {
		return false, nil
	}
	g0, gerr := p.batch.genID()
	if gerr == nil && p.genOK && g0 == p.gen {
		return true, nil
	}
	if p.watch != nil && gerr == nil && p.watch.clean(g0, p.verifiedGen) && p.verified {
		p.gen, p.genOK = g0, true
		return true, nil
	}
	kst, err := p.readBack(p.last)
	if err != nil && !errors.Is(err, errForeign) {
		return false, err
	}
	if kst == nil || err != nil || !sameState(kst, p.last) {
		p.last, p.genOK, p.verified = nil, false, false
		if g1, gerr1 := p.batch.genID(); kst != nil && gerr == nil && gerr1 == nil && g0 == g1 {
			p.kernel, p.kernelGen = kst, g0
		}
		return false, nil
	}
	g1, gerr1 := p.batch.genID()
	p.gen, p.genOK = g0, gerr == nil && gerr1 == nil && g0 == g1
	p.verified, p.verifiedGen = p.genOK, g0
	return true, nil
}

func (p *PolicyApplier) readBack(want *policyState) (*policyState, error) {
	p.readBacks++
	return readPolicyState(p.conn, p.batch, want)
}

// sameState reports whether the kernel's table k holds exactly w.
func sameState(k, w *policyState) bool {
	if len(k.chains) != len(w.chains) || len(k.sets) != len(w.sets) || len(k.counters) != len(w.counters) {
		return false
	}
	for name, c := range w.chains {
		if kc := k.chains[name]; kc == nil || kc.fp != c.fp {
			return false
		}
	}
	for name := range w.counters {
		if _, ok := k.counters[name]; !ok {
			return false
		}
	}
	for name, s := range w.sets {
		ks := k.sets[name]
		if ks == nil || len(ks.elems) != len(s.elems) {
			return false
		}
		have, next := elemUnits(ks.set, ks.elems), elemUnits(s.set, s.elems)
		if len(have) != len(next) {
			return false
		}
		for key := range next {
			if _, ok := have[key]; !ok {
				return false
			}
		}
	}
	return true
}

// queue adds to c's batch what turns old into want. Order matters inside
// a batch: what is referenced is created first (chains, counters, sets),
// then rules and map entries, then what nothing references any more is
// removed.
func (p *PolicyApplier) queue(c *nftables.Conn, old, want *policyState, st *PolicyStats) error {
	for _, name := range sortedKeys(want.chains) {
		if old.chains[name] == nil {
			c.AddChain(want.chains[name].chain)
		}
	}
	for _, name := range sortedKeys(want.counters) {
		if _, ok := old.counters[name]; !ok {
			c.AddObj(&nftables.NamedObj{Table: want.table, Name: name, Type: nftables.ObjTypeCounter, Obj: &expr.Counter{}})
			st.CountersAdded++
		}
	}
	for _, name := range sortedKeys(want.sets) {
		if err := p.queueSet(c, old.sets[name], want.sets[name], st); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(want.chains) {
		w, o := want.chains[name], old.chains[name]
		if o != nil && o.fp == w.fp {
			continue
		}
		if o != nil {
			c.FlushChain(w.chain)
		}
		for _, r := range w.rules {
			for _, a := range r.anon {
				if err := c.AddSet(a.set, a.elems); err != nil {
					return fmt.Errorf("anonymous set in chain %s: %w", name, err)
				}
				a.lookup.SetName, a.lookup.SetID = a.set.Name, a.set.ID
			}
			c.AddRule(&nftables.Rule{Table: want.table, Chain: w.chain, Exprs: r.exprs})
			st.Rules++
		}
		st.ChainsWritten++
	}
	gone := func(name string) bool { return want.chains[name] == nil }
	for _, name := range sortedKeys(old.chains) {
		if gone(name) {
			c.FlushChain(old.chains[name].chain)
		}
	}
	for _, name := range sortedKeys(old.chains) {
		if gone(name) {
			c.DelChain(old.chains[name].chain)
			st.ChainsGone++
		}
	}
	for _, name := range sortedKeys(old.counters) {
		if _, ok := want.counters[name]; !ok {
			c.DeleteObject(&nftables.NamedObj{Table: want.table, Name: name, Type: nftables.ObjTypeCounter})
			st.CountersGone++
		}
	}
	for _, name := range sortedKeys(old.sets) {
		if want.sets[name] == nil {
			c.DelSet(old.sets[name].set)
			st.SetsGone++
		}
	}
	return nil
}

// bigBatch: a batch with more rules and elements than this is sent with
// the watch paused (see tableWatch.pause).
const bigBatch = 500

// elemChunk bounds the elements per netlink message.
const elemChunk = 1000

// queueSet creates a set with its elements, or sends the difference of
// its members: deletions first (an interval may be replaced by one that
// overlaps it), then additions. Interval members are added and deleted
// as (start, end) pairs.
func (p *PolicyApplier) queueSet(c *nftables.Conn, old, want *pSet, st *PolicyStats) error {
	var have map[string][]nftables.SetElement
	if old == nil {
		if err := c.AddSet(want.set, nil); err != nil {
			return fmt.Errorf("set %s: %w", want.set.Name, err)
		}
		st.SetsAdded++
	} else {
		if sameElems(old.elems, want.elems) {
			return nil
		}
		have = elemUnits(old.set, old.elems)
	}
	next := elemUnits(want.set, want.elems)
	var del, add []nftables.SetElement
	for _, k := range sortedKeys(have) {
		if _, ok := next[k]; !ok {
			del = append(del, have[k]...)
		}
	}
	for _, k := range sortedKeys(next) {
		if _, ok := have[k]; !ok {
			add = append(add, next[k]...)
		}
	}
	for chunk := range slices.Chunk(del, elemChunk) {
		if err := c.SetDeleteElements(want.set, chunk); err != nil {
			return fmt.Errorf("set %s: %w", want.set.Name, err)
		}
	}
	for chunk := range slices.Chunk(add, elemChunk) {
		if err := c.SetAddElements(want.set, chunk); err != nil {
			return fmt.Errorf("set %s: %w", want.set.Name, err)
		}
	}
	st.ElemsAdded += len(add)
	st.ElemsDeleted += len(del)
	return nil
}

// sameElems reports whether two element lists are identical (the usual
// case for a set nothing touched: the builder is deterministic).
func sameElems(a, b []nftables.SetElement) bool {
	return slices.EqualFunc(a, b, func(x, y nftables.SetElement) bool {
		return x.IntervalEnd == y.IntervalEnd && bytes.Equal(x.Key, y.Key) &&
			(x.VerdictData == nil) == (y.VerdictData == nil) &&
			(x.VerdictData == nil || *x.VerdictData == *y.VerdictData)
	})
}

// elemUnits keys a set's elements by what is added or deleted together:
// an interval's start and end, or one element (with its verdict).
func elemUnits(s *nftables.Set, elems []nftables.SetElement) map[string][]nftables.SetElement {
	out := make(map[string][]nftables.SetElement, len(elems))
	for i := 0; i < len(elems); i++ {
		e := elems[i]
		k := hex.EncodeToString(e.Key)
		if e.VerdictData != nil {
			k += fmt.Sprintf(":%d:%s", e.VerdictData.Kind, e.VerdictData.Chain)
		}
		unit := []nftables.SetElement{e}
		if s.Interval && i+1 < len(elems) && elems[i+1].IntervalEnd {
			k += "-" + hex.EncodeToString(elems[i+1].Key)
			unit = append(unit, elems[i+1])
			i++
		}
		out[k] = unit
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// Delete removes the policy table (a missing table is not an error).
func (p *PolicyApplier) Delete() error {
	p.last, p.genOK, p.verified = nil, false, false
	return Delete(p.conn, p.table)
}

// CounterLabels returns what each named counter of the last applied table
// counts.
func (p *PolicyApplier) CounterLabels() map[string]CounterInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counters
}

// CounterValue is one counter read from the kernel.
type CounterValue struct {
	Packets, Bytes uint64
}

// ReadCounters reads every named counter of table in one dump.
func ReadCounters(c *nftables.Conn, table string) (map[string]CounterValue, error) {
	objs, err := c.GetNamedObjects(&nftables.Table{Name: table, Family: nftables.TableFamilyINet})
	if err != nil {
		return nil, fmt.Errorf("read counters of inet %s: %w", table, err)
	}
	out := make(map[string]CounterValue, len(objs))
	for _, o := range objs {
		n, ok := o.(*nftables.NamedObj)
		if !ok {
			continue
		}
		if ctr, ok := n.Obj.(*expr.Counter); ok {
			out[n.Name] = CounterValue{Packets: ctr.Packets, Bytes: ctr.Bytes}
		}
	}
	return out, nil
}
