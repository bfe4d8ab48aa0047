package nft

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/onecalico/calico/internal/ruleset"
)

// Network policy lives in a sibling table, PolicyTableName, that the
// daemon owns next to the NAT table. The NAT table is small and is
// replaced whole on every change; the policy table can hold thousands of
// chains and set members and is updated in place (only changed chains are
// flushed and refilled, only changed set members are added or deleted), so
// the two must not share the "replace the table" batch. Two tables at the
// same hooks compose: a drop in either is final, an accept ends only that
// table's base chain.
//
// Layout of the policy table (every hook sees IPv4 and IPv6: family inet):
//
//   - base chain "forward" (forward, priority 0): conntrack (established and
//     related accepted, invalid dropped), then the sending workload's egress
//     chain through the verdict map "wl-egress" (iifname -> jump), packets
//     from an unknown workload interface dropped, then host endpoints'
//     applyOnForward ingress ("hep-fwd-ingress");
//   - base chain "forward-to" (forward, priority 1): the receiving workload's
//     ingress chain ("wl-ingress", oifname -> jump), then host endpoints'
//     applyOnForward egress. A separate base chain because "accept" ends
//     only the base chain it happens in: a packet allowed by its source's
//     egress policy still meets its destination's ingress policy;
//   - "input" (input, 0): workload -> host goes through the workload's
//     egress chain; then failsafe inbound ports (those with a net only from
//     that net); then host endpoint ingress
//     ("hep-ingress", then the "*" endpoint for every other interface but lo);
//   - "input-to-host" (input, 1), only with defaultEndpointToHostAction
//     Drop: what a workload's egress policy allowed to the host is dropped
//     (new flows only; Accept and Return let it through);
//   - "output" (output, 0): the node always reaches its local workloads (as
//     upstream); failsafe outbound ports (those with a net only to that
//     net); host endpoint egress;
//   - "prerouting-dnat" (prerouting, -150, before DNAT): preDNAT policy of
//     host endpoints (no end-of-tier drop, no profiles: normal policy still
//     follows); "raw-prerouting"/"raw-output" (priority -300): doNotTrack
//     policy (allowed packets are marked, not tracked, and accepted by the
//     filter stages).
//
// Endpoint chains ("ingress/<endpoint>", "egress/<endpoint>", ...) run the
// endpoint's tiers and profiles; policy chains (one per ruleset.Chain)
// are shared by every endpoint. Allow is "accept", Deny "drop", Pass sets
// MarkPass and returns (the endpoint chain then skips the rest of the tier),
// Log logs and continues. Every rule has a counter; policy rules count into
// named counter objects, one per source rule, read for metrics in one dump.

// PolicyTableName is the nftables table (family inet) holding policy.
const PolicyTableName = "calico-policy"

// MarkPass is the packet mark bit a Pass rule sets for its endpoint chain
// (the same bit upstream Felix uses by default). It is cleared before
// every tier, so no accepted packet leaves with it. MarkAccept marks
// packets that doNotTrack policy allowed.
const (
	MarkPass   uint32 = 0x20000
	MarkAccept uint32 = 0x10000
)

// EndpointToHostAction is FelixConfiguration defaultEndpointToHostAction.
type EndpointToHostAction uint8

// Endpoint-to-host actions; the zero value is upstream's default, Drop.
const (
	EndpointToHostDrop EndpointToHostAction = iota
	EndpointToHostReturn
	EndpointToHostAccept
)

// ProtoPort is one failsafe port: IP protocol (6 TCP, 17 UDP), port and,
// optionally, the net it is open to (the peer's address: the source of
// inbound traffic, the destination of outbound; the zero Prefix: any).
type ProtoPort struct {
	Protocol uint8
	Port     uint16
	Net      netip.Prefix
}

func (p ProtoPort) String() string {
	proto := fmt.Sprint(p.Protocol)
	switch p.Protocol {
	case 6:
		proto = "tcp"
	case 17:
		proto = "udp"
	}
	if p.Net.IsValid() {
		return fmt.Sprintf("%s:%s:%d", proto, p.Net, p.Port)
	}
	return fmt.Sprintf("%s:%d", proto, p.Port)
}

// DefaultFailsafeInbound is upstream's failsafeInboundHostPorts default:
// SSH, DHCP, BGP, etcd, Typha and the Kubernetes API.
func DefaultFailsafeInbound() []ProtoPort {
	return protoPorts(6, 22, 17, 68, 6, 179, 6, 2379, 6, 2380, 6, 5473, 6, 6443, 6, 6666, 6, 6667)
}

// DefaultFailsafeOutbound is upstream's failsafeOutboundHostPorts default:
// DNS, DHCP, BGP, etcd, Typha and the Kubernetes API.
func DefaultFailsafeOutbound() []ProtoPort {
	return protoPorts(17, 53, 17, 67, 6, 179, 6, 2379, 6, 2380, 6, 5473, 6, 6443, 6, 6666, 6, 6667)
}

// protoPorts pairs up protocol, port, protocol, port, ...
func protoPorts(pp ...uint16) []ProtoPort {
	out := make([]ProtoPort, 0, len(pp)/2)
	for i := 0; i+1 < len(pp); i += 2 {
		out = append(out, ProtoPort{Protocol: uint8(pp[i]), Port: pp[i+1]})
	}
	return out
}

// PolicyOptions are the node settings the policy table depends on.
type PolicyOptions struct {
	EndpointToHost   EndpointToHostAction
	FailsafeInbound  []ProtoPort
	FailsafeOutbound []ProtoPort
	// WorkloadPrefixes are the workload interface name prefixes
	// (interfacePrefix, default "cali"): traffic on such an interface
	// that belongs to no endpoint is dropped.
	WorkloadPrefixes []string
	// HostInterfaces are the node's interfaces and their addresses, used
	// to place a host endpoint that names no interface (only
	// expectedIPs): it applies to the first interface, by name, that
	// holds one of its addresses; with none it applies nowhere.
	HostInterfaces map[string][]netip.Addr
	// VXLANPeers are the other nodes' addresses: VXLAN between them and
	// this node passes before host endpoint policy (as upstream's
	// all-vxlan-net set), so a host endpoint never cuts pod traffic
	// between nodes.
	VXLANPeers []netip.Addr
	// VXLANPort: VXLAN packets from workloads to it are dropped (they
	// could carry traffic past egress policy). 0: 4789.
	VXLANPort uint16
}

// DefaultPolicyOptions are upstream's defaults.
func DefaultPolicyOptions() PolicyOptions {
	return PolicyOptions{
		FailsafeInbound:  DefaultFailsafeInbound(),
		FailsafeOutbound: DefaultFailsafeOutbound(),
		WorkloadPrefixes: []string{"cali"},
		VXLANPort:        4789,
	}
}

func (o PolicyOptions) withDefaults() PolicyOptions {
	if len(o.WorkloadPrefixes) == 0 {
		o.WorkloadPrefixes = []string{"cali"}
	}
	if o.VXLANPort == 0 {
		o.VXLANPort = 4789
	}
	return o
}

// CounterInfo says what a named counter object counts.
type CounterInfo struct {
	// Rule is set for a policy or profile rule counter.
	Rule *ruleset.RuleRef
	// Endpoint, Interface and Direction are set for an endpoint's
	// default-deny counter (end of tier and no profile accepted).
	Endpoint  string
	Interface string
	Direction ruleset.Direction
}

// usableEndpoints returns the endpoints the table can hold and a reason
// for each one it leaves out (no interface, a name the kernel cannot have,
// an interface another endpoint of the same kind also claims). Of two
// endpoints on one interface the later one (by ID) keeps it: a runtime
// that reuses a host veth name (the calico plugin names it after the
// container ID) replaces the older workload's veth. One bad endpoint never
// stops policy for the others.
func usableEndpoints(eps []ruleset.Endpoint) ([]ruleset.Endpoint, []string) {
	var bad []string
	owner := map[string]int{} // kind+interface -> index of the last claimant
	for i, ep := range eps {
		owner[fmt.Sprint(ep.Kind, ep.Interface)] = i
	}
	out := eps[:0:0]
	for i, ep := range eps {
		var why string
		switch {
		case ep.ID == "":
			why = "no ID"
		case ep.Interface == "" && ep.Kind != ruleset.Host:
			why = "no interface"
		case len(ep.Interface) > 15:
			why = "interface name longer than 15 characters"
		case ep.Kind == ruleset.Workload && strings.ContainsAny(ep.Interface, "*"):
			why = "workload on a wildcard interface"
		case ep.Interface != "" && owner[fmt.Sprint(ep.Kind, ep.Interface)] != i:
			why = "interface " + ep.Interface + " is claimed by a later endpoint too"
		case slices.ContainsFunc(ep.Addrs, func(p netip.Prefix) bool { return !p.IsValid() }):
			why = "invalid address"
		}
		if why != "" {
			bad = append(bad, fmt.Sprintf("endpoint %q (interface %q): %s", ep.ID, ep.Interface, why))
			continue
		}
		out = append(out, ep)
	}
	return out, bad
}

// validatePolicy checks what the builder relies on.
func validatePolicy(rs *ruleset.Ruleset) error {
	if rs == nil {
		return nil
	}
	for id, s := range rs.Sets {
		if s == nil || s.ID != id {
			return fmt.Errorf("set %q: ID mismatch: %w", id, ErrInvalid)
		}
		for _, p := range s.Nets {
			if !p.IsValid() {
				return fmt.Errorf("set %s: invalid prefix: %w", id, ErrInvalid)
			}
		}
	}
	for id, c := range rs.Chains {
		if c == nil || c.ID != id {
			return fmt.Errorf("chain %q: ID mismatch: %w", id, ErrInvalid)
		}
	}
	return nil
}

// placeHosts returns rs's endpoints with every host endpoint that names no
// interface placed on the interface that holds one of its addresses (or
// left out), and whether any was. rs itself is not modified.
func placeHosts(eps []ruleset.Endpoint, ifs map[string][]netip.Addr) []ruleset.Endpoint {
	if !slices.ContainsFunc(eps, func(ep ruleset.Endpoint) bool { return ep.Interface == "" }) {
		return eps
	}
	names := make([]string, 0, len(ifs))
	for n := range ifs {
		names = append(names, n)
	}
	sort.Strings(names)
	taken := map[string]bool{}
	for _, ep := range eps {
		if ep.Kind == ruleset.Host {
			taken[ep.Interface] = true
		}
	}
	out := make([]ruleset.Endpoint, 0, len(eps))
	for _, ep := range eps {
		if ep.Interface == "" {
			ep.Interface = findIface(names, ifs, ep.Addrs, taken)
			if ep.Interface == "" {
				continue
			}
			taken[ep.Interface] = true
		}
		out = append(out, ep)
	}
	return out
}

func findIface(names []string, ifs map[string][]netip.Addr, addrs []netip.Prefix, taken map[string]bool) string {
	for _, n := range names {
		if taken[n] {
			continue
		}
		for _, a := range ifs[n] {
			for _, p := range addrs {
				if p.Addr() == a {
					return n
				}
			}
		}
	}
	return ""
}
