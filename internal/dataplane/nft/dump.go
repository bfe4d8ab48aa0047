package nft

import (
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Dump reads table name (family inet) back from the kernel and renders it
// with render: a stable text for golden tests and debugging.
func Dump(c *nftables.Conn, name string) (string, error) {
	t, err := c.ListTableOfFamily(name, nftables.TableFamilyINet)
	if err != nil {
		return "", fmt.Errorf("list nft table inet %s: %w", name, err)
	}
	s := &spec{Table: t, Rules: map[string][]*nftables.Rule{}}
	sets, err := c.GetSets(t)
	if err != nil {
		return "", fmt.Errorf("list sets of inet %s: %w", name, err)
	}
	for _, set := range sets {
		elems, err := c.GetSetElements(set)
		if err != nil {
			return "", fmt.Errorf("list elements of set %s: %w", set.Name, err)
		}
		s.Sets = append(s.Sets, setSpec{Set: set, Elements: elems})
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return "", fmt.Errorf("list chains of inet %s: %w", name, err)
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != name {
			continue
		}
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return "", fmt.Errorf("list rules of chain %s: %w", ch.Name, err)
		}
		s.Chains = append(s.Chains, ch)
		s.Rules[ch.Name] = rules
	}
	return render(s), nil
}

// render prints a table in an nft-like syntax: sets then chains, each
// sorted by name, rules in order, set elements as merged prefixes. Counter
// values are omitted so that the text only depends on configuration.
func render(s *spec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s\n", s.Table.Name)
	sets := slices.Clone(s.Sets)
	slices.SortFunc(sets, func(a, b setSpec) int { return strings.Compare(a.Set.Name, b.Set.Name) })
	for _, ss := range sets {
		flags := ""
		if ss.Set.Interval {
			flags = " flags interval;"
		}
		elems := ""
		if es := renderElements(ss.Set, ss.Elements); len(es) > 0 {
			elems = " elements = { " + strings.Join(es, ", ") + " }"
		}
		fmt.Fprintf(&b, "  set %s { type %s;%s%s }\n", ss.Set.Name, ss.Set.KeyType.Name, flags, elems)
	}
	chains := slices.Clone(s.Chains)
	slices.SortFunc(chains, func(a, b *nftables.Chain) int { return strings.Compare(a.Name, b.Name) })
	for _, ch := range chains {
		fmt.Fprintf(&b, "  chain %s {", ch.Name)
		if ch.Hooknum != nil {
			policy := "accept"
			if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
				policy = "drop"
			}
			var prio int32
			if ch.Priority != nil {
				prio = int32(*ch.Priority)
			}
			fmt.Fprintf(&b, " type %s hook %s priority %d; policy %s;", ch.Type, hookName(*ch.Hooknum), prio, policy)
		}
		b.WriteString("\n")
		for _, r := range s.Rules[ch.Name] {
			fmt.Fprintf(&b, "    %s\n", renderExprs(r.Exprs))
		}
		b.WriteString("  }\n")
	}
	return b.String()
}

func hookName(h nftables.ChainHook) string {
	switch h {
	case *nftables.ChainHookPrerouting:
		return "prerouting"
	case *nftables.ChainHookInput:
		return "input"
	case *nftables.ChainHookForward:
		return "forward"
	case *nftables.ChainHookOutput:
		return "output"
	case *nftables.ChainHookPostrouting:
		return "postrouting"
	}
	return fmt.Sprintf("hook%d", h)
}

// renderElements turns interval elements back into prefixes (a range that
// is not a single prefix prints as the prefixes covering it).
func renderElements(set *nftables.Set, elems []nftables.SetElement) []string {
	if !set.Interval {
		var out []string
		for _, e := range elems {
			out = append(out, fmt.Sprintf("%x", e.Key))
		}
		slices.Sort(out)
		return out
	}
	type mark struct {
		a   netip.Addr
		end bool
	}
	var ms []mark
	for _, e := range elems {
		a, ok := netip.AddrFromSlice(e.Key)
		if !ok {
			continue
		}
		ms = append(ms, mark{a, e.IntervalEnd})
	}
	// Kernel dumps come in any order; starts sort before ends at the
	// same address (an end at X closes a range ending at X-1).
	slices.SortFunc(ms, func(x, y mark) int {
		if c := x.a.Compare(y.a); c != 0 {
			return c
		}
		switch {
		case x.end == y.end:
			return 0
		case x.end:
			return -1
		}
		return 1
	})
	var out []string
	for i := 0; i < len(ms); i++ {
		if ms[i].end {
			continue // e.g. the 0.0.0.0 end marker nft itself adds
		}
		lo := ms[i].a
		var hi netip.Addr // inclusive; zero means top of address space
		if i+1 < len(ms) && ms[i+1].end {
			hi = ms[i+1].a.Prev()
			i++
		} else {
			hi = top(lo)
		}
		for _, p := range rangePrefixes(lo, hi) {
			out = append(out, p.String())
		}
	}
	return out
}

func toInt(a netip.Addr) *big.Int { return new(big.Int).SetBytes(a.AsSlice()) }

func fromInt(i *big.Int, like netip.Addr) netip.Addr {
	b := make([]byte, like.BitLen()/8)
	i.FillBytes(b)
	a, _ := netip.AddrFromSlice(b)
	return a
}

func top(like netip.Addr) netip.Addr {
	if like.Is4() {
		return netip.AddrFrom4([4]byte{255, 255, 255, 255})
	}
	var b [16]byte
	for i := range b {
		b[i] = 0xff
	}
	return netip.AddrFrom16(b)
}

// rangePrefixes returns the fewest prefixes covering [lo, hi] exactly.
func rangePrefixes(lo, hi netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	bits := lo.BitLen()
	one := big.NewInt(1)
	l, h := toInt(lo), toInt(hi)
	for l.Cmp(h) <= 0 {
		// Largest block aligned at l that does not pass h.
		size := 0
		for size < bits {
			blk := new(big.Int).Lsh(one, uint(size+1))
			if new(big.Int).Mod(l, blk).Sign() != 0 {
				break
			}
			end := new(big.Int).Add(l, blk)
			end.Sub(end, one)
			if end.Cmp(h) > 0 {
				break
			}
			size++
		}
		out = append(out, netip.PrefixFrom(fromInt(l, lo), bits-size))
		l.Add(l, new(big.Int).Lsh(one, uint(size)))
	}
	return out
}

// renderExprs prints a rule's expressions in nft-like words. It knows the
// shapes our builders emit and falls back to Go syntax for anything else,
// so an unexpected expression is visible in a golden diff.
func renderExprs(es []expr.Any) string {
	var words []string
	var pendingMeta *expr.Meta
	var pendingPayload *expr.Payload
	for _, e := range es {
		switch e := e.(type) {
		case *expr.Meta:
			pendingMeta = e
		case *expr.Payload:
			pendingPayload = e
		case *expr.Cmp:
			op := ""
			if e.Op == expr.CmpOpNeq {
				op = "!= "
			}
			switch {
			case pendingMeta != nil && pendingMeta.Key == expr.MetaKeyNFPROTO && len(e.Data) == 1:
				words = append(words, "meta nfproto "+op+nfprotoName(e.Data[0]))
			default:
				words = append(words, fmt.Sprintf("%s%s%x", lhs(pendingMeta, pendingPayload), op, e.Data))
			}
			pendingMeta, pendingPayload = nil, nil
		case *expr.Lookup:
			op := ""
			if e.Invert {
				op = "!= "
			}
			words = append(words, fmt.Sprintf("%s%s@%s", lhs(pendingMeta, pendingPayload), op, e.SetName))
			pendingMeta, pendingPayload = nil, nil
		case *expr.Counter:
			words = append(words, "counter")
		case *expr.Masq:
			w := "masquerade"
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

func lhs(m *expr.Meta, p *expr.Payload) string {
	switch {
	case p != nil && p.Base == expr.PayloadBaseNetworkHeader:
		switch [2]uint32{p.Offset, p.Len} {
		case [2]uint32{12, 4}:
			return "ip saddr "
		case [2]uint32{16, 4}:
			return "ip daddr "
		case [2]uint32{8, 16}:
			return "ip6 saddr "
		case [2]uint32{24, 16}:
			return "ip6 daddr "
		}
		return fmt.Sprintf("@nh,%d,%d ", p.Offset*8, p.Len*8)
	case p != nil:
		return fmt.Sprintf("@base%d,%d,%d ", p.Base, p.Offset*8, p.Len*8)
	case m != nil:
		return fmt.Sprintf("meta key%d ", m.Key)
	}
	return ""
}

func nfprotoName(b byte) string {
	switch b {
	case unix.NFPROTO_IPV4:
		return "ipv4"
	case unix.NFPROTO_IPV6:
		return "ipv6"
	}
	return fmt.Sprint(b)
}

func verdictName(v *expr.Verdict) string {
	switch v.Kind {
	case expr.VerdictAccept:
		return "accept"
	case expr.VerdictDrop:
		return "drop"
	case expr.VerdictReturn:
		return "return"
	case expr.VerdictJump:
		return "jump " + v.Chain
	case expr.VerdictGoto:
		return "goto " + v.Chain
	}
	return fmt.Sprintf("verdict%d", v.Kind)
}
