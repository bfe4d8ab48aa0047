package nft

import (
	"net/netip"
	"regexp"
	"testing"

	"github.com/onecalico/calico/internal/dataplane/link"
	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/ruleset"
	"github.com/onecalico/calico/internal/testutil"
)

// Packet tests of the host endpoint stages that are otherwise only
// golden-tested: doNotTrack (raw hooks), preDNAT (before DNAT) and
// applyOnForward (forwarded traffic through a host interface). The host
// endpoint is the node's eth1, which faces the external host.

func tierOf(endOfTier ruleset.Action, chains ...string) []ruleset.TierRef {
	return []ruleset.TierRef{{Name: "default", Chains: chains, EndOfTier: endOfTier}}
}

func portRule(pol string, d ruleset.Direction, i int, a ruleset.Action, proto uint8, dst, src uint16) ruleset.Rule {
	r := ruleset.Rule{Ref: ref("default", pol, d, i), Action: a, Protocol: u8(proto)}
	if dst != 0 {
		r.Dst.Ports = []ruleset.PortRange{{First: dst, Last: dst}}
	}
	if src != 0 {
		r.Src.Ports = []ruleset.PortRange{{First: src, Last: src}}
	}
	return r
}

// hostPktRuleset is labRuleset with the external host in the pods'
// profile set, a deny-all policy, and host endpoint hep/eth1 whose normal
// ingress and egress policy is deny-all.
func hostPktRuleset() *ruleset.Ruleset {
	rs := labRuleset()
	rs.Endpoints[1].Ingress = nil
	rs.Sets["s:net"].Nets = append(rs.Sets["s:net"].Nets, netip.MustParsePrefix(extIP+"/32"))
	rs.Chains["pi/default/deny-all"] = &ruleset.Chain{ID: "pi/default/deny-all", Rules: []ruleset.Rule{
		{Ref: ref("default", "deny-all", ruleset.Ingress, 0), Action: ruleset.Deny}}}
	rs.Chains["pe/default/deny-all"] = &ruleset.Chain{ID: "pe/default/deny-all", Rules: []ruleset.Rule{
		{Ref: ref("default", "deny-all", ruleset.Egress, 0), Action: ruleset.Deny}}}
	rs.Endpoints = append(rs.Endpoints, ruleset.Endpoint{ID: "hep/eth1", Kind: ruleset.Host, Interface: "eth1",
		Ingress: tierOf(ruleset.Deny, "pi/default/deny-all"), Egress: tierOf(ruleset.Deny, "pe/default/deny-all")})
	return rs
}

func hep(rs *ruleset.Ruleset) *ruleset.Endpoint { return &rs.Endpoints[len(rs.Endpoints)-1] }

// TestPrivilegedPolicyDoNotTrack: a doNotTrack policy allows TCP 2222 to
// the host (and its replies from the host) although the normal policy
// denies everything; another doNotTrack rule denies ICMP to the pods
// before any tracked stage, which would have allowed it.
func TestPrivilegedPolicyDoNotTrack(t *testing.T) {
	l := newPolicyLab(t)
	testutil.ServeTCP(t, l.node, nodeIP, 2222, 2223)
	testutil.ServeTCP(t, l.pod1, pod1IP, 7070)
	rs := hostPktRuleset()
	rs.Chains["pi/default/untracked"] = &ruleset.Chain{ID: "pi/default/untracked", Rules: []ruleset.Rule{
		portRule("untracked", ruleset.Ingress, 0, ruleset.Allow, 6, 2222, 0),
		{Ref: ref("default", "untracked", ruleset.Ingress, 1), Action: ruleset.Deny, Protocol: u8(1)}}}
	rs.Chains["pe/default/untracked"] = &ruleset.Chain{ID: "pe/default/untracked", Rules: []ruleset.Rule{
		portRule("untracked", ruleset.Egress, 0, ruleset.Allow, 6, 0, 2222)}}
	h := hep(rs)
	h.Untracked = tierOf(ruleset.Pass, "pi/default/untracked")
	h.UntrackedEgress = tierOf(ruleset.Pass, "pe/default/untracked")
	l.apply(t, rs, DefaultPolicyOptions())
	checkFlows(t, []flow{
		{"ext -> node tcp 2222 (doNotTrack allow)", func() error { return tcpProbe(l.ext, nodeIP, 2222) }, true},
		{"ext -> node tcp 2223 (normal policy: deny all)", func() error { return tcpProbe(l.ext, nodeIP, 2223) }, false},
		{"ext -> pod1 tcp 7070 (forwarded, profile allows)", func() error { return tcpProbe(l.ext, pod1IP, 7070) }, true},
		{"ext -> pod1 icmp (doNotTrack deny)", func() error { return testutil.Ping(l.ext, pod1IP) }, false},
	})
	// The allowed flow went through untracked: the filter stages'
	// "untracked and marked by doNotTrack" accept rules counted it.
	listed := testutil.RunIn(t, l.node, "nft", "list", "table", "inet", PolicyTableName)
	if !regexp.MustCompile(`ct state untracked meta mark & 0x00010000 != 0x00000000 counter packets [1-9]`).MatchString(listed) {
		t.Errorf("no untracked packet was accepted:\n%s", listed)
	}
}

// TestPrivilegedPolicyPreDNAT: the node DNATs ports 8888 and 8889 to pod1
// tcp 7070; a preDNAT policy on eth1 denies the original port 8888, so
// only 8889 reaches the pod (the pod itself is reachable on 7070).
func TestPrivilegedPolicyPreDNAT(t *testing.T) {
	l := newPolicyLab(t)
	testutil.ServeTCP(t, l.pod1, pod1IP, 7070)
	testutil.RunIn(t, l.node, "nft", "add table ip dnat-test; add chain ip dnat-test pre { type nat hook prerouting priority -100; };"+
		" add rule ip dnat-test pre tcp dport { 8888, 8889 } dnat to "+pod1IP+":7070")
	rs := hostPktRuleset()
	rs.Chains["pi/default/prednat"] = &ruleset.Chain{ID: "pi/default/prednat", Rules: []ruleset.Rule{
		portRule("prednat", ruleset.Ingress, 0, ruleset.Deny, 6, 8888, 0)}}
	hep(rs).PreDNAT = tierOf(ruleset.Pass, "pi/default/prednat")
	l.apply(t, rs, DefaultPolicyOptions())
	checkFlows(t, []flow{
		{"ext -> node:8888 (preDNAT deny)", func() error { return tcpProbe(l.ext, nodeIP, 8888) }, false},
		{"ext -> node:8889 -> pod1:7070", func() error { return tcpProbe(l.ext, nodeIP, 8889) }, true},
		{"ext -> pod1 tcp 7070", func() error { return tcpProbe(l.ext, pod1IP, 7070) }, true},
	})
}

// TestPrivilegedPolicyApplyOnForward: applyOnForward policy on eth1 lets
// forwarded ICMP in and TCP 80 out; the normal deny-all of the host
// endpoint does not touch forwarded traffic.
func TestPrivilegedPolicyApplyOnForward(t *testing.T) {
	l := newPolicyLab(t)
	testutil.ServeTCP(t, l.pod1, pod1IP, 7070)
	testutil.ServeTCP(t, l.ext, extIP, 80, 81)
	rs := hostPktRuleset()
	rs.Chains["pi/default/fwd"] = &ruleset.Chain{ID: "pi/default/fwd", Rules: []ruleset.Rule{
		{Ref: ref("default", "fwd", ruleset.Ingress, 0), Action: ruleset.Allow, Protocol: u8(1)}}}
	rs.Chains["pe/default/fwd"] = &ruleset.Chain{ID: "pe/default/fwd", Rules: []ruleset.Rule{
		portRule("fwd", ruleset.Egress, 0, ruleset.Allow, 6, 80, 0)}}
	h := hep(rs)
	h.ForwardIn = tierOf(ruleset.Deny, "pi/default/fwd")
	h.ForwardOut = tierOf(ruleset.Deny, "pe/default/fwd")
	l.apply(t, rs, DefaultPolicyOptions())
	checkFlows(t, []flow{
		{"ext -> pod1 icmp (forward ingress allows)", func() error { return testutil.Ping(l.ext, pod1IP) }, true},
		{"ext -> pod1 tcp 7070 (forward ingress end of tier)", func() error { return tcpProbe(l.ext, pod1IP, 7070) }, false},
		{"pod1 -> ext tcp 80 (forward egress allows)", func() error { return tcpProbe(l.pod1, extIP, 80) }, true},
		{"pod1 -> ext tcp 81 (forward egress end of tier)", func() error { return tcpProbe(l.pod1, extIP, 81) }, false},
		{"pod1 -> pod2 icmp (not through eth1)", func() error { return testutil.Ping(l.pod1, pod2IP) }, true},
	})
	// Without forward tiers, forwarded traffic is allowed again.
	h.ForwardIn, h.ForwardOut = nil, nil
	l.apply(t, rs, DefaultPolicyOptions())
	checkFlows(t, []flow{
		{"ext -> pod1 tcp 7070 (no forward policy)", func() error { return tcpProbe(l.ext, pod1IP, 7070) }, true},
		{"pod1 -> ext tcp 81 (no forward policy)", func() error { return tcpProbe(l.pod1, extIP, 81) }, true},
	})
}

// TestPrivilegedPolicyIPv6 gives two pods IPv6 addresses and pod2 an
// ingress policy allowing TCP 8080 from pod1's IPv6 net only.
func TestPrivilegedPolicyIPv6(t *testing.T) {
	l := newPolicyLab(t)
	const v6a, v6b = "fd00:244::2", "fd00:244::3"
	if err := netns.SetSysctl(l.node, "net/ipv6/conf/all/forwarding", "1"); err != nil {
		t.Fatal(err)
	}
	var pods [2]string
	for i, a := range []string{v6a, v6b} {
		pods[i] = testutil.NewNetNS(t)
		if _, err := link.SetupWorkload(link.Workload{HostNetNS: l.node, ContainerNetNS: pods[i], ContainerIf: "eth0",
			HostIf: "calisix" + string(rune('1'+i)), Addrs: pfxs(a + "/128")}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.ServeTCP(t, pods[1], v6b, 8080, 9090)
	testutil.ServeTCP(t, pods[0], v6a, 7070)
	rs := &ruleset.Ruleset{
		Endpoints: []ruleset.Endpoint{
			{ID: "wep/a6", Kind: ruleset.Workload, Interface: "calisix1", Addrs: pfxs(v6a + "/128"),
				IngressProfiles: []string{"ri/none"}, EgressProfiles: []string{"re/all"}},
			{ID: "wep/b6", Kind: ruleset.Workload, Interface: "calisix2", Addrs: pfxs(v6b + "/128"),
				Ingress: tierOf(ruleset.Deny, "pi/default/web6"), EgressProfiles: []string{"re/all"}},
		},
		Chains: map[string]*ruleset.Chain{
			"ri/none": {ID: "ri/none"},
			"re/all":  {ID: "re/all", Rules: []ruleset.Rule{{Ref: ref("", "all", ruleset.Egress, 0), Action: ruleset.Allow}}},
			"pi/default/web6": {ID: "pi/default/web6", Rules: []ruleset.Rule{{Ref: ref("default", "web6", ruleset.Ingress, 0),
				Action: ruleset.Allow, IPVersion: 6, Protocol: u8(6), Src: ruleset.EntityMatch{InSets: []string{"s:a6"}},
				Dst: ruleset.EntityMatch{Ports: []ruleset.PortRange{{First: 8080, Last: 8080}}}}}},
		},
		Sets: map[string]*ruleset.Set{"s:a6": {ID: "s:a6", Kind: ruleset.Nets, Nets: pfxs(v6a + "/128")}},
	}
	l.apply(t, rs, DefaultPolicyOptions())
	// Neighbour discovery with the host runs under policy too.
	for _, p := range pods {
		testutil.RunIn(t, p, "ip", "-6", "neigh", "flush", "dev", "eth0")
	}
	checkFlows(t, []flow{
		{"pod1 -> pod2 tcp6 8080 (allowed)", func() error { return tcpProbe(pods[0], v6b, 8080) }, true},
		{"pod1 -> pod2 tcp6 9090 (end of tier)", func() error { return tcpProbe(pods[0], v6b, 9090) }, false},
		{"pod1 -> pod2 icmp6 (end of tier)", func() error { return testutil.Ping(pods[0], v6b) }, false},
		{"pod2 -> pod1 tcp6 (profile denies)", func() error { return tcpProbe(pods[1], v6a, 7070) }, false},
	})
	// The source leaves the set: the allowed flow is denied.
	rs.Sets["s:a6"].Nets = pfxs("fd00:244::77/128")
	l.apply(t, rs, DefaultPolicyOptions())
	checkFlows(t, []flow{{"pod1 -> pod2 tcp6 8080 (source left the set)", func() error { return tcpProbe(pods[0], v6b, 8080) }, false}})
}
