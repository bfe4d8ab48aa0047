package agent

import (
	"maps"
	"net/netip"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/bgp"
)

// What wakes the BGP goroutine, and what it reads. bgp.Calc depends on
// every Node, the pools, the BGP resources, this node's affinities, and
// only the blocks and endpoints that concern this node: its affine
// blocks, blocks holding addresses it borrowed, and its own endpoints.
// The sync handlers ask bgpMattersLocked about each event's key before
// and after applying it, so a remote pod or a block of another node that
// lends nothing here does not wake the speaker, and bgpIndex keeps the
// concerned blocks and endpoints so that a pass reads them without a scan
// of the whole model (O(cluster) on every change otherwise).

// bgpIndex is the blocks and endpoints of the live model that concern
// this node's speaker; under a.mu. A snapshot of any prefix clears ok
// and the next pass rebuilds it from the model. nodes is the last
// input's Node map, shared by every input until a Node event (or a
// snapshot) drops it: inputs are read-only, so it is replaced, never
// changed.
type bgpIndex struct {
	ok     bool
	blocks map[netip.Prefix]struct{}
	weps   map[string]struct{}
	nodes  map[string]bgp.Node
}

// blockConcerns reports whether block b matters to node's speaker.
func blockConcerns(b Block, node string) bool {
	if b.Affinity == node {
		return true
	}
	for _, n := range b.Borrowed {
		if n == node {
			return true
		}
	}
	return false
}

// bgpMattersLocked reports whether the live model's state for key (of a
// handler's prefix) matters to BGP, and records the answer in the index;
// a.mu is held. The handlers call it before and after applying an event:
// a block whose affinity moves away mattered before, one that moves here
// matters after.
func (a *Agent) bgpMattersLocked(prefix, key string) bool {
	if a.bgp == nil {
		return false
	}
	x := &a.bgp.index
	switch {
	case prefix == prefixBlocks:
		c, err := api.ParseBlockKey(key)
		if err != nil {
			return true
		}
		b, ok := a.model.Blocks[c]
		yes := ok && blockConcerns(b, a.cfg.NodeName)
		if x.ok {
			setMember(x.blocks, c, yes)
		}
		return yes
	case prefix == prefixWEPs:
		w, ok := a.model.WEPs[key]
		yes := ok && w.Node == a.cfg.NodeName
		if x.ok {
			setMember(x.weps, key, yes)
		}
		return yes
	case prefix == prefixNodes:
		x.nodes = nil
	}
	return true // Nodes, pools, BGP resources, this node's affinities
}

func setMember[K comparable](s map[K]struct{}, k K, in bool) {
	if in {
		s[k] = struct{}{}
	} else {
		delete(s, k)
	}
}

// bgpSnapshotLocked forgets the index after a (re)list; a.mu is held.
func (a *Agent) bgpSnapshotLocked() {
	if a.bgp != nil {
		a.bgp.index = bgpIndex{}
	}
}

// refresh rebuilds the index from m when a snapshot cleared it.
func (x *bgpIndex) refresh(m *Model) {
	if x.ok {
		return
	}
	x.blocks, x.weps = map[netip.Prefix]struct{}{}, map[string]struct{}{}
	for c, b := range m.Blocks {
		if blockConcerns(b, m.NodeName) {
			x.blocks[c] = struct{}{}
		}
	}
	for k, w := range m.WEPs {
		if w.Node == m.NodeName {
			x.weps[k] = struct{}{}
		}
	}
	x.ok = true
}

// bgpInputLocked builds bgp.Calc's input from the live model; a.mu is
// held. It copies what the handlers change in place (the maps it
// passes on); the values it shares (labels, borrowed maps, specs) are
// replaced by the handlers, never changed.
func (a *Agent) bgpInputLocked() *bgp.Input {
	m := a.model
	x := &a.bgp.index
	x.refresh(m)
	v := &Model{NodeName: m.NodeName, Pools: m.Pools, BGP: m.BGP,
		Blocks: make(map[netip.Prefix]Block, len(x.blocks)), WEPs: make(map[string]WEP, len(x.weps))}
	for c := range x.blocks {
		v.Blocks[c] = m.Blocks[c]
	}
	for k := range x.weps {
		v.WEPs[k] = m.WEPs[k]
	}
	in := a.bgpInput(v)
	if x.nodes == nil {
		x.nodes = make(map[string]bgp.Node, len(m.Nodes))
		for name, n := range m.Nodes {
			x.nodes[name] = bgpNode(name, n)
		}
	}
	in.Nodes = x.nodes
	in.Peers, in.Filters = maps.Clone(in.Peers), maps.Clone(in.Filters)
	return in
}
