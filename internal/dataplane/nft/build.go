package nft

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Names of the objects in our table. Sets are typed, so an inet table needs
// one set per address family.
const (
	ChainNATPostrouting = "nat-postrouting"
	SetMasqPoolsV4      = "masq-ipam-pools-v4"
	SetMasqPoolsV6      = "masq-ipam-pools-v6"
	SetAllPoolsV4       = "all-ipam-pools-v4"
	SetAllPoolsV6       = "all-ipam-pools-v6"
)

// family selects IPv4 or IPv6 parts of the ruleset.
type family int

const (
	v4 family = 4
	v6 family = 6
)

func (f family) nfproto() byte {
	if f == v4 {
		return unix.NFPROTO_IPV4
	}
	return unix.NFPROTO_IPV6
}

func (f family) keyType() nftables.SetDatatype {
	if f == v4 {
		return nftables.TypeIPAddr
	}
	return nftables.TypeIP6Addr
}

// srcOffset/dstOffset/addrLen locate the addresses in the network header.
func (f family) srcOffset() uint32 {
	if f == v4 {
		return 12
	}
	return 8
}

func (f family) dstOffset() uint32 {
	if f == v4 {
		return 16
	}
	return 24
}

func (f family) addrLen() uint32 {
	if f == v4 {
		return 4
	}
	return 16
}

// setSpec is a set with the elements it should hold.
type setSpec struct {
	Set      *nftables.Set
	Elements []nftables.SetElement
}

// spec is the complete desired content of our table, built without a
// kernel. rules is keyed by chain name; chains are in creation order.
type spec struct {
	Table  *nftables.Table
	Sets   []setSpec
	Chains []*nftables.Chain
	Rules  map[string][]*nftables.Rule
}

func buildTable(name string) *nftables.Table {
	return &nftables.Table{Name: name, Family: nftables.TableFamilyINet}
}

// buildIntervalSet builds a named interval set of addresses holding the
// given prefixes of family f (prefixes of the other family are ignored).
func buildIntervalSet(t *nftables.Table, name string, f family, prefixes []netip.Prefix) (setSpec, error) {
	var mine []netip.Prefix
	for _, p := range prefixes {
		if p.Addr().Is4() == (f == v4) {
			mine = append(mine, p)
		}
	}
	elems, err := intervalElements(mine)
	if err != nil {
		return setSpec{}, fmt.Errorf("build set %s: %w", name, err)
	}
	return setSpec{
		Set:      &nftables.Set{Table: t, Name: name, KeyType: f.keyType(), Interval: true},
		Elements: elems,
	}, nil
}

// buildNATChain is the nat postrouting base chain at priority srcnat.
func buildNATChain(t *nftables.Table) *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return &nftables.Chain{
		Name:     ChainNATPostrouting,
		Table:    t,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
		Policy:   &accept,
	}
}

// buildMasqRules are Felix's natOutgoing rules for one family:
//
//	meta nfproto ipvX  ipX saddr @masq  ipX daddr != @all  counter masquerade [fully-random]
//
// Packets from a natOutgoing pool to anywhere outside every pool (disabled
// pools included) leave with the node's address, or with n.SNATAddress
// (IPv4: "snat ip to ADDR"). With a port range, TCP and UDP first get
// rules of their own that map the source port into it, as Felix does.
func buildMasqRules(t *nftables.Table, c *nftables.Chain, f family, masq, all *nftables.Set, n NAT) []*nftables.Rule {
	match := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{f.nfproto()}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: f.srcOffset(), Len: f.addrLen()},
		&expr.Lookup{SourceRegister: 1, SetName: masq.Name, SetID: masq.ID},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: f.dstOffset(), Len: f.addrLen()},
		&expr.Lookup{SourceRegister: 1, SetName: all.Name, SetID: all.ID, Invert: true},
	}
	rule := func(exprs ...expr.Any) *nftables.Rule {
		return &nftables.Rule{Table: t, Chain: c, Exprs: append(slices.Clone(match), exprs...)}
	}
	var rules []*nftables.Rule
	if n.PortMin != 0 {
		for _, proto := range []byte{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
			l4 := []expr.Any{
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
				&expr.Counter{},
			}
			rules = append(rules, rule(append(l4, natAction(f, n, true)...)...))
		}
	}
	return append(rules, rule(append([]expr.Any{&expr.Counter{}}, natAction(f, n, false)...)...))
}

// natAction is the masquerade, or the SNAT to n.SNATAddress (IPv4 only),
// with n's port range when ports is set. Registers: 1 the address, then
// the ports.
func natAction(f family, n NAT, ports bool) []expr.Any {
	var es []expr.Any
	reg := uint32(1)
	load := func(data []byte) uint32 {
		es = append(es, &expr.Immediate{Register: reg, Data: data})
		reg++
		return reg - 1
	}
	if f == v4 && n.SNATAddress.IsValid() {
		nat := &expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, FullyRandom: n.FullyRandom}
		nat.RegAddrMin = load(n.SNATAddress.AsSlice())
		if ports {
			nat.RegProtoMin = load(binary.BigEndian.AppendUint16(nil, n.PortMin))
			nat.RegProtoMax = load(binary.BigEndian.AppendUint16(nil, n.PortMax))
		}
		return append(es, nat)
	}
	if !ports {
		return []expr.Any{&expr.Masq{FullyRandom: n.FullyRandom}}
	}
	// The library cannot send masquerade flags together with a port range:
	// with natPortRange, masquerade is not fully-random.
	m := &expr.Masq{ToPorts: true}
	m.RegProtoMin = load(binary.BigEndian.AppendUint16(nil, n.PortMin))
	m.RegProtoMax = load(binary.BigEndian.AppendUint16(nil, n.PortMax))
	return append(es, m)
}

func hasFamily(ps []netip.Prefix, f family) bool {
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Addr().Is4() == (f == v4) })
}

// build turns the desired Table into nftables objects. Set IDs are left for
// the applier to assign; rules are built by the caller of buildRules once
// the sets have IDs.
func build(t Table) (*spec, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	tbl := buildTable(t.Name)
	s := &spec{Table: tbl, Rules: map[string][]*nftables.Rule{}}
	for _, x := range []struct {
		name  string
		f     family
		pools []netip.Prefix
	}{
		{SetAllPoolsV4, v4, t.NAT.AllPools},
		{SetAllPoolsV6, v6, t.NAT.AllPools},
		{SetMasqPoolsV4, v4, t.NAT.MasqPools},
		{SetMasqPoolsV6, v6, t.NAT.MasqPools},
	} {
		ss, err := buildIntervalSet(tbl, x.name, x.f, x.pools)
		if err != nil {
			return nil, err
		}
		s.Sets = append(s.Sets, ss)
	}
	s.Chains = append(s.Chains, buildNATChain(tbl))
	s.buildRules(t)
	return s, nil
}

// buildRules (re)builds the rules from s's sets, so that they pick up the
// set IDs the applier assigned.
func (s *spec) buildRules(t Table) {
	set := func(name string) *nftables.Set {
		for _, ss := range s.Sets {
			if ss.Set.Name == name {
				return ss.Set
			}
		}
		panic("nft: unknown set " + name) // programming error: names are constants
	}
	nat := s.Chains[0]
	var rules []*nftables.Rule
	if hasFamily(t.NAT.MasqPools, v4) {
		rules = append(rules, buildMasqRules(s.Table, nat, v4, set(SetMasqPoolsV4), set(SetAllPoolsV4), t.NAT)...)
	}
	if hasFamily(t.NAT.MasqPools, v6) {
		rules = append(rules, buildMasqRules(s.Table, nat, v6, set(SetMasqPoolsV6), set(SetAllPoolsV6), t.NAT)...)
	}
	s.Rules[nat.Name] = rules
}

// intervalElements encodes prefixes as interval-set elements: each merged
// range [start, end] becomes {start} and {end+1, IntervalEnd}, the end
// marker omitted when the range reaches the top of the address space.
func intervalElements(ps []netip.Prefix) ([]nftables.SetElement, error) {
	type rng struct{ lo, hi netip.Addr }
	var rs []rng
	for _, p := range ps {
		if !p.IsValid() {
			return nil, fmt.Errorf("invalid prefix %v", p)
		}
		p = p.Masked()
		rs = append(rs, rng{p.Addr(), lastAddr(p)})
	}
	slices.SortFunc(rs, func(a, b rng) int { return cmp.Or(a.lo.Compare(b.lo), a.hi.Compare(b.hi)) })
	var merged []rng
	for _, r := range rs {
		if n := len(merged); n > 0 {
			last := &merged[n-1]
			if next := last.hi.Next(); !next.IsValid() || r.lo.Compare(next) <= 0 {
				if r.hi.Compare(last.hi) > 0 {
					last.hi = r.hi
				}
				continue
			}
		}
		merged = append(merged, r)
	}
	var out []nftables.SetElement
	for _, r := range merged {
		out = append(out, nftables.SetElement{Key: r.lo.AsSlice()})
		if end := r.hi.Next(); end.IsValid() {
			out = append(out, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
		}
	}
	return out, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
