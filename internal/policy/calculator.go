package policy

import (
	"maps"
	"reflect"
	"slices"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/ruleset"
	"github.com/onecalico/calico/internal/selector"
)

// Calculator holds every policy input and keeps the local endpoints'
// ruleset up to date as they change.
//
// Incremental work: an entity (endpoint or network set) that changes is
// evaluated only against the active sets' selectors (and, when local,
// against the policies' selectors); a policy that changes has only its own
// selector evaluated against the local endpoints, and only its own sets
// computed when they become active. A set or chain is active while a local
// endpoint uses it; only active ones are in the Ruleset.
type Calculator struct {
	node string

	entities map[string]*entity
	local    map[string]*localEP
	// byParent: profile name -> keys of the entities inheriting from it.
	byParent map[string]map[string]bool

	profiles map[string]*profile
	policies map[string]*policy
	tiers    map[string]tierInfo
	// chainSrc maps every chain ID any policy or profile defines to its
	// compiled form, active or not.
	chainSrc map[string]*compiled

	chains map[string]*activeChain
	sets   map[string]*setState

	track tracker
	// problems are rules that can never match, by policy key.
	problems map[string][]string
}

// localEP is a local endpoint's policy state.
type localEP struct {
	e       *entity
	matched map[string]bool // keys of the policies that select it
	ep      ruleset.Endpoint
	uses    map[string]bool // chain IDs ep refers to
}

type profile struct {
	name    string
	labels  map[string]string
	in, out *compiled
}

type policy struct {
	key     string // "GlobalNetworkPolicy/<name>" or "NetworkPolicy/<ns>/<name>"
	name    string // RuleRef.Policy: "<name>" or "<ns>/<name>"
	tier    string
	order   *float64
	sel     selector.Selector
	ingress bool
	egress  bool
	preDNAT bool
	untrack bool
	forward bool
	in, out *compiled
}

type tierInfo struct {
	valid bool // the tier resource exists
	order *float64
	pass  bool // defaultAction Pass
}

type activeChain struct {
	c    *compiled
	refs int
}

// New returns a Calculator for the node named node.
func New(node string) *Calculator {
	c := &Calculator{
		node:     node,
		entities: map[string]*entity{},
		local:    map[string]*localEP{},
		byParent: map[string]map[string]bool{},
		profiles: map[string]*profile{},
		policies: map[string]*policy{},
		tiers:    map[string]tierInfo{},
		chainSrc: map[string]*compiled{},
		chains:   map[string]*activeChain{},
		sets:     map[string]*setState{},
		problems: map[string][]string{},
	}
	c.track.init()
	c.setProfile(defaultAllowProfile())
	return c
}

func defaultAllowProfile() *api.Profile { return api.NewDefaultAllowProfile() }

// Node returns the node the Calculator computes for.
func (c *Calculator) Node() string { return c.node }

// Problems lists, per policy or profile, the rules that can never match
// here (bad selectors, http or services matches), for logs.
func (c *Calculator) Problems() map[string][]string { return maps.Clone(c.problems) }

// ProblemsOf returns the problems of one NetworkPolicy, GlobalNetworkPolicy
// or Profile (namespace only for a NetworkPolicy).
func (c *Calculator) ProblemsOf(kind, namespace, name string) []string {
	if kind == api.KindNetworkPolicy {
		return c.problems[kind+"/"+namespace+"/"+name]
	}
	return c.problems[kind+"/"+name]
}

// ---- Inputs ----

// SetWorkloadEndpoint adds or replaces a workload endpoint of any node.
func (c *Calculator) SetWorkloadEndpoint(w *api.WorkloadEndpoint) {
	e := wepEntity(w)
	if e == nil {
		ns := w.Namespace
		if ns == "" {
			ns = "default"
		}
		c.setEntity(wepKey(ns, w.Name), nil)
		return
	}
	c.setEntity(e.key, e)
}

// DeleteWorkloadEndpoint removes a workload endpoint.
func (c *Calculator) DeleteWorkloadEndpoint(namespace, name string) {
	c.setEntity(wepKey(namespace, name), nil)
}

// SetHostEndpoint adds or replaces a host endpoint of any node.
func (c *Calculator) SetHostEndpoint(h *api.HostEndpoint) {
	e := hepEntity(h)
	c.setEntity(e.key, e)
}

// DeleteHostEndpoint removes a host endpoint.
func (c *Calculator) DeleteHostEndpoint(name string) { c.setEntity(hepKey(name), nil) }

// SetNetworkSet adds or replaces a NetworkSet.
func (c *Calculator) SetNetworkSet(n *api.NetworkSet) {
	e := netSetEntity(n)
	c.setEntity(e.key, e)
}

// DeleteNetworkSet removes a NetworkSet.
func (c *Calculator) DeleteNetworkSet(namespace, name string) {
	c.setEntity(netSetKey(namespace, name), nil)
}

// SetGlobalNetworkSet adds or replaces a GlobalNetworkSet.
func (c *Calculator) SetGlobalNetworkSet(n *api.GlobalNetworkSet) {
	e := globalNetSetEntity(n)
	c.setEntity(e.key, e)
}

// DeleteGlobalNetworkSet removes a GlobalNetworkSet.
func (c *Calculator) DeleteGlobalNetworkSet(name string) { c.setEntity(globalNetSetKey(name), nil) }

// SetProfile adds or replaces a profile (a kns.<namespace> profile gives
// that namespace's labels through its labelsToApply).
func (c *Calculator) SetProfile(p *api.Profile) {
	if p.Name == api.DefaultAllowProfile {
		return // built in, never stored
	}
	c.setProfile(p)
}

// DeleteProfile removes a profile.
func (c *Calculator) DeleteProfile(name string) {
	if name == api.DefaultAllowProfile {
		return
	}
	c.updateProfile(name, nil)
}

// SetNetworkPolicy adds or replaces a NetworkPolicy.
func (c *Calculator) SetNetworkPolicy(p *api.NetworkPolicy) {
	ns := p.Namespace
	if ns == "" {
		ns = "default"
	}
	s := &p.Spec
	c.setPolicy(policyInput{
		kind: api.KindNetworkPolicy, key: api.KindNetworkPolicy + "/" + ns + "/" + p.Name, name: ns + "/" + p.Name,
		ns: ns, tier: s.Tier, order: s.Order, selector: s.Selector, saSelector: s.ServiceAccountSelector,
		types: s.Types, ingress: s.Ingress, egress: s.Egress,
	})
}

// DeleteNetworkPolicy removes a NetworkPolicy.
func (c *Calculator) DeleteNetworkPolicy(namespace, name string) {
	c.updatePolicy(api.KindNetworkPolicy+"/"+namespace+"/"+name, nil)
}

// SetGlobalNetworkPolicy adds or replaces a GlobalNetworkPolicy.
func (c *Calculator) SetGlobalNetworkPolicy(p *api.GlobalNetworkPolicy) {
	s := &p.Spec
	c.setPolicy(policyInput{
		kind: api.KindGlobalNetworkPolicy, key: api.KindGlobalNetworkPolicy + "/" + p.Name, name: p.Name,
		global: true, tier: s.Tier, order: s.Order, selector: s.Selector, saSelector: s.ServiceAccountSelector,
		nsSelector: s.NamespaceSelector, types: s.Types, ingress: s.Ingress, egress: s.Egress,
		preDNAT: s.PreDNAT, doNotTrack: s.DoNotTrack, applyOnForward: s.ApplyOnForward,
	})
}

// DeleteGlobalNetworkPolicy removes a GlobalNetworkPolicy.
func (c *Calculator) DeleteGlobalNetworkPolicy(name string) {
	c.updatePolicy(api.KindGlobalNetworkPolicy+"/"+name, nil)
}

// SetTier adds or replaces a tier.
func (c *Calculator) SetTier(t *api.Tier) {
	ti := tierInfo{valid: true, order: t.Spec.Order}
	if t.Spec.DefaultAction != nil && *t.Spec.DefaultAction == api.Pass {
		ti.pass = true
	}
	old, had := c.tiers[t.Name]
	if had && reflect.DeepEqual(old, ti) {
		return
	}
	c.tiers[t.Name] = ti
	c.tierChanged(t.Name)
}

// DeleteTier removes a tier; its policies stay, ordered last.
func (c *Calculator) DeleteTier(name string) {
	if _, ok := c.tiers[name]; !ok {
		return
	}
	delete(c.tiers, name)
	c.tierChanged(name)
}

// Reset forgets every input of one kind (the agent calls it before a
// datastore snapshot of that kind and then sets each object again; the
// changes reported are still only what differs in the end).
func (c *Calculator) Reset(kind string) {
	switch kind {
	case api.KindWorkloadEndpoint, api.KindHostEndpoint, api.KindNetworkSet, api.KindGlobalNetworkSet:
		want := map[string]entityKind{api.KindWorkloadEndpoint: kindWEP, api.KindHostEndpoint: kindHEP,
			api.KindNetworkSet: kindNetSet, api.KindGlobalNetworkSet: kindGlobalNetSet}[kind]
		for _, k := range slices.Sorted(mapKeys(c.entities)) {
			if c.entities[k].kind == want {
				c.setEntity(k, nil)
			}
		}
	case api.KindProfile:
		for _, n := range slices.Sorted(mapKeys(c.profiles)) {
			if n != api.DefaultAllowProfile {
				c.updateProfile(n, nil)
			}
		}
	case api.KindNetworkPolicy, api.KindGlobalNetworkPolicy:
		for _, k := range slices.Sorted(mapKeys(c.policies)) {
			if len(k) > len(kind) && k[:len(kind)+1] == kind+"/" {
				c.updatePolicy(k, nil)
			}
		}
	case api.KindTier:
		for _, n := range slices.Sorted(mapKeys(c.tiers)) {
			c.DeleteTier(n)
		}
	}
}
