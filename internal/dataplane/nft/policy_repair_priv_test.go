package nft

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/ruleset"
	"github.com/onecalico/calico/internal/testutil"
)

// stateless lists the policy table without counter values.
func (l *policyLab) stateless(t *testing.T) string {
	t.Helper()
	return testutil.RunIn(t, l.node, "nft", "-s", "list", "table", "inet", PolicyTableName)
}

// checkAndRepair runs what the daemon's full resync does: Check, and when
// it finds the table changed, Apply. It fails the test unless Check saw
// the change and the repair was sent in place.
func (l *policyLab) checkAndRepair(t *testing.T, what string) PolicyStats {
	t.Helper()
	ok, err := l.p.Check()
	if err != nil {
		t.Fatalf("%s: Check: %v", what, err)
	}
	if ok {
		t.Fatalf("%s: Check did not notice the change", what)
	}
	st := l.apply(t, hostPktRuleset(), DefaultPolicyOptions())
	if !st.Adopted || st.Full || !st.Changed() {
		t.Fatalf("%s: repair %+v, want an in-place repair", what, st)
	}
	if ok, err := l.p.Check(); !ok || err != nil {
		t.Fatalf("%s: Check after the repair: %v %v", what, ok, err)
	}
	return st
}

// TestPrivilegedPolicyResyncRepair edits the policy table with nft in
// the ways a person or another program could (a set member added, a rule
// deleted, a chain flushed, a map element added and removed, a chain and
// a rule added, the table deleted); each time Check notices, the next
// Apply restores exactly the desired table in one batch, and packets
// prove enforcement is back. Counters of what was not touched keep their
// values.
func TestPrivilegedPolicyResyncRepair(t *testing.T) {
	l := newPolicyLab(t)
	l.watch(t)
	testutil.ServeTCP(t, l.pod1, pod1IP, 7070)
	testutil.ServeTCP(t, l.pod2, pod2IP, 8080)
	testutil.ServeTCP(t, l.node, nodeIP, 2223)
	rs := hostPktRuleset()
	l.apply(t, rs, DefaultPolicyOptions())
	want := l.stateless(t)
	if ok, err := l.p.Check(); !ok || err != nil {
		t.Fatalf("Check of an untouched table: %v %v", ok, err)
	}
	// Another table's commit moves the generation: the watch knows it was
	// not ours, and Check does not read the table back.
	reads := l.p.readBacks
	testutil.RunIn(t, l.node, "nft", "add table ip other; delete table ip other")
	for range 2 {
		if ok, err := l.p.Check(); !ok || err != nil {
			t.Fatalf("Check after another table changed: %v %v", ok, err)
		}
	}
	if l.p.readBacks != reads {
		t.Errorf("Check read the table back %d times after another table's change", l.p.readBacks-reads)
	}
	// Without a watch it reads back, and finds the table intact.
	unwatched := NewPolicyApplier(l.conn, PolicyTableName).SendThrough(l.batch)
	l.apply(t, rs, DefaultPolicyOptions())
	if st, err := unwatched.Apply(rs, DefaultPolicyOptions()); err != nil || st.Changed() || !st.Adopted {
		t.Fatalf("second applier: %+v %v", st, err)
	}
	testutil.RunIn(t, l.node, "nft", "add table ip other; delete table ip other")
	if ok, err := unwatched.Check(); !ok || err != nil || unwatched.readBacks != 2 {
		t.Fatalf("Check without a watch after another table changed: %v %v, %d reads", ok, err, unwatched.readBacks)
	}
	checkFlows(t, []flow{
		{"pod1 -> pod2 tcp 8080", func() error { return tcpProbe(l.pod1, pod2IP, 8080) }, true},
		{"ext -> pod1 tcp 7070 (in the profile's set)", func() error { return tcpProbe(l.ext, pod1IP, 7070) }, true},
		{"ext -> node tcp 2223 (host endpoint denies)", func() error { return tcpProbe(l.ext, nodeIP, 2223) }, false},
	})
	ctr := counterPackets(t, l, "ri/net#0")
	if ctr == 0 {
		t.Fatal("no packet counted by ri/net rule 0")
	}

	// A set member removed (nft's parser takes no set name with a ':',
	// so this edit goes through netlink): the external host leaves
	// pod1's profile set.
	damageSet(t, l, "s:net-v4", extIP)
	checkFlows(t, []flow{{"ext -> pod1 tcp 7070 (damaged set)", func() error { return tcpProbe(l.ext, pod1IP, 7070) }, false}})
	if st := l.checkAndRepair(t, "set member removed"); st.ElemsAdded != 2 || st.ChainsWritten != 0 {
		t.Errorf("set member removed: repair %+v, want one interval added", st)
	}
	checkFlows(t, []flow{{"ext -> pod1 tcp 7070 (repaired)", func() error { return tcpProbe(l.ext, pod1IP, 7070) }, true}})
	if got := counterPackets(t, l, "ri/net#0"); got < ctr {
		t.Errorf("counter of an untouched rule went from %d to %d", ctr, got)
	}

	// A profile chain flushed: pod2's profile no longer allows pod1.
	nftIn(t, l, `flush chain inet calico-policy ri/net`)
	checkFlows(t, []flow{{"pod1 -> pod2 tcp 8080 (flushed chain)", func() error { return tcpProbe(l.pod1, pod2IP, 8080) }, false}})
	if st := l.checkAndRepair(t, "chain flushed"); st.ChainsWritten != 1 {
		t.Errorf("chain flushed: repair %+v, want one chain rewritten", st)
	}
	checkFlows(t, []flow{{"pod1 -> pod2 tcp 8080 (repaired)", func() error { return tcpProbe(l.pod1, pod2IP, 8080) }, true}})

	// A rule deleted: the egress profile's allow rule.
	h := regexp.MustCompile(`accept # handle (\d+)`).FindStringSubmatch(
		testutil.RunIn(t, l.node, "nft", "-a", "list", "chain", "inet", PolicyTableName, "re/net"))
	if h == nil {
		t.Fatal("no rule handle in re/net")
	}
	nftIn(t, l, `delete rule inet calico-policy re/net handle `+h[1])
	checkFlows(t, []flow{{"pod2 -> pod1 tcp 7070 (profile rule deleted)", func() error { return tcpProbe(l.pod2, pod1IP, 7070) }, false}})
	l.checkAndRepair(t, "rule deleted")
	checkFlows(t, []flow{{"pod2 -> pod1 tcp 7070 (repaired)", func() error { return tcpProbe(l.pod2, pod1IP, 7070) }, true}})

	// A rule added to a base chain, a chain and a map element added, a
	// map element removed, a counter added: one repair undoes them all.
	nftIn(t, l, `add chain inet calico-policy evil; add rule inet calico-policy evil accept; `+
		`insert rule inet calico-policy input tcp dport 2223 accept; `+
		`add element inet calico-policy wl-egress { "calievil" : jump evil }; `+
		`delete element inet calico-policy wl-ingress { "calinat1" }; add counter inet calico-policy extra`)
	checkFlows(t, []flow{
		{"ext -> node tcp 2223 (inserted accept)", func() error { return tcpProbe(l.ext, nodeIP, 2223) }, true},
		{"pod2 -> pod1 tcp 7070 (map element gone)", func() error { return tcpProbe(l.pod2, pod1IP, 7070) }, false},
	})
	if st := l.checkAndRepair(t, "several edits"); st.ChainsGone != 1 || st.CountersGone != 1 {
		t.Errorf("several edits: repair %+v, want the added chain and counter gone", st)
	}
	checkFlows(t, []flow{
		{"ext -> node tcp 2223 (repaired)", func() error { return tcpProbe(l.ext, nodeIP, 2223) }, false},
		{"pod2 -> pod1 tcp 7070 (map element back)", func() error { return tcpProbe(l.pod2, pod1IP, 7070) }, true},
	})
	if got := l.stateless(t); got != want {
		t.Errorf("after the repairs the table is\n%s\nwant\n%s", got, want)
	}

	// The table deleted: put back whole.
	nftIn(t, l, `delete table inet calico-policy`)
	if ok, _ := l.p.Check(); ok {
		t.Fatal("Check did not notice the table deleted")
	}
	if st := l.apply(t, rs, DefaultPolicyOptions()); !st.Full {
		t.Errorf("table deleted: %+v, want a full write", st)
	}
	if got := l.stateless(t); got != want {
		t.Errorf("after the table was deleted the table is\n%s\nwant\n%s", got, want)
	}
}

// TestPrivilegedPolicyAdoptKeepsCounters: a second applier (a restarted
// daemon) finds the table it would write already there: it sends
// nothing, and the per-rule counters keep counting from where they were.
// When the table differs, only the difference is sent.
func TestPrivilegedPolicyAdoptKeepsCounters(t *testing.T) {
	l := newPolicyLab(t)
	testutil.ServeTCP(t, l.pod2, pod2IP, 8080)
	rs := hostPktRuleset()
	l.apply(t, rs, DefaultPolicyOptions())
	checkFlows(t, []flow{{"pod1 -> pod2 tcp 8080", func() error { return tcpProbe(l.pod1, pod2IP, 8080) }, true}})
	before := counterPackets(t, l, "ri/net#0")
	if before == 0 {
		t.Fatal("no packet counted")
	}
	restart := func() PolicyStats {
		l.p.Close()
		l.p = NewPolicyApplier(l.conn, PolicyTableName).SendThrough(l.batch)
		l.watch(t)
		return l.apply(t, rs, DefaultPolicyOptions())
	}
	if st := restart(); !st.Adopted || st.Changed() {
		t.Fatalf("restart with an unchanged table: %+v, want nothing sent", st)
	}
	if got := counterPackets(t, l, "ri/net#0"); got < before {
		t.Errorf("counter went from %d to %d across the restart", before, got)
	}
	if len(l.p.CounterLabels()) == 0 {
		t.Error("no counter labels after adopting the table")
	}
	if ok, err := l.p.Check(); !ok || err != nil {
		t.Errorf("Check after adopting: %v %v", ok, err)
	}
	// Policy changed while the daemon was down: only that chain is sent.
	rs.Chains["pi/app/web"].Rules = rs.Chains["pi/app/web"].Rules[:1]
	if st := restart(); !st.Adopted || st.ChainsWritten != 1 || st.Full {
		t.Fatalf("restart with one changed chain: %+v", st)
	}
	checkFlows(t, []flow{{"pod1 -> pod2 tcp 8080 (after restart)", func() error { return tcpProbe(l.pod1, pod2IP, 8080) }, true}})
}

// watch makes the lab's applier follow the node's nftables notifications.
func (l *policyLab) watch(t *testing.T) {
	t.Helper()
	f, err := netns.Open(l.node)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := l.p.Watch(int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	p := l.p
	t.Cleanup(p.Close)
}

func nftIn(t *testing.T, l *policyLab, cmd string) {
	t.Helper()
	testutil.RunIn(t, l.node, "nft", cmd)
}

func counterPackets(t *testing.T, l *policyLab, name string) uint64 {
	t.Helper()
	objs, err := l.conn.GetNamedObjects(&nftables.Table{Name: PolicyTableName, Family: nftables.TableFamilyINet})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		if n, ok := o.(*nftables.NamedObj); ok {
			if n.Name == name {
				return counterOf(n)
			}
			names = append(names, n.Name)
		}
	}
	t.Fatalf("no counter %s among %s", name, strings.Join(names, " "))
	return 0
}

func counterOf(n *nftables.NamedObj) uint64 {
	if c, ok := n.Obj.(*expr.Counter); ok {
		return c.Packets
	}
	return 0
}

// damageSet deletes addr (a one-address interval) from a set of the
// policy table over a Conn of its own.
func damageSet(t *testing.T, l *policyLab, set, addr string) {
	t.Helper()
	f, err := netns.Open(l.node)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.GetSetByName(&nftables.Table{Name: PolicyTableName, Family: nftables.TableFamilyINet}, set)
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr(addr)
	if err := c.SetDeleteElements(s, []nftables.SetElement{{Key: a.AsSlice()}, {Key: a.Next().AsSlice(), IntervalEnd: true}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("delete %s from %s: %v", addr, set, err)
	}
}

// TestPrivilegedPolicyReadBackShapes: every shape the builder makes (the
// golden fixtures: tiers, Pass, Log, ICMP, named ports, port lists, host
// endpoints with every stage, failsafe nets, VXLAN peers) plus sets
// holding the whole address space read back as what was written: a
// second applier adopts the table and sends nothing, and Check without a
// watch reads it back and finds it intact.
func TestPrivilegedPolicyReadBackShapes(t *testing.T) {
	o := PolicyOptions{EndpointToHost: EndpointToHostAccept,
		FailsafeInbound:  []ProtoPort{{Protocol: 6, Port: 22}, {Protocol: 6, Port: 10250, Net: netip.MustParsePrefix("10.0.0.0/8")}},
		FailsafeOutbound: []ProtoPort{{Protocol: 17, Port: 53}, {Protocol: 6, Port: 443, Net: netip.MustParsePrefix("fd00::/64")}},
		VXLANPeers:       []netip.Addr{netip.MustParseAddr("10.99.0.12")},
		HostInterfaces:   map[string][]netip.Addr{"eth7": {netip.MustParseAddr("192.0.2.50")}}}
	for name, rs := range map[string]*ruleset.Ruleset{"fixture": fixtureRuleset(), "hosts": hostRuleset()} {
		t.Run(name, func(t *testing.T) {
			l := newPolicyLab(t)
			rs.Sets["s:all"] = &ruleset.Set{ID: "s:all", Kind: ruleset.Nets,
				Nets: pfxs("0.0.0.0/0", "10.0.0.0/8", "::/0", "2001:db8::/32", "255.255.255.255/32")}
			rs.Sets["s:edge"] = &ruleset.Set{ID: "s:edge", Kind: ruleset.Nets,
				Nets: pfxs("255.255.255.0/24", "0.0.0.0/32", "10.1.0.0/24", "10.1.1.0/24", "ffff::/16")}
			l.apply(t, rs, o)
			second := NewPolicyApplier(l.conn, PolicyTableName).SendThrough(l.batch)
			if st, err := second.Apply(rs, o); err != nil || !st.Adopted || st.Changed() {
				t.Fatalf("second applier: %+v %v", st, err)
			}
			testutil.RunIn(t, l.node, "nft", "add table ip other")
			if ok, err := second.Check(); !ok || err != nil || second.readBacks != 2 {
				t.Fatalf("Check: %v %v after %d reads", ok, err, second.readBacks)
			}
		})
	}
}
