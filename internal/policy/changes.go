package policy

import (
	"net/netip"
	"reflect"
	"slices"

	"github.com/onecalico/calico/internal/ruleset"
)

// Changes says what differs in the Ruleset since the previous call to
// TakeChanges, so an applier can update only that.
type Changes struct {
	// Full is set on the first call: nothing was reported before, so the
	// whole Ruleset is new (the lists below are then empty).
	Full bool
	// Endpoints are the local endpoints added or whose entry (interface,
	// addresses, tiers, profiles) changed; EndpointsRemoved are gone.
	Endpoints        []string
	EndpointsRemoved []string
	// Chains are chains new to the Ruleset or whose rules changed;
	// ChainsRemoved left it.
	Chains        []string
	ChainsRemoved []string
	// Sets are sets new to the Ruleset (take their members from it);
	// SetsRemoved left it.
	Sets        []string
	SetsRemoved []string
	// Members are the member changes of sets that were and still are in
	// the Ruleset, by set ID.
	Members map[string]SetDelta
}

// SetDelta is the members one set gained and lost.
type SetDelta struct {
	AddedNets, RemovedNets []netip.Prefix
	Added, Removed         []ruleset.NamedPortMember
}

// Empty reports whether nothing changed.
func (ch *Changes) Empty() bool {
	return !ch.Full && len(ch.Endpoints)+len(ch.EndpointsRemoved)+len(ch.Chains)+len(ch.ChainsRemoved)+
		len(ch.Sets)+len(ch.SetsRemoved)+len(ch.Members) == 0
}

// tracker records what was touched since the last report, and what the
// last report said, so that changes which cancel out are not reported.
type tracker struct {
	endpoints map[string]bool
	chains    map[string]bool
	sets      map[string]bool
	nets      map[string]map[netip.Prefix]int
	ports     map[string]map[ruleset.NamedPortMember]int

	reported      bool
	lastEndpoints map[string]ruleset.Endpoint
	lastChains    map[string]*ruleset.Chain
	lastSets      map[string]bool
}

func (t *tracker) init() {
	t.endpoints, t.chains, t.sets = map[string]bool{}, map[string]bool{}, map[string]bool{}
	t.nets = map[string]map[netip.Prefix]int{}
	t.ports = map[string]map[ruleset.NamedPortMember]int{}
}

func (t *tracker) net(set string, n netip.Prefix, d int) {
	m := t.nets[set]
	if m == nil {
		m = map[netip.Prefix]int{}
		t.nets[set] = m
	}
	if m[n] += d; m[n] == 0 {
		delete(m, n)
	}
}

func (t *tracker) port(set string, p ruleset.NamedPortMember, d int) {
	m := t.ports[set]
	if m == nil {
		m = map[ruleset.NamedPortMember]int{}
		t.ports[set] = m
	}
	if m[p] += d; m[p] == 0 {
		delete(m, p)
	}
}

// Ruleset returns the local endpoints' whole ruleset. Its chains and sets
// are shared with later Rulesets and must not be modified.
func (c *Calculator) Ruleset() *ruleset.Ruleset {
	rs := &ruleset.Ruleset{
		Endpoints: make([]ruleset.Endpoint, 0, len(c.local)),
		Chains:    make(map[string]*ruleset.Chain, len(c.chains)),
		Sets:      make(map[string]*ruleset.Set, len(c.sets)),
	}
	for _, id := range slices.Sorted(mapKeys(c.local)) {
		rs.Endpoints = append(rs.Endpoints, c.local[id].ep)
	}
	for id, ac := range c.chains {
		rs.Chains[id] = ac.c.chain
	}
	for id, s := range c.sets {
		rs.Sets[id] = s.snapshot()
	}
	return rs
}

// TakeChanges returns what changed in the Ruleset since the previous call
// and starts recording afresh.
func (c *Calculator) TakeChanges() Changes {
	t := &c.track
	var ch Changes
	if !t.reported {
		ch.Full = true
		t.reported = true
		t.lastEndpoints, t.lastChains, t.lastSets = map[string]ruleset.Endpoint{}, map[string]*ruleset.Chain{}, map[string]bool{}
		for id, l := range c.local {
			t.lastEndpoints[id] = l.ep
		}
		for id, ac := range c.chains {
			t.lastChains[id] = ac.c.chain
		}
		for id := range c.sets {
			t.lastSets[id] = true
		}
		t.init()
		return ch
	}
	c.endpointChanges(&ch)
	c.chainChanges(&ch)
	c.setChanges(&ch)
	t.init()
	return ch
}

func (c *Calculator) endpointChanges(ch *Changes) {
	t := &c.track
	for _, id := range slices.Sorted(mapKeys(t.endpoints)) {
		prev, had := t.lastEndpoints[id]
		if l := c.local[id]; l != nil {
			if !had || !reflect.DeepEqual(prev, l.ep) {
				ch.Endpoints = append(ch.Endpoints, id)
				t.lastEndpoints[id] = l.ep
			}
		} else if had {
			ch.EndpointsRemoved = append(ch.EndpointsRemoved, id)
			delete(t.lastEndpoints, id)
		}
	}
}

func (c *Calculator) chainChanges(ch *Changes) {
	t := &c.track
	for _, id := range slices.Sorted(mapKeys(t.chains)) {
		prev, had := t.lastChains[id]
		if ac := c.chains[id]; ac != nil {
			if !had || (prev != ac.c.chain && !reflect.DeepEqual(prev.Rules, ac.c.chain.Rules)) {
				ch.Chains = append(ch.Chains, id)
			}
			t.lastChains[id] = ac.c.chain
		} else if had {
			ch.ChainsRemoved = append(ch.ChainsRemoved, id)
			delete(t.lastChains, id)
		}
	}
}

func (c *Calculator) setChanges(ch *Changes) {
	t := &c.track
	ids := map[string]bool{}
	for id := range t.sets {
		ids[id] = true
	}
	for id := range t.nets {
		ids[id] = true
	}
	for id := range t.ports {
		ids[id] = true
	}
	for _, id := range slices.Sorted(mapKeys(ids)) {
		_, now := c.sets[id]
		had := t.lastSets[id]
		switch {
		case now && !had:
			ch.Sets = append(ch.Sets, id)
			t.lastSets[id] = true
		case !now && had:
			ch.SetsRemoved = append(ch.SetsRemoved, id)
			delete(t.lastSets, id)
		case now && had:
			if d, ok := delta(t.nets[id], t.ports[id]); ok {
				if ch.Members == nil {
					ch.Members = map[string]SetDelta{}
				}
				ch.Members[id] = d
			}
		}
	}
}

func delta(nets map[netip.Prefix]int, ports map[ruleset.NamedPortMember]int) (SetDelta, bool) {
	var d SetDelta
	for n, k := range nets {
		if k > 0 {
			d.AddedNets = append(d.AddedNets, n)
		} else {
			d.RemovedNets = append(d.RemovedNets, n)
		}
	}
	for m, k := range ports {
		if k > 0 {
			d.Added = append(d.Added, m)
		} else {
			d.Removed = append(d.Removed, m)
		}
	}
	slices.SortFunc(d.AddedNets, comparePrefix)
	slices.SortFunc(d.RemovedNets, comparePrefix)
	slices.SortFunc(d.Added, compareMember)
	slices.SortFunc(d.Removed, compareMember)
	return d, len(d.AddedNets)+len(d.RemovedNets)+len(d.Added)+len(d.Removed) > 0
}
