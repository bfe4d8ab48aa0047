package api

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// KindBGPFilter is the BGPFilter kind.
const KindBGPFilter = "BGPFilter"

// BGPFilter is an ordered set of import and export rules that BGPPeers
// name in spec.filters (bgpfilters/<name>).
type BGPFilter struct {
	TypeMeta
	ObjectMeta `json:"metadata"`
	Spec       BGPFilterSpec `json:"spec"`
}

// BGPFilterSpec holds the rules per direction and family, each evaluated
// in order; the first rule that matches decides.
type BGPFilterSpec struct {
	ExportV4 []BGPFilterRule `json:"exportV4,omitempty"`
	ImportV4 []BGPFilterRule `json:"importV4,omitempty"`
	ExportV6 []BGPFilterRule `json:"exportV6,omitempty"`
	ImportV6 []BGPFilterRule `json:"importV6,omitempty"`
}

// BGPFilterRule matches routes and accepts or rejects them. Upstream has
// one type per family with the same fields; the family is checked by
// BGPFilter.Validate from the list the rule is in.
type BGPFilterRule struct {
	CIDR          string                   `json:"cidr,omitempty"`
	PrefixLength  *BGPFilterPrefixLength   `json:"prefixLength,omitempty"`
	Source        string                   `json:"source,omitempty"`
	Interface     string                   `json:"interface,omitempty"`
	MatchOperator string                   `json:"matchOperator,omitempty"`
	PeerType      string                   `json:"peerType,omitempty"`
	Communities   *BGPFilterCommunityMatch `json:"communities,omitempty"`
	ASPathPrefix  []ASNumber               `json:"asPathPrefix,omitempty"`
	Priority      *int                     `json:"priority,omitempty"`
	Action        string                   `json:"action"`
	Operations    []BGPFilterOperation     `json:"operations,omitempty"`
}

// BGPFilterPrefixLength bounds the prefix length of routes inside CIDR.
type BGPFilterPrefixLength struct {
	Min *int32 `json:"min,omitempty"`
	Max *int32 `json:"max,omitempty"`
}

// BGPFilterCommunityMatch matches routes carrying a community (one value).
type BGPFilterCommunityMatch struct {
	Values []string `json:"values"`
}

// BGPFilterOperation changes an accepted route; exactly one field is set.
type BGPFilterOperation struct {
	AddCommunity  *BGPFilterAddCommunity  `json:"addCommunity,omitempty"`
	PrependASPath *BGPFilterPrependASPath `json:"prependASPath,omitempty"`
	SetPriority   *BGPFilterSetPriority   `json:"setPriority,omitempty"`
}

// BGPFilterAddCommunity adds a community to the route.
type BGPFilterAddCommunity struct {
	Value string `json:"value"`
}

// BGPFilterPrependASPath prepends AS numbers to the route's AS path.
type BGPFilterPrependASPath struct {
	Prefix []ASNumber `json:"prefix"`
}

// BGPFilterSetPriority sets the route's priority (metric).
type BGPFilterSetPriority struct {
	Value int `json:"value"`
}

// Values of the BGPFilterRule enumerations.
const (
	BGPFilterAccept      = "Accept"
	BGPFilterReject      = "Reject"
	BGPFilterEqual       = "Equal"
	BGPFilterNotEqual    = "NotEqual"
	BGPFilterIn          = "In"
	BGPFilterNotIn       = "NotIn"
	BGPFilterRemotePeers = "RemotePeers"
)

// NewBGPFilter returns an empty BGPFilter with its TypeMeta set.
func NewBGPFilter() *BGPFilter {
	return &BGPFilter{TypeMeta: TypeMeta{Kind: KindBGPFilter, APIVersion: APIVersion}}
}

// bgpFilterIface is an interface name that may use * as a wildcard.
var bgpFilterIface = lazyRegexp(`^[a-zA-Z0-9_.*\-]{1,15}$`)

// Validate checks every rule against the family of its list.
func (f *BGPFilter) Validate() error {
	var es errs
	for _, l := range []struct {
		field string
		bits  int
		rules []BGPFilterRule
	}{
		{"spec.exportV4", 32, f.Spec.ExportV4}, {"spec.importV4", 32, f.Spec.ImportV4},
		{"spec.exportV6", 128, f.Spec.ExportV6}, {"spec.importV6", 128, f.Spec.ImportV6},
	} {
		for i, r := range l.rules {
			es.add(r.validate(fmt.Sprintf("%s[%d]", l.field, i), l.bits))
		}
	}
	return es.err()
}

func (r BGPFilterRule) validate(field string, bits int) error {
	var es errs
	es.add(oneOf(field+".action", r.Action, BGPFilterAccept, BGPFilterReject))
	es.add(r.validateMatch(field, bits))
	if r.Source != "" {
		es.add(oneOf(field+".source", r.Source, BGPFilterRemotePeers))
	}
	if r.Interface != "" && !bgpFilterIface().MatchString(r.Interface) {
		es.add(fieldErr(field+".interface", r.Interface, "invalid interface name (letters, digits, '_', '.', '-' and the wildcard '*', at most 15 characters)"))
	}
	if r.PeerType != "" {
		es.add(oneOf(field+".peerType", r.PeerType, "eBGP", "iBGP"))
	}
	if c := r.Communities; c != nil {
		if len(c.Values) != 1 {
			es.add(fieldErr(field+".communities.values", len(c.Values), "exactly one community value is supported"))
		}
		for j, v := range c.Values {
			es.add(validateCommunity(fmt.Sprintf("%s.communities.values[%d]", field, j), v))
		}
	}
	if r.Priority != nil && (*r.Priority < 1 || *r.Priority > 2147483646) {
		es.add(fieldErr(field+".priority", *r.Priority, "must be between 1 and 2147483646"))
	}
	if len(r.Operations) > 0 && r.Action != BGPFilterAccept {
		es.add(fieldErr(field+".operations", nil, "operations may only be used with action Accept"))
	}
	if len(r.Operations) > 10 {
		es.add(fieldErr(field+".operations", len(r.Operations), "at most 10 operations"))
	}
	for j, op := range r.Operations {
		es.add(op.validate(fmt.Sprintf("%s.operations[%d]", field, j)))
	}
	return es.err()
}

// validateMatch checks cidr, matchOperator and prefixLength together.
func (r BGPFilterRule) validateMatch(field string, bits int) error {
	var es errs
	if (r.CIDR == "") != (r.MatchOperator == "") {
		es.add(fieldErr(field, nil, "cidr and matchOperator must both be set or both be empty"))
	}
	if r.MatchOperator != "" {
		es.add(oneOf(field+".matchOperator", r.MatchOperator, BGPFilterEqual, BGPFilterNotEqual, BGPFilterIn, BGPFilterNotIn))
	}
	cidrBits := 0
	if r.CIDR != "" {
		p, err := netip.ParsePrefix(r.CIDR)
		if err != nil || p.Addr().BitLen() != bits {
			fam := "IPv4"
			if bits == 128 {
				fam = "IPv6"
			}
			es.add(fieldErr(field+".cidr", r.CIDR, "must be an %s CIDR", fam))
		} else {
			cidrBits = p.Bits()
		}
	}
	if pl := r.PrefixLength; pl != nil {
		if r.CIDR == "" {
			es.add(fieldErr(field+".prefixLength", nil, "cidr is required when prefixLength is set"))
		}
		for _, b := range []struct {
			name string
			v    *int32
		}{{"min", pl.Min}, {"max", pl.Max}} {
			if b.v != nil && (*b.v < int32(cidrBits) || *b.v > int32(bits)) {
				es.add(fieldErr(field+".prefixLength."+b.name, *b.v, "must be between the CIDR's prefix length (%d) and %d", cidrBits, bits))
			}
		}
		if pl.Min != nil && pl.Max != nil && *pl.Min > *pl.Max {
			es.add(fieldErr(field+".prefixLength", nil, "min must not be greater than max"))
		}
	}
	return es.err()
}

func (op BGPFilterOperation) validate(field string) error {
	n := 0
	var es errs
	if op.AddCommunity != nil {
		n++
		es.add(validateCommunity(field+".addCommunity.value", op.AddCommunity.Value))
	}
	if op.PrependASPath != nil {
		n++
		if l := len(op.PrependASPath.Prefix); l < 1 || l > 10 {
			es.add(fieldErr(field+".prependASPath.prefix", l, "must list 1 to 10 AS numbers"))
		}
	}
	if op.SetPriority != nil {
		n++
		if v := op.SetPriority.Value; v < 1 || v > 2147483646 {
			es.add(fieldErr(field+".setPriority.value", v, "must be between 1 and 2147483646"))
		}
	}
	if n != 1 {
		es.add(fieldErr(field, nil, "exactly one operation must be set"))
	}
	return es.err()
}

// validateCommunity accepts a standard (aa:nn, 16-bit parts) or large
// (aa:nn:mm, 32-bit parts) BGP community.
func validateCommunity(field, v string) error {
	parts := strings.Split(v, ":")
	size := 16
	if len(parts) == 3 {
		size = 32
	}
	ok := len(parts) == 2 || len(parts) == 3
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 10, size); err != nil || (len(p) > 1 && p[0] == '0') {
			ok = false
		}
	}
	if !ok {
		return fieldErr(field, v, "must be a community aa:nn (16-bit parts) or aa:nn:mm (32-bit parts)")
	}
	return nil
}
