package bgp

import (
	"maps"
	"net/netip"
	"path"
	"slices"
)

// IfaceRoute is a route of this node's kernel that upstream's BIRD has in
// its table with an interface: a connected subnet of an interface (its
// direct protocol) or a route through one (its kernel protocol learns
// them; here the routes to local workloads, through their veths).
// BGPFilter rules with an interface match see these.
type IfaceRoute struct {
	Prefix    netip.Prefix
	Interface string
	Connected bool // a connected subnet (else a kernel route)
}

// directExcluded are the interfaces upstream's direct protocol leaves
// out before BGPConfiguration ignoredInterfaces.
var directExcluded = [...]string{"cali*", "kube-ipvs*"}

// ifaceMatch reports whether name matches a BIRD interface pattern
// (`*` any run of characters, `?` one character).
func ifaceMatch(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return ok && err == nil
}

// direct reports whether upstream's direct protocol covers interface
// name: not cali*, kube-ipvs*, nor one of the default BGPConfiguration's
// ignoredInterfaces (upstream reads them from "default" only).
func (c *calc) direct(name string) bool {
	for _, p := range directExcluded {
		if ifaceMatch(p, name) {
			return false
		}
	}
	for _, p := range c.globalSpec().IgnoredInterfaces {
		if ifaceMatch(p, name) {
			return false
		}
	}
	return true
}

// ifaceRoutes are the routes of one family through interfaces matching
// pattern: connected subnets of the interfaces the direct protocol
// covers, and kernel routes (sorted, without duplicates).
func (c *calc) ifaceRoutes(pattern string, v6 bool) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range c.in.IfaceRoutes {
		if r.Prefix.Addr().Is6() != v6 || (r.Connected && !c.direct(r.Interface)) || !ifaceMatch(pattern, r.Interface) {
			continue
		}
		out = append(out, r.Prefix.Masked())
	}
	slices.SortFunc(out, comparePrefix)
	return slices.Compact(out)
}

// ifaceRules converts a rule with an interface match, as upstream's BIRD
// evaluates `ifname ~ pattern`. A route this node originates has the
// interface of its kernel route: on export, the rule matches those among
// ifaceRoutes (exactly, and within the rule's cidr), which are offered to
// the peers whose rules accept them (interfaceRoutes). A route learned
// from a peer has the interface towards its next hop: the rule matches
// learned routes whose next hop is inside one of ifaceRoutes (on import
// all routes are learned ones). A rule that can match nothing is left
// out.
func (c *calc) ifaceRules(fr FilterRule, pattern string, export bool) []FilterRule {
	routes := c.ifaceRoutes(pattern, fr.V6)
	var out []FilterRule
	if export && !fr.RemotePeers {
		var own []netip.Prefix
		for _, p := range routes {
			if fr.matchesPrefix(p) {
				own = append(own, p)
			}
		}
		if len(own) > 0 {
			o := fr
			o.Op, o.Exact, o.LocalOnly = "", own, true
			out = append(out, o)
			if o.Accept {
				for _, p := range own {
					c.ifaceExport[p] = true
				}
			}
		}
	}
	if len(routes) > 0 && !fr.LocalOnly {
		l := fr
		l.NextHops, l.RemotePeers = routes, export
		out = append(out, l)
	}
	return out
}

// matchesPrefix evaluates the rule's cidr match on p.
func (fr FilterRule) matchesPrefix(p netip.Prefix) bool {
	in := fr.Prefix.Contains(p.Addr()) && p.Bits() >= fr.Min && p.Bits() <= fr.Max
	switch fr.Op {
	case "":
		return true
	case "Equal":
		return p == fr.Prefix
	case "NotEqual":
		return p != fr.Prefix
	case "In":
		return in
	}
	return !in // NotIn
}

// interfaceRoutes originates the interface routes export rules accept
// that this node does not originate anyway, and ends every peer's export
// rules with a rejection of them: they go only where a rule accepts
// them (upstream's export filter ends with reject).
func (c *calc) interfaceRoutes(set map[netip.Prefix]bool) {
	var only [2][]netip.Prefix
	for _, p := range slices.SortedFunc(maps.Keys(c.ifaceExport), comparePrefix) {
		nh := c.d.NextHop
		if p.Addr().Is6() {
			nh = c.d.NextHop6
		}
		if set[p] || !nh.IsValid() {
			continue
		}
		set[p] = true
		i := 0
		if p.Addr().Is6() {
			i = 1
		}
		only[i] = append(only[i], p)
	}
	for i := range c.d.Peers {
		p := &c.d.Peers[i]
		for fam, ps := range only {
			if len(ps) > 0 {
				p.Export = append(p.Export, FilterRule{V6: fam == 1, Exact: ps, LocalOnly: true})
			}
		}
	}
}
