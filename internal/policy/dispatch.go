package policy

import (
	"cmp"
	"slices"

	"github.com/onecalico/calico/internal/ruleset"
)

// dispatch computes a local endpoint's tiers and profiles.
func (c *Calculator) dispatch(l *localEP) ruleset.Endpoint {
	e := l.e
	ep := e.endpointBase()
	pols := make([]*policy, 0, len(l.matched))
	for k := range l.matched {
		pols = append(pols, c.policies[k])
	}
	slices.SortFunc(pols, c.comparePolicies)
	for _, p := range pols {
		end := c.endOfTier(p.tier)
		if e.kind == kindWEP {
			if p.preDNAT || p.untrack {
				continue // host endpoints only
			}
			addTier(&ep.Ingress, p, p.ingress, p.in, end)
			addTier(&ep.Egress, p, p.egress, p.out, end)
			continue
		}
		switch {
		case p.untrack:
			addTier(&ep.Untracked, p, p.ingress, p.in, ruleset.Pass)
			addTier(&ep.UntrackedEgress, p, p.egress, p.out, ruleset.Pass)
		case p.preDNAT:
			addTier(&ep.PreDNAT, p, p.ingress, p.in, ruleset.Pass)
		default:
			addTier(&ep.Ingress, p, p.ingress, p.in, end)
			addTier(&ep.Egress, p, p.egress, p.out, end)
			if p.forward {
				addTier(&ep.ForwardIn, p, p.ingress, p.in, end)
				addTier(&ep.ForwardOut, p, p.egress, p.out, end)
			}
		}
	}
	for _, name := range e.profiles {
		if c.profiles[name] != nil {
			ep.IngressProfiles = append(ep.IngressProfiles, chainProfileIn+name)
			ep.EgressProfiles = append(ep.EgressProfiles, chainProfileOut+name)
		}
	}
	return ep
}

// addTier appends p's chain to the list, opening a new tier when p is in
// a different tier from the last one.
func addTier(list *[]ruleset.TierRef, p *policy, applies bool, cp *compiled, end ruleset.Action) {
	if !applies {
		return
	}
	if n := len(*list); n > 0 && (*list)[n-1].Name == p.tier {
		(*list)[n-1].Chains = append((*list)[n-1].Chains, cp.chain.ID)
		return
	}
	*list = append(*list, ruleset.TierRef{Name: p.tier, Chains: []string{cp.chain.ID}, EndOfTier: end})
}

// tier returns a tier's settings. A tier with no resource (even a
// built-in one) is not valid: as upstream, it sorts after every existing
// tier and denies at its end.
func (c *Calculator) tier(name string) tierInfo {
	return c.tiers[name]
}

func (c *Calculator) endOfTier(name string) ruleset.Action {
	if c.tier(name).pass {
		return ruleset.Pass
	}
	return ruleset.Deny
}

// compareOrder orders by order, a missing order last.
func compareOrder(a, b *float64) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return cmp.Compare(*a, *b)
}

// comparePolicies orders by tier (existing tiers first, then order, then
// name), then by policy order, then by name, as upstream's policy sorter.
func (c *Calculator) comparePolicies(a, b *policy) int {
	if a.tier != b.tier {
		ta, tb := c.tiers[a.tier], c.tiers[b.tier]
		if ta.valid != tb.valid {
			if ta.valid {
				return -1
			}
			return 1
		}
		if r := compareOrder(ta.order, tb.order); r != 0 {
			return r
		}
		return cmp.Compare(a.tier, b.tier)
	}
	if r := compareOrder(a.order, b.order); r != 0 {
		return r
	}
	return cmp.Compare(a.name, b.name)
}
