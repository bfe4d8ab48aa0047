package bgp

import (
	"fmt"
	"net/netip"

	"github.com/onecalico/calico/internal/api"
)

// FilterRule is one BGPFilter rule for one peer, in the order upstream's
// BIRD filter evaluates it: the first rule whose every match holds
// decides (accept, with its operations, or reject); without one, the
// default applies (import everything, export what this node originates).
type FilterRule struct {
	V6 bool // the rule is in exportV6/importV6: it matches IPv6 routes only
	// Prefix, Op (api.BGPFilterEqual, NotEqual, In, NotIn; "" matches
	// every prefix) and, for In and NotIn, the length range [Min, Max].
	Prefix   netip.Prefix
	Op       string
	Min, Max int
	// RemotePeers matches routes learned from BGP peers (source
	// RemotePeers), not the ones this node originates.
	RemotePeers bool
	// Community matches routes carrying it ("aa:nn" or "aa:nn:mm").
	Community string
	// ASPath matches routes whose AS path starts with these numbers.
	ASPath []uint32
	Accept bool
	// Operations of an accepted route: communities to add, and the AS
	// numbers to put in front of the AS path as GoBGP's policy sees it
	// (first = leftmost).
	AddCommunities []string
	Prepend        []uint32
	// SetPriority is the priority (kernel metric) an accepted route gets,
	// carried as LOCAL_PREF MaxLocalPref-SetPriority; 0: unchanged.
	SetPriority uint32
	// LocalOnly matches only the routes this node originates (a priority
	// match on export: they all have the normal route priority).
	LocalOnly bool
	// Exact, when set, replaces the cidr match: the route's prefix is one
	// of these (an interface match on this node's own routes).
	Exact []netip.Prefix
	// NextHops, when set, matches routes whose next hop is inside one of
	// them (an interface match on learned routes).
	NextHops []netip.Prefix
}

// filterRules converts the rules of the named filters for a peer, in
// order: the peer's own family first (upstream's bird and bird6 each
// read their family's lists). Rules with matches this speaker cannot
// evaluate are reported; see convertRule.
func (c *calc) filterRules(names []string, what string, peerAS, localAS uint32) (imp, exp []FilterRule) {
	for _, name := range names {
		f, ok := c.in.Filters[name]
		if !ok {
			c.problem("%s: BGPFilter %s does not exist", what, name)
			continue
		}
		ebgp := peerAS != localAS
		for _, l := range []struct {
			rules  []api.BGPFilterRule
			v6     bool
			export bool
			field  string
		}{
			{f.ImportV4, false, false, "importV4"}, {f.ImportV6, true, false, "importV6"},
			{f.ExportV4, false, true, "exportV4"}, {f.ExportV6, true, true, "exportV6"},
		} {
			for i, r := range l.rules {
				// On export to an eBGP peer both BIRD 1.6 (its
				// import_control runs before the export filter) and GoBGP
				// put this node's AS in front before the rules run: a
				// rule sees, matches and prepends to the same path in
				// both (measured with two BIRD 1.6.8 daemons: a filter's
				// bgp_path.prepend(X) arrives as "X <local AS>", and
				// bgp_path.first is the local AS).
				fr, ok := c.convertRule(r, fmt.Sprintf("%s filter %s %s rule %d", what, name, l.field, i), l.v6, l.export, ebgp)
				if !ok {
					continue
				}
				frs := []FilterRule{fr}
				if r.Interface != "" {
					frs = c.ifaceRules(fr, r.Interface, l.export)
				}
				if l.export {
					exp = append(exp, frs...)
				} else {
					imp = append(imp, frs...)
				}
			}
		}
	}
	return imp, exp
}

// convertRule converts one rule but its interface match (ifaceRules);
// ok is false when the rule can never match this peer (peerType,
// priority).
func (c *calc) convertRule(r api.BGPFilterRule, what string, v6, export, ebgp bool) (FilterRule, bool) {
	fr := FilterRule{V6: v6, Op: r.MatchOperator, Accept: r.Action == api.BGPFilterAccept}
	switch {
	case r.PeerType == "eBGP" && !ebgp, r.PeerType == "iBGP" && ebgp:
		return fr, false // the rule is for the other kind of peer
	case r.Priority != nil && !c.priorityMatch(*r.Priority, r.Source, what, v6, export):
		return fr, false
	}
	fr.LocalOnly = r.Priority != nil
	if r.CIDR != "" {
		p, err := netip.ParsePrefix(r.CIDR)
		if err != nil || p.Addr().Is6() != v6 {
			c.problem("%s: cidr %q is not a prefix of the list's family; rule ignored", what, r.CIDR)
			return fr, false
		}
		fr.Prefix = p.Masked()
		fr.Min, fr.Max = p.Bits(), p.Bits()
		if fr.Op == api.BGPFilterIn || fr.Op == api.BGPFilterNotIn {
			fr.Max = p.Addr().BitLen()
			if pl := r.PrefixLength; pl != nil && pl.Min != nil {
				fr.Min = max(fr.Min, int(*pl.Min))
			}
			if pl := r.PrefixLength; pl != nil && pl.Max != nil {
				fr.Max = int(*pl.Max)
			}
		}
	}
	// Every route an import filter sees comes from a peer.
	fr.RemotePeers = export && r.Source == api.BGPFilterRemotePeers
	if r.Communities != nil && len(r.Communities.Values) > 0 {
		fr.Community = r.Communities.Values[0]
	}
	for _, as := range r.ASPathPrefix {
		fr.ASPath = append(fr.ASPath, uint32(as))
	}
	for _, op := range r.Operations {
		switch {
		case op.AddCommunity != nil:
			fr.AddCommunities = append(fr.AddCommunities, op.AddCommunity.Value)
		case op.PrependASPath != nil:
			// Each operation puts its list in front of the path as it
			// is then, so a later operation's numbers come first.
			var front []uint32
			for _, as := range op.PrependASPath.Prefix {
				front = append(front, uint32(as))
			}
			fr.Prepend = append(front, fr.Prepend...)
		case op.SetPriority != nil:
			fr.SetPriority = uint32(op.SetPriority.Value)
			if op.SetPriority.Value > MaxCarriedPriority {
				c.problem("%s: setPriority %d is above %d, which LOCAL_PREF cannot carry; the route keeps its priority", what, op.SetPriority.Value, MaxCarriedPriority)
				fr.SetPriority = 0
			}
		}
	}
	return fr, true
}

// priorityMatch reports whether a rule matching priority p can match
// anything. As upstream's BIRD (krt_metric = p): a route from a peer has
// no priority yet when import rules run, so an import rule never
// matches; on export, this node's own routes have the normal route
// priority (BGPConfiguration ipv4/ipv6NormalRoutePriority, 1024). Routes
// learned from peers and passed on are not matched (GoBGP's policies
// cannot test LOCAL_PREF, which carries their priority): reported.
func (c *calc) priorityMatch(p int, source, what string, v6, export bool) bool {
	if !export {
		return false
	}
	if source == api.BGPFilterRemotePeers {
		c.problem("%s: priority matches on routes learned from peers are not supported; rule ignored", what)
		return false
	}
	return p == c.normalPriority(v6)
}

// normalPriority is the priority of the routes this node originates.
func (c *calc) normalPriority(v6 bool) int {
	p := c.globalSpec().IPv4NormalRoutePriority
	if v6 {
		p = c.globalSpec().IPv6NormalRoutePriority
	}
	if p == nil {
		return 1024
	}
	return *p
}

// NextHop modes of a peer (what next hop is sent to it).
const (
	NextHopAuto = ""     // GoBGP's default: self for eBGP, unchanged for iBGP
	NextHopSelf = "self" // always this node's address
	NextHopKeep = "keep" // always the route's original next hop
)
