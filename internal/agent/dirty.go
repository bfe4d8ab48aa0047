package agent

import (
	"net/netip"
	"slices"
)

// dirtySet is what changed in the model since the reconcile goroutine last
// took it: the items a datastore event touched, or global when something
// changed that every result depends on (a snapshot, a pool, the Felix
// configuration, this node's own Node, BGP, a datastore outage). The sync
// handlers record it under a.mu while they apply the event; the
// incremental calculator (incr.go) recomputes only these items.
type dirtySet struct {
	global bool
	nodes  map[string]struct{}
	blocks map[netip.Prefix]struct{}
	weps   map[string]struct{}
}

func (s *dirtySet) empty() bool {
	return !s.global && len(s.nodes)+len(s.blocks)+len(s.weps) == 0
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
// options (policyOptions), updated per Node event instead of rebuilt from
// every Node on every pass. A published slice is never changed in place
// (the policy plane keeps the one it applied), so each change copies it.
type peerList struct {
	addrs []netip.Addr
	ok    bool   // addrs is up to date (else rebuilt from the model on next use)
	gen   uint64 // changes with addrs
}

// nodeChangedLocked updates the peers after a Node event on the live
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
	out := slices.Clone(p.addrs)
	if was {
		if i, ok := slices.BinarySearchFunc(out, old.IPv4.Addr(), netip.Addr.Compare); ok {
			out = slices.Delete(out, i, i+1)
		}
	}
	if is {
		i, _ := slices.BinarySearchFunc(out, n.IPv4.Addr(), netip.Addr.Compare)
		out = slices.Insert(out, i, n.IPv4.Addr())
	}
	p.addrs = out
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
		p.addrs, p.ok = out, true
	}
	return p.addrs
}
