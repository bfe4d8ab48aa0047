package policy

import (
	"crypto/sha256"
	"encoding/base64"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/ruleset"
	"github.com/onecalico/calico/internal/selector"
)

// Label keys and prefixes upstream uses for namespaces and service accounts.
const (
	labelServiceAccount = "projectcalico.org/serviceaccount"
	prefixNamespace     = "pcns."
	prefixSA            = "pcsa."
	// NamespaceProfilePrefix names the profile that carries a namespace's
	// labels: kns.<namespace>.
	NamespaceProfilePrefix = "kns."
)

// Protocol numbers used below.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
	protoSCTP   = 132
)

var (
	hasNamespace    = sync.OnceValue(func() selector.Selector { return selector.MustParse("has(" + api.LabelNamespace + ")") })
	notHasNamespace = sync.OnceValue(func() selector.Selector { return selector.MustParse("!has(" + api.LabelNamespace + ")") })
	hasSA           = sync.OnceValue(func() selector.Selector { return selector.MustParse("has(" + labelServiceAccount + ")") })
	allSelector     = sync.OnceValue(func() selector.Selector { return selector.MustParse("all()") })
)

// setSpec is what one set stands for; its members are computed elsewhere.
type setSpec struct {
	id     string
	kind   ruleset.SetKind
	source string
	// sel is set for selector and named-port sets; nil for literal nets.
	sel   selector.Selector
	port  string // named port name (NamedPorts sets)
	proto uint8  // named port protocol (NamedPorts sets)
	nets  []netip.Prefix
}

// compiled is one policy or profile direction: its chain and the sets its
// rules refer to.
type compiled struct {
	chain *ruleset.Chain
	sets  []*setSpec
}

// compiler accumulates the sets of one chain.
type compiler struct {
	sets map[string]*setSpec
	errs []string
}

func (c *compiler) add(s *setSpec) string {
	if c.sets == nil {
		c.sets = map[string]*setSpec{}
	}
	if _, ok := c.sets[s.id]; !ok {
		c.sets[s.id] = s
	}
	return s.id
}

// compileChain turns one direction of a policy or profile into a Chain.
// ns is the NetworkPolicy's namespace ("" for global policies and
// profiles). ref names the policy; its Index is filled per rule.
func compileChain(id string, ref ruleset.RuleRef, rules []api.Rule, ns string) (*compiled, []string) {
	var cp compiler
	ch := &ruleset.Chain{ID: id}
	for i := range rules {
		ref.Index = i
		ch.Rules = append(ch.Rules, cp.rule(&rules[i], ns, ref)...)
	}
	out := &compiled{chain: ch}
	for _, id := range slices.Sorted(mapKeys(cp.sets)) {
		out.sets = append(out.sets, cp.sets[id])
	}
	return out, cp.errs
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func convertAction(a api.Action) (ruleset.Action, bool) {
	switch a {
	case api.Allow, "": // upstream's renderer treats a missing action as allow
		return ruleset.Allow, true
	case api.Deny:
		return ruleset.Deny, true
	case api.Pass:
		return ruleset.Pass, true
	case api.Log:
		return ruleset.Log, true
	}
	return 0, false
}

// side is one compiled half of a rule, before the split per IP version
// and per named port.
type side struct {
	sel, notSel   selector.Selector
	nets, notNets []netip.Prefix
	hadNets       bool
	hadNotNets    bool
	ports         []ruleset.PortRange
	named         []string
	notPorts      []ruleset.PortRange
	notNamed      []string
}

// rule compiles one API rule into zero or more ruleset Rules: zero when it
// can never match (an unenforceable match, a bad selector, an IP version
// its CIDRs exclude), several when named ports or both IP versions need it.
func (c *compiler) rule(r *api.Rule, ns string, ref ruleset.RuleRef) []ruleset.Rule {
	act, ok := convertAction(r.Action)
	if !ok {
		c.errs = append(c.errs, ruleName(ref)+": unknown action "+string(r.Action))
		return nil
	}
	if r.HTTP != nil || r.Source.Services != nil || r.Destination.Services != nil {
		c.errs = append(c.errs, ruleName(ref)+": http and services matches cannot be enforced here; the rule never matches")
		return nil
	}
	base := ruleset.Rule{Ref: ref, Action: act}
	if r.Protocol != nil {
		n := r.Protocol.Number()
		if n == 0 {
			c.errs = append(c.errs, ruleName(ref)+": unknown protocol "+r.Protocol.String())
			return nil
		}
		base.Protocol = &n
	}
	if r.NotProtocol != nil {
		n := r.NotProtocol.Number()
		if n == 0 {
			c.errs = append(c.errs, ruleName(ref)+": unknown protocol "+r.NotProtocol.String())
			return nil
		}
		base.NotProtocol = &n
	}
	base.ICMP = icmpMatch(r.ICMP)
	base.NotICMP = icmpMatch(r.NotICMP)
	npProto := uint8(protoTCP)
	if base.Protocol != nil && (*base.Protocol == protoUDP || *base.Protocol == protoSCTP) {
		npProto = *base.Protocol
	}
	src, err1 := c.side(&r.Source, ns)
	dst, err2 := c.side(&r.Destination, ns)
	if err1 != nil || err2 != nil {
		c.errs = append(c.errs, ruleName(ref)+": "+firstErr(err1, err2).Error()+"; the rule never matches")
		return nil
	}
	var out []ruleset.Rule
	for _, v := range ruleVersions(r.IPVersion, src, dst) {
		rv := base
		rv.IPVersion = v.version
		srcNot := c.notMatch(v.src, v.notSrc, src, npProto)
		dstNot := c.notMatch(v.dst, v.notDst, dst, npProto)
		for _, sa := range c.alternatives(src, npProto) {
			for _, da := range c.alternatives(dst, npProto) {
				x := rv
				x.Src = c.entity(sa, srcNot, v.src)
				x.Dst = c.entity(da, dstNot, v.dst)
				out = append(out, x)
			}
		}
	}
	return out
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func ruleName(ref ruleset.RuleRef) string {
	return ref.Kind + " " + ref.Policy + " " + ref.Direction.String() + " rule " + itoa(ref.Index)
}

func itoa(i int) string { return strconv.Itoa(i) }

func icmpMatch(f *api.ICMPFields) *ruleset.ICMPMatch {
	if f == nil || f.Type == nil {
		return nil
	}
	m := &ruleset.ICMPMatch{Type: uint8(*f.Type)}
	if f.Code != nil {
		c := uint8(*f.Code)
		m.Code = &c
	}
	return m
}

// side compiles the selector, nets and ports of one half of a rule.
func (c *compiler) side(er *api.EntityRule, ns string) (side, error) {
	var s side
	pos, neg := entitySelector(er, ns), er.NotSelector
	if pos != "" && neg != "" {
		// The positive selector limits the rule to known entities, so the
		// negative one can filter it instead of needing its own set.
		pos, neg = "("+pos+") && (!("+neg+"))", ""
	}
	var err error
	if pos != "" {
		if s.sel, err = selector.Parse(pos); err != nil {
			return s, err
		}
	}
	if neg != "" {
		if s.notSel, err = selector.Parse(neg); err != nil {
			return s, err
		}
	}
	s.nets, s.hadNets = parseNets(er.Nets), len(er.Nets) > 0
	s.notNets, s.hadNotNets = parseNets(er.NotNets), len(er.NotNets) > 0
	s.ports, s.named = splitPorts(er.Ports)
	s.notPorts, s.notNamed = splitPorts(er.NotPorts)
	return s, nil
}

// entitySelector builds the one selector upstream derives from a rule
// side's selector, namespaceSelector and serviceAccounts, scoped to the
// policy's namespace as soon as any selector field is used.
func entitySelector(er *api.EntityRule, ns string) string {
	var nsSel string
	switch {
	case er.NamespaceSelector != "":
		p, err := selector.Parse(er.NamespaceSelector)
		if err != nil {
			return er.NamespaceSelector // fails to parse later, with its own error
		}
		nsSel = selector.Rewrite(p, prefixNamespace, hasNamespace(), notHasNamespace()).String()
	case ns != "":
		nsSel = api.LabelNamespace + " == " + quote(ns)
	}
	var parts []string
	if er.ServiceAccounts != nil {
		if sa := serviceAccountSelector(er.ServiceAccounts); sa != "" {
			parts = append(parts, sa)
		}
	}
	if er.Selector != "" {
		parts = append(parts, er.Selector)
	}
	sel := ""
	switch len(parts) {
	case 1:
		sel = parts[0]
	case 2:
		sel = "(" + parts[0] + ") && (" + parts[1] + ")"
	}
	if nsSel != "" && (sel != "" || er.NotSelector != "" || er.NamespaceSelector != "") {
		if sel != "" {
			return "(" + nsSel + ") && (" + sel + ")"
		}
		return nsSel
	}
	return sel
}

// serviceAccountSelector matches the service accounts by label (pcsa.
// keys) and by name (the endpoint's serviceaccount label).
func serviceAccountSelector(m *api.ServiceAccountMatch) string {
	var bySel string
	if m.Selector != "" {
		p, err := selector.Parse(m.Selector)
		if err != nil {
			return m.Selector
		}
		bySel = selector.Rewrite(p, prefixSA, nil, nil).String()
	}
	if len(m.Names) == 0 {
		return bySel
	}
	q := make([]string, len(m.Names))
	for i, n := range m.Names {
		q[i] = quote(n)
	}
	byName := labelServiceAccount + " in {" + strings.Join(q, ", ") + "}"
	if bySel != "" {
		return "(" + bySel + ") && (" + byName + ")"
	}
	return byName
}

// quote quotes a selector string literal (there are no escapes: a value
// with a double quote is single-quoted).
func quote(s string) string {
	if strings.Contains(s, `"`) {
		return "'" + s + "'"
	}
	return `"` + s + `"`
}

// policySelector builds a policy's endpoint selector as upstream's syncer
// does: scoped to the namespace of a NetworkPolicy, ANDed with the
// namespaceSelector of a GlobalNetworkPolicy and the serviceAccountSelector.
func policySelector(sel, ns string, global bool, nsSel, saSel string) (selector.Selector, error) {
	if !global {
		scope := api.LabelNamespace + " == " + quote(ns)
		if sel == "" {
			sel = scope
		} else {
			sel = "(" + sel + ") && " + scope
		}
	}
	var err error
	if global && nsSel != "" {
		if sel, err = prefixAndAppend(sel, nsSel, prefixNamespace, hasNamespace()); err != nil {
			return nil, err
		}
	}
	if saSel != "" {
		// Only a GlobalNetworkPolicy's all() means "has a service account".
		var allTo selector.Selector
		if global {
			allTo = hasSA()
		}
		if sel, err = prefixAndAppend(sel, saSel, prefixSA, allTo); err != nil {
			return nil, err
		}
	}
	return selector.Parse(sel)
}

// prefixAndAppend ANDs the prefixed extra selector onto sel, then replaces
// all() in the whole result by allTo, as upstream does.
func prefixAndAppend(sel, extra, prefix string, allTo selector.Selector) (string, error) {
	p, err := selector.Parse(extra)
	if err != nil {
		return "", err
	}
	x := selector.Rewrite(p, prefix, nil, nil).String()
	if sel != "" {
		x = "(" + sel + ") && " + x
	}
	if allTo == nil {
		return x, nil
	}
	whole, err := selector.Parse(x)
	if err != nil {
		return "", err
	}
	return selector.Rewrite(whole, "", allTo, nil).String(), nil
}

func parseNets(ss []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		if p, err := api.ParseAddrOrCIDR(s); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

func splitPorts(ps []api.Port) (nums []ruleset.PortRange, named []string) {
	for _, p := range ps {
		if p.PortName != "" {
			named = append(named, p.PortName)
		} else {
			nums = append(nums, ruleset.PortRange{First: p.MinPort, Last: p.MaxPort})
		}
	}
	return nums, named
}

// versioned is one IP version's view of a rule's nets.
type versioned struct {
	version                  uint8
	src, notSrc, dst, notDst []netip.Prefix
}

// ruleVersions splits a rule by IP version as upstream renders it: a rule
// without CIDRs applies to its ipVersion (0: both); with CIDRs, to each
// version whose filtered CIDR lists are all still non-empty (so a rule
// with only IPv4 CIDRs, negated or not, never matches IPv6), and not to a
// version where a negated list holds the catch-all CIDR.
func ruleVersions(ipv *int, src, dst side) []versioned {
	if !src.hadNets && !src.hadNotNets && !dst.hadNets && !dst.hadNotNets {
		v := uint8(0)
		if ipv != nil {
			v = uint8(*ipv)
		}
		return []versioned{{version: v}}
	}
	var out []versioned
	for _, v := range []uint8{4, 6} {
		if ipv != nil && uint8(*ipv) != v {
			continue
		}
		x := versioned{version: v}
		ok := true
		filter := func(had bool, nets []netip.Prefix, negated bool) []netip.Prefix {
			if !had {
				return nil
			}
			var f []netip.Prefix
			for _, n := range nets {
				if n.Addr().Is4() != (v == 4) {
					continue
				}
				if negated && n.Bits() == 0 {
					ok = false
				}
				f = append(f, n)
			}
			if len(f) == 0 {
				ok = false
			}
			return f
		}
		x.src = filter(src.hadNets, src.nets, false)
		x.notSrc = filter(src.hadNotNets, src.notNets, true)
		x.dst = filter(dst.hadNets, dst.nets, false)
		x.notDst = filter(dst.hadNotNets, dst.notNets, true)
		if ok {
			out = append(out, x)
		}
	}
	return out
}

// alternative is one way a side's ports can match: the numeric ports (with
// the selector set) or one named port (whose set already filters by the
// selector).
type alternative struct {
	selSet string
	ports  []ruleset.PortRange
	named  string
}

func (c *compiler) alternatives(s side, proto uint8) []alternative {
	selSet := ""
	if s.sel != nil && (len(s.ports) > 0 || len(s.named) == 0) {
		selSet = c.add(selectorSet(s.sel))
	}
	if len(s.ports) == 0 && len(s.named) == 0 {
		return []alternative{{selSet: selSet}}
	}
	var out []alternative
	if len(s.ports) > 0 {
		out = append(out, alternative{selSet: selSet, ports: s.ports})
	}
	for _, n := range s.named {
		out = append(out, alternative{named: c.add(namedPortSet(s.sel, n, proto))})
	}
	return out
}

// notMatch is the negated half of a side: notNets, notSelector and notPorts.
type notMatch struct {
	sets     []string
	ports    []ruleset.PortRange
	namedSet []string
}

func (c *compiler) notMatch(nets, notNets []netip.Prefix, s side, proto uint8) notMatch {
	var m notMatch
	if len(notNets) > 0 {
		m.sets = append(m.sets, c.add(netsSet(notNets)))
	}
	if s.notSel != nil {
		m.sets = append(m.sets, c.add(selectorSet(s.notSel)))
	}
	m.ports = s.notPorts
	for _, n := range s.notNamed {
		m.namedSet = append(m.namedSet, c.add(namedPortSet(s.sel, n, proto)))
	}
	return m
}

func (c *compiler) entity(a alternative, not notMatch, nets []netip.Prefix) ruleset.EntityMatch {
	var e ruleset.EntityMatch
	if len(nets) > 0 {
		e.InSets = append(e.InSets, c.add(netsSet(nets)))
	}
	if a.selSet != "" {
		e.InSets = append(e.InSets, a.selSet)
	}
	e.Ports = a.ports
	e.NamedPortSet = a.named
	e.NotInSets = not.sets
	e.NotPorts = not.ports
	e.NotNamedPortSets = not.namedSet
	return e
}

func selectorSet(sel selector.Selector) *setSpec {
	return &setSpec{id: sel.UniqueID(), kind: ruleset.Nets, source: sel.String(), sel: sel}
}

func namedPortSet(sel selector.Selector, name string, proto uint8) *setSpec {
	if sel == nil {
		sel = allSelector()
	}
	return &setSpec{
		id:     hashID("n", sel.UniqueID()+","+itoa(int(proto))+","+name),
		kind:   ruleset.NamedPorts,
		source: "namedport:" + name + "/" + protoName(proto) + "/" + sel.String(),
		sel:    sel, port: name, proto: proto,
	}
}

func netsSet(nets []netip.Prefix) *setSpec {
	n := slices.Clone(nets)
	slices.SortFunc(n, comparePrefix)
	n = slices.Compact(n)
	var b strings.Builder
	for i, p := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.String())
	}
	return &setSpec{id: hashID("c", b.String()), kind: ruleset.Nets, source: "nets:" + b.String(), nets: n}
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

func protoName(p uint8) string {
	switch p {
	case protoTCP:
		return "tcp"
	case protoUDP:
		return "udp"
	case protoSCTP:
		return "sctp"
	}
	return itoa(int(p))
}

// hashID is kind + ":" + base64url(sha224(kind + ":" + s)), the shape of
// upstream's unique IDs.
func hashID(kind, s string) string {
	h := sha256.New224()
	h.Write([]byte(kind + ":" + s))
	return kind + ":" + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}
