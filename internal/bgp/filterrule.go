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
	// Operations of an accepted route: communities to add, AS numbers
	// to prepend (PrependN times PrependAS).
	AddCommunities []string
	PrependAS      uint32
	PrependN       uint32
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
				fr, ok := c.convertRule(r, fmt.Sprintf("%s filter %s %s rule %d", what, name, l.field, i), l.v6, l.export, ebgp)
				if !ok {
					continue
				}
				if l.export {
					if ebgp && len(fr.ASPath) > 0 {
						// GoBGP's export policy sees the path after this
						// node's AS is prepended; BIRD's before.
						fr.ASPath = append([]uint32{localAS}, fr.ASPath...)
					}
					exp = append(exp, fr)
				} else {
					imp = append(imp, fr)
				}
			}
		}
	}
	return imp, exp
}

// convertRule converts one rule; ok is false when the rule can never
// match this peer (peerType) or cannot be evaluated here (interface,
// priority: reported, the rule is left out).
func (c *calc) convertRule(r api.BGPFilterRule, what string, v6, export, ebgp bool) (FilterRule, bool) {
	fr := FilterRule{V6: v6, Op: r.MatchOperator, Accept: r.Action == api.BGPFilterAccept}
	switch {
	case r.Interface != "":
		c.problem("%s: interface matches are not supported (this speaker exports no interface routes); rule ignored", what)
		return fr, false
	case r.Priority != nil:
		c.problem("%s: priority matches are not supported; rule ignored", what)
		return fr, false
	case r.PeerType == "eBGP" && !ebgp, r.PeerType == "iBGP" && ebgp:
		return fr, false // the rule is for the other kind of peer
	}
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
		case op.PrependASPath != nil && len(op.PrependASPath.Prefix) > 0:
			as := op.PrependASPath.Prefix[0]
			for _, x := range op.PrependASPath.Prefix {
				if x != as {
					c.problem("%s: prependASPath with different AS numbers is not supported (GoBGP prepends one AS number); operation ignored", what)
					as = 0
					break
				}
			}
			if as != 0 {
				fr.PrependAS, fr.PrependN = uint32(as), uint32(len(op.PrependASPath.Prefix))
			}
		case op.SetPriority != nil:
			c.problem("%s: setPriority is not supported; operation ignored", what)
		}
	}
	return fr, true
}

// NextHop modes of a peer (what next hop is sent to it).
const (
	NextHopAuto = ""     // GoBGP's default: self for eBGP, unchanged for iBGP
	NextHopSelf = "self" // always this node's address
	NextHopKeep = "keep" // always the route's original next hop
)
