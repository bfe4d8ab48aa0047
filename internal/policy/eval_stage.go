package policy

import "github.com/onecalico/calico/internal/ruleset"

// Stage is one of a host endpoint's policy stages besides normal
// ingress and egress policy.
type Stage uint8

// Stages, in the order the kernel meets them for a packet arriving at the
// node: Untracked (raw prerouting), PreDNAT, then Forward for a forwarded
// packet (normal policy for one to the host). Leaving the node: Untracked
// (raw output, the host's own packets), Forward for a forwarded packet.
const (
	// Untracked is doNotTrack policy: Ingress is the Untracked tiers,
	// Egress the UntrackedEgress ones. An Allow also stops connection
	// tracking, and the node's later stages accept the packet.
	Untracked Stage = iota + 1
	// PreDNAT is preDNAT policy (ingress only), before DNAT.
	PreDNAT
	// Forward is applyOnForward policy for forwarded traffic: Ingress is
	// ForwardIn (arriving through the interface), Egress ForwardOut.
	Forward
)

func (s Stage) String() string {
	switch s {
	case Untracked:
		return "untracked"
	case PreDNAT:
		return "preDNAT"
	case Forward:
		return "forward"
	}
	return "unknown"
}

// StageTiers returns ep's tiers of stage s in direction dir.
func StageTiers(ep *ruleset.Endpoint, s Stage, dir ruleset.Direction) []ruleset.TierRef {
	switch {
	case s == Untracked && dir == ruleset.Ingress:
		return ep.Untracked
	case s == Untracked:
		return ep.UntrackedEgress
	case s == PreDNAT && dir == ruleset.Ingress:
		return ep.PreDNAT
	case s == Forward && dir == ruleset.Ingress:
		return ep.ForwardIn
	case s == Forward:
		return ep.ForwardOut
	}
	return nil
}

// EvaluateStage decides one packet at a host endpoint's untracked,
// preDNAT or forward stage, as the kernel's policy table does:
//
//   - no tiers in the stage: NoPolicy (the stage lets the packet
//     through; for Forward, forwarded traffic is allowed by default);
//   - Untracked and PreDNAT: the tiers in order; an Allow or Deny rule
//     decides; a Pass, or a tier no rule decided, goes on to the next
//     tier (no end-of-tier drop, no profiles); after the last,
//     Undecided: the next stage decides;
//   - Forward: as normal policy without profiles: a tier's end-of-tier
//     action applies, and a packet every tier passed is dropped
//     (AllPassed).
func EvaluateStage(rs *ruleset.Ruleset, endpointID string, s Stage, dir ruleset.Direction, p Packet) Verdict {
	ep, ok := FindEndpoint(rs, endpointID)
	if !ok {
		return Verdict{Action: ruleset.Allow, Reason: NotLocal}
	}
	tiers := StageTiers(ep, s, dir)
	if len(tiers) == 0 {
		return Verdict{Action: ruleset.Allow, Reason: NoPolicy}
	}
	var v Verdict
	if s == Forward {
		for _, t := range tiers {
			if done := v.tier(rs, t, p); done {
				return v
			}
		}
		v.Action, v.Reason = ruleset.Deny, AllPassed
		return v
	}
	for _, t := range tiers {
		for _, id := range t.Chains {
			act, ref, ok := v.chain(rs, id, p)
			if !ok {
				continue
			}
			if act == ruleset.Pass {
				v.Passed = append(v.Passed, t.Name)
				break
			}
			v.Action, v.Reason, v.Rule, v.Tier = act, ByRule, ref, t.Name
			return v
		}
	}
	v.Action, v.Reason = ruleset.Allow, Undecided
	return v
}
