// Package ruleset holds the neutral description of a node's network policy:
// the contract between the pure policy calculation (internal/policy, which
// produces a Ruleset from datastore resources) and the kernel applier
// (internal/dataplane/nft, which renders it into nftables) and the
// explain command (which evaluates it for one packet).
//
// Everything here is plain data with no behaviour beyond small helpers: no
// datastore names, no nftables types. It imports only the standard library,
// and both internal/policy and internal/dataplane/* may import it.
//
// The shape follows how the kernel evaluates it:
//
//   - every packet to or from a local endpoint is dispatched to that
//     endpoint's direction (Ingress: towards the endpoint, Egress: from it);
//   - the endpoint's Tiers are tried in order; inside a tier its policies'
//     rule chains run in order: Allow accepts, Deny drops, Pass leaves the
//     tier (goes to the next tier), Log logs and continues; a policy whose
//     rules all miss falls through to the tier's next policy; when every
//     policy of a tier missed, the tier's EndOfTier action applies (Deny, or
//     Pass for a tier whose defaultAction is Pass);
//   - when every tier passed (or there were none), the endpoint's Profiles
//     run in order, with the same rule semantics, except that Pass (like
//     no match) leaves that profile and goes on to the next one, as in
//     upstream Felix (only an accept ends the profiles);
//   - nothing accepted: Deny.
//
// Rule chains are shared: one Chain per policy (or profile) and direction,
// referenced by ID from every endpoint it applies to. Address matches go
// through named Sets, shared by every rule that uses the same selector or
// the same list of nets, so that a pod appearing only adds set members.
package ruleset

import "net/netip"

// Action is what a matching rule does.
type Action uint8

// Rule actions. EndOfTier actions are Deny or Pass only.
const (
	Allow Action = iota + 1
	Deny
	Pass
	Log
)

func (a Action) String() string {
	switch a {
	case Allow:
		return "Allow"
	case Deny:
		return "Deny"
	case Pass:
		return "Pass"
	case Log:
		return "Log"
	}
	return "Unknown"
}

// Direction is relative to the endpoint: Ingress is traffic towards it,
// Egress traffic from it.
type Direction uint8

// Directions.
const (
	Ingress Direction = iota + 1
	Egress
)

func (d Direction) String() string {
	switch d {
	case Ingress:
		return "ingress"
	case Egress:
		return "egress"
	}
	return "unknown"
}

// Ruleset is the whole desired policy state of one node.
type Ruleset struct {
	// Endpoints are this node's local endpoints, sorted by ID.
	Endpoints []Endpoint
	// Chains are the rule lists of every policy and profile direction that
	// some local endpoint uses, by Chain.ID. Nothing unused is included.
	Chains map[string]*Chain
	// Sets are every set a rule in Chains refers to, by Set.ID.
	Sets map[string]*Set
}

// EndpointKind says whether an endpoint is a workload (a pod's host-side
// veth) or a host endpoint (an interface of the node itself).
type EndpointKind uint8

// Endpoint kinds.
const (
	Workload EndpointKind = iota + 1
	Host
)

// Endpoint is one local endpoint and the policy that applies to it, per
// direction.
type Endpoint struct {
	// ID is stable and unique on the node, e.g. "wep/<namespace>/<name>"
	// or "hep/<name>"; the applier may hash it into a chain name.
	ID   string
	Kind EndpointKind
	// Interface is the kernel interface: the host side of a workload's
	// veth, or a host interface; "*" is a host endpoint for all host
	// interfaces; "" is a host endpoint given only by expectedIPs (the
	// applier finds the interface that holds one of Addrs).
	Interface string
	// Addrs are the endpoint's addresses. For a workload they are the only
	// sources it may send from (anti-spoofing); for a host endpoint they are
	// its expectedIPs.
	Addrs []netip.Prefix
	// Ingress and Egress are the tiers that apply, in order, each listing
	// only the policies that select this endpoint and have that direction.
	// A tier none of whose policies apply is absent.
	Ingress []TierRef
	Egress  []TierRef
	// Profiles are the profile chain IDs per direction, in the endpoint's
	// profile order (missing profiles left out).
	IngressProfiles []string
	EgressProfiles  []string
	// Host endpoints only: the tiers of policies with preDNAT, with
	// doNotTrack and with applyOnForward (empty when none), as upstream
	// splits them: a doNotTrack policy is only in Untracked and
	// UntrackedEgress, a preDNAT one only in PreDNAT (ingress only), any
	// other policy in Ingress/Egress and, with applyOnForward, also in
	// ForwardIn (forwarded traffic arriving through the interface, the
	// ingress rules) and ForwardOut (forwarded traffic leaving through it,
	// the egress rules).
	//
	// PreDNAT, Untracked and UntrackedEgress tiers have EndOfTier Pass: as
	// upstream, nothing is dropped at their end and no profile follows, so
	// a packet no rule decided goes on to the normal (Ingress/Egress)
	// processing. ForwardIn/ForwardOut run without profiles; when they are
	// empty, forwarded traffic is allowed (upstream's "allow forwarded
	// traffic by default").
	PreDNAT   []TierRef
	Untracked []TierRef // ingress (towards the host)
	// UntrackedEgress is the egress half of Untracked (from the host).
	// Added after the first version of this contract.
	UntrackedEgress []TierRef
	ForwardIn       []TierRef
	ForwardOut      []TierRef
}

// TierRef is one tier as it applies to one endpoint and direction.
type TierRef struct {
	Name string
	// Chains are the IDs of the policies' chains, in policy order.
	Chains []string
	// EndOfTier is Deny, or Pass when the tier's defaultAction is Pass.
	EndOfTier Action
}

// Chain is the rule list of one policy or profile in one direction.
type Chain struct {
	// ID is stable and unique: e.g. "pi/<tier>/<name>" (policy ingress),
	// "pe/..." (policy egress), "ri/<profile>", "re/<profile>"; the
	// applier may hash it into a chain name (nft limits names).
	ID    string
	Rules []Rule
}

// Rule is one match-and-act entry. A packet matches when every non-zero
// field matches. The calculator splits a source rule into several Rules
// where one nft rule cannot express it (e.g. numeric ports and named ports
// in one list: numeric ports in one Rule, each named-port set in another);
// all the Rules from one source rule share its Ref.
type Rule struct {
	Ref    RuleRef
	Action Action
	// IPVersion is 0 (both), 4 or 6.
	IPVersion uint8
	// Protocol and NotProtocol are IP protocol numbers; nil: not matched.
	Protocol    *uint8
	NotProtocol *uint8
	// ICMP matches (with Protocol ICMP or ICMPv6); nil: not matched.
	ICMP    *ICMPMatch
	NotICMP *ICMPMatch
	Src     EntityMatch
	Dst     EntityMatch
}

// RuleRef names the source rule for counters, logs and explanations.
type RuleRef struct {
	Tier      string // "" for a profile
	Policy    string // policy name (with namespace "ns/name" for NetworkPolicy) or profile name
	Kind      string // "NetworkPolicy", "GlobalNetworkPolicy" or "Profile"
	Direction Direction
	Index     int // position in the policy's ingress or egress list, from 0
}

// ICMPMatch matches an ICMP type and, when Code is set, a code.
type ICMPMatch struct {
	Type uint8
	Code *uint8
}

// EntityMatch is the source or destination half of a rule. All non-empty
// fields must match (AND).
type EntityMatch struct {
	// InSets: the address is a member of every one of these sets (one set
	// comes from nets, one from a selector, ...). NotInSets: of none.
	InSets    []string
	NotInSets []string
	// Ports: the port is in one of these ranges (TCP, UDP, SCTP only, as
	// upstream). NotPorts: in none of them.
	Ports    []PortRange
	NotPorts []PortRange
	// NamedPortSet: the (address, protocol, port) triple is a member of
	// this set of Kind NamedPorts. Set only on rules split for named ports.
	NamedPortSet string
	// NotNamedPortSets: the triple is a member of none of these NamedPorts
	// sets (named ports in notPorts; ANDed like NotPorts, so never split).
	// Added after the first version of this contract.
	NotNamedPortSets []string
}

// PortRange is an inclusive range of ports; a single port has First == Last.
type PortRange struct {
	First, Last uint16
}

// SetKind says what a set's members are.
type SetKind uint8

// Set kinds.
const (
	// Nets: members are CIDRs (v4 and v6 mixed; the applier splits by family).
	Nets SetKind = iota + 1
	// NamedPorts: members are (address, protocol, port) triples.
	NamedPorts
)

// Set is a named set of addresses, shared by every rule that refers to it.
type Set struct {
	// ID is stable for the same meaning (e.g. "s:" + a hash of the
	// canonical selector, or of the sorted nets list) and short enough
	// for the applier to derive an nft set name from.
	ID   string
	Kind SetKind
	// Source says what the set stands for, for humans: a canonical
	// selector, "nets", or "namedport:<name>/<selector>".
	Source string
	// Nets are the members of a Nets set, sorted, deduplicated.
	Nets []netip.Prefix
	// Members are the members of a NamedPorts set, sorted, deduplicated.
	Members []NamedPortMember
}

// NamedPortMember is one member of a NamedPorts set.
type NamedPortMember struct {
	Addr     netip.Addr
	Protocol uint8
	Port     uint16
}

// Endpoint returns the endpoint with the given interface name.
func (r *Ruleset) Endpoint(iface string) (*Endpoint, bool) {
	for i := range r.Endpoints {
		if r.Endpoints[i].Interface == iface {
			return &r.Endpoints[i], true
		}
	}
	return nil, false
}
