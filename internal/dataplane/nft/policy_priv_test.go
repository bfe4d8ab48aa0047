package nft

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/onecalico/calico/internal/dataplane/link"
	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/ruleset"
	"github.com/onecalico/calico/internal/testutil"
)

// policyLab is natLab (node, two pods calinat1 10.244.1.2 and calinat2
// 10.244.1.3, an external host 203.0.113.10 behind the node's eth1) with
// a route from the external host back to the pods, and a policy applier
// on a Conn with big buffers.
type policyLab struct {
	*natLab
	p     *PolicyApplier
	conn  *nftables.Conn
	batch *BatchSocket
}

func newPolicyLab(t *testing.T) *policyLab {
	l := &policyLab{natLab: newNATLab(t)}
	testutil.RunIn(t, l.ext, "ip", "route", "add", "10.244.0.0/16", "via", "203.0.113.1")
	f, err := netns.Open(l.node)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	l.batch = &BatchSocket{}
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())), nftables.AsLasting(), nftables.WithSockOptions(l.batch.Grab))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseLasting() })
	l.conn = c
	l.p = NewPolicyApplier(c, PolicyTableName).SendThrough(l.batch)
	return l
}

func (l *policyLab) apply(t *testing.T, rs *ruleset.Ruleset, o PolicyOptions) PolicyStats {
	t.Helper()
	st, err := l.p.Apply(rs, o)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return st
}

const (
	pod1IP = "10.244.1.2"
	pod2IP = "10.244.1.3"
	extIP  = "203.0.113.10"
	nodeIP = "203.0.113.1"
)

// serveUDP echoes datagrams on addr:port in ns until the test ends.
func serveUDP(t *testing.T, ns, addr string, port int) {
	t.Helper()
	var pc net.PacketConn
	if err := netns.Do(ns, func() (err error) {
		pc, err = net.ListenPacket("udp", net.JoinHostPort(addr, fmt.Sprint(port)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
}

// probeTimeout bounds one probe; a dropped packet costs this much.
const probeTimeout = 700 * time.Millisecond

func tcpProbe(ns, addr string, port int) error { return testutil.DialTCP(ns, addr, port, probeTimeout) }

func udpProbe(ns, addr string, port int) error {
	return netns.Do(ns, func() error {
		c, err := net.Dial("udp", net.JoinHostPort(addr, fmt.Sprint(port)))
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(probeTimeout))
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		_, err = c.Read(make([]byte, 8))
		return err
	})
}

// flow is one probe and whether policy should let it through.
type flow struct {
	name  string
	probe func() error
	allow bool
}

func checkFlows(t *testing.T, flows []flow) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(flows))
	for i, f := range flows {
		wg.Go(func() {
			if !f.allow {
				errs[i] = f.probe()
				return
			}
			// An allowed flow may retry: a loaded machine (or a first
			// neighbour resolution) must not look like a drop, and a
			// flow policy drops never gets through however often it is
			// tried.
			errs[i] = testutil.Poll(5*time.Second, f.probe)
		})
	}
	wg.Wait()
	for i, f := range flows {
		switch {
		case f.allow && errs[i] != nil:
			t.Errorf("%s: denied, want allowed: %v", f.name, errs[i])
		case !f.allow && errs[i] == nil:
			t.Errorf("%s: allowed, want denied", f.name)
		}
	}
}

// labRuleset: both pods carry profile "net" (ingress only from members of
// set s:net, egress anything); pod2 also has tiered ingress policy:
// tier "sec" passes TCP 8080 and UDP 5353, and denies the rest at the
// end of the tier; tier "app" allows TCP 8080 and the named port "dns"
// (UDP 5353 on pod2), then denies.
func labRuleset() *ruleset.Ruleset {
	tcp, udp := u8(6), u8(17)
	return &ruleset.Ruleset{
		Endpoints: []ruleset.Endpoint{
			{ID: "wep/a", Kind: ruleset.Workload, Interface: "calinat1", Addrs: pfxs(pod1IP + "/32"),
				IngressProfiles: []string{"ri/net"}, EgressProfiles: []string{"re/net"}},
			{ID: "wep/b", Kind: ruleset.Workload, Interface: "calinat2", Addrs: pfxs(pod2IP + "/32"),
				Ingress: []ruleset.TierRef{
					{Name: "sec", Chains: []string{"pi/sec/pass"}, EndOfTier: ruleset.Deny},
					{Name: "app", Chains: []string{"pi/app/web"}, EndOfTier: ruleset.Deny},
				},
				IngressProfiles: []string{"ri/net"}, EgressProfiles: []string{"re/net"}},
		},
		Chains: map[string]*ruleset.Chain{
			"ri/net": {ID: "ri/net", Rules: []ruleset.Rule{{Ref: ref("", "net", ruleset.Ingress, 0), Action: ruleset.Allow, Src: ruleset.EntityMatch{InSets: []string{"s:net"}}}}},
			"re/net": {ID: "re/net", Rules: []ruleset.Rule{{Ref: ref("", "net", ruleset.Egress, 0), Action: ruleset.Allow}}},
			"pi/sec/pass": {ID: "pi/sec/pass", Rules: []ruleset.Rule{
				{Ref: ref("sec", "pass", ruleset.Ingress, 0), Action: ruleset.Pass, Protocol: tcp, Dst: ruleset.EntityMatch{Ports: []ruleset.PortRange{{First: 8080, Last: 8080}}}},
				{Ref: ref("sec", "pass", ruleset.Ingress, 1), Action: ruleset.Pass, Protocol: udp, Dst: ruleset.EntityMatch{Ports: []ruleset.PortRange{{First: 5353, Last: 5353}, {First: 6000, Last: 6001}}}},
			}},
			"pi/app/web": {ID: "pi/app/web", Rules: []ruleset.Rule{
				{Ref: ref("app", "web", ruleset.Ingress, 0), Action: ruleset.Allow, Protocol: tcp, Dst: ruleset.EntityMatch{Ports: []ruleset.PortRange{{First: 8080, Last: 8080}}}},
				{Ref: ref("app", "web", ruleset.Ingress, 1), Action: ruleset.Allow, Protocol: udp, Dst: ruleset.EntityMatch{NamedPortSet: "np:dns"}},
			}},
		},
		Sets: map[string]*ruleset.Set{
			"s:net": {ID: "s:net", Kind: ruleset.Nets, Nets: pfxs(pod1IP+"/32", pod2IP+"/32")},
			"np:dns": {ID: "np:dns", Kind: ruleset.NamedPorts, Members: []ruleset.NamedPortMember{
				{Addr: netip.MustParseAddr(pod2IP), Protocol: 17, Port: 5353}}},
		},
	}
}

func TestPrivilegedPolicyPackets(t *testing.T) {
	l := newPolicyLab(t)
	testutil.RunIn(t, l.node, "nft", "add table ip other; add chain ip other c; add rule ip other c counter accept")
	other := testutil.RunIn(t, l.node, "nft", "list", "table", "ip", "other")
	testutil.ServeTCP(t, l.pod2, pod2IP, 8080, 9090)
	for _, p := range []int{5353, 6000} {
		serveUDP(t, l.pod2, pod2IP, p)
	}
	testutil.ServeTCP(t, l.pod1, pod1IP, 7070)
	testutil.ServeTCP(t, l.node, nodeIP, 2222)
	testutil.ServeTCP(t, l.ext, extIP, 80)

	o := DefaultPolicyOptions()
	if st := l.apply(t, labRuleset(), o); !st.Full {
		t.Errorf("first apply was not a full replace: %+v", st)
	}
	checkFlows(t, []flow{
		{"pod1 -> pod2 tcp 8080 (sec passes, app allows)", func() error { return tcpProbe(l.pod1, pod2IP, 8080) }, true},
		{"pod1 -> pod2 tcp 9090 (end of tier sec)", func() error { return tcpProbe(l.pod1, pod2IP, 9090) }, false},
		{"pod1 -> pod2 udp 5353 (named port)", func() error { return udpProbe(l.pod1, pod2IP, 5353) }, true},
		{"pod1 -> pod2 udp 6000 (passed, not allowed by app)", func() error { return udpProbe(l.pod1, pod2IP, 6000) }, false},
		{"pod1 -> pod2 icmp (end of tier sec)", func() error { return testutil.Ping(l.pod1, pod2IP) }, false},
		{"pod2 -> pod1 tcp 7070 (profile: source in set)", func() error { return tcpProbe(l.pod2, pod1IP, 7070) }, true},
		{"pod2 -> pod1 icmp", func() error { return testutil.Ping(l.pod2, pod1IP) }, true},
		{"ext -> pod1 icmp (not in set)", func() error { return testutil.Ping(l.ext, pod1IP) }, false},
		{"ext -> pod1 tcp", func() error { return tcpProbe(l.ext, pod1IP, 7070) }, false},
		{"node -> pod1 tcp (host reaches local pods)", func() error { return tcpProbe(l.node, pod1IP, 7070) }, true},
		{"pod1 -> ext tcp 80 (egress allowed)", func() error { return tcpProbe(l.pod1, extIP, 80) }, true},
		{"pod1 -> node tcp (endpoint to host: Drop)", func() error { return tcpProbe(l.pod1, nodeIP, 2222) }, false},
	})

	// The seed's profile change: the external host joins the set; then the
	// endpoint-to-host action becomes Accept. Only set members change.
	rs := labRuleset()
	rs.Sets["s:net"].Nets = append(rs.Sets["s:net"].Nets, netip.MustParsePrefix(extIP+"/32"))
	st := l.apply(t, rs, o)
	if st.ChainsWritten != 0 || st.ElemsAdded != 2 {
		t.Errorf("set member add: %+v", st)
	}
	o.EndpointToHost = EndpointToHostAccept
	l.apply(t, rs, o)
	checkFlows(t, []flow{
		{"ext -> pod1 icmp (in set now)", func() error { return testutil.Ping(l.ext, pod1IP) }, true},
		{"ext -> pod1 tcp", func() error { return tcpProbe(l.ext, pod1IP, 7070) }, true},
		{"pod1 -> node tcp (endpoint to host: Accept)", func() error { return tcpProbe(l.pod1, nodeIP, 2222) }, true},
	})

	// Counters: per rule (named) and per endpoint default deny.
	vals, err := ReadCounters(l.conn, PolicyTableName)
	if err != nil {
		t.Fatal(err)
	}
	labels := l.p.CounterLabels()
	for _, name := range []string{"pi/app/web#0", "pi/app/web#1", "ri/net#0", "drop/ingress/wep/b"} {
		if _, ok := labels[name]; !ok {
			t.Errorf("no label info for counter %s", name)
		}
		if vals[name].Packets == 0 {
			t.Errorf("counter %s = %+v, want packets", name, vals[name])
		}
	}

	// Kernel state renders as the builder's, and nft itself can read it.
	dump, err := Dump(l.conn, PolicyTableName)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := buildPolicy(PolicyTableName, rs, o)
	if r := render(specOf(want)); dump != r {
		t.Errorf("kernel dump differs from the built table:\n--- kernel\n%s--- built\n%s", dump, r)
	}
	listed := testutil.RunIn(t, l.node, "nft", "list", "table", "inet", PolicyTableName)
	for _, w := range []string{"iifname vmap @wl-egress", `counter name "pi/app/web#0"`, "meta mark set meta mark | 0x00020000 return"} {
		if !strings.Contains(listed, w) {
			t.Errorf("nft list lacks %q:\n%s", w, listed)
		}
	}
	if got := testutil.RunIn(t, l.node, "nft", "list", "table", "ip", "other"); got != other {
		t.Errorf("foreign table changed:\n%s\nwas\n%s", got, other)
	}
}

func TestPrivilegedPolicyAntiSpoofAndUnknownInterface(t *testing.T) {
	l := newPolicyLab(t)
	rs := labRuleset()
	rs.Endpoints[1].Ingress = nil
	l.apply(t, rs, DefaultPolicyOptions())
	testutil.RunIn(t, l.pod1, "ip", "addr", "add", "10.244.1.99/32", "dev", "eth0")
	// A third pod whose interface has no endpoint.
	pod3 := testutil.NewNetNS(t)
	if _, err := link.SetupWorkload(link.Workload{HostNetNS: l.node, ContainerNetNS: pod3, ContainerIf: "eth0",
		HostIf: "calinat3", Addrs: pfxs("10.244.1.4/32")}); err != nil {
		t.Fatal(err)
	}
	checkFlows(t, []flow{
		{"pod1 -> pod2 from its own address", func() error { return testutil.Ping(l.pod1, pod2IP) }, true},
		{"pod1 -> pod2 from a spoofed address", func() error { return testutil.Ping(l.pod1, pod2IP, "-I", "10.244.1.99") }, false},
		{"unknown interface -> pod2", func() error { return testutil.Ping(pod3, pod2IP) }, false},
		{"pod2 -> unknown interface", func() error { return testutil.Ping(l.pod2, "10.244.1.4") }, false},
	})
}

// TestPrivilegedPolicyFailsafe puts a "*" host endpoint with deny-all
// ingress and egress on the node: failsafe ports still pass, others not.
func TestPrivilegedPolicyFailsafe(t *testing.T) {
	l := newPolicyLab(t)
	testutil.ServeTCP(t, l.node, nodeIP, 22, 179, 2379, 2222)
	testutil.ServeTCP(t, l.ext, extIP, 2380, 2000)
	rs := hostRuleset()
	rs.Endpoints = rs.Endpoints[2:3] // the "*" endpoint only
	l.apply(t, rs, DefaultPolicyOptions())
	checkFlows(t, []flow{
		{"ext -> node ssh", func() error { return tcpProbe(l.ext, nodeIP, 22) }, true},
		{"ext -> node bgp", func() error { return tcpProbe(l.ext, nodeIP, 179) }, true},
		{"ext -> node etcd", func() error { return tcpProbe(l.ext, nodeIP, 2379) }, true},
		{"ext -> node 2222", func() error { return tcpProbe(l.ext, nodeIP, 2222) }, false},
		{"ext -> node icmp", func() error { return testutil.Ping(l.ext, nodeIP) }, false},
		{"node -> ext etcd peer", func() error { return tcpProbe(l.node, extIP, 2380) }, true},
		{"node -> ext 2000", func() error { return tcpProbe(l.node, extIP, 2000) }, false},
		{"node -> node over lo", func() error { return tcpProbe(l.node, nodeIP, 2222) }, true},
	})
}

// TestPrivilegedPolicyFailsafeNet: failsafe ports restricted to a net
// are open to that net only (the source inbound, the destination
// outbound), under a "*" host endpoint that denies everything.
func TestPrivilegedPolicyFailsafeNet(t *testing.T) {
	l := newPolicyLab(t)
	testutil.ServeTCP(t, l.node, nodeIP, 22, 2222, 2223)
	testutil.ServeTCP(t, l.ext, extIP, 2000, 2001)
	rs := hostRuleset()
	rs.Endpoints = rs.Endpoints[2:3] // the "*" endpoint only
	o := DefaultPolicyOptions()
	ext, other := netip.MustParsePrefix(extIP+"/32"), netip.MustParsePrefix("198.51.100.0/24")
	o.FailsafeInbound = append(o.FailsafeInbound, ProtoPort{Protocol: 6, Port: 2222, Net: ext}, ProtoPort{Protocol: 6, Port: 2223, Net: other})
	o.FailsafeOutbound = append(o.FailsafeOutbound, ProtoPort{Protocol: 6, Port: 2000, Net: netip.MustParsePrefix("203.0.113.0/24")},
		ProtoPort{Protocol: 6, Port: 2001, Net: other})
	l.apply(t, rs, o)
	checkFlows(t, []flow{
		{"ext -> node 2222 (failsafe for ext's address)", func() error { return tcpProbe(l.ext, nodeIP, 2222) }, true},
		{"ext -> node 2223 (failsafe for another net)", func() error { return tcpProbe(l.ext, nodeIP, 2223) }, false},
		{"node -> ext 2000 (failsafe to ext's net)", func() error { return tcpProbe(l.node, extIP, 2000) }, true},
		{"node -> ext 2001 (failsafe to another net)", func() error { return tcpProbe(l.node, extIP, 2001) }, false},
		{"ext -> node ssh (default failsafe)", func() error { return tcpProbe(l.ext, nodeIP, 22) }, true},
	})
}

// TestPrivilegedPolicyReplaceUnderTraffic: pings run through the table
// while a second applier (a restarted daemon) rewrites it, and the first
// one, its view stale or forgotten (Invalidate), rewrites it back; no
// allowed flow loses a packet and the denied flow never gets through.
// (Each ping is a new ICMP id, so a new conntrack entry that runs the
// whole policy; TestPrivilegedPolicyRewriteKeepsNewFlows sends many more.)
func TestPrivilegedPolicyReplaceUnderTraffic(t *testing.T) {
	l := newPolicyLab(t)
	l.apply(t, labRuleset(), DefaultPolicyOptions())
	var allowedFail, deniedPass, probes atomic.Int64
	var mu sync.Mutex
	var lost []string // what ping said, for a failure
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// A generous timeout for the allowed flow: a dropped echo
			// never gets an answer, however long we wait, while a slow
			// scheduler on a loaded machine must not count as a loss.
			if err := testutil.Ping(l.pod2, pod1IP, "-W", "5"); err != nil {
				allowedFail.Add(1)
				mu.Lock()
				lost = append(lost, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
				mu.Unlock()
			}
			if testutil.Ping(l.ext, pod1IP, "-W", "0.2") == nil {
				deniedPass.Add(1)
			}
			probes.Add(1)
		}
	})
	for i := range 20 {
		p := NewPolicyApplier(l.conn, PolicyTableName) // a restart: full replace
		rs := labRuleset()
		rs.Sets["s:net"].Nets = append(rs.Sets["s:net"].Nets, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 9, 0, byte(i)}), 32))
		if _, err := p.Apply(rs, DefaultPolicyOptions()); err != nil {
			t.Fatal(err)
		}
		st, err := l.p.Apply(rs, DefaultPolicyOptions())
		if err != nil {
			t.Fatal(err)
		}
		if st.Full {
			t.Errorf("round %d: the table was replaced whole (not packet-atomic: see PolicyApplier): %+v", i, st)
		}
		l.p.Invalidate()
		time.Sleep(20 * time.Millisecond)
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		if probes.Load() < 10 {
			return errors.New("too few probes")
		}
		return nil
	})
	close(stop)
	wg.Wait()
	if allowedFail.Load() != 0 || deniedPass.Load() != 0 {
		t.Errorf("over %d probe rounds: %d allowed pings lost (%q), %d denied pings answered", probes.Load(), allowedFail.Load(), lost, deniedPass.Load())
	}
}

// TestPrivilegedPolicyRuleFields gives pod2 one ingress policy with one
// Allow rule per case (end of tier: Deny) and sends a flow the field
// matches (allowed) and one it does not (denied), for each rule field.
func TestPrivilegedPolicyRuleFields(t *testing.T) {
	l := newPolicyLab(t)
	testutil.ServeTCP(t, l.pod2, pod2IP, 8080, 9090)
	serveUDP(t, l.pod2, pod2IP, 5353)
	tcp, icmp := u8(6), u8(1)
	tcp8080 := func(ns string) func() error { return func() error { return tcpProbe(ns, pod2IP, 8080) } }
	tcp9090 := func(ns string) func() error { return func() error { return tcpProbe(ns, pod2IP, 9090) } }
	udp5353 := func(ns string) func() error { return func() error { return udpProbe(ns, pod2IP, 5353) } }
	ping2 := func(ns string) func() error { return func() error { return testutil.Ping(ns, pod2IP) } }
	one := func(n uint16) []ruleset.PortRange { return []ruleset.PortRange{{First: n, Last: n}} }
	for _, c := range []struct {
		name         string
		rule         ruleset.Rule
		match, other func() error
	}{
		{"protocol", ruleset.Rule{Protocol: tcp}, tcp9090(l.pod1), udp5353(l.pod1)},
		{"notProtocol", ruleset.Rule{NotProtocol: tcp}, udp5353(l.pod1), tcp9090(l.pod1)},
		{"icmp type", ruleset.Rule{Protocol: icmp, ICMP: &ruleset.ICMPMatch{Type: 8}}, ping2(l.pod1), tcp9090(l.pod1)},
		{"icmp type and code", ruleset.Rule{Protocol: icmp, ICMP: &ruleset.ICMPMatch{Type: 8, Code: u8(0)}}, ping2(l.pod1), tcp9090(l.pod1)},
		{"notICMP (other type)", ruleset.Rule{Protocol: icmp, NotICMP: &ruleset.ICMPMatch{Type: 13}}, ping2(l.pod1), tcp9090(l.pod1)},
		{"notICMP (this type)", ruleset.Rule{Protocol: icmp, NotICMP: &ruleset.ICMPMatch{Type: 8}}, nil, ping2(l.pod1)},
		{"source nets", ruleset.Rule{Src: ruleset.EntityMatch{InSets: []string{"s:pod1"}}}, ping2(l.pod1), ping2(l.ext)},
		{"source notNets", ruleset.Rule{Src: ruleset.EntityMatch{NotInSets: []string{"s:pod1"}}}, ping2(l.ext), ping2(l.pod1)},
		{"destination nets", ruleset.Rule{Dst: ruleset.EntityMatch{InSets: []string{"s:pod2"}}}, ping2(l.pod1), nil},
		{"destination notNets", ruleset.Rule{Dst: ruleset.EntityMatch{NotInSets: []string{"s:pod2"}}}, nil, ping2(l.pod1)},
		{"ports", ruleset.Rule{Protocol: tcp, Dst: ruleset.EntityMatch{Ports: one(9090)}}, tcp9090(l.pod1), tcp8080(l.pod1)},
		{"port range", ruleset.Rule{Protocol: tcp, Dst: ruleset.EntityMatch{Ports: []ruleset.PortRange{{First: 9000, Last: 9100}}}}, tcp9090(l.pod1), tcp8080(l.pod1)},
		{"notPorts", ruleset.Rule{Protocol: tcp, Dst: ruleset.EntityMatch{NotPorts: one(9090)}}, tcp8080(l.pod1), tcp9090(l.pod1)},
		{"source ports", ruleset.Rule{Protocol: tcp, Src: ruleset.EntityMatch{Ports: []ruleset.PortRange{{First: 1024, Last: 65535}}}}, tcp9090(l.pod1), udp5353(l.pod1)},
		{"named port", ruleset.Rule{Protocol: tcp, Dst: ruleset.EntityMatch{NamedPortSet: "np:web"}}, tcp8080(l.pod1), tcp9090(l.pod1)},
		{"not named port", ruleset.Rule{Protocol: tcp, Dst: ruleset.EntityMatch{NotNamedPortSets: []string{"np:web"}}}, tcp9090(l.pod1), tcp8080(l.pod1)},
		{"ipVersion 4", ruleset.Rule{IPVersion: 4}, ping2(l.pod1), nil},
		{"ipVersion 6", ruleset.Rule{IPVersion: 6}, nil, ping2(l.pod1)},
	} {
		rs := labRuleset()
		rule := c.rule
		rule.Ref, rule.Action = ref("t", "field", ruleset.Ingress, 0), ruleset.Allow
		rs.Chains["pi/t/field"] = &ruleset.Chain{ID: "pi/t/field", Rules: []ruleset.Rule{rule}}
		rs.Endpoints[1].Ingress = []ruleset.TierRef{{Name: "t", Chains: []string{"pi/t/field"}, EndOfTier: ruleset.Deny}}
		rs.Sets["s:pod1"] = &ruleset.Set{ID: "s:pod1", Kind: ruleset.Nets, Nets: pfxs(pod1IP + "/32")}
		rs.Sets["s:pod2"] = &ruleset.Set{ID: "s:pod2", Kind: ruleset.Nets, Nets: pfxs(pod2IP + "/32")}
		rs.Sets["np:web"] = &ruleset.Set{ID: "np:web", Kind: ruleset.NamedPorts, Members: []ruleset.NamedPortMember{
			{Addr: netip.MustParseAddr(pod2IP), Protocol: 6, Port: 8080}}}
		l.apply(t, rs, DefaultPolicyOptions())
		var flows []flow
		if c.match != nil {
			flows = append(flows, flow{c.name + ": matching flow", c.match, true})
		}
		if c.other != nil {
			flows = append(flows, flow{c.name + ": other flow", c.other, false})
		}
		checkFlows(t, flows)
	}
}
