package policy

import (
	"net/netip"
	"slices"

	"github.com/onecalico/calico/internal/ruleset"
)

// setState is one active set and its members, counted: several entities
// may contribute the same address.
type setState struct {
	spec   *setSpec
	refs   int
	in     map[string]bool // keys of the member entities
	nets   map[netip.Prefix]int
	ports  map[ruleset.NamedPortMember]int
	cached *ruleset.Set
}

func newSetState(spec *setSpec) *setState {
	s := &setState{spec: spec, in: map[string]bool{}}
	if spec.kind == ruleset.NamedPorts {
		s.ports = map[ruleset.NamedPortMember]int{}
	} else {
		s.nets = map[netip.Prefix]int{}
	}
	return s
}

// matches reports whether e belongs in the set.
func (s *setState) matches(e *entity) bool {
	if e == nil || s.spec.sel == nil {
		return false
	}
	if s.spec.kind == ruleset.NamedPorts && !s.hasPort(e) {
		return false
	}
	return s.spec.sel.Evaluate(e.labels)
}

func (s *setState) hasPort(e *entity) bool {
	if !e.endpoint() {
		return false
	}
	for _, p := range e.ports {
		if p.name == s.spec.port && p.proto == s.spec.proto {
			return true
		}
	}
	return false
}

// update moves the set from old's contribution to e's (either may be nil).
func (s *setState) update(old, e *entity, t *tracker) {
	if s.spec.sel == nil {
		return
	}
	was := old != nil && s.in[old.key]
	is := s.matches(e)
	if !was && !is {
		return
	}
	if was && is && slices.Equal(old.nets, e.nets) && slices.Equal(old.ports, e.ports) {
		return
	}
	if was {
		s.contribute(old, -1, t)
		delete(s.in, old.key)
	}
	if is {
		s.contribute(e, 1, t)
		s.in[e.key] = true
	}
}

func (s *setState) contribute(e *entity, d int, t *tracker) {
	if s.spec.kind != ruleset.NamedPorts {
		for _, n := range e.nets {
			s.countNet(n, d, t)
		}
		return
	}
	for _, p := range e.ports {
		if p.name != s.spec.port || p.proto != s.spec.proto {
			continue
		}
		for _, n := range e.nets {
			s.countPort(ruleset.NamedPortMember{Addr: n.Addr(), Protocol: p.proto, Port: p.port}, d, t)
		}
	}
}

func (s *setState) addNets(nets []netip.Prefix, t *tracker) {
	for _, n := range nets {
		s.countNet(n, 1, t)
	}
}

func (s *setState) countNet(n netip.Prefix, d int, t *tracker) {
	before := s.nets[n]
	after := before + d
	if after == 0 {
		delete(s.nets, n)
	} else {
		s.nets[n] = after
	}
	if (before == 0) != (after == 0) {
		t.net(s.spec.id, n, d)
		s.cached = nil
	}
}

func (s *setState) countPort(m ruleset.NamedPortMember, d int, t *tracker) {
	before := s.ports[m]
	after := before + d
	if after == 0 {
		delete(s.ports, m)
	} else {
		s.ports[m] = after
	}
	if (before == 0) != (after == 0) {
		t.port(s.spec.id, m, d)
		s.cached = nil
	}
}

// clear removes every member (the set is going away).
func (s *setState) clear(t *tracker) {
	for n, k := range s.nets {
		if k > 0 {
			t.net(s.spec.id, n, -1)
		}
	}
	for m, k := range s.ports {
		if k > 0 {
			t.port(s.spec.id, m, -1)
		}
	}
	s.nets, s.ports, s.in, s.cached = nil, nil, nil, nil
}

// snapshot returns the set as the Ruleset shows it (cached until it changes).
func (s *setState) snapshot() *ruleset.Set {
	if s.cached != nil {
		return s.cached
	}
	rs := &ruleset.Set{ID: s.spec.id, Kind: s.spec.kind, Source: s.spec.source}
	if s.spec.kind == ruleset.NamedPorts {
		rs.Members = make([]ruleset.NamedPortMember, 0, len(s.ports))
		for m := range s.ports {
			rs.Members = append(rs.Members, m)
		}
		slices.SortFunc(rs.Members, compareMember)
	} else {
		rs.Nets = make([]netip.Prefix, 0, len(s.nets))
		for n := range s.nets {
			rs.Nets = append(rs.Nets, n)
		}
		slices.SortFunc(rs.Nets, comparePrefix)
	}
	s.cached = rs
	return rs
}

func compareMember(a, b ruleset.NamedPortMember) int {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	if a.Protocol != b.Protocol {
		return int(a.Protocol) - int(b.Protocol)
	}
	return int(a.Port) - int(b.Port)
}
