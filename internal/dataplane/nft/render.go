package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// renderSetDecl prints one named set or map with its elements.
func renderSetDecl(ss setSpec) string {
	kind, typ := "set", ss.Set.KeyType.Name
	if ss.Set.IsMap {
		kind = "map"
		typ += " : " + ss.Set.DataType.Name
	}
	flags := ""
	if ss.Set.Interval {
		flags = " flags interval;"
	}
	elems := ""
	if es := renderElements(ss.Set, ss.Elements); len(es) > 0 {
		elems = " elements = { " + strings.Join(es, ", ") + " }"
	}
	return fmt.Sprintf("  %s %s { type %s;%s%s }\n", kind, ss.Set.Name, typ, flags, elems)
}

// renderKey prints one element key by the set's key type.
func renderKey(t nftables.SetDatatype, k []byte) string {
	names := strings.Split(t.Name, " . ")
	if len(names) > 1 {
		var parts []string
		for _, n := range names {
			size := map[string]int{"ipv4_addr": 4, "ipv6_addr": 16}[n]
			if size == 0 {
				size = 4
			}
			if len(k) < size {
				break
			}
			parts = append(parts, renderScalar(n, k[:size]))
			k = k[size:]
		}
		return strings.Join(parts, " . ")
	}
	return renderScalar(t.Name, k)
}

func renderScalar(typ string, k []byte) string {
	switch typ {
	case "ipv4_addr", "ipv6_addr":
		if a, ok := netip.AddrFromSlice(k); ok {
			return a.String()
		}
	case "ifname":
		return strconv.Quote(strings.TrimRight(string(k), "\x00"))
	case "inet_service":
		if len(k) >= 2 {
			return strconv.Itoa(int(binary.BigEndian.Uint16(k)))
		}
	case "inet_proto":
		if len(k) >= 1 {
			return protoName(k[0])
		}
	}
	return fmt.Sprintf("0x%x", k)
}

// renderPlain prints the elements of a set that is not an address
// interval set: ports as ranges, maps with their verdicts.
func renderPlain(set *nftables.Set, elems []nftables.SetElement) []string {
	var out []string
	if set.Interval {
		// Pairs of start and end (exclusive) markers, in key order.
		es := slices.Clone(elems)
		slices.SortFunc(es, compareIntervalElems)
		for i := 0; i < len(es); i++ {
			if es[i].IntervalEnd {
				continue
			}
			lo := renderKey(set.KeyType, es[i].Key)
			hi := "max"
			if i+1 < len(es) && es[i+1].IntervalEnd {
				if set.KeyType.Name == "inet_service" && len(es[i+1].Key) == 2 {
					hi = strconv.Itoa(int(binary.BigEndian.Uint16(es[i+1].Key)) - 1)
				} else {
					hi = "<" + renderKey(set.KeyType, es[i+1].Key)
				}
				i++
			}
			if hi == lo {
				out = append(out, lo)
			} else {
				out = append(out, lo+"-"+hi)
			}
		}
		return out
	}
	for _, e := range elems {
		s := renderKey(set.KeyType, e.Key)
		if e.VerdictData != nil {
			s += " : " + verdictName(e.VerdictData)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func protoName(p byte) string {
	switch p {
	case 1:
		return "icmp"
	case 4:
		return "ipip"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "ipv6-icmp"
	case 132:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

func ctStateNames(bits uint32) string {
	var out []string
	for _, s := range []struct {
		bit  uint32
		name string
	}{{expr.CtStateBitINVALID, "invalid"}, {expr.CtStateBitESTABLISHED, "established"}, {expr.CtStateBitRELATED, "related"},
		{expr.CtStateBitNEW, "new"}, {expr.CtStateBitUNTRACKED, "untracked"}} {
		if bits&s.bit != 0 {
			out = append(out, s.name)
		}
	}
	return strings.Join(out, ",")
}

func u32(b []byte) uint32 {
	if len(b) != 4 {
		return 0
	}
	return nativeU32(b)
}

// renderRule prints a rule's expressions in nft-like words. It knows the
// shapes our builders emit and falls back to Go syntax for anything else,
// so an unexpected expression is visible in a golden diff. Anonymous sets
// are printed inline from sets.
func renderRule(es []expr.Any, sets map[string]setSpec) string {
	var words, pending []string
	var bitwise *expr.Bitwise
	var l4 byte
	imm := map[uint32][]byte{} // data loaded into registers, for NAT
	lhs := func() string {
		s := strings.Join(pending, " . ")
		pending = nil
		return s
	}
	cmpOp := func(op expr.CmpOp) string {
		switch op {
		case expr.CmpOpNeq:
			return "!= "
		case expr.CmpOpLt:
			return "< "
		case expr.CmpOpGt:
			return "> "
		}
		return ""
	}
	for _, e := range es {
		switch e := e.(type) {
		case *expr.Meta:
			if e.SourceRegister {
				m := "mark"
				if bitwise != nil {
					m = fmt.Sprintf("mark & 0x%08x ^ 0x%x", u32(bitwise.Mask), u32(bitwise.Xor))
				}
				words = append(words, "meta mark set "+m)
				pending, bitwise = nil, nil
				continue
			}
			pending = append(pending, metaName(e.Key))
		case *expr.Ct:
			pending = append(pending, "ct key"+strconv.Itoa(int(e.Key)))
			if e.Key == expr.CtKeySTATE {
				pending[len(pending)-1] = "ct state"
			}
		case *expr.Payload:
			pending = append(pending, payloadName(e, l4))
		case *expr.Bitwise:
			bitwise = e
		case *expr.Cmp:
			l := lhs()
			switch {
			case l == "meta nfproto" && len(e.Data) == 1:
				words = append(words, "meta nfproto "+cmpOp(e.Op)+nfprotoName(e.Data[0]))
			case l == "meta l4proto" && len(e.Data) == 1:
				if e.Op == expr.CmpOpEq {
					l4 = e.Data[0]
				}
				words = append(words, "meta l4proto "+cmpOp(e.Op)+protoName(e.Data[0]))
			case (l == "iifname" || l == "oifname") && len(e.Data) < 16:
				words = append(words, l+" "+cmpOp(e.Op)+strconv.Quote(string(e.Data)+"*"))
			case l == "iifname" || l == "oifname":
				words = append(words, l+" "+cmpOp(e.Op)+strconv.Quote(strings.TrimRight(string(e.Data), "\x00")))
			case l == "ct state" && bitwise != nil:
				words = append(words, "ct state "+ctStateNames(u32(bitwise.Mask)))
			case l == "meta mark" && bitwise != nil:
				words = append(words, fmt.Sprintf("meta mark & 0x%x %s0x%x", u32(bitwise.Mask), map[bool]string{true: "== ", false: ""}[e.Op == expr.CmpOpEq]+cmpOp(e.Op), u32(e.Data)))
			default:
				words = append(words, l+" "+cmpOp(e.Op)+renderData(l, e.Data))
			}
			bitwise = nil
		case *expr.Range:
			words = append(words, fmt.Sprintf("%s %s%s-%s", lhs(), cmpOp(e.Op), renderData("", e.FromData), renderData("", e.ToData)))
		case *expr.Lookup:
			l := lhs()
			if e.IsDestRegSet {
				words = append(words, l+" vmap @"+e.SetName)
				continue
			}
			op := ""
			if e.Invert {
				op = "!= "
			}
			target := "@" + e.SetName
			if ss, ok := sets[e.SetName]; ok && ss.Set.Anonymous {
				target = "{ " + strings.Join(renderElements(ss.Set, ss.Elements), ", ") + " }"
			}
			words = append(words, l+" "+op+target)
		case *expr.Counter:
			words = append(words, "counter")
		case *expr.Objref:
			words = append(words, "counter name "+strconv.Quote(e.Name))
		case *expr.Log:
			words = append(words, "log prefix "+strconv.Quote(string(e.Data)))
		case *expr.Notrack:
			words = append(words, "notrack")
		case *expr.Immediate:
			imm[e.Register] = e.Data
		case *expr.NAT:
			words = append(words, renderNAT(e, imm))
		case *expr.Masq:
			w := "masquerade"
			if e.ToPorts {
				w += " to :" + portRange(imm[e.RegProtoMin], imm[e.RegProtoMax])
			}
			if e.Random {
				w += " random"
			}
			if e.FullyRandom {
				w += " fully-random"
			}
			if e.Persistent {
				w += " persistent"
			}
			words = append(words, w)
		case *expr.Verdict:
			words = append(words, verdictName(e))
		default:
			words = append(words, fmt.Sprintf("%T%+v", e, e))
		}
	}
	return strings.Join(words, " ")
}

// renderNAT prints an SNAT as nft does: snat ip to ADDR[:MIN-MAX] [fully-random].
func renderNAT(e *expr.NAT, imm map[uint32][]byte) string {
	w := "dnat"
	if e.Type == expr.NATTypeSourceNAT {
		w = "snat"
	}
	if e.Family == unix.NFPROTO_IPV6 {
		w += " ip6 to "
	} else {
		w += " ip to "
	}
	if a, ok := netip.AddrFromSlice(imm[e.RegAddrMin]); ok && e.RegAddrMin != 0 {
		w += a.String()
	}
	if e.RegProtoMin != 0 {
		w += ":" + portRange(imm[e.RegProtoMin], imm[e.RegProtoMax])
	}
	if e.FullyRandom {
		w += " fully-random"
	}
	return w
}

// portRange prints two registers' big-endian ports as MIN-MAX.
func portRange(lo, hi []byte) string {
	port := func(b []byte) string {
		if len(b) < 2 {
			return "?"
		}
		return strconv.Itoa(int(binary.BigEndian.Uint16(b)))
	}
	return port(lo) + "-" + port(hi)
}

// renderExprs is renderRule without anonymous sets.
func renderExprs(es []expr.Any) string { return renderRule(es, nil) }

func metaName(k expr.MetaKey) string {
	switch k {
	case expr.MetaKeyNFPROTO:
		return "meta nfproto"
	case expr.MetaKeyL4PROTO:
		return "meta l4proto"
	case expr.MetaKeyIIFNAME:
		return "iifname"
	case expr.MetaKeyOIFNAME:
		return "oifname"
	case expr.MetaKeyMARK:
		return "meta mark"
	}
	return fmt.Sprintf("meta key%d", k)
}

func payloadName(p *expr.Payload, l4 byte) string {
	switch p.Base {
	case expr.PayloadBaseNetworkHeader:
		switch [2]uint32{p.Offset, p.Len} {
		case [2]uint32{12, 4}:
			return "ip saddr"
		case [2]uint32{16, 4}:
			return "ip daddr"
		case [2]uint32{8, 16}:
			return "ip6 saddr"
		case [2]uint32{24, 16}:
			return "ip6 daddr"
		}
	case expr.PayloadBaseTransportHeader:
		icmp := l4 == 1 || l4 == 58
		switch {
		case icmp && p.Offset == 0 && p.Len == 1:
			return "icmp type"
		case icmp && p.Offset == 0 && p.Len == 2:
			return "icmp type . code"
		case p.Offset == 0 && p.Len == 2:
			return "th sport"
		case p.Offset == 2 && p.Len == 2:
			return "th dport"
		case p.Offset == 0 && p.Len == 1:
			return "th type"
		}
	}
	return fmt.Sprintf("@base%d,%d,%d", p.Base, p.Offset*8, p.Len*8)
}

func renderData(lhs string, d []byte) string {
	switch {
	case strings.HasSuffix(lhs, "port") && len(d) == 2:
		return strconv.Itoa(int(binary.BigEndian.Uint16(d)))
	case len(d) == 1:
		return strconv.Itoa(int(d[0]))
	case lhs == "icmp type . code" && len(d) == 2:
		return fmt.Sprintf("%d . %d", d[0], d[1])
	case len(d) == 2 && lhs == "":
		return strconv.Itoa(int(binary.BigEndian.Uint16(d)))
	case len(d) == 4 || len(d) == 16:
		if a, ok := netip.AddrFromSlice(d); ok && strings.Contains(lhs, "addr") {
			return a.String()
		}
	}
	return fmt.Sprintf("0x%x", d)
}

// specOf turns a built policy state into the spec render prints, with
// anonymous sets under their placeholder names.
func specOf(st *policyState) *spec {
	s := &spec{Table: st.table, Rules: map[string][]*nftables.Rule{}}
	for _, name := range sortedKeys(st.sets) {
		ps := st.sets[name]
		s.Sets = append(s.Sets, setSpec{Set: ps.set, Elements: ps.elems})
	}
	for _, name := range sortedKeys(st.chains) {
		c := st.chains[name]
		s.Chains = append(s.Chains, c.chain)
		for _, r := range c.rules {
			for _, a := range r.anon {
				s.Sets = append(s.Sets, setSpec{Set: a.set, Elements: a.elems})
			}
			s.Rules[name] = append(s.Rules[name], &nftables.Rule{Exprs: r.exprs})
		}
	}
	return s
}

// renderChainFP is a chain's content as text, to compare with the last
// applied one.
func renderChainFP(c *pChain) string {
	sets := map[string]setSpec{}
	for _, r := range c.rules {
		for _, a := range r.anon {
			sets[a.lookup.SetName] = setSpec{Set: a.set, Elements: a.elems}
		}
	}
	var b strings.Builder
	for _, r := range c.rules {
		b.WriteString(renderRule(r.exprs, sets))
		b.WriteByte('\n')
	}
	return b.String()
}

func nativeU32(b []byte) uint32 { return binaryutil.NativeEndian.Uint32(b) }

// compareIntervalElems orders an interval set's elements by key, an end
// marker before a start marker at the same key.
func compareIntervalElems(a, b nftables.SetElement) int {
	if c := slices.Compare(a.Key, b.Key); c != 0 {
		return c
	}
	switch {
	case a.IntervalEnd == b.IntervalEnd:
		return 0
	case a.IntervalEnd:
		return -1
	}
	return 1
}
