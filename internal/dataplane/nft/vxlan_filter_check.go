package nft

import (
	"bytes"
	"errors"
	"slices"

	"github.com/google/nftables"
)

// Checking the VXLAN filter without rewriting it.
//
// Why: a full resync used to replace the whole table (10,000 peers: one
// batch of 10,000 elements, about 5 ms of CPU and 7 MB of garbage) to
// repair whatever someone else might have changed. Now a resync asks
// Check, which, like the policy table's (policy_apply.go), costs one
// generation read while no other socket touched the table (a tableWatch
// follows the namespace's nftables notifications), and otherwise reads
// the table back and compares it with what was applied. Only a table that
// differs is written again.

// genTrack is what the applier knows of the namespace's nftables
// generation: gen (with ok) is the generation at which the table last
// was known to hold what was applied; verifiedGen (with verified) the one
// after which only a foreign commit, which the watch reports, can have
// changed it.
type genTrack struct {
	b     *BatchSocket // the applier's socket; nil: no generations, Check reads back
	watch *tableWatch  // nil: none

	gen, verifiedGen uint32
	ok, verified     bool

	paused bool
	left   uint32 // the generation when the watch was paused
}

var errNoGen = errors.New("no generation socket")

// bigElems is the size of a write above which the watch is paused (its
// own notifications would cost more than the write).
const bigElems = 256

// before is called before a write of n elements (replace: the whole
// table) and returns the generation then.
func (t *genTrack) before(replace bool, n int) (uint32, error) {
	if t.b == nil {
		return 0, errNoGen
	}
	if t.watch != nil && replace && n > bigElems {
		t.left, t.paused = t.watch.pause(t.b)
	}
	return t.b.genID()
}

// after records a write that started at generation g0 and committed (or
// not) a transaction that replaced the table whole (full) or changed it.
func (t *genTrack) after(g0 uint32, gerr error, committed, full bool) {
	if t.b == nil {
		return
	}
	if t.paused {
		commits := uint32(0)
		if committed {
			commits = 1
		}
		t.watch.resume(t.b, t.left, commits)
		t.paused = false
	}
	if !committed {
		return
	}
	g1, gerr1 := t.b.genID()
	// Ours was the only commit since g0: the table holds what was applied
	// if it did at g0 (or was replaced whole).
	t.ok = gerr == nil && gerr1 == nil && g1 == g0+1 && (full || t.ok && t.gen == g0)
	t.gen = g1
	if full {
		t.verified, t.verifiedGen = gerr == nil, g0+1
	}
}

// Watch makes the applier follow the nftables notifications of the
// namespace whose file descriptor is nsFd (0: the current one), so that
// Check costs one generation read while no other socket changed the
// table. b must be the socket of the applier's Conn (give b.Grab to
// nftables.WithSockOptions when opening it with AsLasting). Without
// Watch, Check reads the table back every time. Stop it with Close.
func (a *VXLANFilterApplier) Watch(b *BatchSocket, nsFd int) error {
	a.gen.b = b
	w, err := newTableWatch(b, a.name, nsFd)
	if err != nil {
		return err
	}
	a.gen.watch = w
	return nil
}

// Close stops the watch, if any.
func (a *VXLANFilterApplier) Close() {
	if a.gen.watch != nil {
		a.gen.watch.nl.Close()
		a.gen.watch = nil
	}
}

// Check reports whether the kernel's table still holds what the last
// Apply wrote. When it does not (a rule, chain or peer changed, added or
// removed behind the applier's back, or the table is gone) the applier
// forgets what it applied, so the next Apply replaces the table.
func (a *VXLANFilterApplier) Check() (bool, error) {
	if a.last == nil {
		return false, nil
	}
	t := &a.gen
	g0, gerr := uint32(0), errNoGen
	if t.b != nil {
		g0, gerr = t.b.genID()
	}
	if gerr == nil && t.ok && g0 == t.gen {
		return true, nil
	}
	if gerr == nil && t.watch != nil && t.verified && t.watch.clean(g0, t.verifiedGen) {
		t.gen, t.ok = g0, true
		return true, nil
	}
	if !a.readBack(*a.last) {
		a.Invalidate()
		return false, nil
	}
	if t.b != nil {
		g1, gerr1 := t.b.genID()
		t.gen, t.ok = g0, gerr == nil && gerr1 == nil && g0 == g1
		t.verified, t.verifiedGen = t.ok, g0
	}
	return true, nil
}

// readBack reads the table and reports whether it is the one f builds:
// the same chains, rules and set declarations (compared as rendered,
// without elements) and the same peers. A table that cannot be read
// counts as different (it is then replaced).
func (a *VXLANFilterApplier) readBack(f VXLANFilter) bool {
	a.readBacks++
	k, err := readSpec(a.c, a.name)
	if err != nil {
		return false
	}
	w := buildVXLANFilter(a.name, f)
	if len(k.Sets) != len(w.Sets) {
		return false
	}
	for _, ws := range w.Sets {
		i := slices.IndexFunc(k.Sets, func(ks setSpec) bool { return ks.Set.Name == ws.Set.Name })
		if i < 0 || !sameKeys(k.Sets[i].Elements, ws.Elements) {
			return false
		}
	}
	return render(withoutElements(k)) == render(withoutElements(w))
}

// sameKeys reports whether two element lists hold the same keys; want is
// sorted and unique (built), got is in the kernel's order.
func sameKeys(got, want []nftables.SetElement) bool {
	if len(got) != len(want) {
		return false
	}
	keys := make([][]byte, len(got))
	for i, e := range got {
		keys[i] = e.Key
	}
	slices.SortFunc(keys, bytes.Compare)
	for i := range keys {
		if !bytes.Equal(keys[i], want[i].Key) {
			return false
		}
	}
	return true
}

// withoutElements is s with its sets emptied (for comparing the rest).
func withoutElements(s *spec) *spec {
	out := *s
	out.Sets = make([]setSpec, len(s.Sets))
	for i, ss := range s.Sets {
		out.Sets[i] = setSpec{Set: ss.Set}
	}
	return &out
}
