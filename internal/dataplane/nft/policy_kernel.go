package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Reading the policy table back from the kernel.
//
// Why: someone (a person with nft, another program) can edit the table
// the daemon owns: delete a rule, flush a chain, add or remove a set or
// map element, add a chain. A periodic resync must notice and put the
// desired content back, and a restarted daemon that finds its previous
// table unchanged should keep it (and its counters) rather than rewrite
// it. Both read the table (chains with their rules, named sets with their
// elements, counter objects) into a policyState and diff the desired
// state against it, so that one batch sends only what differs.
//
// Rules are compared by their expressions as the kernel dumps them, with
// counter values and the names of anonymous sets left out (the kernel
// names those itself; they are constant, so nobody can change their
// members in place). A chain whose rules are not exactly those wanted is
// flushed and refilled.
//
// Cheap when nothing changed: every committed nftables transaction in a
// namespace bumps its generation number. The applier remembers the
// generation at which the kernel's table was known to hold what it last
// applied; while the generation has not moved, Check costs one netlink
// round trip. Only when something (anything, in any table) committed
// since does Check read the table back.

// errForeign says that the kernel's table has something a diff cannot
// fix in place (a base chain with another hook or priority, a set with
// other flags): the table is replaced whole.
var errForeign = errors.New("policy table holds objects of another shape")

// readPolicyState reads table back as a policyState to diff want
// against: a chain whose rules are want's keeps want's fingerprint, any
// other gets one no build produces; sets carry their kernel elements;
// counters their names. It returns nil when the table does not exist.
func readPolicyState(c *nftables.Conn, b *BatchSocket, want *policyState) (*policyState, error) {
	t := want.table
	if _, err := c.ListTableOfFamily(t.Name, t.Family); err != nil {
		if errors.Is(err, unix.ENOENT) || strings.Contains(err.Error(), "no such file") {
			return nil, nil
		}
		return nil, fmt.Errorf("read table inet %s: %w", t.Name, err)
	}
	st := &policyState{table: t, chains: map[string]*pChain{}, sets: map[string]*pSet{}, counters: map[string]CounterInfo{}}
	if err := readChains(c, b, want, st); err != nil {
		return nil, err
	}
	if err := readSets(c, want, st); err != nil {
		return nil, err
	}
	objs, err := c.GetNamedObjects(t)
	if err != nil {
		return nil, fmt.Errorf("read objects of inet %s: %w", t.Name, err)
	}
	for _, o := range objs {
		if n, ok := o.(*nftables.NamedObj); ok && n.Type == nftables.ObjTypeCounter {
			st.counters[n.Name] = CounterInfo{}
		} else {
			return nil, fmt.Errorf("object %v: %w", o, errForeign)
		}
	}
	return st, nil
}

// readChains reads every chain of the table with its rules.
func readChains(c *nftables.Conn, b *BatchSocket, want, st *policyState) error {
	t := want.table
	chains, err := c.ListChainsOfTableFamily(t.Family)
	if err != nil {
		return fmt.Errorf("read chains of inet %s: %w", t.Name, err)
	}
	all, err := b.tableRules(t)
	if err != nil {
		return err
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != t.Name {
			continue
		}
		w := want.chains[ch.Name]
		if w != nil && !sameChainShape(ch, w.chain) {
			return fmt.Errorf("chain %s: %w", ch.Name, errForeign)
		}
		rules := all[ch.Name] // an empty chain has no entry
		if all == nil {
			if rules, err = c.GetRules(t, ch); err != nil {
				return fmt.Errorf("read chain %s of inet %s: %w", ch.Name, t.Name, err)
			}
		}
		fp := "\x00kernel" // matches no built chain
		if w != nil && kernelRulesSig(rules) == w.kernelSig() {
			fp = w.fp
		}
		ch.Table = t
		st.chains[ch.Name] = &pChain{chain: ch, fp: fp}
	}
	return nil
}

// sameChainShape: both regular, or both base chains on the same hook,
// priority, type and policy.
func sameChainShape(k, w *nftables.Chain) bool {
	if (k.Hooknum == nil) != (w.Hooknum == nil) {
		return false
	}
	if w.Hooknum == nil {
		return true
	}
	return *k.Hooknum == *w.Hooknum && k.Priority != nil && *k.Priority == *w.Priority &&
		k.Type == w.Type && k.Policy != nil && *k.Policy == *w.Policy
}

// readSets reads the named sets and maps with their elements.
func readSets(c *nftables.Conn, want, st *policyState) error {
	t := want.table
	sets, err := c.GetSets(t)
	if err != nil {
		return fmt.Errorf("read sets of inet %s: %w", t.Name, err)
	}
	for _, s := range sets {
		if s.Anonymous {
			continue
		}
		s.Table = t
		if w := want.sets[s.Name]; w != nil && !sameSetShape(s, w.set) {
			return fmt.Errorf("set %s: %w", s.Name, errForeign)
		}
		elems, err := c.GetSetElements(s)
		if err != nil {
			return fmt.Errorf("read set %s of inet %s: %w", s.Name, t.Name, err)
		}
		st.sets[s.Name] = &pSet{set: s, elems: normalizeElems(s, elems)}
	}
	return nil
}

// sameSetShape compares the flags a set is created with. (google/nftables
// reads a map's verdict data type into KeyType, so types are not
// compared: a set of another type but the same name could only come with
// rules that use it, and those chains are rewritten.)
func sameSetShape(k, w *nftables.Set) bool {
	return k.IsMap == w.IsMap && k.Interval == w.Interval && k.Concatenation == w.Concatenation && k.Constant == w.Constant
}

// normalizeElems puts kernel elements in the builder's order: an
// interval set's elements sorted by key, an interval's end before the
// start of the next interval at the same key, so that each start is
// followed by its end (elemUnits pairs them).
func normalizeElems(s *nftables.Set, elems []nftables.SetElement) []nftables.SetElement {
	out := make([]nftables.SetElement, len(elems))
	for i, e := range elems {
		out[i] = nftables.SetElement{Key: e.Key, IntervalEnd: e.IntervalEnd}
		if s.IsMap {
			out[i].VerdictData = decodeVerdict(e.Val)
		}
	}
	if !s.Interval {
		return out
	}
	slices.SortStableFunc(out, compareIntervalElems)
	return out
}

// decodeVerdict reads a verdict map element's data as google/nftables
// leaves it (the nested NFTA_VERDICT_* attributes).
func decodeVerdict(b []byte) *expr.Verdict {
	if v, _ := parseVerdict(b); v != nil {
		return v
	}
	return &expr.Verdict{Chain: "\x00undecodable"}
}

// kernelSig is the chain's rules as kernelRulesSig renders the kernel's
// copy of them (computed once: a built chain never changes).
func (ch *pChain) kernelSig() string {
	if ch.ksig == "" {
		var b strings.Builder
		b.WriteString("r")
		for _, r := range ch.rules {
			writeExprsSig(&b, r.exprs)
		}
		ch.ksig = b.String()
	}
	return ch.ksig
}

// kernelRulesSig renders rules' expressions in netlink form, counter
// values and anonymous set names left out.
func kernelRulesSig(rules []*nftables.Rule) string {
	var b strings.Builder
	b.WriteString("r")
	for _, r := range rules {
		writeExprsSig(&b, r.Exprs)
	}
	return b.String()
}

func writeExprsSig(b *strings.Builder, es []expr.Any) {
	b.WriteString("\n")
	for _, e := range es {
		switch x := e.(type) {
		case *expr.Counter:
			e = &expr.Counter{}
		case *expr.Lookup:
			l := *x
			if strings.HasPrefix(x.SetName, "__") {
				l.SetName, l.SetID = "anon", 0
			}
			l.SourceRegister = dumpedReg(l.SourceRegister)
			e = &l
		case *expr.Payload:
			y := *x
			y.DestRegister = dumpedReg(y.DestRegister)
			e = &y
		case *expr.Meta:
			y := *x
			y.Register = dumpedReg(y.Register)
			e = &y
		case *expr.Log:
			// The kernel reports the default level (warning) it applied.
			y := *x
			if y.Level == expr.LogLevelWarning {
				y.Key &^= 1 << unix.NFTA_LOG_LEVEL
				y.Level = 0
			}
			e = &y
		}
		data, err := expr.Marshal(byte(nftables.TableFamilyINet), e)
		if err != nil {
			fmt.Fprintf(b, "%T:%v", e, err)
			continue
		}
		b.Write(data)
	}
}

// dumpedReg is the register number the kernel reports for r: a 32-bit
// register (NFT_REG32_00 and up) at the start of a 128-bit one is
// reported as that 128-bit register.
func dumpedReg(r uint32) uint32 {
	if r >= unix.NFT_REG32_00 && (r-unix.NFT_REG32_00)%4 == 0 {
		return (r-unix.NFT_REG32_00)/4 + 1
	}
	return r
}

// tableRules reads every rule of table t in one dump (google/nftables
// asks per chain: thousands of round trips for a big table), by the
// chain they are in; nil without a batch socket. The dump is parsed by
// google/nftables' GetRules over a Conn whose "socket" is the dump.
func (b *BatchSocket) tableRules(t *nftables.Table) (map[string][]*nftables.Rule, error) {
	if b == nil || b.nl == nil {
		return nil, nil
	}
	var derr error
	parse, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if len(req) != 1 {
			return nil, nil
		}
		data, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_RULE_TABLE, Data: []byte(t.Name + "\x00")}})
		if err != nil {
			return nil, err
		}
		m := req[0]
		m.Header.Flags = netlink.Request | netlink.Dump
		m.Header.PID, m.Header.Sequence = 0, 0
		m.Data = append(append([]byte(nil), m.Data[:4]...), data...)
		msgs, err := b.nl.Execute(m)
		if err != nil {
			derr = err
			return nil, err
		}
		for i := range msgs {
			msgs[i].Header.Flags &^= netlink.Multi
			msgs[i].Header.PID, msgs[i].Header.Sequence = req[0].Header.PID, req[0].Header.Sequence
		}
		return msgs, nil
	}))
	if err != nil {
		return nil, err
	}
	rules, err := parse.GetRules(t, &nftables.Chain{Name: "", Table: t})
	if derr != nil || err != nil {
		return nil, fmt.Errorf("read rules of inet %s: %w", t.Name, errors.Join(derr, err))
	}
	out := map[string][]*nftables.Rule{}
	for _, r := range rules {
		if r.Chain != nil {
			out[r.Chain.Name] = append(out[r.Chain.Name], r)
		}
	}
	return out, nil
}

// genID reads the namespace's nftables generation (bumped by every
// committed transaction) over the batch socket.
func (b *BatchSocket) genID() (uint32, error) {
	if b == nil || b.nl == nil {
		return 0, errors.New("no batch socket")
	}
	msgs, err := b.nl.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, 0, 0, 0},
	})
	if err != nil {
		return 0, fmt.Errorf("read nftables generation: %w", err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, err
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, errors.New("read nftables generation: no generation in the reply")
}
