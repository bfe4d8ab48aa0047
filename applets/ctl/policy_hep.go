package ctl

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/nft"
	"github.com/onecalico/calico/internal/policy"
	"github.com/onecalico/calico/internal/ruleset"
)

// failsafe returns node's failsafe entry that lets pkt through, as the
// kernel checks it before host endpoint policy: inbound ports (the
// source must be in the entry's net) for traffic to the host, outbound
// ones (the destination in the net) for traffic from it.
func (w *policyWorld) failsafe(node string, inbound bool, pkt policy.Packet) (nft.ProtoPort, bool) {
	ports, peer := w.failsafePorts(node, false), pkt.Dst
	if inbound {
		ports, peer = w.failsafePorts(node, true), pkt.Src
	}
	for _, p := range ports {
		if p.Protocol == pkt.Protocol && p.Port == pkt.DstPort && (!p.Net.IsValid() || p.Net.Contains(peer)) {
			return p, true
		}
	}
	return nft.ProtoPort{}, false
}

// failsafePorts is node's failsafeInboundHostPorts (inbound) or
// failsafeOutboundHostPorts: node.<name>, then default, then upstream's
// default. (FELIX_ environment overrides of the daemon are not visible.)
func (w *policyWorld) failsafePorts(node string, inbound bool) []nft.ProtoPort {
	pick := func(s *api.FelixConfigurationSpec) *[]api.ProtoPort {
		if inbound {
			return s.FailsafeInboundHostPorts
		}
		return s.FailsafeOutboundHostPorts
	}
	var global, local *[]api.ProtoPort
	for _, f := range w.felix {
		switch f.Name {
		case "default":
			global = pick(&f.Spec)
		case "node." + node:
			local = pick(&f.Spec)
		}
	}
	switch {
	case local != nil:
		return agent.FailsafePorts(*local)
	case global != nil:
		return agent.FailsafePorts(*global)
	case inbound:
		return nft.DefaultFailsafeInbound()
	}
	return nft.DefaultFailsafeOutbound()
}

// failsafeText renders an allowing failsafe entry.
func failsafeText(p nft.ProtoPort) string {
	s := fmt.Sprintf("Allow (failsafe port %s)", nft.ProtoPort{Protocol: p.Protocol, Port: p.Port})
	if p.Net.IsValid() {
		s += " for net " + p.Net.String()
	}
	return s
}

// unmodelled prints a note for each host endpoint tier the flow also
// passes that explain does not evaluate: preDNAT and untracked
// (doNotTrack) policy at a host endpoint the flow enters or leaves, and
// forward (applyOnForward) policy of the host endpoints of a workload's
// node when the flow enters or leaves that node. A failsafe port passes
// before preDNAT and untracked policy too.
func (w *policyWorld) unmodelled(out io.Writer, src, dst party) {
	var kinds []string
	add := func(k string, ok bool) {
		if ok && !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	if strings.HasPrefix(dst.id, "hep/") && !dst.failsafe {
		if ep, ok := policy.FindEndpoint(w.ruleset(dst.node), dst.id); ok {
			add("preDNAT", len(ep.PreDNAT) > 0)
			add("untracked", len(ep.Untracked) > 0)
		}
	}
	if strings.HasPrefix(src.id, "hep/") && !src.failsafe {
		if ep, ok := policy.FindEndpoint(w.ruleset(src.node), src.id); ok {
			add("untracked", len(ep.UntrackedEgress) > 0)
		}
	}
	if dst.workload() && (src.node != dst.node || !src.host && !src.workload()) {
		for _, ep := range w.hostEndpoints(dst.node) {
			add("preDNAT", len(ep.PreDNAT) > 0)
			add("untracked", len(ep.Untracked) > 0)
			add("forward", len(ep.ForwardIn) > 0)
		}
	}
	if src.workload() && (dst.node != src.node || !dst.host && !dst.workload()) {
		for _, ep := range w.hostEndpoints(src.node) {
			add("forward", len(ep.ForwardOut) > 0)
		}
	}
	for _, k := range kinds {
		fmt.Fprintf(out, "note: this flow also passes %s host endpoint policy, which explain does not model\n", k)
	}
}

// hostEndpoints are node's host endpoints as its daemon computes them.
func (w *policyWorld) hostEndpoints(node string) []*ruleset.Endpoint {
	rs := w.ruleset(node)
	var eps []*ruleset.Endpoint
	for i := range rs.Endpoints {
		if strings.HasPrefix(rs.Endpoints[i].ID, "hep/") {
			eps = append(eps, &rs.Endpoints[i])
		}
	}
	return eps
}

// failsafeFor is the failsafe entry that decides p's direction of the
// flow when p is a host endpoint (inbound: the flow goes to it).
func (w *policyWorld) failsafeFor(p party, inbound bool, pkt policy.Packet) (nft.ProtoPort, bool) {
	if !strings.HasPrefix(p.id, "hep/") {
		return nft.ProtoPort{}, false
	}
	return w.failsafe(p.node, inbound, pkt)
}
