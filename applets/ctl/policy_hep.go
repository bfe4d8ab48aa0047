package ctl

import (
	"fmt"
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
