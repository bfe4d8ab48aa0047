package nft

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"

	"github.com/onecalico/calico/internal/ruleset"
)

// Object names in the policy table.
const (
	chainForward     = "forward"
	chainForwardTo   = "forward-to"
	chainInput       = "input"
	chainInputToHost = "input-to-host"
	chainOutput      = "output"
	chainPreDNAT     = "prerouting-dnat"
	chainRawPre      = "raw-prerouting"
	chainRawOut      = "raw-output"

	mapWlEgress      = "wl-egress"
	mapWlIngress     = "wl-ingress"
	mapHepIngress    = "hep-ingress"
	mapHepEgress     = "hep-egress"
	mapHepFwdIngress = "hep-fwd-ingress"
	mapHepFwdEgress  = "hep-fwd-egress"
	mapHepPreDNAT    = "hep-prednat"
	mapHepRawIngress = "hep-raw-ingress"
	mapHepRawEgress  = "hep-raw-egress"

	logPrefix = "calico-packet: "
)

// anonSeq numbers anonymous sets' placeholder names (unique in a process,
// as cached chains keep theirs across builds).
var anonSeq atomic.Uint64

// anonSet is a constant set that belongs to one rule (a port list, the
// failsafe ports, an endpoint's addresses). Its lookup names it by a
// placeholder until the applier queues it and learns its kernel name.
type anonSet struct {
	set    *nftables.Set
	elems  []nftables.SetElement
	lookup *expr.Lookup
}

// pRule is one rule of a policy-table chain.
type pRule struct {
	exprs []expr.Any
	anon  []*anonSet
}

// pChain is a chain with its rules; fp is its rendered content, compared
// with what was applied last to decide whether to flush and refill it.
type pChain struct {
	chain *nftables.Chain
	rules []pRule
	fp    string
	ksig  string // see kernelSig
}

// pSet is a named set or verdict map with its elements.
type pSet struct {
	set   *nftables.Set
	elems []nftables.SetElement
}

// policyState is the complete desired (or applied) policy table.
type policyState struct {
	table    *nftables.Table
	chains   map[string]*pChain
	sets     map[string]*pSet
	counters map[string]CounterInfo
	skipped  []string // endpoints left out, with the reason
}

// pbuilder holds the state of one build.
type pbuilder struct {
	rs *ruleset.Ruleset
	o  PolicyOptions
	st *policyState
	// untracked are the chain IDs referenced from doNotTrack tiers: their
	// Allow also stops connection tracking.
	untracked map[string]bool
	// cache holds the chains built by the previous build, by the identity
	// of the ruleset chain they came from (the calculator never modifies a
	// Chain it handed out: a changed chain is a new one); next collects
	// the ones this build uses.
	cache, next chainCache
}

// chainCache remembers built policy chains across builds.
type chainCache map[chainKey]*cachedChain

type chainKey struct {
	c         *ruleset.Chain
	id        string
	untracked bool
}

type cachedChain struct {
	pc       *pChain
	counters map[string]CounterInfo
}

// buildPolicy turns a Ruleset into the desired content of the policy
// table. It is pure: no kernel, deterministic output.
func buildPolicy(table string, rs *ruleset.Ruleset, o PolicyOptions) (*policyState, error) {
	st, _, err := buildPolicyCached(table, rs, o, nil)
	return st, err
}

// buildPolicyCached is buildPolicy reusing the chains of cache that are
// still in rs; it returns the cache for the next build.
func buildPolicyCached(table string, rs *ruleset.Ruleset, o PolicyOptions, cache chainCache) (*policyState, chainCache, error) {
	if err := validatePolicy(rs); err != nil {
		return nil, nil, err
	}
	if rs == nil {
		rs = &ruleset.Ruleset{}
	}
	usable, skipped := usableEndpoints(rs.Endpoints)
	if eps := placeHosts(usable, o.HostInterfaces); len(skipped) > 0 || len(eps) != len(rs.Endpoints) || (len(eps) > 0 && &eps[0] != &rs.Endpoints[0]) {
		placed := *rs
		placed.Endpoints = eps
		rs = &placed
	}
	b := &pbuilder{rs: rs, o: o.withDefaults(), untracked: map[string]bool{}, cache: cache, next: chainCache{}, st: &policyState{
		table:    buildTable(table),
		chains:   map[string]*pChain{},
		sets:     map[string]*pSet{},
		counters: map[string]CounterInfo{},
	}}
	for _, ep := range rs.Endpoints {
		for _, t := range slices.Concat(ep.Untracked, ep.UntrackedEgress) {
			for _, c := range t.Chains {
				b.untracked[c] = true
			}
		}
	}
	b.sets()
	b.policyChains()
	b.endpoints()
	b.baseChains()
	for _, c := range b.st.chains {
		if c.fp == "" {
			c.fp = renderChainFP(c)
		}
	}
	b.st.skipped = skipped
	return b.st, b.next, nil
}

// objName turns an ID into an nft object name: the ID itself when it is
// short and plain, else a prefix and a hash.
func objName(prefix, id string) string {
	ok := len(prefix)+len(id) <= 200
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-/:*", r)) {
			ok = false
			break
		}
	}
	if ok {
		return prefix + id
	}
	sum := sha256.Sum256([]byte(id))
	return prefix + "h:" + hex.EncodeToString(sum[:12])
}

func policyChainName(id string) string { return objName("", id) }

func setName(id string, f family) string {
	return objName("", id) + "-v" + strconv.Itoa(int(f))
}

func npSetName(id string, f family) string { return setName(id, f) }

// sets builds two named sets (v4, v6) for every ruleset set: interval sets
// of prefixes for Nets, concatenated (address . protocol . port) sets for
// NamedPorts.
func (b *pbuilder) sets() {
	for id, s := range b.rs.Sets {
		for _, f := range []family{v4, v6} {
			name := setName(id, f)
			switch s.Kind {
			case ruleset.NamedPorts:
				set := &nftables.Set{Table: b.st.table, Name: name, Concatenation: true,
					KeyType: nftables.MustConcatSetType(f.keyType(), nftables.TypeInetProto, nftables.TypeInetService)}
				var elems []nftables.SetElement
				for _, m := range s.Members {
					if m.Addr.Unmap().Is4() != (f == v4) {
						continue
					}
					elems = append(elems, nftables.SetElement{Key: namedPortKey(m)})
				}
				b.st.sets[name] = &pSet{set: set, elems: elems}
			default:
				set := &nftables.Set{Table: b.st.table, Name: name, KeyType: f.keyType(), Interval: true}
				b.st.sets[name] = &pSet{set: set, elems: prefixElements(s.Nets, f)}
			}
		}
	}
}

func namedPortKey(m ruleset.NamedPortMember) []byte {
	// Each part of a concatenation is padded to 4 bytes.
	k := append([]byte(nil), m.Addr.Unmap().AsSlice()...)
	k = append(k, m.Protocol, 0, 0, 0)
	return append(binary.BigEndian.AppendUint16(k, m.Port), 0, 0)
}

// prefixElements encodes the prefixes of family f as interval elements,
// one interval per prefix (prefixes inside another are dropped), without
// merging neighbours: a member coming or going is then exactly one
// interval added or deleted.
func prefixElements(ps []netip.Prefix, f family) []nftables.SetElement {
	var mine []netip.Prefix
	for _, p := range ps {
		if p.IsValid() && p.Addr().Unmap().Is4() == (f == v4) {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-(p.Addr().BitLen()-p.Addr().Unmap().BitLen())).Masked()
			mine = append(mine, p)
		}
	}
	slices.SortFunc(mine, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	var out []nftables.SetElement
	var last netip.Prefix
	for _, p := range mine {
		if last.IsValid() && last.Bits() <= p.Bits() && last.Contains(p.Addr()) {
			continue
		}
		last = p
		out = append(out, nftables.SetElement{Key: p.Addr().AsSlice()})
		if end := lastAddr(p).Next(); end.IsValid() {
			out = append(out, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
		}
	}
	return out
}

// newAnon makes an anonymous constant set and the lookup that uses it.
func (b *pbuilder) newAnon(key nftables.SetDatatype, interval bool, elems []nftables.SetElement, reg uint32, invert bool) (*anonSet, *expr.Lookup) {
	name := fmt.Sprintf("__anon%d", anonSeq.Add(1))
	l := &expr.Lookup{SourceRegister: reg, SetName: name, Invert: invert}
	a := &anonSet{set: &nftables.Set{Table: b.st.table, Name: name, Anonymous: true, Constant: true, Interval: interval, KeyType: key}, elems: elems, lookup: l}
	return a, l
}

// policyChains builds one chain per ruleset chain.
func (b *pbuilder) policyChains() {
	for id, c := range b.rs.Chains {
		name := policyChainName(id)
		key := chainKey{c, id, b.untracked[id]}
		cc := b.cache[key]
		if cc == nil || cc.pc.chain.Table.Name != b.st.table.Name {
			ch := &pChain{chain: &nftables.Chain{Name: name, Table: b.st.table}}
			cc = &cachedChain{pc: ch, counters: map[string]CounterInfo{}}
			for _, r := range c.Rules {
				cname := name + "#" + strconv.Itoa(r.Ref.Index)
				ref := r.Ref
				cc.counters[cname] = CounterInfo{Rule: &ref}
				ch.rules = append(ch.rules, b.rule(r, cname, key.untracked)...)
			}
			ch.fp = renderChainFP(ch)
		}
		b.next[key] = cc
		maps.Copy(b.st.counters, cc.counters)
		b.st.chains[name] = cc.pc
	}
}

// families says which address families a rule must be rendered for: one
// rule per family when it matches addresses (sets are per family), else
// one family-less rule (nil).
func families(r ruleset.Rule) []family {
	want := func(f family) bool {
		switch {
		case r.IPVersion == 4 && f != v4, r.IPVersion == 6 && f != v6:
			return false
		case r.Protocol != nil && *r.Protocol == 1 && f != v4, r.Protocol != nil && *r.Protocol == 58 && f != v6:
			return false
		}
		return true
	}
	sets := len(r.Src.InSets)+len(r.Src.NotInSets)+len(r.Dst.InSets)+len(r.Dst.NotInSets) > 0 ||
		r.Src.NamedPortSet != "" || r.Dst.NamedPortSet != "" || len(r.Src.NotNamedPortSets)+len(r.Dst.NotNamedPortSets) > 0
	if !sets && r.IPVersion == 0 {
		return []family{0}
	}
	var out []family
	for _, f := range []family{v4, v6} {
		if want(f) {
			out = append(out, f)
		}
	}
	return out
}

// rule renders one ruleset rule as one nft rule per family.
func (b *pbuilder) rule(r ruleset.Rule, counter string, untracked bool) []pRule {
	var out []pRule
	for _, f := range families(r) {
		var pr pRule
		e := &pr.exprs
		if f != 0 {
			*e = append(*e, nfproto(f)...)
		}
		if r.Protocol != nil {
			*e = append(*e, l4proto(expr.CmpOpEq, *r.Protocol)...)
		}
		if r.NotProtocol != nil {
			*e = append(*e, l4proto(expr.CmpOpNeq, *r.NotProtocol)...)
		}
		if r.ICMP != nil {
			*e = append(*e, icmpMatch(r.ICMP, expr.CmpOpEq)...)
		}
		if r.NotICMP != nil {
			*e = append(*e, icmpMatch(r.NotICMP, expr.CmpOpNeq)...)
		}
		b.entity(&pr, r.Src, f, true)
		b.entity(&pr, r.Dst, f, false)
		*e = append(*e, &expr.Objref{Type: int(nftables.ObjTypeCounter), Name: counter})
		switch r.Action {
		case ruleset.Allow:
			if untracked {
				*e = append(*e, setMarkBits(MarkAccept)...)
				*e = append(*e, &expr.Notrack{})
			}
			*e = append(*e, &expr.Verdict{Kind: expr.VerdictAccept})
		case ruleset.Deny:
			*e = append(*e, &expr.Verdict{Kind: expr.VerdictDrop})
		case ruleset.Pass:
			*e = append(*e, setMarkBits(MarkPass)...)
			*e = append(*e, &expr.Verdict{Kind: expr.VerdictReturn})
		case ruleset.Log:
			*e = append(*e, &expr.Log{Key: 1 << 2, Data: []byte(logPrefix)}) // NFTA_LOG_PREFIX
		}
		out = append(out, pr)
	}
	return out
}

// entity renders the source (src) or destination half of a rule for
// family f (0: the rule has no address match).
func (b *pbuilder) entity(pr *pRule, m ruleset.EntityMatch, f family, src bool) {
	off := f.dstOffset
	portOff := uint32(2)
	if src {
		off, portOff = f.srcOffset, 0
	}
	for _, sets := range []struct {
		ids    []string
		invert bool
	}{{m.InSets, false}, {m.NotInSets, true}} {
		for _, id := range sets.ids {
			pr.exprs = append(pr.exprs,
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off(), Len: f.addrLen()},
				&expr.Lookup{SourceRegister: 1, SetName: setName(id, f), Invert: sets.invert})
		}
	}
	b.ports(pr, m.Ports, portOff, false)
	b.ports(pr, m.NotPorts, portOff, true)
	if m.NamedPortSet != "" {
		pr.exprs = append(pr.exprs, namedPortLookup(f, off(), portOff, m.NamedPortSet, false)...)
	}
	for _, id := range m.NotNamedPortSets {
		pr.exprs = append(pr.exprs, namedPortLookup(f, off(), portOff, id, true)...)
	}
}

// namedPortLookup matches (address . l4proto . port) against a named-port
// set, in 32-bit registers from NFT_REG32_00 (8).
func namedPortLookup(f family, addrOff, portOff uint32, id string, invert bool) []expr.Any {
	protoReg := uint32(9)
	if f == v6 {
		protoReg = 12
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 8, Base: expr.PayloadBaseNetworkHeader, Offset: addrOff, Len: f.addrLen()},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: protoReg},
		&expr.Payload{DestRegister: protoReg + 1, Base: expr.PayloadBaseTransportHeader, Offset: portOff, Len: 2},
		&expr.Lookup{SourceRegister: 8, SetName: npSetName(id, f), Invert: invert},
	}
}

// ports matches the port at offset off of the transport header against a
// list of ranges: a compare for one port, a range for one range, an
// anonymous interval set for several.
func (b *pbuilder) ports(pr *pRule, rs []ruleset.PortRange, off uint32, invert bool) {
	if len(rs) == 0 {
		return
	}
	pr.exprs = append(pr.exprs, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2})
	op := expr.CmpOpEq
	if invert {
		op = expr.CmpOpNeq
	}
	if len(rs) == 1 {
		r := rs[0]
		if r.First == r.Last {
			pr.exprs = append(pr.exprs, &expr.Cmp{Op: op, Register: 1, Data: be16(r.First)})
		} else {
			pr.exprs = append(pr.exprs, &expr.Range{Op: op, Register: 1, FromData: be16(r.First), ToData: be16(r.Last)})
		}
		return
	}
	a, l := b.newAnon(nftables.TypeInetService, true, portElements(rs), 1, invert)
	pr.anon = append(pr.anon, a)
	pr.exprs = append(pr.exprs, l)
}

// portElements encodes port ranges as interval elements (merged: the set
// is constant).
func portElements(rs []ruleset.PortRange) []nftables.SetElement {
	s := slices.Clone(rs)
	sort.Slice(s, func(i, j int) bool { return s[i].First < s[j].First })
	var merged []ruleset.PortRange
	for _, r := range s {
		if n := len(merged); n > 0 && int(r.First) <= int(merged[n-1].Last)+1 {
			merged[n-1].Last = max(merged[n-1].Last, r.Last)
			continue
		}
		merged = append(merged, r)
	}
	var out []nftables.SetElement
	for _, r := range merged {
		out = append(out, nftables.SetElement{Key: be16(r.First)})
		if r.Last < 65535 {
			out = append(out, nftables.SetElement{Key: be16(r.Last + 1), IntervalEnd: true})
		}
	}
	return out
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func nfproto(f family) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{f.nfproto()}},
	}
}

func l4proto(op expr.CmpOp, p uint8) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: []byte{p}},
	}
}

// icmpMatch matches the ICMP type (and code) at the start of the
// transport header. Negated with a code, it is "not this type and code".
func icmpMatch(m *ruleset.ICMPMatch, op expr.CmpOp) []expr.Any {
	if m.Code == nil {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Cmp{Op: op, Register: 1, Data: []byte{m.Type}},
		}
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
		&expr.Cmp{Op: op, Register: 1, Data: []byte{m.Type, *m.Code}},
	}
}

// markOp loads the packet mark, applies (mark & mask) ^ xor and stores it.
func markOp(mask, xor uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(mask), Xor: binaryutil.NativeEndian.PutUint32(xor)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
	}
}

func setMarkBits(bits uint32) []expr.Any   { return markOp(^bits, bits) }
func clearMarkBits(bits uint32) []expr.Any { return markOp(^bits, 0) }

// markClear matches packets whose mark has none of bits.
func markClear(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

func markSet(bits uint32) []expr.Any {
	e := markClear(bits)
	e[2].(*expr.Cmp).Op = expr.CmpOpNeq
	return e
}

func ctState(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

func verdict(k expr.VerdictKind) expr.Any { return &expr.Verdict{Kind: k} }

func jump(chain string) expr.Any { return &expr.Verdict{Kind: expr.VerdictJump, Chain: chain} }

// ifname is the 16-byte, NUL-padded form of an interface name.
func ifname(n string) []byte {
	b := make([]byte, 16)
	copy(b, n)
	return b
}

// ifMatch matches the input (in) or output interface: a prefix when the
// name ends in "*" (nft's wildcard), else the exact name.
func ifMatch(in bool, name string, op expr.CmpOp) []expr.Any {
	key := expr.MetaKeyOIFNAME
	if in {
		key = expr.MetaKeyIIFNAME
	}
	data := ifname(name)
	if p, ok := strings.CutSuffix(name, "*"); ok {
		data = []byte(p)
	}
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: op, Register: 1, Data: data}}
}

// vmapDispatch is "iifname/oifname vmap @m".
func vmapDispatch(in bool, m string) []expr.Any {
	key := expr.MetaKeyOIFNAME
	if in {
		key = expr.MetaKeyIIFNAME
	}
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Lookup{SourceRegister: 1, SetName: m, IsDestRegSet: true}}
}

func counted(es ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for i, e := range es {
		if i == len(es)-1 {
			out = append(out, &expr.Counter{})
		}
		out = append(out, e...)
	}
	return out
}

func mk(es ...expr.Any) []expr.Any { return es }
