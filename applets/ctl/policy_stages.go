package ctl

import (
	"fmt"
	"io"
	"strings"

	"github.com/onecalico/calico/internal/policy"
	"github.com/onecalico/calico/internal/ruleset"
)

// An explanation walks a flow through the stages the kernel's policy
// table (internal/dataplane/nft) puts it through, on the source's node
// and then on the destination's:
//
//   - leaving a host: failsafe outbound ports, then untracked (doNotTrack)
//     egress policy, then normal egress policy of the host endpoint;
//   - leaving a workload: its egress policy, then, when the flow leaves
//     the node, forward (applyOnForward) egress policy of the host
//     endpoint it leaves through;
//   - arriving at a node from elsewhere: failsafe inbound ports (which
//     skip untracked and preDNAT policy), untracked ingress policy,
//     preDNAT policy, then forward ingress policy for a flow to a workload
//     (no failsafe there) or, for one to the host, failsafe inbound ports
//     and normal ingress policy; a workload's ingress policy last.
//
// An untracked Allow ends that node's stages (the packet is not tracked
// and every later stage accepts it); a Deny anywhere drops the flow.
//
// Which host endpoint a flow crosses: the one the address belongs to for
// a flow to or from a host; for a workload's flow, the node's only
// host endpoint with an interface name, else its "*" one. A flow between
// workloads (or a host and a workload) of two nodes crosses them in the
// VXLAN tunnel, where only a "*" host endpoint applies. Of two matching
// host endpoints the kernel runs the interface's own first and, when its
// untracked or preDNAT policy decided nothing, the "*" one's too.

// explainer collects one explanation's lines and verdict.
type explainer struct {
	w       *policyWorld
	out     io.Writer
	pkt     policy.Packet
	verdict ruleset.Action
	notes   []string
}

func (e *explainer) line(label string, act ruleset.Action, text string) {
	fmt.Fprintf(e.out, "%s %s\n", label, text)
	if act == ruleset.Deny {
		e.verdict = ruleset.Deny
	}
}

func (e *explainer) note(s string) {
	for _, n := range e.notes {
		if n == s {
			return
		}
	}
	e.notes = append(e.notes, s)
}

// crossing is the host endpoints a flow crosses on one node: named, the
// endpoint of the interface (nil: an interface with none), and star, the
// node's "*" endpoint (nil: none).
type crossing struct {
	rs          *ruleset.Ruleset
	named, star *ruleset.Endpoint
	// ambiguous: the node has several host endpoints with an interface
	// name, and explain cannot tell which one the flow crosses.
	ambiguous bool
	node      string
}

func (c crossing) none() bool { return c.named == nil && c.star == nil }

// hostCrossing is the host endpoints of party p (a host) on its node.
func (e *explainer) hostCrossing(p party) crossing {
	c := e.w.crossingOn(p.node, true)
	c.named, c.ambiguous = nil, false
	if strings.HasPrefix(p.id, "hep/") {
		if ep, ok := policy.FindEndpoint(c.rs, p.id); ok {
			if ep.Interface == "*" {
				c.star = ep
			} else {
				c.named = ep
			}
		}
	}
	return c
}

// crossingOn is the host endpoints a workload's flow crosses on node
// (tunnel: through the VXLAN device, where only "*" applies).
func (w *policyWorld) crossingOn(node string, tunnel bool) crossing {
	c := crossing{rs: w.ruleset(node)}
	var named []*ruleset.Endpoint
	for _, ep := range w.hostEndpoints(node) {
		if ep.Interface == "*" {
			c.star = ep
		} else {
			named = append(named, ep)
		}
	}
	if !tunnel && len(named) == 1 {
		c.named = named[0]
	}
	c.ambiguous, c.node = !tunnel && len(named) > 1, node
	return c
}

// stage evaluates one stage at a crossing as the kernel dispatches it;
// it prints a line when some policy of the stage applies and returns
// the deciding verdict (Reason NoPolicy or Undecided: the flow goes on).
func (e *explainer) stage(label string, c crossing, s policy.Stage, dir ruleset.Direction) policy.Verdict {
	v := policy.Verdict{Action: ruleset.Allow, Reason: policy.NoPolicy}
	if c.ambiguous {
		e.note("node " + c.node + " has several host endpoints with an interface name: explain assumes the flow crosses none of them (only a \"*\" host endpoint applies)")
	}
	where := ""
	for _, ep := range []*ruleset.Endpoint{c.named, c.star} {
		if ep == nil || len(policy.StageTiers(ep, s, dir)) == 0 {
			continue
		}
		v = policy.EvaluateStage(c.rs, ep.ID, s, dir, e.pkt)
		where = strings.TrimPrefix(ep.ID, "hep/")
		if v.Reason != policy.Undecided {
			break
		}
	}
	if where == "" {
		return v
	}
	text := v.String()
	if s == policy.Untracked && v.Action == ruleset.Allow && v.Reason == policy.ByRule {
		text += " (not tracked: the node's later stages accept it, and its replies need untracked policy too)"
	}
	e.line(fmt.Sprintf("%s %s at host endpoint %s:", label, s, where), v.Action, text)
	for _, t := range v.Passed {
		fmt.Fprintf(e.out, "         passed tier %s\n", t)
	}
	for _, l := range v.Logged {
		fmt.Fprintf(e.out, "         logged by %s %s %s rule %d\n", l.Kind, l.Policy, l.Direction, l.Index)
	}
	return v
}

// untrackedAllowed: the stage's verdict ends the node's stages.
func untrackedAllowed(v policy.Verdict) bool {
	return v.Action == ruleset.Allow && v.Reason == policy.ByRule
}

// tunnelled reports whether the flow crosses between the two nodes in
// the VXLAN tunnel: a workload at one end, both ends Calico nodes.
func tunnelled(src, dst party) bool {
	return src.node != "" && dst.node != "" && src.node != dst.node && (src.workload() || dst.workload())
}

// source prints the stages on the source's node.
func (e *explainer) source(src, dst party) {
	sameNode := src.node != "" && src.node == dst.node
	switch {
	case src.host && dst.workload() && sameNode && e.hostCrossing(src).none():
		e.line("Egress: ", ruleset.Allow, "no Calico policy applies: "+src.desc)
	case src.host && dst.workload() && sameNode:
		e.line("Egress: ", ruleset.Allow, "not policed: a node's own host always reaches its local workloads (as upstream Felix)")
	case src.host:
		c := e.hostCrossing(src)
		if tunnelled(src, dst) {
			c.named = nil
		}
		if c.none() {
			e.line("Egress: ", ruleset.Allow, "no Calico policy applies: "+src.desc)
			return
		}
		if fp, ok := e.w.failsafe(src.node, false, e.pkt); ok {
			e.line("Egress: ", ruleset.Allow, failsafeText(fp))
			return
		}
		if v := e.stage("Egress: ", c, policy.Untracked, ruleset.Egress); untrackedAllowed(v) || v.Action == ruleset.Deny {
			return
		}
		ep := c.named
		if ep == nil {
			ep = c.star
		}
		e.evaluate("Egress: ", src.node, ep.ID, ruleset.Egress)
	case src.id == "":
		e.line("Egress: ", ruleset.Allow, "no Calico policy applies: "+src.desc)
	default: // a workload
		e.evaluate("Egress: ", src.node, src.id, ruleset.Egress)
		if !sameNode {
			e.stage("Egress: ", e.w.crossingOn(src.node, tunnelled(src, dst)), policy.Forward, ruleset.Egress)
		}
	}
}

// destination prints the stages on the destination's node.
func (e *explainer) destination(src, dst party) {
	sameNode := dst.node != "" && src.node == dst.node
	switch {
	case src.host && dst.workload() && sameNode:
		e.line("Ingress:", ruleset.Allow, "not policed: a node's own host always reaches its local workloads (as upstream Felix)")
		return
	case src.workload() && dst.host && sameNode:
		e.toOwnHost(src)
		return
	case src.workload() && dst.workload() && sameNode:
		e.evaluate("Ingress:", dst.node, dst.id, ruleset.Ingress)
		return
	case dst.id == "" && !dst.host:
		e.line("Ingress:", ruleset.Allow, "no Calico policy applies: "+dst.desc)
		return
	}
	// The flow arrives at dst's node from elsewhere.
	c := e.w.crossingOn(dst.node, tunnelled(src, dst))
	if dst.host {
		c = e.hostCrossing(dst)
	}
	failsafe, inOK := e.w.failsafe(dst.node, true, e.pkt)
	if c.none() {
		inOK = false
	}
	if !inOK {
		if v := e.stage("Ingress:", c, policy.Untracked, ruleset.Ingress); untrackedAllowed(v) || v.Action == ruleset.Deny {
			return
		}
		if v := e.stage("Ingress:", c, policy.PreDNAT, ruleset.Ingress); v.Action == ruleset.Deny {
			return
		}
	}
	if dst.workload() {
		if v := e.stage("Ingress:", c, policy.Forward, ruleset.Ingress); v.Action == ruleset.Deny {
			return
		}
		e.evaluate("Ingress:", dst.node, dst.id, ruleset.Ingress)
		return
	}
	ep := c.named
	if ep == nil {
		ep = c.star
	}
	switch {
	case ep == nil:
		e.line("Ingress:", ruleset.Allow, "no Calico policy applies: "+dst.desc)
	case inOK:
		e.line("Ingress:", ruleset.Allow, failsafeText(failsafe))
	default:
		e.evaluate("Ingress:", dst.node, ep.ID, ruleset.Ingress)
	}
}

// evaluate prints one direction's normal policy verdict at an endpoint,
// as the daemon on node computes it.
func (e *explainer) evaluate(label, node, id string, dir ruleset.Direction) {
	v := policy.Evaluate(e.w.ruleset(node), id, dir, e.pkt)
	e.line(label, v.Action, v.String())
	for _, t := range v.Passed {
		fmt.Fprintf(e.out, "         passed tier %s\n", t)
	}
	for _, l := range v.Logged {
		fmt.Fprintf(e.out, "         logged by %s %s %s rule %d\n", l.Kind, l.Policy, l.Direction, l.Index)
	}
}

// toOwnHost is a workload's traffic to its own node: after the
// workload's egress policy, the node's defaultEndpointToHostAction
// decides. (The kernel's table treats Return as Accept: host endpoint
// policy does not see a workload's traffic to its own host.)
func (e *explainer) toOwnHost(src party) {
	switch act := e.w.endpointToHost(src.node); act {
	case "Accept":
		e.line("Ingress:", ruleset.Allow, "Allow by defaultEndpointToHostAction Accept (a workload to its own host)")
	case "Return":
		e.line("Ingress:", ruleset.Allow, "Allow by defaultEndpointToHostAction Return (a workload to its own host; host endpoint policy does not apply to it here)")
	default:
		e.line("Ingress:", ruleset.Deny, "Deny by defaultEndpointToHostAction "+act+" (a workload to its own host)")
	}
}
