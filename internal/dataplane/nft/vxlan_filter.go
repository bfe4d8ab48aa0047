package nft

// VXLAN peer filtering, as Felix's cali40all-vxlan-net: while this node
// runs VXLAN, UDP to the VXLAN port that is addressed to the host is
// accepted only from the underlay addresses of known VTEPs (the other
// nodes with a VXLAN tunnel address) and dropped, and counted, from
// anyone else. Without it any host that can reach the node could inject
// packets into the pod network by wrapping them in VXLAN.
//
// As Felix ("Drop VXLAN encapped packets originating in workloads"), UDP
// to the VXLAN port that comes in on a workload interface is dropped too,
// whether addressed to the host or forwarded: a pod could otherwise hand
// the underlay packets that skip egress policy. Those drops have a
// counter of their own.
//
// The filter lives in a table of its own (VXLANFilterTableName), next to
// the NAT and policy tables, so that it changes without touching them:
//
//	table inet calico-vxlan
//	  set vxlan-peers-v4 { type ipv4_addr; }
//	  set vxlan-peers-v6 { type ipv6_addr; }
//	  chain vxlan-input { type filter hook input priority -1; policy accept;
//	    iifname "cali*" meta l4proto udp udp dport 4789 counter name vxlan-workload-dropped drop
//	    meta l4proto udp udp dport 4789 meta nfproto ipv4 ip saddr @vxlan-peers-v4 accept
//	    meta l4proto udp udp dport 4789 meta nfproto ipv6 ip6 saddr @vxlan-peers-v6 accept
//	    meta l4proto udp udp dport 4789 counter name vxlan-dropped drop
//	  }
//	  chain vxlan-forward { type filter hook forward priority -1; policy accept;
//	    iifname "cali*" meta l4proto udp udp dport 4789 counter name vxlan-workload-dropped drop
//	  }
//
// The input hook sees only packets addressed to this host, which is what
// Felix's "fib daddr type local" selects. An accept here ends only this
// chain: the policy table still judges the packet; a drop here is final.
// One set per family because nftables sets are typed; both always exist,
// so IPv6 VTEPs need no change of layout.
//
// The first apply (and any apply after a failure, Invalidate or a Check
// that found the table changed: vxlan_filter_check.go) replaces the
// whole table in one batch; the counters are read first and the new
// ones start from those values, so a full resync does not reset what a
// scrape reports (packets dropped between the read and the batch are not
// counted). After that a change of peers is one batch
// of element adds and deletes, which the kernel commits as one
// transaction: a peer that stays is never missing from the set, even for
// an instant.

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Names of the VXLAN filter's table and objects.
const (
	VXLANFilterTableName = "calico-vxlan"
	ChainVXLANInput      = "vxlan-input"
	ChainVXLANForward    = "vxlan-forward"
	SetVXLANPeersV4      = "vxlan-peers-v4"
	SetVXLANPeersV6      = "vxlan-peers-v6"
	// CounterVXLANDropped counts the VXLAN packets dropped because their
	// source is no known VTEP (read it with ReadCounters).
	CounterVXLANDropped = "vxlan-dropped"
	// CounterVXLANWorkloadDropped counts the VXLAN-port packets dropped
	// because they came in on a workload interface.
	CounterVXLANWorkloadDropped = "vxlan-workload-dropped"
)

// vxlanFilterPriority runs the filter just before the filter-priority
// chains of the other tables, so a foreign packet costs nothing more.
var vxlanFilterPriority = nftables.ChainPriorityRef(*nftables.ChainPriorityFilter - 1)

// VXLANFilter is the desired VXLAN peer filter.
type VXLANFilter struct {
	Port  uint16       // the VXLAN UDP port (Felix vxlanPort; 0 = 4789)
	Peers []netip.Addr // underlay addresses of the known VTEPs, either family
	// WorkloadPrefixes name the workload interfaces (Felix
	// interfacePrefix, split at commas); nil = "cali".
	WorkloadPrefixes []string
}

// DefaultVXLANPort is the IANA VXLAN port, upstream's default.
const DefaultVXLANPort = 4789

func (f VXLANFilter) port() uint16 {
	if f.Port == 0 {
		return DefaultVXLANPort
	}
	return f.Port
}

func (f VXLANFilter) prefixes() []string {
	var out []string
	for _, p := range f.WorkloadPrefixes {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return []string{"cali"}
	}
	return out
}

// peers returns the valid peers of family fam, unmapped, sorted, unique.
func (f VXLANFilter) peers(fam family) []netip.Addr {
	var out []netip.Addr
	for _, a := range f.Peers {
		a = a.Unmap()
		if a.IsValid() && a.Is4() == (fam == v4) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// buildVXLANFilter is the whole filter table, built without a kernel.
func buildVXLANFilter(name string, f VXLANFilter) *spec {
	t := buildTable(name)
	s := &spec{Table: t, Rules: map[string][]*nftables.Rule{}}
	for _, fam := range []family{v4, v6} {
		s.Sets = append(s.Sets, setSpec{Set: vxlanPeerSet(t, fam), Elements: addrElements(f.peers(fam))})
	}
	accept := nftables.ChainPolicyAccept
	in := &nftables.Chain{Name: ChainVXLANInput, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: vxlanFilterPriority, Policy: &accept}
	fwd := &nftables.Chain{Name: ChainVXLANForward, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: vxlanFilterPriority, Policy: &accept}
	s.Chains = []*nftables.Chain{in, fwd}
	s.buildVXLANRules(f)
	return s
}

// buildVXLANRules (re)builds the chains' rules against s's sets, whose
// IDs AddSet assigns in the batch that creates them.
func (s *spec) buildVXLANRules(f VXLANFilter) {
	ch, fwd := s.Chains[0], s.Chains[1]
	wl := s.workloadDrops(f, ch)
	rules := wl
	for i, fam := range []family{v4, v6} {
		set := s.Sets[i].Set
		e := vxlanMatch(f.port())
		e = append(e,
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{fam.nfproto()}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: fam.srcOffset(), Len: fam.addrLen()},
			&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
			&expr.Verdict{Kind: expr.VerdictAccept})
		rules = append(rules, &nftables.Rule{Table: s.Table, Chain: ch, Exprs: e})
	}
	drop := append(vxlanMatch(f.port()),
		&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: CounterVXLANDropped},
		&expr.Verdict{Kind: expr.VerdictDrop})
	rules = append(rules, &nftables.Rule{Table: s.Table, Chain: ch, Exprs: drop})
	s.Rules = map[string][]*nftables.Rule{ch.Name: rules, fwd.Name: s.workloadDrops(f, fwd)}
}

// workloadDrops are chain ch's "iifname <prefix>* <vxlan> counter drop"
// rules, one per workload interface prefix.
func (s *spec) workloadDrops(f VXLANFilter, ch *nftables.Chain) []*nftables.Rule {
	var out []*nftables.Rule
	for _, p := range f.prefixes() {
		e := append(ifMatch(true, p+"*", expr.CmpOpEq), vxlanMatch(f.port())...)
		e = append(e,
			&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: CounterVXLANWorkloadDropped},
			&expr.Verdict{Kind: expr.VerdictDrop})
		out = append(out, &nftables.Rule{Table: s.Table, Chain: ch, Exprs: e})
	}
	return out
}

// vxlanMatch is "meta l4proto udp udp dport <port>".
func vxlanMatch(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

func vxlanPeerSet(t *nftables.Table, fam family) *nftables.Set {
	name := SetVXLANPeersV4
	if fam == v6 {
		name = SetVXLANPeersV6
	}
	return &nftables.Set{Table: t, Name: name, KeyType: fam.keyType()}
}

func addrElements(as []netip.Addr) []nftables.SetElement {
	out := make([]nftables.SetElement, len(as))
	for i, a := range as {
		out[i] = nftables.SetElement{Key: a.AsSlice()}
	}
	return out
}

// VXLANFilterApplier keeps the VXLAN filter table in step with the
// desired filter. It remembers what it last applied; it is not safe for
// concurrent use.
type VXLANFilterApplier struct {
	c    *nftables.Conn
	name string
	last *VXLANFilter // nil: unknown, the next Apply replaces the table
	gen  genTrack     // what is known of the table's generations (vxlan_filter_check.go)

	readBacks int // how many times Check read the table back (for tests)
}

// NewVXLANFilterApplier returns an applier for table name (family inet)
// on c.
func NewVXLANFilterApplier(c *nftables.Conn, name string) *VXLANFilterApplier {
	return &VXLANFilterApplier{c: c, name: name}
}

// Invalidate forgets what was applied: the next Apply replaces the table
// (after someone else changed it).
func (a *VXLANFilterApplier) Invalidate() { a.last, a.gen.ok, a.gen.verified = nil, false, false }

// VXLANFilterStats is what one Apply did.
type VXLANFilterStats struct {
	Replaced         bool // the whole table was (re)written
	Added, Deleted   int  // peers added to and deleted from the sets in place
	PeersV4, PeersV6 int  // peers in the sets afterwards
}

// Apply makes the table hold f, in one batch: the whole table when the
// applier does not know what is installed or the port changed, otherwise
// only the peers that came and went. An in-place update the kernel
// rejects (someone removed our table) falls back to replacing the table.
func (a *VXLANFilterApplier) Apply(f VXLANFilter) (VXLANFilterStats, error) {
	want := VXLANFilter{Port: f.port(), Peers: append(f.peers(v4), f.peers(v6)...), WorkloadPrefixes: f.prefixes()}
	st := VXLANFilterStats{PeersV4: len(want.peers(v4)), PeersV6: len(want.peers(v6))}
	if a.last != nil && a.last.Port == want.Port && slices.Equal(a.last.WorkloadPrefixes, want.WorkloadPrefixes) {
		g0, gerr := a.gen.before(false, 0)
		added, deleted, err := a.update(*a.last, want)
		if err == nil {
			a.gen.after(g0, gerr, added+deleted > 0, false)
			a.last = &want
			st.Added, st.Deleted = added, deleted
			return st, nil
		}
		a.gen.after(g0, gerr, false, false)
		a.Invalidate()
	}
	g0, gerr := a.gen.before(true, len(want.Peers))
	if err := a.replace(want); err != nil {
		a.gen.after(g0, gerr, false, true)
		a.Invalidate()
		return st, err
	}
	a.gen.after(g0, gerr, true, true)
	a.last = &want
	st.Replaced = true
	return st, nil
}

// replace rewrites the whole table in one batch, its counters starting
// where the old table's were (a table that is not there counts from 0).
func (a *VXLANFilterApplier) replace(f VXLANFilter) error {
	s := buildVXLANFilter(a.name, f)
	c := a.c
	kept, _ := ReadCounters(c, a.name)
	c.AddTable(s.Table)
	c.DelTable(s.Table)
	c.AddTable(s.Table)
	for _, name := range []string{CounterVXLANDropped, CounterVXLANWorkloadDropped} {
		v := kept[name]
		c.AddObj(&nftables.NamedObj{Table: s.Table, Name: name, Type: nftables.ObjTypeCounter,
			Obj: &expr.Counter{Packets: v.Packets, Bytes: v.Bytes}})
	}
	for _, ss := range s.Sets {
		if err := c.AddSet(ss.Set, ss.Elements); err != nil {
			return fmt.Errorf("queue set %s in table %s: %w", ss.Set.Name, a.name, discard(c, err))
		}
	}
	s.buildVXLANRules(f)
	for _, ch := range s.Chains {
		c.AddChain(ch)
		for _, r := range s.Rules[ch.Name] {
			c.AddRule(r)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("replace nft table inet %s: %w", a.name, err)
	}
	return nil
}

// update adds and deletes the peers that changed, both families in one
// batch. Nothing to change sends nothing.
func (a *VXLANFilterApplier) update(old, want VXLANFilter) (added, deleted int, err error) {
	t := buildTable(a.name)
	c := a.c
	queued := false
	for _, fam := range []family{v4, v6} {
		add, del := diffAddrs(old.peers(fam), want.peers(fam))
		set := vxlanPeerSet(t, fam)
		if len(add) > 0 {
			if err := c.SetAddElements(set, addrElements(add)); err != nil {
				return 0, 0, discard(c, err)
			}
			queued = true
		}
		if len(del) > 0 {
			if err := c.SetDeleteElements(set, addrElements(del)); err != nil {
				return 0, 0, discard(c, err)
			}
			queued = true
		}
		added, deleted = added+len(add), deleted+len(del)
	}
	if !queued {
		return 0, 0, nil
	}
	if err := c.Flush(); err != nil {
		return 0, 0, fmt.Errorf("update VXLAN peers in nft table inet %s: %w", a.name, err)
	}
	return added, deleted, nil
}

// diffAddrs returns what is in want but not old, and in old but not want
// (both inputs sorted and unique).
func diffAddrs(old, want []netip.Addr) (add, del []netip.Addr) {
	for _, w := range want {
		if _, found := slices.BinarySearchFunc(old, w, netip.Addr.Compare); !found {
			add = append(add, w)
		}
	}
	for _, o := range old {
		if _, found := slices.BinarySearchFunc(want, o, netip.Addr.Compare); !found {
			del = append(del, o)
		}
	}
	return add, del
}

// Delete removes the filter table (VXLAN is off on this node). A missing
// table is not an error.
func (a *VXLANFilterApplier) Delete() error {
	a.Invalidate()
	return Delete(a.c, a.name)
}

// VXLANDropped reads how many packets the filter dropped because their
// source is no known VTEP.
func VXLANDropped(c *nftables.Conn, table string) (CounterValue, error) {
	return vxlanCounter(c, table, CounterVXLANDropped)
}

// VXLANWorkloadDropped reads how many VXLAN-port packets from workload
// interfaces the filter dropped.
func VXLANWorkloadDropped(c *nftables.Conn, table string) (CounterValue, error) {
	return vxlanCounter(c, table, CounterVXLANWorkloadDropped)
}

func vxlanCounter(c *nftables.Conn, table, name string) (CounterValue, error) {
	vals, err := ReadCounters(c, table)
	if err != nil {
		return CounterValue{}, err
	}
	v, ok := vals[name]
	if !ok {
		return CounterValue{}, errors.New("VXLAN filter counter " + name + " is missing in table " + table)
	}
	return v, nil
}
