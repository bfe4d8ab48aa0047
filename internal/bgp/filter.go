//go:build !nogobgp

package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	gobgpapi "github.com/osrg/gobgp/v3/api"

	"github.com/onecalico/calico/internal/api"
)

var (
	familyV4Filter = &gobgpapi.Family{Afi: gobgpapi.Family_AFI_IP, Safi: gobgpapi.Family_SAFI_UNICAST}
	familyV6Filter = &gobgpapi.Family{Afi: gobgpapi.Family_AFI_IP6, Safi: gobgpapi.Family_SAFI_UNICAST}
)

// policies is GoBGP's form of every peer's rules: one global import and
// one global export policy whose statements match the peer (a neighbor
// set) and the rule's conditions. Both always exist (maybe empty), so
// their assignments (default accept) stay valid. A peer's next-hop mode
// is an export statement that changes the next hop and decides nothing
// (evaluation continues), placed before its rules.
func policies(peers []Peer, exportPools []netip.Prefix) *gobgpapi.SetPoliciesRequest {
	req := &gobgpapi.SetPoliciesRequest{}
	imp := &gobgpapi.Policy{Name: "calico-import"}
	exp := &gobgpapi.Policy{Name: "calico-export"}
	for i, p := range peers {
		if len(p.Import) == 0 && len(p.Export) == 0 && p.NextHop == NextHopAuto {
			continue
		}
		nset := fmt.Sprintf("peer%d", i)
		req.DefinedSets = append(req.DefinedSets, &gobgpapi.DefinedSet{
			DefinedType: gobgpapi.DefinedType_NEIGHBOR, Name: nset, List: []string{netip.PrefixFrom(p.Addr, p.Addr.BitLen()).String()}})
		if p.NextHop != NextHopAuto {
			nh := &gobgpapi.NexthopAction{Self: p.NextHop == NextHopSelf, Unchanged: p.NextHop == NextHopKeep}
			exp.Statements = append(exp.Statements, &gobgpapi.Statement{Name: nset + "-nexthop",
				Conditions: &gobgpapi.Conditions{NeighborSet: &gobgpapi.MatchSet{Type: gobgpapi.MatchSet_ANY, Name: nset}},
				Actions:    &gobgpapi.Actions{RouteAction: gobgpapi.RouteAction_NONE, Nexthop: nh}})
		}
		req.DefinedSets, imp.Statements = statements(req.DefinedSets, imp.Statements, nset+"-import", nset, p.Import)
		req.DefinedSets, exp.Statements = statements(req.DefinedSets, exp.Statements, nset+"-export", nset, p.Export)
	}
	req.DefinedSets, exp.Statements = exportDefault(req.DefinedSets, exp.Statements, exportPools)
	req.Policies = []*gobgpapi.Policy{imp, exp}
	return req
}

// exportDefault ends the export policy as upstream's peer export filter
// ends: after the BGPFilter rules, a route learned from a peer is passed
// on only inside a pool without disableBGPExport; everything else
// learned is rejected. (This node's own routes are exported as Calc
// chose them.) One statement per family and learned route type.
func exportDefault(sets []*gobgpapi.DefinedSet, sts []*gobgpapi.Statement, pools []netip.Prefix) ([]*gobgpapi.DefinedSet, []*gobgpapi.Statement) {
	for _, fam := range []*gobgpapi.Family{familyV4Filter, familyV6Filter} {
		name := "calico-pools-v4"
		if fam == familyV6Filter {
			name = "calico-pools-v6"
		}
		var prefixes []*gobgpapi.Prefix
		for _, p := range pools {
			if p.Addr().Is6() == (fam == familyV6Filter) {
				prefixes = append(prefixes, &gobgpapi.Prefix{IpPrefix: p.String(), MaskLengthMin: uint32(p.Bits()), MaskLengthMax: uint32(p.Addr().BitLen())})
			}
		}
		if len(prefixes) > 0 {
			sets = append(sets, &gobgpapi.DefinedSet{DefinedType: gobgpapi.DefinedType_PREFIX, Name: name, Prefixes: prefixes})
		}
		for _, rt := range []gobgpapi.Conditions_RouteType{gobgpapi.Conditions_ROUTE_TYPE_INTERNAL, gobgpapi.Conditions_ROUTE_TYPE_EXTERNAL} {
			cond := &gobgpapi.Conditions{AfiSafiIn: []*gobgpapi.Family{fam}, RouteType: rt}
			if len(prefixes) > 0 {
				cond.PrefixSet = &gobgpapi.MatchSet{Type: gobgpapi.MatchSet_INVERT, Name: name}
			}
			sts = append(sts, &gobgpapi.Statement{Name: fmt.Sprintf("%s-learned-%d", name, rt), Conditions: cond,
				Actions: &gobgpapi.Actions{RouteAction: gobgpapi.RouteAction_REJECT}})
		}
	}
	return sets, sts
}

// statements appends the statements (and their sets) of rules. A rule
// with RemotePeers becomes two statements, for routes learned over iBGP
// and over eBGP (GoBGP's route types), each deciding as the rule does.
func statements(sets []*gobgpapi.DefinedSet, sts []*gobgpapi.Statement, prefix, nset string, rules []FilterRule) ([]*gobgpapi.DefinedSet, []*gobgpapi.Statement) {
	for j, r := range rules {
		name := fmt.Sprintf("%s-%d", prefix, j)
		sets = append(sets, ruleSets(r, name)...)
		act := &gobgpapi.Actions{RouteAction: gobgpapi.RouteAction_REJECT}
		runs := prependRuns(r.Prepend)
		if r.Accept {
			act = acceptActions(r, runs)
		}
		var first []*gobgpapi.Statement
		if !r.RemotePeers {
			first = append(first, &gobgpapi.Statement{Name: name, Conditions: ruleConditions(r, name, nset), Actions: act})
		} else {
			for k, rt := range []gobgpapi.Conditions_RouteType{gobgpapi.Conditions_ROUTE_TYPE_INTERNAL, gobgpapi.Conditions_ROUTE_TYPE_EXTERNAL} {
				c := ruleConditions(r, name, nset)
				c.RouteType = rt
				first = append(first, &gobgpapi.Statement{Name: fmt.Sprintf("%s-%d", name, k), Conditions: c, Actions: act})
			}
		}
		if !r.Accept || len(runs) < 2 {
			sts = append(sts, first...)
			continue
		}
		sets, sts = prependChain(sets, sts, first, r, runs, name, nset)
	}
	return sets, sts
}

// prependRun is n copies of one AS number in a prepended list.
type prependRun struct{ as, n uint32 }

// prependRuns splits a prepended list into runs of one AS number.
func prependRuns(p []uint32) []prependRun {
	var runs []prependRun
	for _, as := range p {
		if len(runs) > 0 && runs[len(runs)-1].as == as {
			runs[len(runs)-1].n++
			continue
		}
		runs = append(runs, prependRun{as, 1})
	}
	return runs
}

// prependChain appends the statements of an accept rule that prepends
// several different AS numbers: GoBGP prepends one number (repeated) per
// statement, so the rule becomes a chain. The rule's own statements
// prepend the last run, mark the route with a private extended community
// and go on (action none); one statement per earlier run, matching only
// the mark, prepends it; the last one also removes the mark, applies the
// other operations and accepts. The mark keeps the later statements from
// re-evaluating the rule's conditions on the changed path (an AS path
// prefix would no longer match).
func prependChain(sets []*gobgpapi.DefinedSet, sts, first []*gobgpapi.Statement, r FilterRule, runs []prependRun, name, nset string) ([]*gobgpapi.DefinedSet, []*gobgpapi.Statement) {
	mark := fmt.Sprintf("65535:%d", len(sts)+1)
	last := runs[len(runs)-1]
	for _, st := range first {
		st.Actions = &gobgpapi.Actions{RouteAction: gobgpapi.RouteAction_NONE,
			AsPrepend:    &gobgpapi.AsPrependAction{Asn: last.as, Repeat: last.n},
			ExtCommunity: &gobgpapi.CommunityAction{Type: gobgpapi.CommunityAction_ADD, Communities: []string{"rt:" + mark}}}
		sts = append(sts, st)
	}
	sets = append(sets, &gobgpapi.DefinedSet{DefinedType: gobgpapi.DefinedType_EXT_COMMUNITY, Name: name + "-m", List: []string{"rt:^" + mark + "$"}})
	for i := len(runs) - 2; i >= 0; i-- {
		act := &gobgpapi.Actions{RouteAction: gobgpapi.RouteAction_NONE, AsPrepend: &gobgpapi.AsPrependAction{Asn: runs[i].as, Repeat: runs[i].n}}
		if i == 0 {
			act = acceptActions(r, runs[:1])
			act.ExtCommunity = &gobgpapi.CommunityAction{Type: gobgpapi.CommunityAction_REMOVE, Communities: []string{"rt:^" + mark + "$"}}
		}
		fam := familyV4Filter
		if r.V6 {
			fam = familyV6Filter
		}
		sts = append(sts, &gobgpapi.Statement{Name: fmt.Sprintf("%s-p%d", name, i), Actions: act,
			Conditions: &gobgpapi.Conditions{NeighborSet: &gobgpapi.MatchSet{Type: gobgpapi.MatchSet_ANY, Name: nset}, AfiSafiIn: []*gobgpapi.Family{fam},
				ExtCommunitySet: &gobgpapi.MatchSet{Type: gobgpapi.MatchSet_ANY, Name: name + "-m"}}})
	}
	return sets, sts
}

// communitySetType is the defined-set type of a community value.
func communitySetType(v string) gobgpapi.DefinedType {
	if strings.Count(v, ":") == 2 {
		return gobgpapi.DefinedType_LARGE_COMMUNITY
	}
	return gobgpapi.DefinedType_COMMUNITY
}

// ruleSets defines the rule's prefix, community and AS path sets, named
// after the statement.
func ruleSets(r FilterRule, name string) []*gobgpapi.DefinedSet {
	var sets []*gobgpapi.DefinedSet
	switch {
	case len(r.Exact) > 0:
		set := &gobgpapi.DefinedSet{DefinedType: gobgpapi.DefinedType_PREFIX, Name: name}
		for _, p := range r.Exact {
			set.Prefixes = append(set.Prefixes, &gobgpapi.Prefix{IpPrefix: p.String(), MaskLengthMin: uint32(p.Bits()), MaskLengthMax: uint32(p.Bits())})
		}
		sets = append(sets, set)
	case r.Op != "":
		sets = append(sets, &gobgpapi.DefinedSet{DefinedType: gobgpapi.DefinedType_PREFIX, Name: name,
			Prefixes: []*gobgpapi.Prefix{{IpPrefix: r.Prefix.String(), MaskLengthMin: uint32(r.Min), MaskLengthMax: uint32(r.Max)}}})
	}
	if r.Community != "" {
		sets = append(sets, &gobgpapi.DefinedSet{DefinedType: communitySetType(r.Community), Name: name + "-c", List: []string{"^" + r.Community + "$"}})
	}
	if len(r.ASPath) > 0 {
		re := "^"
		for _, as := range r.ASPath {
			re += strconv.FormatUint(uint64(as), 10) + "_"
		}
		sets = append(sets, &gobgpapi.DefinedSet{DefinedType: gobgpapi.DefinedType_AS_PATH, Name: name + "-a", List: []string{re}})
	}
	return sets
}

// ruleConditions matches the peer, the rule's family and its sets.
func ruleConditions(r FilterRule, name, nset string) *gobgpapi.Conditions {
	fam := familyV4Filter
	if r.V6 {
		fam = familyV6Filter
	}
	cond := &gobgpapi.Conditions{NeighborSet: &gobgpapi.MatchSet{Type: gobgpapi.MatchSet_ANY, Name: nset},
		AfiSafiIn: []*gobgpapi.Family{fam}}
	if r.Op != "" || len(r.Exact) > 0 {
		ms := &gobgpapi.MatchSet{Type: gobgpapi.MatchSet_ANY, Name: name}
		if len(r.Exact) == 0 && (r.Op == api.BGPFilterNotEqual || r.Op == api.BGPFilterNotIn) {
			ms.Type = gobgpapi.MatchSet_INVERT
		}
		cond.PrefixSet = ms
	}
	for _, p := range r.NextHops {
		cond.NextHopInList = append(cond.NextHopInList, p.String())
	}
	if r.Community != "" {
		ms := &gobgpapi.MatchSet{Type: gobgpapi.MatchSet_ANY, Name: name + "-c"}
		if communitySetType(r.Community) == gobgpapi.DefinedType_COMMUNITY {
			cond.CommunitySet = ms
		} else {
			cond.LargeCommunitySet = ms
		}
	}
	if len(r.ASPath) > 0 {
		cond.AsPathSet = &gobgpapi.MatchSet{Type: gobgpapi.MatchSet_ANY, Name: name + "-a"}
	}
	if r.LocalOnly {
		cond.RouteType = gobgpapi.Conditions_ROUTE_TYPE_LOCAL
	}
	return cond
}

// acceptActions accepts a route with the rule's operations; of the
// prepended numbers it applies the first run (the only one, unless the
// rule is a prependChain).
func acceptActions(r FilterRule, runs []prependRun) *gobgpapi.Actions {
	act := &gobgpapi.Actions{RouteAction: gobgpapi.RouteAction_ACCEPT}
	var std, large []string
	for _, c := range r.AddCommunities {
		if communitySetType(c) == gobgpapi.DefinedType_LARGE_COMMUNITY {
			large = append(large, c)
		} else {
			std = append(std, c)
		}
	}
	if len(std) > 0 {
		act.Community = &gobgpapi.CommunityAction{Type: gobgpapi.CommunityAction_ADD, Communities: std}
	}
	if len(large) > 0 {
		act.LargeCommunity = &gobgpapi.CommunityAction{Type: gobgpapi.CommunityAction_ADD, Communities: large}
	}
	if len(runs) > 0 {
		act.AsPrepend = &gobgpapi.AsPrependAction{Asn: runs[0].as, Repeat: runs[0].n}
	}
	if r.SetPriority > 0 {
		act.LocalPref = &gobgpapi.LocalPrefAction{Value: MaxLocalPref - r.SetPriority}
	}
	return act
}

// reconcilePolicies installs the peers' filter rules when they changed
// and re-evaluates every session's routes both ways (a soft reset: no
// session goes down).
func (s *Speaker) reconcilePolicies(ctx context.Context, peers []Peer, exportPools []netip.Prefix) error {
	req := policies(peers, exportPools)
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
