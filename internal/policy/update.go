package policy

import (
	"maps"
	"reflect"
	"slices"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/ruleset"
)

// policyInput is what NetworkPolicy and GlobalNetworkPolicy share.
type policyInput struct {
	kind, key, name, ns  string
	global               bool
	tier                 string
	order                *float64
	selector, saSelector string
	nsSelector           string
	types                []api.PolicyType
	ingress, egress      []api.Rule
	preDNAT, doNotTrack  bool
	applyOnForward       bool
}

// Chain ID prefixes.
const (
	chainPolicyIn   = "pi/"
	chainPolicyOut  = "pe/"
	chainProfileIn  = "ri/"
	chainProfileOut = "re/"
)

func (c *Calculator) setPolicy(in policyInput) {
	tier := api.PolicyTier(in.tier)
	types := in.types
	if len(types) == 0 {
		types = api.DefaultPolicyTypes(in.ingress, in.egress)
	}
	// Upstream's syncer marks every NetworkPolicy applyOnForward.
	p := &policy{key: in.key, name: in.name, tier: tier, order: in.order,
		preDNAT: in.preDNAT, untrack: in.doNotTrack, forward: in.applyOnForward || !in.global}
	for _, t := range types {
		p.ingress = p.ingress || t == api.PolicyTypeIngress
		p.egress = p.egress || t == api.PolicyTypeEgress
	}
	var problems []string
	sel, err := policySelector(in.selector, in.ns, in.global, in.nsSelector, in.saSelector)
	if err != nil {
		problems = append(problems, in.kind+" "+in.name+": selector: "+err.Error()+"; the policy selects nothing")
	}
	p.sel = sel
	ref := ruleset.RuleRef{Tier: tier, Policy: in.name, Kind: in.kind, Direction: ruleset.Ingress}
	var errs []string
	p.in, errs = compileChain(chainPolicyIn+tier+"/"+in.name, ref, in.ingress, in.ns)
	problems = append(problems, errs...)
	ref.Direction = ruleset.Egress
	p.out, errs = compileChain(chainPolicyOut+tier+"/"+in.name, ref, in.egress, in.ns)
	problems = append(problems, errs...)
	c.setProblems(in.key, problems)
	c.updatePolicy(in.key, p)
}

func (c *Calculator) setProblems(key string, problems []string) {
	if len(problems) == 0 {
		delete(c.problems, key)
	} else {
		c.problems[key] = problems
	}
}

// updatePolicy replaces (p nil: deletes) the policy under key.
func (c *Calculator) updatePolicy(key string, p *policy) {
	old := c.policies[key]
	if old == nil && p == nil {
		return
	}
	if old != nil {
		delete(c.chainSrc, old.in.chain.ID)
		delete(c.chainSrc, old.out.chain.ID)
	}
	if p == nil {
		delete(c.policies, key)
		delete(c.problems, key)
	} else {
		c.policies[key] = p
		c.chainSrc[p.in.chain.ID] = p.in
		c.chainSrc[p.out.chain.ID] = p.out
		c.refreshChain(p.in)
		c.refreshChain(p.out)
	}
	for _, id := range slices.Sorted(mapKeys(c.local)) {
		l := c.local[id]
		was := l.matched[key]
		is := p != nil && p.sel != nil && p.sel.Evaluate(l.e.labels)
		if is {
			l.matched[key] = true
		} else {
			delete(l.matched, key)
		}
		if was != is || (was && !sameShape(old, p)) {
			c.redispatch(l)
		}
	}
}

// sameShape reports whether two versions of a policy place their chains
// identically in every endpoint's dispatch (only their rules may differ).
func sameShape(a, b *policy) bool {
	return a != nil && b != nil && a.tier == b.tier && compareOrder(a.order, b.order) == 0 &&
		(a.order == nil) == (b.order == nil) && a.ingress == b.ingress && a.egress == b.egress &&
		a.preDNAT == b.preDNAT && a.untrack == b.untrack && a.forward == b.forward &&
		a.in.chain.ID == b.in.chain.ID && a.out.chain.ID == b.out.chain.ID
}

func (c *Calculator) setProfile(p *api.Profile) {
	pr := &profile{name: p.Name, labels: p.Spec.LabelsToApply}
	ref := ruleset.RuleRef{Policy: p.Name, Kind: api.KindProfile, Direction: ruleset.Ingress}
	var problems, errs []string
	pr.in, errs = compileChain(chainProfileIn+p.Name, ref, p.Spec.Ingress, "")
	problems = append(problems, errs...)
	ref.Direction = ruleset.Egress
	pr.out, errs = compileChain(chainProfileOut+p.Name, ref, p.Spec.Egress, "")
	problems = append(problems, errs...)
	c.setProblems(api.KindProfile+"/"+p.Name, problems)
	c.updateProfile(p.Name, pr)
}

func (c *Calculator) updateProfile(name string, pr *profile) {
	old := c.profiles[name]
	if old == nil && pr == nil {
		return
	}
	exists := (old == nil) != (pr == nil)
	relabel := !maps.Equal(labelsOf(old), labelsOf(pr))
	if pr == nil {
		delete(c.profiles, name)
		delete(c.chainSrc, chainProfileIn+name)
		delete(c.chainSrc, chainProfileOut+name)
		delete(c.problems, api.KindProfile+"/"+name)
	} else {
		c.profiles[name] = pr
		c.chainSrc[pr.in.chain.ID] = pr.in
		c.chainSrc[pr.out.chain.ID] = pr.out
		c.refreshChain(pr.in)
		c.refreshChain(pr.out)
	}
	for _, key := range slices.Sorted(mapKeys(c.byParent[name])) {
		e := c.entities[key]
		if relabel {
			ne := *e
			ne.inherit(c.profiles)
			c.replaceEntity(e, &ne)
		} else if l := c.local[key]; l != nil && exists {
			c.redispatch(l)
		}
	}
}

func labelsOf(p *profile) map[string]string {
	if p == nil {
		return nil
	}
	return p.labels
}

// tierChanged re-sorts the local endpoints' tiers.
func (c *Calculator) tierChanged(string) {
	for _, id := range slices.Sorted(mapKeys(c.local)) {
		c.redispatch(c.local[id])
	}
}

// refreshChain gives an active chain its new compiled form.
func (c *Calculator) refreshChain(nc *compiled) {
	ac := c.chains[nc.chain.ID]
	if ac == nil || ac.c == nc {
		return
	}
	for _, s := range nc.sets {
		c.incSet(s)
	}
	for _, s := range ac.c.sets {
		c.decSet(s.id)
	}
	if !reflect.DeepEqual(ac.c.chain.Rules, nc.chain.Rules) {
		c.track.chains[nc.chain.ID] = true
	}
	ac.c = nc
}

// setEntity adds, replaces (e non-nil) or removes (e nil) an entity.
func (c *Calculator) setEntity(key string, e *entity) {
	old := c.entities[key]
	if e != nil {
		e.inherit(c.profiles)
	}
	if old == nil && e == nil {
		return
	}
	if old != nil && e != nil && reflect.DeepEqual(old, e) {
		return
	}
	if old != nil {
		for _, p := range old.parents {
			delete(c.byParent[p], key)
			if len(c.byParent[p]) == 0 {
				delete(c.byParent, p)
			}
		}
	}
	if e != nil {
		for _, p := range e.parents {
			if c.byParent[p] == nil {
				c.byParent[p] = map[string]bool{}
			}
			c.byParent[p][key] = true
		}
	}
	c.replaceEntity(old, e)
}

// replaceEntity updates the sets and, for a local endpoint, its policies.
func (c *Calculator) replaceEntity(old, e *entity) {
	key := ""
	if old != nil {
		key = old.key
	} else {
		key = e.key
	}
	if e != nil {
		c.entities[key] = e
	} else {
		delete(c.entities, key)
	}
	for _, s := range c.sets {
		s.update(old, e, &c.track)
	}
	wasLocal := old != nil && old.endpoint() && old.node == c.node
	isLocal := e != nil && e.endpoint() && e.node == c.node
	if wasLocal && !isLocal {
		c.setUses(c.local[key], nil)
		delete(c.local, key)
		c.track.endpoints[key] = true
	}
	if !isLocal {
		return
	}
	l := c.local[key]
	if l == nil {
		l = &localEP{}
		c.local[key] = l
	}
	l.e = e
	l.matched = map[string]bool{}
	for k, p := range c.policies {
		if p.sel != nil && p.sel.Evaluate(e.labels) {
			l.matched[k] = true
		}
	}
	c.redispatch(l)
}

// redispatch recomputes a local endpoint's tiers and profiles.
func (c *Calculator) redispatch(l *localEP) {
	ep := c.dispatch(l)
	if l.uses != nil && reflect.DeepEqual(ep, l.ep) {
		return
	}
	l.ep = ep
	c.setUses(l, chainIDs(&ep))
	c.track.endpoints[ep.ID] = true
}

func chainIDs(ep *ruleset.Endpoint) map[string]bool {
	ids := map[string]bool{}
	for _, list := range [][]ruleset.TierRef{ep.Ingress, ep.Egress, ep.PreDNAT, ep.Untracked, ep.UntrackedEgress, ep.ForwardIn, ep.ForwardOut} {
		for _, t := range list {
			for _, id := range t.Chains {
				ids[id] = true
			}
		}
	}
	for _, id := range ep.IngressProfiles {
		ids[id] = true
	}
	for _, id := range ep.EgressProfiles {
		ids[id] = true
	}
	return ids
}

// setUses moves a local endpoint's chain references to uses.
func (c *Calculator) setUses(l *localEP, uses map[string]bool) {
	for id := range uses {
		if !l.uses[id] {
			c.incChain(id)
		}
	}
	for id := range l.uses {
		if !uses[id] {
			c.decChain(id)
		}
	}
	l.uses = uses
}

func (c *Calculator) incChain(id string) {
	ac := c.chains[id]
	if ac == nil {
		src := c.chainSrc[id]
		ac = &activeChain{c: src}
		c.chains[id] = ac
		for _, s := range src.sets {
			c.incSet(s)
		}
		c.track.chains[id] = true
	}
	ac.refs++
}

func (c *Calculator) decChain(id string) {
	ac := c.chains[id]
	ac.refs--
	if ac.refs > 0 {
		return
	}
	delete(c.chains, id)
	for _, s := range ac.c.sets {
		c.decSet(s.id)
	}
	c.track.chains[id] = true
}

func (c *Calculator) incSet(spec *setSpec) {
	s := c.sets[spec.id]
	if s == nil {
		s = newSetState(spec)
		c.sets[spec.id] = s
		if spec.sel == nil {
			s.addNets(spec.nets, &c.track)
		} else {
			for _, e := range c.entities {
				s.update(nil, e, &c.track)
			}
		}
		c.track.sets[spec.id] = true
	}
	s.refs++
}

func (c *Calculator) decSet(id string) {
	s := c.sets[id]
	s.refs--
	if s.refs > 0 {
		return
	}
	s.clear(&c.track)
	delete(c.sets, id)
	c.track.sets[id] = true
}
