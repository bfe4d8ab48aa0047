package nft

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func pfxs(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// natTable is the configuration the golden files describe: two natOutgoing
// pools (one per family), a disabled pool that only excludes, an IPv6 pool
// without natOutgoing, and overlapping/adjacent prefixes that merge.
func natTable() Table {
	return Table{Name: "calico", NAT: NAT{
		MasqPools:   pfxs("10.244.0.0/16", "fd00:244::/48"),
		AllPools:    pfxs("10.244.0.0/16", "10.245.0.0/16", "10.246.0.0/17", "10.246.128.0/17", "10.244.1.0/24", "fd00:244::/48", "fd00:245::/48"),
		FullyRandom: true,
	}}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if got != string(want) {
		t.Errorf("differs from %s:\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestRenderBuiltTable(t *testing.T) {
	s, err := build(natTable())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "nat.golden", render(s))

	empty, err := build(Table{Name: "calico"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "empty.golden", render(empty))
}

func TestBuildMasqRule(t *testing.T) {
	tbl := buildTable("calico")
	ch := buildNATChain(tbl)
	masq := &nftables.Set{Name: SetMasqPoolsV6, ID: 7}
	all := &nftables.Set{Name: SetAllPoolsV6, ID: 8}
	rs := buildMasqRules(tbl, ch, v6, masq, all, NAT{})
	if len(rs) != 1 {
		t.Fatalf("%d rules, want 1", len(rs))
	}
	r := rs[0]
	if got, want := renderExprs(r.Exprs), "meta nfproto ipv6 ip6 saddr @masq-ipam-pools-v6 ip6 daddr != @all-ipam-pools-v6 counter masquerade"; got != want {
		t.Errorf("rule = %q, want %q", got, want)
	}
	if r.Table != tbl || r.Chain != ch {
		t.Error("rule not bound to table and chain")
	}
	if *ch.Hooknum != *nftables.ChainHookPostrouting || *ch.Priority != *nftables.ChainPriorityNATSource || ch.Type != nftables.ChainTypeNAT {
		t.Errorf("chain = %+v", ch)
	}
}

// TestBuildSNATRules: natOutgoingAddress makes IPv4 an SNAT to it (IPv6
// keeps masquerade), and natPortRange adds TCP and UDP rules with the range
// in front of the rule for every protocol, as Felix does.
func TestBuildSNATRules(t *testing.T) {
	tbl := buildTable("calico")
	ch := buildNATChain(tbl)
	m4, a4 := &nftables.Set{Name: SetMasqPoolsV4, ID: 1}, &nftables.Set{Name: SetAllPoolsV4, ID: 2}
	m6, a6 := &nftables.Set{Name: SetMasqPoolsV6, ID: 3}, &nftables.Set{Name: SetAllPoolsV6, ID: 4}
	n := NAT{FullyRandom: true, SNATAddress: netip.MustParseAddr("192.0.2.7"), PortMin: 20000, PortMax: 29999}
	match4 := "meta nfproto ipv4 ip saddr @masq-ipam-pools-v4 ip daddr != @all-ipam-pools-v4 "
	match6 := "meta nfproto ipv6 ip6 saddr @masq-ipam-pools-v6 ip6 daddr != @all-ipam-pools-v6 "
	for _, c := range []struct {
		name string
		got  []*nftables.Rule
		want []string
	}{
		{"v4 snat+ports", buildMasqRules(tbl, ch, v4, m4, a4, n), []string{
			match4 + "meta l4proto tcp counter snat ip to 192.0.2.7:20000-29999 fully-random",
			match4 + "meta l4proto udp counter snat ip to 192.0.2.7:20000-29999 fully-random",
			match4 + "counter snat ip to 192.0.2.7 fully-random",
		}},
		{"v4 snat", buildMasqRules(tbl, ch, v4, m4, a4, NAT{SNATAddress: n.SNATAddress}), []string{
			match4 + "counter snat ip to 192.0.2.7",
		}},
		{"v6 ports", buildMasqRules(tbl, ch, v6, m6, a6, n), []string{
			match6 + "meta l4proto tcp counter masquerade to :20000-29999",
			match6 + "meta l4proto udp counter masquerade to :20000-29999",
			match6 + "counter masquerade fully-random",
		}},
	} {
		var got []string
		for _, r := range c.got {
			got = append(got, renderExprs(r.Exprs))
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
	bad := natTable()
	bad.NAT.SNATAddress = netip.MustParseAddr("fd00::1")
	if _, err := build(bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("IPv6 SNAT address: %v", err)
	}
	bad = natTable()
	bad.NAT.PortMin, bad.NAT.PortMax = 3000, 2000
	if _, err := build(bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("reversed port range: %v", err)
	}
}

func TestIntervalElementsRoundTrip(t *testing.T) {
	for _, c := range []struct {
		in   []netip.Prefix
		want []string
	}{
		{pfxs("10.244.0.0/16"), []string{"10.244.0.0/16"}},
		{pfxs("10.246.128.0/17", "10.246.0.0/17"), []string{"10.246.0.0/16"}},
		{pfxs("10.0.0.0/8", "10.1.0.0/16"), []string{"10.0.0.0/8"}},
		{pfxs("10.0.0.0/24", "10.0.2.0/24"), []string{"10.0.0.0/24", "10.0.2.0/24"}},
		{pfxs("10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"), []string{"10.0.0.0/23", "10.0.2.0/24"}},
		{pfxs("0.0.0.0/0"), []string{"0.0.0.0/0"}},
		{pfxs("255.255.255.0/24"), []string{"255.255.255.0/24"}},
		{pfxs("fd00::/8", "ffff::/16"), []string{"fd00::/8", "ffff::/16"}},
		{nil, nil},
	} {
		elems, err := intervalElements(c.in)
		if err != nil {
			t.Fatal(err)
		}
		set := &nftables.Set{Interval: true}
		// The kernel dumps in no particular order; reverse to check that.
		slices.Reverse(elems)
		if got := renderElements(set, elems); !slices.Equal(got, c.want) {
			t.Errorf("%v -> %q, want %q", c.in, got, c.want)
		}
	}
	if elems, _ := intervalElements(pfxs("255.255.255.0/24")); len(elems) != 1 {
		t.Errorf("range at the top of the space has an end marker: %v", elems)
	}
}

func TestValidate(t *testing.T) {
	for _, tb := range []Table{{}, {Name: "calico", NAT: NAT{MasqPools: pfxs("10.244.1.1/16")}}, {Name: "calico", NAT: NAT{AllPools: []netip.Prefix{{}}}}} {
		if err := Apply(nil, tb); !errors.Is(err, ErrInvalid) {
			t.Errorf("Apply(%+v) = %v, want ErrInvalid", tb, err)
		}
	}
}

// TestApplyIsOneBatch records what Apply sends: exactly one batch, which
// empties and refills the table (add, delete, add, then contents).
func TestApplyIsOneBatch(t *testing.T) {
	var sends [][]string
	c, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if len(req) == 0 {
			return nil, nil
		}
		var types []string
		for _, m := range req {
			types = append(types, msgType(m.Header.Type))
		}
		sends = append(sends, types)
		return req, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(c, natTable()); err != nil {
		t.Fatal(err)
	}
	if len(sends) != 1 {
		t.Fatalf("Apply sent %d batches, want 1: %q", len(sends), sends)
	}
	got := strings.Join(sends[0], " ")
	want := "batch-begin newtable deltable newtable newset newsetelem newset newsetelem newset newsetelem newset newsetelem newchain newrule newrule batch-end"
	if got != want {
		t.Errorf("batch =\n%s\nwant\n%s", got, want)
	}

	sends = nil
	if err := Delete(c, "calico"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(slices.Concat(sends...), " "); got != "batch-begin newtable deltable batch-end" {
		t.Errorf("Delete batch = %s", got)
	}
}

func msgType(h netlink.HeaderType) string {
	switch uint16(h) {
	case unix.NFNL_MSG_BATCH_BEGIN:
		return "batch-begin"
	case unix.NFNL_MSG_BATCH_END:
		return "batch-end"
	}
	switch uint16(h) & 0xff {
	case unix.NFT_MSG_NEWTABLE:
		return "newtable"
	case unix.NFT_MSG_DELTABLE:
		return "deltable"
	case unix.NFT_MSG_NEWSET:
		return "newset"
	case unix.NFT_MSG_NEWSETELEM:
		return "newsetelem"
	case unix.NFT_MSG_NEWCHAIN:
		return "newchain"
	case unix.NFT_MSG_NEWRULE:
		return "newrule"
	case unix.NFT_MSG_DELRULE:
		return "delrule"
	case unix.NFT_MSG_DELSETELEM:
		return "delsetelem"
	case unix.NFT_MSG_DELSET:
		return "delset"
	case unix.NFT_MSG_DELCHAIN:
		return "delchain"
	case unix.NFT_MSG_NEWOBJ:
		return "newobj"
	case unix.NFT_MSG_DELOBJ:
		return "delobj"
	}
	return "other"
}
