package policy

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/onecalico/calico/internal/ruleset"
)

// Packet is what the evaluator looks at: addresses, protocol, ports (TCP,
// UDP, SCTP, UDPLite) or ICMP type and code (ICMP, ICMPv6).
type Packet struct {
	Src, Dst         netip.Addr
	Protocol         uint8
	SrcPort, DstPort uint16
	ICMPType         uint8
	ICMPCode         uint8
}

// Reason says what decided a verdict.
type Reason uint8

// Reasons.
const (
	// ByRule: an Allow or Deny rule of a policy or profile matched (Rule).
	ByRule Reason = iota + 1
	// EndOfTier: no policy of Tier allowed, denied or passed the packet,
	// and the tier's end-of-tier action is Deny.
	EndOfTier
	// NoProfileAllowed: every tier passed (or none applied) and no profile
	// allowed the packet: the endpoint's default deny.
	NoProfileAllowed
	// NotLocal: the endpoint is not one of the ruleset's local endpoints,
	// so this node's policy does not apply to it.
	NotLocal
	// NoPolicy: the host endpoint has no policy of the stage evaluated
	// (EvaluateStage): the stage lets the packet through.
	NoPolicy
	// Undecided: a preDNAT or untracked stage ran and no rule decided:
	// the packet goes on to the next stage.
	Undecided
	// AllPassed: every forward tier passed the packet; forward policy has
	// no profiles, so it is dropped.
	AllPassed
)

func (r Reason) String() string {
	switch r {
	case ByRule:
		return "rule"
	case EndOfTier:
		return "end of tier"
	case NoProfileAllowed:
		return "no profile allowed it (default deny)"
	case NotLocal:
		return "not a local endpoint"
	case NoPolicy:
		return "no policy of this kind applies"
	case Undecided:
		return "no rule decided; the packet goes on"
	case AllPassed:
		return "every tier passed it and forward policy has no profiles (default deny)"
	}
	return "unknown"
}

// Verdict is the outcome of evaluating one packet at one endpoint and
// direction.
type Verdict struct {
	// Action is Allow or Deny (NotLocal: Allow, nothing here applies).
	Action ruleset.Action
	Reason Reason
	// Rule is the deciding rule (Reason ByRule).
	Rule ruleset.RuleRef
	// Tier is the tier that decided (ByRule in a policy, EndOfTier).
	Tier string
	// Passed are the tiers the packet passed on its way (a Pass rule or a
	// Pass end-of-tier action).
	Passed []string
	// Logged are the Log rules that matched on the way.
	Logged []ruleset.RuleRef
}

// String renders the verdict for people, e.g. "Allow by GlobalNetworkPolicy
// allow-dns (tier default) ingress rule 0".
func (v *Verdict) String() string {
	switch v.Reason {
	case ByRule:
		s := v.Action.String() + " by " + v.Rule.Kind + " " + v.Rule.Policy
		if v.Rule.Tier != "" {
			s += " (tier " + v.Rule.Tier + ")"
		}
		return s + " " + v.Rule.Direction.String() + " rule " + itoa(v.Rule.Index)
	case EndOfTier:
		return "Deny at the end of tier " + v.Tier + " (no policy in it allowed or passed the packet)"
	case NoProfileAllowed:
		return "Deny: " + v.Reason.String()
	case NotLocal:
		return "no policy here: " + v.Reason.String()
	case NoPolicy, Undecided:
		return "no verdict: " + v.Reason.String()
	case AllPassed:
		return "Deny: " + v.Reason.String()
	}
	return v.Action.String()
}

// FindEndpoint returns the local endpoint with the given ID.
func FindEndpoint(rs *ruleset.Ruleset, id string) (*ruleset.Endpoint, bool) {
	i, ok := slices.BinarySearchFunc(rs.Endpoints, id, func(e ruleset.Endpoint, id string) int { return strings.Compare(e.ID, id) })
	if !ok {
		return nil, false
	}
	return &rs.Endpoints[i], true
}

// FindEndpointByAddr returns the local endpoint that owns addr.
func FindEndpointByAddr(rs *ruleset.Ruleset, addr netip.Addr) (*ruleset.Endpoint, bool) {
	for i := range rs.Endpoints {
		for _, p := range rs.Endpoints[i].Addrs {
			if p.Contains(addr) {
				return &rs.Endpoints[i], true
			}
		}
	}
	return nil, false
}

// Evaluate decides one packet at one local endpoint in one direction
// (Ingress: the packet goes to the endpoint; Egress: it comes from it), as
// the kernel does for a new flow: the endpoint's tiers in order, then its
// profiles, then the default deny.
func Evaluate(rs *ruleset.Ruleset, endpointID string, dir ruleset.Direction, p Packet) Verdict {
	ep, ok := FindEndpoint(rs, endpointID)
	if !ok {
		return Verdict{Action: ruleset.Allow, Reason: NotLocal}
	}
	tiers, profiles := ep.Ingress, ep.IngressProfiles
	if dir == ruleset.Egress {
		tiers, profiles = ep.Egress, ep.EgressProfiles
	}
	var v Verdict
	for _, t := range tiers {
		if done := v.tier(rs, t, p); done {
			return v
		}
	}
	for _, id := range profiles {
		if act, ref, ok := v.chain(rs, id, p); ok && act != ruleset.Pass {
			v.Action, v.Reason, v.Rule = act, ByRule, ref
			return v
		}
		// Pass, or no match: on to the next profile.
	}
	v.Action, v.Reason = ruleset.Deny, NoProfileAllowed
	return v
}

// tier runs one tier; it reports whether the verdict is final.
func (v *Verdict) tier(rs *ruleset.Ruleset, t ruleset.TierRef, p Packet) bool {
	for _, id := range t.Chains {
		act, ref, ok := v.chain(rs, id, p)
		if !ok {
			continue
		}
		if act == ruleset.Pass {
			v.Passed = append(v.Passed, t.Name)
			return false
		}
		v.Action, v.Reason, v.Rule, v.Tier = act, ByRule, ref, t.Name
		return true
	}
	if t.EndOfTier == ruleset.Pass {
		v.Passed = append(v.Passed, t.Name)
		return false
	}
	v.Action, v.Reason, v.Tier = ruleset.Deny, EndOfTier, t.Name
	return true
}

// chain runs one chain: the first matching Allow, Deny or Pass rule
// decides (ok); Log rules are recorded and evaluation goes on.
func (v *Verdict) chain(rs *ruleset.Ruleset, id string, p Packet) (ruleset.Action, ruleset.RuleRef, bool) {
	ch := rs.Chains[id]
	if ch == nil {
		return 0, ruleset.RuleRef{}, false
	}
	for i := range ch.Rules {
		r := &ch.Rules[i]
		if !MatchRule(rs, r, p) {
			continue
		}
		if r.Action == ruleset.Log {
			v.Logged = append(v.Logged, r.Ref)
			continue
		}
		return r.Action, r.Ref, true
	}
	return 0, ruleset.RuleRef{}, false
}

// MatchRule reports whether every match of r holds for p.
func MatchRule(rs *ruleset.Ruleset, r *ruleset.Rule, p Packet) bool {
	ver := uint8(6)
	if p.Src.Is4() {
		ver = 4
	}
	if r.IPVersion != 0 && r.IPVersion != ver {
		return false
	}
	if r.Protocol != nil && *r.Protocol != p.Protocol {
		return false
	}
	if r.NotProtocol != nil && *r.NotProtocol == p.Protocol {
		return false
	}
	icmp := p.Protocol == protoICMP && ver == 4 || p.Protocol == protoICMPv6 && ver == 6
	if r.ICMP != nil && (!icmp || !icmpMatches(r.ICMP, p)) {
		return false
	}
	if r.NotICMP != nil && (!icmp || icmpMatches(r.NotICMP, p)) {
		return false
	}
	return matchEntity(rs, &r.Src, p.Src, p.SrcPort, p.Protocol) &&
		matchEntity(rs, &r.Dst, p.Dst, p.DstPort, p.Protocol)
}

// icmpMatches: the type matches and, when the match has a code, the code.
func icmpMatches(m *ruleset.ICMPMatch, p Packet) bool {
	return m.Type == p.ICMPType && (m.Code == nil || *m.Code == p.ICMPCode)
}

func hasPorts(proto uint8) bool {
	switch proto {
	case protoTCP, protoUDP, protoSCTP, 136:
		return true
	}
	return false
}

func matchEntity(rs *ruleset.Ruleset, e *ruleset.EntityMatch, addr netip.Addr, port uint16, proto uint8) bool {
	for _, id := range e.InSets {
		if !inSet(rs.Sets[id], addr) {
			return false
		}
	}
	for _, id := range e.NotInSets {
		if inSet(rs.Sets[id], addr) {
			return false
		}
	}
	if len(e.Ports)+len(e.NotPorts)+len(e.NotNamedPortSets) > 0 || e.NamedPortSet != "" {
		if !hasPorts(proto) {
			return false
		}
	}
	if len(e.Ports) > 0 && !inRanges(e.Ports, port) {
		return false
	}
	if inRanges(e.NotPorts, port) {
		return false
	}
	m := ruleset.NamedPortMember{Addr: addr, Protocol: proto, Port: port}
	if e.NamedPortSet != "" && !hasMember(rs.Sets[e.NamedPortSet], m) {
		return false
	}
	for _, id := range e.NotNamedPortSets {
		if hasMember(rs.Sets[id], m) {
			return false
		}
	}
	return true
}

func inRanges(rs []ruleset.PortRange, port uint16) bool {
	for _, r := range rs {
		if port >= r.First && port <= r.Last {
			return true
		}
	}
	return false
}

func inSet(s *ruleset.Set, addr netip.Addr) bool {
	if s == nil {
		return false
	}
	for _, n := range s.Nets {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}

func hasMember(s *ruleset.Set, m ruleset.NamedPortMember) bool {
	if s == nil {
		return false
	}
	_, ok := slices.BinarySearchFunc(s.Members, m, compareMember)
	return ok
}
