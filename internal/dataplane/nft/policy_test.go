package nft

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/ruleset"
)

func u8(v uint8) *uint8 { return &v }

func ref(tier, pol string, d ruleset.Direction, i int) ruleset.RuleRef {
	kind := "GlobalNetworkPolicy"
	if tier == "" {
		kind = "Profile"
	}
	return ruleset.RuleRef{Tier: tier, Policy: pol, Kind: kind, Direction: d, Index: i}
}

// fixtureRuleset is the fixed input of the golden files: two workloads
// (one with two addresses), tiers with Pass, a profile, net and selector
// sets, a named port, ICMP, negations, Log.
func fixtureRuleset() *ruleset.Ruleset {
	tcp, icmp := u8(6), u8(1)
	return &ruleset.Ruleset{
		Endpoints: []ruleset.Endpoint{
			{ID: "wep/ns1/a", Kind: ruleset.Workload, Interface: "cali1111", Addrs: pfxs("10.65.0.2/32", "fd00:65::2/128"),
				Ingress: []ruleset.TierRef{
					{Name: "security", Chains: []string{"pi/security/pass-web", "pi/security/deny-bad"}, EndOfTier: ruleset.Deny},
					{Name: "default", Chains: []string{"pi/default/allow-web"}, EndOfTier: ruleset.Deny},
				},
				IngressProfiles: []string{"ri/net1"}, EgressProfiles: []string{"re/net1"}},
			{ID: "wep/ns1/b", Kind: ruleset.Workload, Interface: "cali2222", Addrs: pfxs("10.65.0.3/32"),
				IngressProfiles: []string{"ri/net1"}, EgressProfiles: []string{"re/net1"}},
		},
		Chains: map[string]*ruleset.Chain{
			"pi/security/pass-web": {ID: "pi/security/pass-web", Rules: []ruleset.Rule{
				{Ref: ref("security", "pass-web", ruleset.Ingress, 0), Action: ruleset.Pass, Protocol: tcp,
					Dst: ruleset.EntityMatch{Ports: []ruleset.PortRange{{First: 80, Last: 80}, {First: 8080, Last: 8090}}}},
			}},
			"pi/security/deny-bad": {ID: "pi/security/deny-bad", Rules: []ruleset.Rule{
				{Ref: ref("security", "deny-bad", ruleset.Ingress, 0), Action: ruleset.Log, Src: ruleset.EntityMatch{InSets: []string{"s:bad"}}},
				{Ref: ref("security", "deny-bad", ruleset.Ingress, 1), Action: ruleset.Deny, Src: ruleset.EntityMatch{InSets: []string{"s:bad"}}},
				{Ref: ref("security", "deny-bad", ruleset.Ingress, 2), Action: ruleset.Allow, Protocol: icmp, ICMP: &ruleset.ICMPMatch{Type: 8}},
			}},
			"pi/default/allow-web": {ID: "pi/default/allow-web", Rules: []ruleset.Rule{
				{Ref: ref("default", "allow-web", ruleset.Ingress, 0), Action: ruleset.Allow, Protocol: tcp,
					Dst: ruleset.EntityMatch{NamedPortSet: "np:http"}},
				{Ref: ref("default", "allow-web", ruleset.Ingress, 1), Action: ruleset.Allow, Protocol: u8(17),
					Src: ruleset.EntityMatch{NotInSets: []string{"s:bad"}, NotPorts: []ruleset.PortRange{{First: 53, Last: 53}}}},
				{Ref: ref("default", "allow-web", ruleset.Ingress, 2), Action: ruleset.Allow, Protocol: icmp, NotICMP: &ruleset.ICMPMatch{Type: 3, Code: u8(4)}},
				{Ref: ref("default", "allow-web", ruleset.Ingress, 3), Action: ruleset.Deny, NotProtocol: tcp, IPVersion: 6},
			}},
			"ri/net1": {ID: "ri/net1", Rules: []ruleset.Rule{
				{Ref: ref("", "net1", ruleset.Ingress, 0), Action: ruleset.Allow, Src: ruleset.EntityMatch{InSets: []string{"s:net1"}}},
			}},
			"re/net1": {ID: "re/net1", Rules: []ruleset.Rule{
				{Ref: ref("", "net1", ruleset.Egress, 0), Action: ruleset.Allow},
			}},
		},
		Sets: map[string]*ruleset.Set{
			"s:bad":  {ID: "s:bad", Kind: ruleset.Nets, Source: "nets", Nets: pfxs("192.0.2.0/24", "192.0.2.7/32", "2001:db8::/32")},
			"s:net1": {ID: "s:net1", Kind: ruleset.Nets, Source: "has(net1)", Nets: pfxs("10.65.0.2/32", "10.65.0.3/32", "10.65.1.9/32", "fd00:65::2/128")},
			"np:http": {ID: "np:http", Kind: ruleset.NamedPorts, Source: "namedport:http/all()", Members: []ruleset.NamedPortMember{
				{Addr: netip.MustParseAddr("10.65.0.2"), Protocol: 6, Port: 8080}, {Addr: netip.MustParseAddr("fd00:65::2"), Protocol: 6, Port: 8080}}},
		},
	}
}

// hostRuleset adds a "*" host endpoint with a deny-all policy, and
// applyOnForward and preDNAT tiers on a named one.
func hostRuleset() *ruleset.Ruleset {
	rs := fixtureRuleset()
	rs.Chains["pi/default/deny-all"] = &ruleset.Chain{ID: "pi/default/deny-all", Rules: []ruleset.Rule{
		{Ref: ref("default", "deny-all", ruleset.Ingress, 0), Action: ruleset.Deny}}}
	rs.Chains["pe/default/deny-all"] = &ruleset.Chain{ID: "pe/default/deny-all", Rules: []ruleset.Rule{
		{Ref: ref("default", "deny-all", ruleset.Egress, 0), Action: ruleset.Deny}}}
	deny := func(c string) []ruleset.TierRef {
		return []ruleset.TierRef{{Name: "default", Chains: []string{c}, EndOfTier: ruleset.Deny}}
	}
	rs.Endpoints = append(rs.Endpoints,
		ruleset.Endpoint{ID: "hep/all", Kind: ruleset.Host, Interface: "*", Ingress: deny("pi/default/deny-all"), Egress: deny("pe/default/deny-all")},
		ruleset.Endpoint{ID: "hep/eth9", Kind: ruleset.Host, Interface: "eth9", Addrs: pfxs("198.51.100.1/32"),
			ForwardIn: deny("pi/default/deny-all"), PreDNAT: deny("pi/default/deny-all"), UntrackedEgress: deny("pe/default/deny-all")},
		ruleset.Endpoint{ID: "hep/by-ip", Kind: ruleset.Host, Addrs: pfxs("192.0.2.50/32"), Ingress: deny("pi/default/allow-web")},
		ruleset.Endpoint{ID: "hep/nowhere", Kind: ruleset.Host, Addrs: pfxs("192.0.2.51/32"), Ingress: deny("pi/default/allow-web")},
	)
	return rs
}

func TestRenderPolicyGolden(t *testing.T) {
	for _, c := range []struct {
		name string
		rs   *ruleset.Ruleset
		o    PolicyOptions
	}{
		{"policy-empty.golden", nil, DefaultPolicyOptions()},
		{"policy.golden", fixtureRuleset(), DefaultPolicyOptions()},
		{"policy-hosts.golden", hostRuleset(), PolicyOptions{EndpointToHost: EndpointToHostAccept,
			FailsafeInbound: []ProtoPort{{Protocol: 6, Port: 22}, {Protocol: 17, Port: 68},
				{Protocol: 6, Port: 10250, Net: netip.MustParsePrefix("10.0.0.0/8")}, {Protocol: 6, Port: 10251, Net: netip.MustParsePrefix("10.0.0.0/8")}},
			FailsafeOutbound: []ProtoPort{{Protocol: 17, Port: 53}, {Protocol: 6, Port: 443, Net: netip.MustParsePrefix("fd00::/64")}},
			VXLANPeers:       []netip.Addr{netip.MustParseAddr("10.99.0.12"), netip.MustParseAddr("10.99.0.13")},
			HostInterfaces:   map[string][]netip.Addr{"eth7": {netip.MustParseAddr("192.0.2.50")}}}},
	} {
		st, err := buildPolicy(PolicyTableName, c.rs, c.o)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, c.name, render(specOf(st)))
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, rs := range []*ruleset.Ruleset{
		{Sets: map[string]*ruleset.Set{"a": {ID: "b"}}},
		{Sets: map[string]*ruleset.Set{"a": {ID: "a", Nets: []netip.Prefix{{}}}}},
		{Chains: map[string]*ruleset.Chain{"a": {ID: "b"}}},
	} {
		if _, err := NewPolicyApplier(nil, PolicyTableName).Apply(rs, PolicyOptions{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Apply(%+v) = %v, want ErrInvalid", rs, err)
		}
	}
	// Endpoints the table cannot hold are left out, the others kept.
	good := ruleset.Endpoint{ID: "good", Kind: ruleset.Workload, Interface: "a"}
	for _, bad := range []ruleset.Endpoint{
		{ID: "x", Kind: ruleset.Workload},
		{ID: "x", Kind: ruleset.Workload, Interface: "*"},
		{ID: "x", Kind: ruleset.Workload, Interface: "cali0123456789abcdef"},
		{ID: "x", Kind: ruleset.Workload, Interface: "a"},
		{ID: "x", Kind: ruleset.Workload, Interface: "b", Addrs: []netip.Prefix{{}}},
	} {
		st, err := buildPolicy(PolicyTableName, &ruleset.Ruleset{Endpoints: []ruleset.Endpoint{bad, good}}, PolicyOptions{})
		if err != nil || len(st.skipped) != 1 || !strings.Contains(st.skipped[0], `"x"`) || st.chains["ingress/good"] == nil {
			t.Errorf("endpoint %+v: skipped %q, err %v", bad, st.skipped, err)
		}
	}
}

func TestObjName(t *testing.T) {
	if got := objName("ingress/", "wep/ns/a"); got != "ingress/wep/ns/a" {
		t.Errorf("plain id: %q", got)
	}
	long := objName("", strings.Repeat("x", 300))
	odd := objName("", "pi/t/a b")
	if len(long) > 64 || !strings.HasPrefix(odd, "h:") || odd == objName("", "pi/t/a c") {
		t.Errorf("hashed names: %q %q", long, odd)
	}
}

// recordBatches returns a Conn that records the message types of every
// batch it is asked to send, and answers as the kernel would on success.
// It has no table to read back: a query (the applier's first Apply looks
// for its table) is answered "no such table".
func recordBatches(t *testing.T) (*nftables.Conn, *[][]string) {
	var sends [][]string
	c, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if len(req) == 0 {
			return nil, nil
		}
		if uint16(req[0].Header.Type) != unix.NFNL_MSG_BATCH_BEGIN {
			return nil, unix.ENOENT
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
	return c, &sends
}

// TestPolicyApplyIncremental checks what each Apply sends: one batch that
// replaces the table first, nothing for the same input, and for a member
// change only the set elements.
func TestPolicyApplyIncremental(t *testing.T) {
	c, sends := recordBatches(t)
	p := NewPolicyApplier(c, PolicyTableName)
	rs := fixtureRuleset()
	st, err := p.Apply(rs, DefaultPolicyOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(*sends) != 1 || !st.Full || !strings.HasPrefix(strings.Join((*sends)[0], " "), "batch-begin newtable deltable newtable") {
		t.Fatalf("first apply: %+v, batches %q", st, *sends)
	}
	*sends = nil
	if st, err := p.Apply(fixtureRuleset(), DefaultPolicyOptions()); err != nil || st.Changed() || len(*sends) != 0 {
		t.Fatalf("identical apply sent %d batches (%+v, %v)", len(*sends), st, err)
	}

	rs = fixtureRuleset()
	rs.Sets["s:net1"].Nets = append(rs.Sets["s:net1"].Nets, netip.MustParsePrefix("10.65.1.10/32"))
	rs.Sets["s:net1"].Nets = rs.Sets["s:net1"].Nets[1:] // 10.65.0.2 leaves
	st, err = p.Apply(rs, DefaultPolicyOptions())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join((*sends)[0], " "); got != "batch-begin delsetelem newsetelem batch-end" || st.ElemsAdded != 2 || st.ElemsDeleted != 2 {
		t.Errorf("member change: %+v, batch %s", st, got)
	}

	// A policy edit (a new Chain: the calculator never modifies one it
	// handed out) rewrites that chain only.
	*sends = nil
	edited := *rs.Chains["re/net1"]
	edited.Rules = []ruleset.Rule{edited.Rules[0]}
	edited.Rules[0].Action = ruleset.Deny
	rs.Chains["re/net1"] = &edited
	st, err = p.Apply(rs, DefaultPolicyOptions())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join((*sends)[0], " "); got != "batch-begin delrule newrule batch-end" || st.ChainsWritten != 1 {
		t.Errorf("policy edit: %+v, batch %s", st, got)
	}
}
