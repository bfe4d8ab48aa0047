package nft

import (
	"encoding/binary"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	nlattr "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Dump reads table name (family inet) back from the kernel and renders it
// with render: a stable text for golden tests and debugging.
func Dump(c *nftables.Conn, name string) (string, error) {
	s, err := readSpec(c, name)
	if err != nil {
		return "", err
	}
	return render(s), nil
}

// readSpec reads table name (family inet) back: its sets with their
// elements, its chains and their rules.
func readSpec(c *nftables.Conn, name string) (*spec, error) {
	t, err := c.ListTableOfFamily(name, nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list nft table inet %s: %w", name, err)
	}
	s := &spec{Table: t, Rules: map[string][]*nftables.Rule{}}
	sets, err := c.GetSets(t)
	if err != nil {
		return nil, fmt.Errorf("list sets of inet %s: %w", name, err)
	}
	for _, set := range sets {
		elems, err := c.GetSetElements(set)
		if err != nil {
			return nil, fmt.Errorf("list elements of set %s: %w", set.Name, err)
		}
		if set.IsMap && set.KeyType.Name == TypeVerdictName {
			fixVerdictMap(set, elems)
		}
		s.Sets = append(s.Sets, setSpec{Set: set, Elements: elems})
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list chains of inet %s: %w", name, err)
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != name {
			continue
		}
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return nil, fmt.Errorf("list rules of chain %s: %w", ch.Name, err)
		}
		s.Chains = append(s.Chains, ch)
		s.Rules[ch.Name] = rules
	}
	return s, nil
}

// render prints a table in an nft-like syntax: sets then chains, each
// sorted by name, rules in order, set elements as merged prefixes. Counter
// values are omitted so that the text only depends on configuration.
func render(s *spec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s\n", s.Table.Name)
	sets := slices.Clone(s.Sets)
	slices.SortFunc(sets, func(a, b setSpec) int { return strings.Compare(a.Set.Name, b.Set.Name) })
	byName := map[string]setSpec{}
	for _, ss := range sets {
		byName[ss.Set.Name] = ss
	}
	for _, ss := range sets {
		if ss.Set.Anonymous {
			continue
		}
		b.WriteString(renderSetDecl(ss))
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
			fmt.Fprintf(&b, "    %s\n", renderRule(r.Exprs, byName))
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
	if !set.Interval || (set.KeyType.Name != "" && set.KeyType.Name != "ipv4_addr" && set.KeyType.Name != "ipv6_addr") {
		return renderPlain(set, elems)
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

// TypeVerdictName is the name of nftables' verdict data type.
const TypeVerdictName = "verdict"

// fixVerdictMap repairs what nftables v0.3.0 reads back for a verdict
// map: it stores the data type as the key type, and leaves each element's
// verdict as raw attributes in Val. Our only verdict maps are keyed by
// interface name.
func fixVerdictMap(set *nftables.Set, elems []nftables.SetElement) {
	set.KeyType, set.DataType = nftables.TypeIFName, nftables.TypeVerdict
	for i := range elems {
		if v, err := parseVerdict(elems[i].Val); err == nil {
			elems[i].VerdictData = v
		}
	}
}

// parseVerdict reads a verdict map element's data as google/nftables
// leaves it (the nested NFTA_VERDICT_* attributes): nil and the error when
// b is not attributes at all, else what it read and the decoder's error.
func parseVerdict(b []byte) (*expr.Verdict, error) {
	ad, err := nlattr.NewAttributeDecoder(b)
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	v := &expr.Verdict{}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			v.Kind = expr.VerdictKind(int32(ad.Uint32()))
		case unix.NFTA_VERDICT_CHAIN:
			v.Chain = ad.String()
		}
	}
	return v, ad.Err()
}
