package ctl

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/policy"
	"github.com/onecalico/calico/internal/ruleset"
)

const policyUsage = `Usage:
  calicoctl policy explain --from=<ENDPOINT|IP> --to=<ENDPOINT|IP> [--protocol=<PROTO>] [--port=<PORT>]
                           [--from-port=<PORT>] [--icmp-type=<TYPE>] [--icmp-code=<CODE>] [--namespace=<NS>]

Commands:
    explain    Say whether a new flow is allowed, and which tier, policy and rule decide it:
               egress at the source endpoint, then ingress at the destination.

An ENDPOINT is a workload endpoint name (in --namespace, or written <namespace>/<name>)
or a host endpoint name; an IP may belong to an endpoint or to nothing Calico knows.`

// runPolicy dispatches `calicoctl policy <command>`.
func runPolicy(ctx context.Context, e *Env, args []string) error {
	if len(args) == 0 {
		return usagef("%s", policyUsage)
	}
	switch args[0] {
	case "explain":
		return runPolicyExplain(ctx, e, args[1:])
	case "-h", "--help":
		fmt.Fprintln(e.Stdout, policyUsage)
		return nil
	}
	return usagef("Invalid policy command: %q\n%s", args[0], policyUsage)
}

// explainArgs are the parsed flags of policy explain.
type explainArgs struct {
	from, to, namespace, protocol string
	port, fromPort                int
	icmpType, icmpCode            int
}

func runPolicyExplain(ctx context.Context, e *Env, args []string) error {
	fs := e.newFlagSet("policy explain", "calicoctl policy explain --from=<ENDPOINT|IP> --to=<ENDPOINT|IP> [--protocol=<PROTO>] [--port=<PORT>]")
	var a explainArgs
	fs.StringVar(&a.from, "from", "", "source: a workload or host endpoint name, or an IP")
	fs.StringVar(&a.to, "to", "", "destination: a workload or host endpoint name, or an IP")
	fs.StringVarP(&a.namespace, "namespace", "n", "default", "namespace of workload endpoint names")
	fs.StringVar(&a.protocol, "protocol", "TCP", "TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number")
	fs.IntVar(&a.port, "port", 0, "destination port (TCP, UDP, SCTP, UDPLite)")
	fs.IntVar(&a.fromPort, "from-port", 40000, "source port")
	fs.IntVar(&a.icmpType, "icmp-type", 8, "ICMP type (ICMP, ICMPv6)")
	fs.IntVar(&a.icmpCode, "icmp-code", 0, "ICMP code (ICMP, ICMPv6)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if a.from == "" || a.to == "" {
		return usagef("policy explain: --from and --to are required\n%s", policyUsage)
	}
	proto, err := parseProtocol(a.protocol)
	if err != nil {
		return usagef("policy explain: --protocol: %v", err)
	}
	for _, p := range []struct {
		name string
		v    int
		max  int
	}{{"port", a.port, 65535}, {"from-port", a.fromPort, 65535}, {"icmp-type", a.icmpType, 255}, {"icmp-code", a.icmpCode, 255}} {
		if p.v < 0 || p.v > p.max {
			return usagef("policy explain: --%s must be 0-%d", p.name, p.max)
		}
	}
	c, err := e.Client()
	if err != nil {
		return err
	}
	w, err := loadPolicyWorld(ctx, c)
	if err != nil {
		return err
	}
	return w.explain(e.Stdout, a, proto)
}

func parseProtocol(s string) (uint8, error) {
	if n, err := strconv.ParseUint(s, 10, 8); err == nil && n > 0 {
		return uint8(n), nil
	}
	for _, name := range []string{"TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite"} {
		if strings.EqualFold(s, name) {
			return api.ProtocolFromString(name).Number(), nil
		}
	}
	return 0, fmt.Errorf("unknown protocol %q: use TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number 1-255", s)
}

// policyWorld is every policy input in the datastore.
type policyWorld struct {
	weps     []*api.WorkloadEndpoint
	heps     []*api.HostEndpoint
	profiles []*api.Profile
	nps      []*api.NetworkPolicy
	gnps     []*api.GlobalNetworkPolicy
	tiers    []*api.Tier
	sets     []*api.NetworkSet
	gsets    []*api.GlobalNetworkSet
	nodes    []*api.Node
	felix    []*api.FelixConfiguration

	rulesets map[string]*ruleset.Ruleset // by node, computed once
}

func loadPolicyWorld(ctx context.Context, c *datastore.Client) (*policyWorld, error) {
	var w policyWorld
	var err error
	list := func(f func() error) {
		if err == nil {
			err = f()
		}
	}
	list(func() (e error) {
		w.weps, _, e = datastore.ListOf[*api.WorkloadEndpoint](ctx, c, api.KindWorkloadEndpoint, "")
		return
	})
	list(func() (e error) {
		w.heps, _, e = datastore.ListOf[*api.HostEndpoint](ctx, c, api.KindHostEndpoint, "")
		return
	})
	list(func() (e error) {
		w.profiles, _, e = datastore.ListOf[*api.Profile](ctx, c, api.KindProfile, "")
		return
	})
	list(func() (e error) {
		w.nps, _, e = datastore.ListOf[*api.NetworkPolicy](ctx, c, api.KindNetworkPolicy, "")
		return
	})
	list(func() (e error) {
		w.gnps, _, e = datastore.ListOf[*api.GlobalNetworkPolicy](ctx, c, api.KindGlobalNetworkPolicy, "")
		return
	})
	list(func() (e error) { w.tiers, _, e = datastore.ListOf[*api.Tier](ctx, c, api.KindTier, ""); return })
	list(func() (e error) {
		w.sets, _, e = datastore.ListOf[*api.NetworkSet](ctx, c, api.KindNetworkSet, "")
		return
	})
	list(func() (e error) {
		w.gsets, _, e = datastore.ListOf[*api.GlobalNetworkSet](ctx, c, api.KindGlobalNetworkSet, "")
		return
	})
	list(func() (e error) { w.nodes, _, e = datastore.ListOf[*api.Node](ctx, c, api.KindNode, ""); return })
	list(func() (e error) {
		w.felix, _, e = datastore.ListOf[*api.FelixConfiguration](ctx, c, api.KindFelixConfiguration, "")
		return
	})
	if err != nil {
		return nil, fmt.Errorf("read policy resources: %w", err)
	}
	return &w, nil
}

// ruleset is the ruleset as the daemon on node computes it.
func (w *policyWorld) ruleset(node string) *ruleset.Ruleset {
	if rs := w.rulesets[node]; rs != nil {
		return rs
	}
	if w.rulesets == nil {
		w.rulesets = map[string]*ruleset.Ruleset{}
	}
	rs := w.compute(node)
	w.rulesets[node] = rs
	return rs
}

func (w *policyWorld) compute(node string) *ruleset.Ruleset {
	c := policy.New(node)
	for _, t := range w.tiers {
		c.SetTier(t)
	}
	for _, p := range w.profiles {
		c.SetProfile(p)
	}
	for _, p := range w.gnps {
		c.SetGlobalNetworkPolicy(p)
	}
	for _, p := range w.nps {
		c.SetNetworkPolicy(p)
	}
	for _, s := range w.sets {
		c.SetNetworkSet(s)
	}
	for _, s := range w.gsets {
		c.SetGlobalNetworkSet(s)
	}
	for _, h := range w.heps {
		c.SetHostEndpoint(h)
	}
	for _, x := range w.weps {
		c.SetWorkloadEndpoint(x)
	}
	return c.Ruleset()
}

// party is one end of the flow.
type party struct {
	desc string     // for people: "workload endpoint default/a (node n1)"
	id   string     // ruleset endpoint ID; "" for an address with no endpoint
	node string     // the endpoint's node, or the node whose host address it is
	addr netip.Addr // the address the flow uses
	host bool       // a host: a host endpoint or a node's own address
}

// workload reports whether the party is a workload endpoint.
func (p party) workload() bool { return strings.HasPrefix(p.id, "wep/") }

// resolve finds an endpoint by name or address. family, when valid, picks
// the endpoint address of that family.
func (w *policyWorld) resolve(s, ns string, family netip.Addr) (party, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return w.byAddr(a), nil
	}
	wns, name := ns, s
	if i := strings.IndexByte(s, '/'); i >= 0 {
		wns, name = s[:i], s[i+1:]
	}
	for _, x := range w.weps {
		if x.Namespace == wns && x.Name == name {
			a, ok := pickAddr(x.Spec.IPNetworks, family)
			if !ok {
				return party{}, fmt.Errorf("workload endpoint %s/%s has no usable address", wns, name)
			}
			return party{desc: fmt.Sprintf("workload endpoint %s/%s (node %s)", wns, name, x.Spec.Node),
				id: "wep/" + wns + "/" + name, node: x.Spec.Node, addr: a}, nil
		}
	}
	for _, h := range w.heps {
		if h.Name == s {
			a, ok := pickAddr(h.Spec.ExpectedIPs, family)
			if !ok {
				return party{}, fmt.Errorf("host endpoint %s has no expectedIPs: give its address instead", s)
			}
			return party{desc: fmt.Sprintf("host endpoint %s (node %s)", s, h.Spec.Node), id: "hep/" + s, node: h.Spec.Node, addr: a, host: true}, nil
		}
	}
	return party{}, fmt.Errorf("no workload endpoint %s/%s and no host endpoint %s: give an endpoint name or an IP", wns, name, s)
}

func pickAddr(ss []string, family netip.Addr) (netip.Addr, bool) {
	for _, s := range ss {
		p, err := api.ParseAddrOrCIDR(s)
		if err != nil {
			continue
		}
		if !family.IsValid() || p.Addr().Is4() == family.Is4() {
			return p.Addr(), true
		}
	}
	return netip.Addr{}, false
}

func (w *policyWorld) byAddr(a netip.Addr) party {
	for _, x := range w.weps {
		for _, s := range x.Spec.IPNetworks {
			if p, err := api.ParseAddrOrCIDR(s); err == nil && p.Contains(a) {
				return party{desc: fmt.Sprintf("workload endpoint %s/%s (node %s)", x.Namespace, x.Name, x.Spec.Node),
					id: "wep/" + x.Namespace + "/" + x.Name, node: x.Spec.Node, addr: a}
			}
		}
	}
	for _, h := range w.heps {
		for _, s := range h.Spec.ExpectedIPs {
			if s == a.String() {
				return party{desc: fmt.Sprintf("host endpoint %s (node %s)", h.Name, h.Spec.Node), id: "hep/" + h.Name, node: h.Spec.Node, addr: a, host: true}
			}
		}
	}
	if n := w.nodeOfAddr(a); n != "" {
		return party{desc: fmt.Sprintf("%s (host of node %s, no host endpoint)", a, n), node: n, addr: a, host: true}
	}
	return party{desc: a.String() + " (not a Calico endpoint)", addr: a}
}

// nodeOfAddr returns the node one of whose addresses (BGP, tunnel, listed
// addresses) is a, or "".
func (w *policyWorld) nodeOfAddr(a netip.Addr) string {
	for _, n := range w.nodes {
		s := &n.Spec
		addrs := []string{s.IPv4VXLANTunnelAddr, s.IPv6VXLANTunnelAddr}
		if s.BGP != nil {
			addrs = append(addrs, s.BGP.IPv4Address, s.BGP.IPv6Address, s.BGP.IPv4IPIPTunnelAddr)
		}
		if s.Wireguard != nil {
			addrs = append(addrs, s.Wireguard.InterfaceIPv4Address, s.Wireguard.InterfaceIPv6Address)
		}
		for _, x := range s.Addresses {
			addrs = append(addrs, x.Address)
		}
		for _, x := range addrs {
			x, _, _ = strings.Cut(x, "/") // ipv4Address keeps its host bits: "10.0.0.11/24"
			if b, err := netip.ParseAddr(x); err == nil && b == a {
				return n.Name
			}
		}
	}
	return ""
}

// endpointToHost is node's defaultEndpointToHostAction: node.<name>, then
// default, then upstream's default Drop. (FELIX_ environment overrides of
// the daemon are not visible here.)
func (w *policyWorld) endpointToHost(node string) string {
	var global, local string
	for _, f := range w.felix {
		switch f.Name {
		case "default":
			global = f.Spec.DefaultEndpointToHostAction
		case "node." + node:
			local = f.Spec.DefaultEndpointToHostAction
		}
	}
	switch {
	case local != "":
		return local
	case global != "":
		return global
	}
	return "Drop"
}

func (w *policyWorld) explain(out io.Writer, a explainArgs, proto uint8) error {
	src, err := w.resolve(a.from, a.namespace, netip.Addr{})
	if err != nil {
		return err
	}
	dst, err := w.resolve(a.to, a.namespace, src.addr)
	if err != nil {
		return err
	}
	if src.addr.Is4() != dst.addr.Is4() {
		return fmt.Errorf("--from %s and --to %s are of different IP families", src.addr, dst.addr)
	}
	pkt := policy.Packet{Src: src.addr, Dst: dst.addr, Protocol: proto,
		SrcPort: uint16(a.fromPort), DstPort: uint16(a.port), ICMPType: uint8(a.icmpType), ICMPCode: uint8(a.icmpCode)}
	fmt.Fprintf(out, "Flow:    %s\n", describePacket(pkt))
	fmt.Fprintf(out, "From:    %s\nTo:      %s\n", src.desc, dst.desc)
	e := &explainer{w: w, out: out, pkt: pkt, verdict: ruleset.Allow}
	e.source(src, dst)
	e.destination(src, dst)
	fmt.Fprintf(out, "Verdict: %s\n", e.verdict)
	for _, n := range e.notes {
		fmt.Fprintf(out, "note: %s\n", n)
	}
	return nil
}

func describePacket(p policy.Packet) string {
	switch p.Protocol {
	case 1, 58:
		return fmt.Sprintf("%s -> %s protocol %d type %d code %d", p.Src, p.Dst, p.Protocol, p.ICMPType, p.ICMPCode)
	case 6, 17, 132, 136:
		return fmt.Sprintf("%s:%d -> %s:%d protocol %d", p.Src, p.SrcPort, p.Dst, p.DstPort, p.Protocol)
	}
	return fmt.Sprintf("%s -> %s protocol %d", p.Src, p.Dst, p.Protocol)
}
