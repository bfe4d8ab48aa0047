package bgp

import (
	"context"
	"fmt"
	"net/netip"

	gobgpapi "github.com/osrg/gobgp/v3/api"

	"github.com/onecalico/calico/internal/api"
)

// FilterRule is one IPv4 BGPFilter rule: routes matching Prefix by Op
// (api.BGPFilterEqual, NotEqual, In, NotIn; "" matches every route) with
// a length in [Min, Max] (In and NotIn) are accepted or rejected. The
// first matching rule decides; without one, the default applies (import
// everything, export what this node originates).
type FilterRule struct {
	Prefix   netip.Prefix
	Op       string
	Min, Max int
	Accept   bool
}

// filterRules converts the IPv4 rules of the named filters, in order.
// Rules with match fields this speaker does not implement are left out
// and reported.
func (c *calc) filterRules(names []string, what string) (imp, exp []FilterRule) {
	for _, name := range names {
		f, ok := c.in.Filters[name]
		if !ok {
			c.problem("%s: BGPFilter %s does not exist", what, name)
			continue
		}
		imp = append(imp, c.convertRules(f.ImportV4, what+" filter "+name+" importV4")...)
		exp = append(exp, c.convertRules(f.ExportV4, what+" filter "+name+" exportV4")...)
	}
	return imp, exp
}

func (c *calc) convertRules(rules []api.BGPFilterRule, what string) []FilterRule {
	var out []FilterRule
	for i, r := range rules {
		if r.Source != "" || r.Interface != "" || r.PeerType != "" || r.Communities != nil || len(r.ASPathPrefix) > 0 ||
			r.Priority != nil || len(r.Operations) > 0 {
			c.problem("%s rule %d: only cidr, matchOperator, prefixLength and action are supported; rule ignored", what, i)
			continue
		}
		fr := FilterRule{Op: r.MatchOperator, Accept: r.Action == api.BGPFilterAccept}
		if r.CIDR != "" {
			p, err := netip.ParsePrefix(r.CIDR)
			if err != nil || !p.Addr().Is4() {
				c.problem("%s rule %d: cidr %q is not an IPv4 prefix; rule ignored", what, i, r.CIDR)
				continue
			}
			fr.Prefix = p.Masked()
			fr.Min, fr.Max = p.Bits(), p.Bits()
			if fr.Op == api.BGPFilterIn || fr.Op == api.BGPFilterNotIn {
				fr.Max = 32
				if pl := r.PrefixLength; pl != nil && pl.Min != nil {
					fr.Min = max(fr.Min, int(*pl.Min))
				}
				if pl := r.PrefixLength; pl != nil && pl.Max != nil {
					fr.Max = int(*pl.Max)
				}
			}
		}
		out = append(out, fr)
	}
	return out
}

// policies is GoBGP's form of every peer's rules: one global import and
// one global export policy whose statements match the peer (a neighbor
// set) and the rule's prefix set. Both always exist (maybe empty), so
// their assignments (default accept) stay valid.
func policies(peers []Peer) *gobgpapi.SetPoliciesRequest {
	req := &gobgpapi.SetPoliciesRequest{}
	imp := &gobgpapi.Policy{Name: "calico-import"}
	exp := &gobgpapi.Policy{Name: "calico-export"}
	for i, p := range peers {
		if len(p.Import) == 0 && len(p.Export) == 0 {
			continue
		}
		nset := fmt.Sprintf("peer%d", i)
		req.DefinedSets = append(req.DefinedSets, &gobgpapi.DefinedSet{
			DefinedType: gobgpapi.DefinedType_NEIGHBOR, Name: nset, List: []string{p.Addr.String() + "/32"}})
		req.DefinedSets, imp.Statements = statements(req.DefinedSets, imp.Statements, nset+"-import", nset, p.Import)
		req.DefinedSets, exp.Statements = statements(req.DefinedSets, exp.Statements, nset+"-export", nset, p.Export)
	}
	req.Policies = []*gobgpapi.Policy{imp, exp}
	return req
}

// statements appends one statement (and its prefix set) per rule.
func statements(sets []*gobgpapi.DefinedSet, sts []*gobgpapi.Statement, prefix, nset string, rules []FilterRule) ([]*gobgpapi.DefinedSet, []*gobgpapi.Statement) {
	for j, r := range rules {
		name := fmt.Sprintf("%s-%d", prefix, j)
		cond := &gobgpapi.Conditions{NeighborSet: &gobgpapi.MatchSet{Type: gobgpapi.MatchSet_ANY, Name: nset}}
		if r.Op != "" {
			sets = append(sets, &gobgpapi.DefinedSet{DefinedType: gobgpapi.DefinedType_PREFIX, Name: name,
				Prefixes: []*gobgpapi.Prefix{{IpPrefix: r.Prefix.String(), MaskLengthMin: uint32(r.Min), MaskLengthMax: uint32(r.Max)}}})
			ms := &gobgpapi.MatchSet{Type: gobgpapi.MatchSet_ANY, Name: name}
			if r.Op == api.BGPFilterNotEqual || r.Op == api.BGPFilterNotIn {
				ms.Type = gobgpapi.MatchSet_INVERT
			}
			cond.PrefixSet = ms
		}
		act := gobgpapi.RouteAction_REJECT
		if r.Accept {
			act = gobgpapi.RouteAction_ACCEPT
		}
		sts = append(sts, &gobgpapi.Statement{Name: name, Conditions: cond, Actions: &gobgpapi.Actions{RouteAction: act}})
	}
	return sets, sts
}

// reconcilePolicies installs the peers' filter rules when they changed
// and re-evaluates every session's routes both ways (a soft reset: no
// session goes down).
func (s *Speaker) reconcilePolicies(ctx context.Context, peers []Peer) error {
	req := policies(peers)
	h := hashOf(req)
	if h == s.policyHash {
		return nil
	}
	// SetPolicies replaces the definitions but keeps the assignments.
	if err := s.srv.SetPolicies(ctx, req); err != nil {
		return fmt.Errorf("set BGP filters: %w", err)
	}
	if s.policyHash == "" {
		for i, dir := range []gobgpapi.PolicyDirection{gobgpapi.PolicyDirection_IMPORT, gobgpapi.PolicyDirection_EXPORT} {
			err := s.srv.SetPolicyAssignment(ctx, &gobgpapi.SetPolicyAssignmentRequest{Assignment: &gobgpapi.PolicyAssignment{
				Name: "global", Direction: dir, Policies: []*gobgpapi.Policy{{Name: req.Policies[i].Name}}, DefaultAction: gobgpapi.RouteAction_ACCEPT}})
			if err != nil {
				return fmt.Errorf("assign BGP filters: %w", err)
			}
		}
	}
	s.policyHash = h
	n := len(req.Policies[0].Statements) + len(req.Policies[1].Statements)
	s.log.Info("BGP filters applied", "component", "bgp", "rules", n)
	for _, p := range peers {
		err := s.srv.ResetPeer(ctx, &gobgpapi.ResetPeerRequest{Address: p.Addr.String(), Soft: true, Direction: gobgpapi.ResetPeerRequest_BOTH})
		if err != nil {
			s.log.Debug("soft reset", "component", "bgp", "peer", p.Key(), "err", err)
		}
	}
	return nil
}
