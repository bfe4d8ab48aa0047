package ipam

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/kv"
)

// Resource key helpers (straight from the registry, no datastore client).
func kindInfo(kind string) api.KindInfo {
	k, ok := api.LookupKind(kind)
	if !ok {
		panic("ipam: kind " + kind + " is not registered")
	}
	return k
}

func poolsPrefix() string        { return kindInfo(api.KindIPPool).ListPrefix("") }
func reservationsPrefix() string { return kindInfo(api.KindIPReservation).ListPrefix("") }
func nodeKey(name string) string { return kindInfo(api.KindNode).Key("", name) }
func nodesPrefix() string        { return kindInfo(api.KindNode).ListPrefix("") }

// pool is a decoded, defaulted IPPool with its parsed CIDR.
type pool struct {
	*api.IPPool
	cidr netip.Prefix
}

// decodePools decodes every pool in key (= name) order, applying
// upstream's defaults; values that do not parse are skipped.
func decodePools(items []*kv.KV) []pool {
	out := make([]pool, 0, len(items))
	for _, item := range items {
		p := api.NewIPPool()
		if err := json.Unmarshal(item.Value, p); err != nil {
			continue
		}
		api.Default(p)
		c := p.Prefix()
		if !c.IsValid() || p.Spec.BlockSize < c.Bits() || p.Spec.BlockSize > c.Addr().BitLen() {
			continue
		}
		out = append(out, pool{IPPool: p, cidr: c})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// enabled reports whether the pool may be allocated from.
func (p pool) enabled() bool { return !p.Spec.Disabled && p.DeletionTimestamp == "" }

func (p pool) family() int {
	if p.cidr.Addr().Is6() {
		return 6
	}
	return 4
}

func (p pool) String() string { return fmt.Sprintf("%q (%s)", p.Name, p.cidr) }

// poolFor returns the first pool (of the given ones) containing addr.
func poolFor(pools []pool, addr netip.Addr) (pool, bool) {
	for _, p := range pools {
		if p.cidr.Contains(addr) {
			return p, true
		}
	}
	return pool{}, false
}

// decodeNode decodes a Node value; nil item means absent.
func decodeNode(item *kv.KV) (*api.Node, error) {
	if item == nil {
		return nil, nil
	}
	n := api.NewNode()
	if err := json.Unmarshal(item.Value, n); err != nil {
		return nil, fmt.Errorf("decode node %s: %w", item.Key, err)
	}
	return n, nil
}

// decodeConfig decodes the IPAM config; absent means upstream's default.
func decodeConfig(item *kv.KV) (api.IPAMConfig, error) {
	if item == nil || len(item.Value) == 0 {
		return api.DefaultIPAMConfig(), nil
	}
	var c api.IPAMConfig
	if err := json.Unmarshal(item.Value, &c); err != nil {
		return c, fmt.Errorf("decode IPAM config %s: %w", item.Key, err)
	}
	return c, nil
}

// decodeAffinity decodes an affinity value; an empty value is a legacy
// confirmed affinity.
func decodeAffinity(item *kv.KV) api.BlockAffinity {
	var a api.BlockAffinity
	if len(item.Value) > 0 {
		if err := json.Unmarshal(item.Value, &a); err != nil {
			a.State = "" // unreadable: treat as legacy (confirmed)
		}
	}
	return a
}

func encodeAffinity(state string) []byte {
	b, _ := json.Marshal(api.BlockAffinity{State: state})
	return b
}

// affinityRef is one of a host's affinities as read.
type affinityRef struct {
	key  string
	host string
	cidr netip.Prefix
	aff  api.BlockAffinity
	rev  int64
}

// decodeAffinities parses a host affinity listing, skipping foreign keys.
func decodeAffinities(items []*kv.KV) []affinityRef {
	out := make([]affinityRef, 0, len(items))
	for _, item := range items {
		host, cidr, err := api.ParseAffinityKey(item.Key)
		if err != nil {
			continue
		}
		out = append(out, affinityRef{key: item.Key, host: host, cidr: cidr.Masked(), aff: decodeAffinity(item), rev: item.Revision})
	}
	return out
}

// blockRef is a block as read: its value decoded and the revision it was
// read at (0 = absent).
type blockRef struct {
	key  string
	cidr netip.Prefix
	b    *api.Block
	rev  int64
}

// loadBlock decodes item into a blockRef for cidr; a nil item is absent.
func loadBlock(cidr netip.Prefix, item *kv.KV) (*blockRef, error) {
	ref := &blockRef{key: api.BlockKey(cidr), cidr: cidr}
	if item == nil {
		return ref, nil
	}
	b, c, err := decodeBlock(item.Key, item.Value)
	if err != nil {
		return nil, err
	}
	if c != cidr {
		return nil, fmt.Errorf("decode block %s: its cidr %s does not match its key", item.Key, c)
	}
	ref.b, ref.rev = b, item.Revision
	return ref, nil
}

// handleRef is a handle as read (rev 0 = absent).
type handleRef struct {
	id  string
	h   *api.Handle
	rev int64
}

func loadHandle(id string, item *kv.KV) (*handleRef, error) {
	ref := &handleRef{id: id}
	if item == nil {
		return ref, nil
	}
	var h api.Handle
	if err := json.Unmarshal(item.Value, &h); err != nil {
		return nil, fmt.Errorf("decode handle %s: %w", item.Key, err)
	}
	ref.h, ref.rev = &h, item.Revision
	return ref, nil
}

// count is the handle's count for block cidr.
func (r *handleRef) count(cidr netip.Prefix) int {
	if r.h == nil {
		return 0
	}
	return r.h.Block[cidr.String()]
}

// write returns the write that moves the handle's count for cidr by delta
// (deleting the handle when nothing is left), conditioned on the revision
// it was read at, and the new value (nil = deleted). ok is false when there
// is nothing to write (an absent handle that stays absent).
func (r *handleRef) write(cidr netip.Prefix, delta int) (w kv.Write, ok bool, next *api.Handle) {
	h := &api.Handle{Block: map[string]int{}}
	if r.h != nil {
		for k, v := range r.h.Block {
			h.Block[k] = v
		}
	}
	k := cidr.String()
	if n := h.Block[k] + delta; n > 0 {
		h.Block[k] = n
	} else {
		delete(h.Block, k)
	}
	w = kv.Write{Key: api.HandleKey(r.id), Rev: r.rev}
	if len(h.Block) == 0 {
		if r.rev == 0 {
			return w, false, nil
		}
		w.Delete = true
		return w, true, nil
	}
	w.Value, _ = json.Marshal(h)
	return w, true, h
}

// applied records a committed write of the handle at revision rev.
func (r *handleRef) applied(next *api.Handle, rev int64) {
	r.h = next
	if next == nil {
		r.rev = 0
	} else {
		r.rev = rev
	}
}

// increment returns the write adding inc[block] addresses to the handle's
// counts (creating the handle if absent), conditioned on the revision it
// was read at.
func (r *handleRef) increment(inc map[netip.Prefix]int) kv.Write {
	h := &api.Handle{Block: map[string]int{}}
	if r.h != nil {
		for k, v := range r.h.Block {
			h.Block[k] = v
		}
	}
	for c, n := range inc {
		h.Block[c.String()] += n
	}
	v, _ := json.Marshal(h)
	return kv.Write{Key: api.HandleKey(r.id), Value: v, Rev: r.rev}
}
