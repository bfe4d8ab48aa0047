package ipam

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/onecalico/calico/internal/api"
)

// WindowsReservedHandle is the handle upstream's Windows nodes use to
// reserve the first and last addresses of their blocks; such allocations do
// not make a block non-empty.
const WindowsReservedHandle = "windows-reserved-ipam-handle"

// blockSizeOf returns the number of addresses in a block CIDR.
func blockSizeOf(cidr netip.Prefix) int {
	return 1 << (cidr.Addr().BitLen() - cidr.Bits())
}

// newBlock returns an empty block as upstream creates it: every ordinal
// free and listed in order, no attributes (JSON null), an empty
// sequenceNumberForAllocation map, and the sequence number initialised from
// the clock so a recreated block never repeats an old sequence number.
func newBlock(cidr netip.Prefix, affinity string, now time.Time) *api.Block {
	n := blockSizeOf(cidr)
	b := &api.Block{
		CIDR:                        cidr.String(),
		Allocations:                 make([]*int, n),
		Unallocated:                 make([]int, n),
		SequenceNumber:              uint64(now.UnixNano()),
		SequenceNumberForAllocation: map[string]uint64{},
	}
	for i := range b.Unallocated {
		b.Unallocated[i] = i
	}
	if affinity != "" {
		b.Affinity = &affinity
		b.AffinityClaimTime = now.UTC().Format(time.RFC3339)
	}
	return b
}

// ordinalAddr is the address of ordinal ord in block cidr.
func ordinalAddr(cidr netip.Prefix, ord int) netip.Addr {
	a := cidr.Addr().As16()
	lo := binary.BigEndian.Uint64(a[8:]) + uint64(ord)
	binary.BigEndian.PutUint64(a[8:], lo)
	addr := netip.AddrFrom16(a)
	if cidr.Addr().Is4() {
		return addr.Unmap()
	}
	return addr
}

// addrOrdinal is the ordinal of addr in block cidr, or false if outside.
func addrOrdinal(cidr netip.Prefix, addr netip.Addr) (int, bool) {
	if !cidr.Contains(addr) {
		return 0, false
	}
	a, base := addr.As16(), cidr.Addr().As16()
	return int(binary.BigEndian.Uint64(a[8:]) - binary.BigEndian.Uint64(base[8:])), true
}

// blockCIDRFor is the block of size blockSize that contains addr.
func blockCIDRFor(addr netip.Addr, blockSize int) netip.Prefix {
	p, _ := addr.Prefix(blockSize)
	return p
}

// decodeBlock parses a stored block and checks that its arrays have the
// length its CIDR implies, so that indexing never goes out of range.
func decodeBlock(key string, value []byte) (*api.Block, netip.Prefix, error) {
	var b api.Block
	if err := json.Unmarshal(value, &b); err != nil {
		return nil, netip.Prefix{}, fmt.Errorf("decode block %s: %w", key, err)
	}
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		return nil, netip.Prefix{}, fmt.Errorf("decode block %s: bad cidr %q", key, b.CIDR)
	}
	cidr = cidr.Masked()
	if n := blockSizeOf(cidr); len(b.Allocations) != n {
		return nil, netip.Prefix{}, fmt.Errorf("decode block %s: %d allocations for a block of %d addresses", key, len(b.Allocations), n)
	}
	for _, idx := range b.Allocations {
		if idx != nil && (*idx < 0 || *idx >= len(b.Attributes)) {
			return nil, netip.Prefix{}, fmt.Errorf("decode block %s: allocation refers to attribute %d of %d", key, *idx, len(b.Attributes))
		}
	}
	for _, o := range b.Unallocated {
		if o < 0 || o >= len(b.Allocations) {
			return nil, netip.Prefix{}, fmt.Errorf("decode block %s: unallocated ordinal %d out of range", key, o)
		}
	}
	if b.Affinity == nil && b.HostAffinity != nil {
		// Very old blocks carried only hostAffinity.
		a := api.HostAffinity(*b.HostAffinity)
		b.Affinity = &a
	}
	return &b, cidr, nil
}

// encodeBlock renders a block as stored.
func encodeBlock(b *api.Block) []byte {
	out, err := json.Marshal(b)
	if err != nil {
		panic(fmt.Sprintf("encode block %s: %v", b.CIDR, err)) // plain data: cannot fail
	}
	return out
}

// sanitizeHandle cuts a handle at the first carriage return, as upstream
// does for handles a broken host-local migration wrote.
func sanitizeHandle(h string) string {
	h, _, _ = strings.Cut(h, "\r")
	return h
}

// attrHandle returns the (sanitised) handle of an attribute, or "". A
// cooling address (releasedAt) belongs to no handle, whatever it carries.
func attrHandle(a api.AllocationAttribute) string {
	if a.HandleID == nil || a.Cooling() {
		return ""
	}
	return sanitizeHandle(*a.HandleID)
}

// isAffineTo reports whether the block's affinity is host:<host>.
func isAffineTo(b *api.Block, host string) bool {
	return b.Affinity != nil && *b.Affinity == api.HostAffinity(host)
}

// blockEmpty reports whether no ordinal is in use (Windows' reserved
// addresses do not count, as upstream).
func blockEmpty(b *api.Block) bool {
	for _, idx := range b.Allocations {
		if idx == nil {
			continue
		}
		if !strings.EqualFold(attrHandle(b.Attributes[*idx]), WindowsReservedHandle) {
			return false
		}
	}
	return true
}

// inUse counts allocated ordinals.
func inUse(b *api.Block) int {
	n := 0
	for _, idx := range b.Allocations {
		if idx != nil {
			n++
		}
	}
	return n
}

// freeCount counts the free ordinals that are not reserved, counting the
// cooling ordinals whose cooldown has passed (an allocation reclaims them).
func freeCount(b *api.Block, cidr netip.Prefix, rsv reservations, cd cooldown) int {
	if rsv.covers(cidr) {
		return 0
	}
	free := b.Unallocated
	if cooled := expiredCooling(b, cd); len(cooled) > 0 {
		free = append(append([]int(nil), free...), cooled...)
	}
	if !rsv.overlaps(cidr) {
		return len(free)
	}
	n := 0
	for _, o := range free {
		if !rsv.contains(ordinalAddr(cidr, o)) {
			n++
		}
	}
	return n
}

// findOrAddAttribute returns the index of the attribute {handle, attrs},
// appending it if no identical one exists (upstream de-duplicates).
func findOrAddAttribute(b *api.Block, handle *string, attrs map[string]string) int {
	for i, a := range b.Attributes {
		sameHandle := (a.HandleID == nil) == (handle == nil) && (handle == nil || *a.HandleID == *handle)
		plain := !a.Cooling() && len(a.AlternateOwnerAttrs) == 0
		if plain && sameHandle && maps.Equal(a.ActiveOwnerAttrs, attrs) {
			return i
		}
	}
	var h *string
	if handle != nil {
		s := *handle
		h = &s
	}
	var at map[string]string
	if len(attrs) > 0 {
		at = maps.Clone(attrs)
	}
	b.Attributes = append(b.Attributes, api.AllocationAttribute{HandleID: h, ActiveOwnerAttrs: at})
	return len(b.Attributes) - 1
}

func seqKey(ord int) string { return strconv.Itoa(ord) }

// markAllocated points ordinal ord at attribute idx and records the block's
// current sequence number for it.
func markAllocated(b *api.Block, ord, idx int) {
	i := idx
	b.Allocations[ord] = &i
	if b.SequenceNumberForAllocation == nil {
		b.SequenceNumberForAllocation = map[string]uint64{}
	}
	b.SequenceNumberForAllocation[seqKey(ord)] = b.SequenceNumber
}

// autoAssignOrdinals takes up to num free, non-reserved ordinals in the
// order of the unallocated list, keeping the order of the rest (upstream's
// allocationBlock.autoAssign). It returns the ordinals taken.
func autoAssignOrdinals(b *api.Block, cidr netip.Prefix, num int, handle *string, attrs map[string]string, rsv reservations) []int {
	var got []int
	kept := b.Unallocated[:0]
	idx := -1
	for i, o := range b.Unallocated {
		if len(got) >= num {
			kept = append(kept, b.Unallocated[i:]...)
			break
		}
		if rsv.contains(ordinalAddr(cidr, o)) || b.Allocations[o] != nil {
			kept = append(kept, o)
			continue
		}
		if idx < 0 {
			idx = findOrAddAttribute(b, handle, attrs)
		}
		markAllocated(b, o, idx)
		got = append(got, o)
	}
	b.Unallocated = kept
	return got
}

// assignOrdinal allocates one specific ordinal (AssignIP).
func assignOrdinal(b *api.Block, ord int, handle *string, attrs map[string]string) error {
	if b.Allocations[ord] != nil {
		if _, ok := coolingAt(b, ord); ok {
			return ErrCoolingDown
		}
		return ErrAlreadyAllocated
	}
	idx := findOrAddAttribute(b, handle, attrs)
	markAllocated(b, ord, idx)
	for i, o := range b.Unallocated {
		if o == ord {
			b.Unallocated = append(b.Unallocated[:i], b.Unallocated[i+1:]...)
			break
		}
	}
	return nil
}

// ordinalsOfHandle lists, in ordinal order, the ordinals held by handle.
func ordinalsOfHandle(b *api.Block, handle string) []int {
	var out []int
	for o, idx := range b.Allocations {
		if idx != nil && attrHandle(b.Attributes[*idx]) == handle {
			out = append(out, o)
		}
	}
	return out
}

// releaseOrdinals frees ordinals: each is appended to the END of the
// unallocated list (observed upstream behaviour), then attributes nobody
// refers to any more are removed and the rest renumbered. With clearSeq the
// ordinals' sequenceNumberForAllocation entries are deleted (upstream's
// ReleaseIPs); release by handle keeps them, as upstream's DEL does. With
// an IP cooldown the ordinals are marked releasedAt instead of freed (and
// cooled-down ones are freed first). It returns how many addresses each
// handle lost.
func releaseOrdinals(b *api.Block, ords []int, clearSeq bool, cd cooldown) map[string]int {
	perHandle := map[string]int{}
	released := reclaimCooled(b, cd)
	stamp := cd.stamp()
	for _, o := range ords {
		if !allocated(b, o) {
			continue
		}
		if h := attrHandle(b.Attributes[*b.Allocations[o]]); h != "" {
			perHandle[h]++
		}
		if stamp != nil {
			markCooling(b, o, *stamp)
		} else {
			b.Allocations[o] = nil
			b.Unallocated = append(b.Unallocated, o)
		}
		if clearSeq {
			delete(b.SequenceNumberForAllocation, seqKey(o))
		}
		released = true
	}
	if released {
		compactAttributes(b)
	}
	return perHandle
}

// compactAttributes drops attributes no allocation refers to and renumbers
// the allocations. The result is a non-nil slice, so an emptied block
// stores "attributes":[] as upstream's does.
func compactAttributes(b *api.Block) {
	used := make([]bool, len(b.Attributes))
	for _, idx := range b.Allocations {
		if idx != nil {
			used[*idx] = true
		}
	}
	newIndex := make([]int, len(b.Attributes))
	kept := make([]api.AllocationAttribute, 0, len(b.Attributes))
	for i, a := range b.Attributes {
		if used[i] {
			newIndex[i] = len(kept)
			kept = append(kept, a)
		}
	}
	if len(kept) == len(b.Attributes) {
		return
	}
	b.Attributes = kept
	for o, idx := range b.Allocations {
		if idx != nil {
			n := newIndex[*idx]
			b.Allocations[o] = &n
		}
	}
}

// seqForOrdinal is the sequence number recorded for ordinal ord (0 if none).
func seqForOrdinal(b *api.Block, ord int) uint64 {
	return b.SequenceNumberForAllocation[seqKey(ord)]
}
