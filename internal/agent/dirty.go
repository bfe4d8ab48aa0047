package agent

import (
	"net/netip"
	"slices"
)

// dirtySet is what changed in the model since the reconcile goroutine last
// took it: the items a datastore event touched (this node's own Node
// among them), the pools by name, whether the Felix configuration may
// have changed, or global when something changed that every result
// depends on (a snapshot, BGP, a datastore outage). The sync handlers
// record it under a.mu while they apply the event; the incremental
// calculator (incr.go) recomputes only what these items feed
// (incr_global.go for the pools, Felix and this node).
type dirtySet struct {
	global bool
	felix  bool
	nodes  map[string]struct{}
	blocks map[netip.Prefix]struct{}
	weps   map[string]struct{}
	pools  map[string]struct{}
}

func (s *dirtySet) empty() bool {
	return !s.global && !s.felix && len(s.nodes)+len(s.blocks)+len(s.weps)+len(s.pools) == 0
}

func (s *dirtySet) pool(name string) {
	if s.pools == nil {
		s.pools = map[string]struct{}{}
	}
	s.pools[name] = struct{}{}
}

func (s *dirtySet) node(name string) {
	if s.nodes == nil {
		s.nodes = map[string]struct{}{}
	}
	s.nodes[name] = struct{}{}
}

func (s *dirtySet) block(c netip.Prefix) {
	if s.blocks == nil {
		s.blocks = map[netip.Prefix]struct{}{}
	}
	s.blocks[c] = struct{}{}
}

func (s *dirtySet) wep(key string) {
	if s.weps == nil {
		s.weps = map[string]struct{}{}
	}
	s.weps[key] = struct{}{}
}

// markGlobalLocked records a change every result depends on (the policy
// options included); a.mu is held.
func (a *Agent) markGlobalLocked() {
	a.dirty.global = true
	a.polGen++
}

// takeDirtyLocked hands the recorded changes over; a.mu is held.
func (a *Agent) takeDirtyLocked() dirtySet {
	d := a.dirty
	a.dirty = dirtySet{}
	return d
}

// peerList keeps the other nodes' IPv4 addresses sorted for the policy
// options (policyOptions), updated from Node events instead of rebuilt
// from every Node on every pass. Events queue their changes (gone, came);
// peersLocked applies them to a copy once per read, as a published list
// is never changed in place (the policy plane keeps the one it applied).
type peerList struct {
	addrs      []netip.Addr
	gone, came []netip.Addr
	ok         bool   // addrs (with the queued changes) is up to date; else rebuilt from the model
	gen        uint64 // changes with the list
}

// nodeChangedLocked queues the peer change of a Node event on the live
// model (old/had: the Node before; n/has: after); a.mu is held.
func (a *Agent) nodeChangedLocked(old Node, had bool, n Node, has bool) {
	p := &a.peers
	if !p.ok || n.Name == a.cfg.NodeName || old.Name == a.cfg.NodeName {
		p.gen++
		return
	}
	was, is := had && old.IPv4.IsValid(), has && n.IPv4.IsValid()
	if was && is && old.IPv4.Addr() == n.IPv4.Addr() {
		return
	}
	if was {
		p.gone = append(p.gone, old.IPv4.Addr())
	}
	if is {
		p.came = append(p.came, n.IPv4.Addr())
	}
	p.gen++
}

// peersLocked returns the sorted peer addresses; a.mu is held.
func (a *Agent) peersLocked() []netip.Addr {
	p := &a.peers
	if !p.ok {
		out := make([]netip.Addr, 0, len(a.model.Nodes))
		for name, n := range a.model.Nodes {
			if name != a.model.NodeName && n.IPv4.IsValid() {
				out = append(out, n.IPv4.Addr())
			}
		}
		slices.SortFunc(out, netip.Addr.Compare)
		p.addrs, p.ok, p.gone, p.came = out, true, nil, nil
		return out
	}
	if len(p.gone)+len(p.came) == 0 {
		return p.addrs
	}
	out := make([]netip.Addr, len(p.addrs), len(p.addrs)+len(p.came))
	copy(out, p.addrs)
	for _, a := range p.gone {
		if i, ok := slices.BinarySearchFunc(out, a, netip.Addr.Compare); ok {
			out = slices.Delete(out, i, i+1)
		}
	}
	for _, a := range p.came {
		i, _ := slices.BinarySearchFunc(out, a, netip.Addr.Compare)
		out = slices.Insert(out, i, a)
	}
	p.addrs, p.gone, p.came = out, nil, nil
	return out
}
