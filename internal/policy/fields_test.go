package policy

import (
	"fmt"
	"testing"

	"github.com/onecalico/calico/internal/ruleset"
)

// Each case installs one ingress rule (Allow) on pod a (10.0.0.1, named
// port http = TCP 8080, dns = UDP 53) and checks packets from pod b
// (10.0.0.2, app=b, named port metrics = TCP 9100) or from outside.
func TestRuleFields(t *testing.T) {
	const allowed = "Allow by GlobalNetworkPolicy p (tier default) ingress rule 0"
	const denied = "Deny at the end of tier default (no policy in it allowed or passed the packet)"
	cases := []struct {
		name string
		rule string
		pkts []Packet
		want []string
	}{
		{"protocol name", `"protocol":"TCP"`, []Packet{tcp("10.0.0.2", "10.0.0.1", 1), udp("10.0.0.2", "10.0.0.1", 1)}, []string{allowed, denied}},
		{"protocol number", `"protocol":17`, []Packet{udp("10.0.0.2", "10.0.0.1", 1), tcp("10.0.0.2", "10.0.0.1", 1)}, []string{allowed, denied}},
		{"notProtocol", `"notProtocol":"UDP"`, []Packet{tcp("10.0.0.2", "10.0.0.1", 1), udp("10.0.0.2", "10.0.0.1", 1)}, []string{allowed, denied}},
		{"icmp type", `"protocol":"ICMP","icmp":{"type":8}`, []Packet{icmp("10.0.0.2", "10.0.0.1", 8, 0), icmp("10.0.0.2", "10.0.0.1", 0, 0)}, []string{allowed, denied}},
		{"icmp type and code", `"protocol":"ICMP","icmp":{"type":3,"code":4}`, []Packet{icmp("10.0.0.2", "10.0.0.1", 3, 4), icmp("10.0.0.2", "10.0.0.1", 3, 1)}, []string{allowed, denied}},
		{"notICMP", `"protocol":"ICMP","notICMP":{"type":8}`, []Packet{icmp("10.0.0.2", "10.0.0.1", 0, 0), icmp("10.0.0.2", "10.0.0.1", 8, 0), tcp("10.0.0.2", "10.0.0.1", 1)}, []string{allowed, denied, denied}},
		{"icmpv6", `"protocol":"ICMPv6","icmp":{"type":128}`, []Packet{icmp("fd00::2", "fd00::1", 128, 0), icmp("10.0.0.2", "10.0.0.1", 128, 0)}, []string{allowed, denied}},
		{"source nets", `"source":{"nets":["10.0.0.0/30","192.168.0.0/16"]}`, []Packet{tcp("10.0.0.2", "10.0.0.1", 1), tcp("192.168.3.3", "10.0.0.1", 1), tcp("10.0.0.9", "10.0.0.1", 1)}, []string{allowed, allowed, denied}},
		{"source notNets", `"source":{"notNets":["10.0.0.0/30"]}`, []Packet{tcp("10.0.0.2", "10.0.0.1", 1), tcp("10.0.0.9", "10.0.0.1", 1), tcp("fd00::2", "fd00::1", 1)}, []string{denied, allowed, denied}},
		{"destination nets", `"destination":{"nets":["10.0.0.1/32"]}`, []Packet{tcp("10.0.0.2", "10.0.0.1", 1)}, []string{allowed}},
		{"ipVersion", `"ipVersion":6`, []Packet{tcp("fd00::2", "fd00::1", 1), tcp("10.0.0.2", "10.0.0.1", 1)}, []string{allowed, denied}},
		{"selector", `"source":{"selector":"app == 'b'"}`, []Packet{tcp("10.0.0.2", "10.0.0.1", 1), tcp("10.0.0.3", "10.0.0.1", 1)}, []string{allowed, denied}},
		{"notSelector", `"source":{"notSelector":"app == 'b'"}`, []Packet{tcp("10.0.0.2", "10.0.0.1", 1), tcp("10.0.0.3", "10.0.0.1", 1), tcp("8.8.8.8", "10.0.0.1", 1)}, []string{denied, allowed, allowed}},
		{"selector and notSelector", `"source":{"selector":"has(app)","notSelector":"app == 'b'"}`, []Packet{tcp("10.0.0.2", "10.0.0.1", 1), tcp("10.0.0.3", "10.0.0.1", 1), tcp("8.8.8.8", "10.0.0.1", 1)}, []string{denied, allowed, denied}},
		{"ports and ranges", `"protocol":"TCP","destination":{"ports":[80,"8000:8100"]}`, []Packet{tcp("10.0.0.2", "10.0.0.1", 80), tcp("10.0.0.2", "10.0.0.1", 8050), tcp("10.0.0.2", "10.0.0.1", 81)}, []string{allowed, allowed, denied}},
		{"notPorts", `"protocol":"TCP","destination":{"notPorts":["1:1024"]}`, []Packet{tcp("10.0.0.2", "10.0.0.1", 80), tcp("10.0.0.2", "10.0.0.1", 8050)}, []string{denied, allowed}},
		{"source ports", `"protocol":"TCP","source":{"ports":[40000]}`, []Packet{tcp("10.0.0.2", "10.0.0.1", 80)}, []string{allowed}},
		{"named port", `"protocol":"TCP","destination":{"ports":["http"]}`, []Packet{tcp("10.0.0.2", "10.0.0.1", 8080), tcp("10.0.0.2", "10.0.0.1", 80)}, []string{allowed, denied}},
		{"named port protocol", `"protocol":"UDP","destination":{"ports":["http"]}`, []Packet{udp("10.0.0.2", "10.0.0.1", 8080)}, []string{denied}},
		{"named and numeric ports", `"protocol":"TCP","destination":{"ports":["http",22]}`, []Packet{tcp("10.0.0.2", "10.0.0.1", 8080), tcp("10.0.0.2", "10.0.0.1", 22), tcp("10.0.0.2", "10.0.0.1", 23)}, []string{allowed, allowed, denied}},
		{"named notPorts", `"protocol":"TCP","destination":{"notPorts":["http"]}`, []Packet{tcp("10.0.0.2", "10.0.0.1", 8080), tcp("10.0.0.2", "10.0.0.1", 22)}, []string{denied, allowed}},
		{"named source port with selector", `"protocol":"TCP","source":{"selector":"app == 'b'","ports":["metrics"]}`, []Packet{
			srcPort(tcp("10.0.0.2", "10.0.0.1", 5), 9100), tcp("10.0.0.2", "10.0.0.1", 5)}, []string{allowed, denied}},
		{"serviceAccounts names", `"source":{"serviceAccounts":{"names":["sa-b"]}}`, []Packet{tcp("10.0.0.2", "10.0.0.1", 1), tcp("10.0.0.3", "10.0.0.1", 1)}, []string{allowed, denied}},
		{"serviceAccounts selector", `"source":{"serviceAccounts":{"selector":"role == 'client'"}}`, []Packet{tcp("10.0.0.2", "10.0.0.1", 1), tcp("10.0.0.3", "10.0.0.1", 1)}, []string{allowed, denied}},
		{"namespaceSelector", `"source":{"namespaceSelector":"team == 'blue'"}`, []Packet{tcp("10.0.0.2", "10.0.0.1", 1), tcp("10.0.0.3", "10.0.0.1", 1)}, []string{allowed, denied}},
		{"namespaceSelector all()", `"source":{"namespaceSelector":"all()"}`, []Packet{tcp("10.0.0.2", "10.0.0.1", 1), tcp("10.8.1.1", "10.0.0.1", 1), tcp("10.9.9.9", "10.0.0.1", 1)}, []string{allowed, denied, denied}},
		{"namespaceSelector global()", `"source":{"namespaceSelector":"global()"}`, []Packet{tcp("10.0.0.2", "10.0.0.1", 1), tcp("10.8.1.1", "10.0.0.1", 1), tcp("10.9.9.9", "10.0.0.1", 1)}, []string{denied, allowed, denied}},
		{"http never matches", `"http":{"methods":["GET"]}`, []Packet{tcp("10.0.0.2", "10.0.0.1", 1)}, []string{denied}},
		{"services never match", `"source":{"services":{"name":"x","namespace":"default"}}`, []Packet{tcp("10.0.0.2", "10.0.0.1", 1)}, []string{denied}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.profile(`{"metadata":{"name":"kns.default"},"spec":{"labelsToApply":{"pcns.projectcalico.org/name":"default"}}}`)
			w.profile(`{"metadata":{"name":"kns.blue"},"spec":{"labelsToApply":{"pcns.team":"blue","pcns.projectcalico.org/name":"blue"}}}`)
			w.profile(`{"metadata":{"name":"ksa.blue.sa-b"},"spec":{"labelsToApply":{"pcsa.role":"client","pcsa.projectcalico.org/name":"sa-b"}}}`)
			w.c.SetWorkloadEndpoint(wep(t, `{"metadata":{"name":"a","namespace":"default","labels":{"app":"a"}},"spec":{"node":"n1","interfaceName":"calia",
				"ipNetworks":["10.0.0.1/32","fd00::1/128"],"profiles":["kns.default"],
				"ports":[{"name":"http","protocol":"TCP","port":8080},{"name":"dns","protocol":"UDP","port":53}]}}`))
			w.c.SetWorkloadEndpoint(wep(t, `{"metadata":{"name":"b","namespace":"blue","labels":{"app":"b"}},"spec":{"node":"n2","interfaceName":"calib",
				"ipNetworks":["10.0.0.2/32","fd00::2/128"],"serviceAccountName":"sa-b","profiles":["kns.blue","ksa.blue.sa-b"],
				"ports":[{"name":"metrics","protocol":"TCP","port":9100}]}}`))
			w.c.SetWorkloadEndpoint(wep(t, `{"metadata":{"name":"c","namespace":"default","labels":{"app":"c"}},"spec":{"node":"n2","interfaceName":"calic",
				"ipNetworks":["10.0.0.3/32"],"profiles":["kns.default"]}}`))
			w.c.SetGlobalNetworkSet(gnetset(t, `{"metadata":{"name":"g"},"spec":{"nets":["10.8.0.0/16"]}}`))
			w.gnp(fmt.Sprintf(`{"metadata":{"name":"p"},"spec":{"selector":"app == 'a'","ingress":[{"action":"Allow",%s}]}}`, tc.rule))
			for i, p := range tc.pkts {
				w.check("wep/default/a", ruleset.Ingress, p, tc.want[i])
			}
		})
	}
}

func TestNetworkPolicyNamespaceScope(t *testing.T) {
	w := newWorld(t)
	w.profile(`{"metadata":{"name":"kns.blue"},"spec":{"labelsToApply":{"pcns.team":"blue"}}}`)
	w.pod("n1", "red", "a", "10.0.0.1/32", `{"app":"web"}`)
	w.pod("n1", "blue", "b", "10.0.0.2/32", `{"app":"web"}`, "kns.blue")
	w.pod("n2", "red", "c", "10.0.0.3/32", `{"app":"client"}`)
	w.pod("n2", "blue", "d", "10.0.0.4/32", `{"app":"client"}`, "kns.blue")
	w.np(`{"metadata":{"name":"allow-clients","namespace":"red"},"spec":{"selector":"app == 'web'",
		"ingress":[{"action":"Allow","source":{"selector":"app == 'client'"}},{"action":"Allow","protocol":"UDP","source":{"namespaceSelector":"team == 'blue'"}}]}}`)
	// Selects only red's web pod.
	ep, _ := FindEndpoint(w.c.Ruleset(), "wep/blue/b")
	if len(ep.Ingress) != 0 {
		t.Errorf("a red NetworkPolicy applies to a blue pod: %+v", ep.Ingress)
	}
	a := "wep/red/a"
	w.check(a, in, tcp("10.0.0.3", "10.0.0.1", 80), "Allow by NetworkPolicy red/allow-clients (tier default) ingress rule 0")
	// Same labels, other namespace: the rule selector is scoped to red.
	w.check(a, in, tcp("10.0.0.4", "10.0.0.1", 80), "Deny at the end of tier default (no policy in it allowed or passed the packet)")
	w.check(a, in, udp("10.0.0.4", "10.0.0.1", 53), "Allow by NetworkPolicy red/allow-clients (tier default) ingress rule 1")
}

func TestLabelsToApplyAndSpecialLabels(t *testing.T) {
	w := newWorld(t)
	w.profile(`{"metadata":{"name":"base"},"spec":{"labelsToApply":{"env":"prod","tier":"base"}}}`)
	w.c.SetWorkloadEndpoint(wep(t, `{"metadata":{"name":"a","namespace":"ns1","labels":{"tier":"own","pcns.team":"forged"}},
		"spec":{"node":"n1","orchestrator":"cni","serviceAccountName":"sa1","interfaceName":"calia","ipNetworks":["10.0.0.1/32"],"profiles":["base"]}}`))
	e := w.c.entities["wep/ns1/a"]
	want := map[string]string{"env": "prod", "tier": "own", "projectcalico.org/namespace": "ns1",
		"projectcalico.org/orchestrator": "cni", "projectcalico.org/serviceaccount": "sa1"}
	if fmt.Sprint(e.labels) != fmt.Sprint(want) {
		t.Errorf("labels = %v, want %v", e.labels, want)
	}
	// A policy selecting on an inherited label follows the profile.
	w.gnp(`{"metadata":{"name":"prod"},"spec":{"selector":"env == 'prod'","ingress":[{"action":"Allow"}]}}`)
	w.check("wep/ns1/a", in, tcp("1.1.1.1", "10.0.0.1", 1), "Allow by GlobalNetworkPolicy prod (tier default) ingress rule 0")
	w.profile(`{"metadata":{"name":"base"},"spec":{"labelsToApply":{"env":"dev"}}}`)
	w.check("wep/ns1/a", in, tcp("1.1.1.1", "10.0.0.1", 1), "Deny: no profile allowed it (default deny)")
	// A workload endpoint without addresses is ignored, as upstream.
	w.c.SetWorkloadEndpoint(wep(t, `{"metadata":{"name":"x","namespace":"ns1"},"spec":{"node":"n1","interfaceName":"calix"}}`))
	if _, ok := FindEndpoint(w.c.Ruleset(), "wep/ns1/x"); ok {
		t.Error("an endpoint without addresses is local")
	}
}

func TestNetworkSets(t *testing.T) {
	w := newWorld(t)
	w.profile(`{"metadata":{"name":"kns.blue"},"spec":{"labelsToApply":{"pcns.team":"blue"}}}`)
	w.pod("n1", "blue", "a", "10.0.0.1/32", `{"app":"a"}`)
	w.c.SetNetworkSet(netset(t, `{"metadata":{"name":"ext","namespace":"blue","labels":{"role":"db"}},"spec":{"nets":["172.16.0.0/16"]}}`))
	w.c.SetNetworkSet(netset(t, `{"metadata":{"name":"ext","namespace":"red","labels":{"role":"db"}},"spec":{"nets":["172.17.0.0/16"]}}`))
	w.c.SetGlobalNetworkSet(gnetset(t, `{"metadata":{"name":"corp","labels":{"role":"corp"}},"spec":{"nets":["198.51.100.0/24"]}}`))
	w.np(`{"metadata":{"name":"db","namespace":"blue"},"spec":{"selector":"app == 'a'","egress":[{"action":"Allow","destination":{"selector":"role == 'db'"}}]}}`)
	w.gnp(`{"metadata":{"name":"corp"},"spec":{"selector":"app == 'a'","egress":[{"action":"Allow","destination":{"selector":"role == 'corp'"}},
		{"action":"Allow","destination":{"namespaceSelector":"team == 'blue'"}}]}}`)
	a := "wep/blue/a"
	w.check(a, out, tcp("10.0.0.1", "172.16.1.1", 5432), "Allow by NetworkPolicy blue/db (tier default) egress rule 0")
	w.check(a, out, tcp("10.0.0.1", "198.51.100.7", 443), "Allow by GlobalNetworkPolicy corp (tier default) egress rule 0")
	// The red set matches the selector but not the blue policy's namespace scope,
	// and its namespace has no team label.
	w.check(a, out, tcp("10.0.0.1", "172.17.1.1", 5432), "Deny at the end of tier default (no policy in it allowed or passed the packet)")
	// The blue NetworkSet inherits kns.blue, so a namespaceSelector matches it.
	w.c.DeleteNetworkPolicy("blue", "db")
	w.check(a, out, tcp("10.0.0.1", "172.16.1.1", 5432), "Allow by GlobalNetworkPolicy corp (tier default) egress rule 1")
}

func TestHostEndpointPolicyKinds(t *testing.T) {
	w := newWorld(t)
	w.c.SetHostEndpoint(hep(t, `{"metadata":{"name":"n1-eth0","labels":{"role":"node"}},"spec":{"node":"n1","interfaceName":"eth0","expectedIPs":["192.168.56.11"],"profiles":["projectcalico-default-allow"]}}`))
	w.c.SetHostEndpoint(hep(t, `{"metadata":{"name":"n2-eth0","labels":{"role":"node"}},"spec":{"node":"n2","interfaceName":"eth0","expectedIPs":["192.168.56.12"]}}`))
	w.gnp(`{"metadata":{"name":"normal"},"spec":{"selector":"role == 'node'","ingress":[{"action":"Allow","source":{"selector":"role == 'node'"}}]}}`)
	w.gnp(`{"metadata":{"name":"fwd"},"spec":{"order":1,"selector":"role == 'node'","applyOnForward":true,"ingress":[{"action":"Deny","protocol":"UDP"}],"egress":[{"action":"Allow"}]}}`)
	w.gnp(`{"metadata":{"name":"prednat"},"spec":{"selector":"role == 'node'","preDNAT":true,"applyOnForward":true,"ingress":[{"action":"Deny","source":{"nets":["10.66.0.0/16"]}}]}}`)
	w.gnp(`{"metadata":{"name":"untracked"},"spec":{"selector":"role == 'node'","doNotTrack":true,"applyOnForward":true,"ingress":[{"action":"Allow","protocol":"UDP","destination":{"ports":[4789]}}],"egress":[{"action":"Allow"}]}}`)
	rs := w.c.Ruleset()
	ep, ok := FindEndpoint(rs, "hep/n1-eth0")
	if !ok || ep.Kind != ruleset.Host || ep.Interface != "eth0" {
		t.Fatalf("host endpoint %+v", ep)
	}
	if _, ok := FindEndpoint(rs, "hep/n2-eth0"); ok {
		t.Error("another node's host endpoint is local")
	}
	chains := func(l []ruleset.TierRef) string { return fmt.Sprint(l) }
	for _, c := range []struct{ name, got, want string }{
		{"Ingress", chains(ep.Ingress), "[{default [pi/default/fwd pi/default/normal] Deny}]"},
		{"Egress", chains(ep.Egress), "[{default [pe/default/fwd] Deny}]"},
		{"ForwardIn", chains(ep.ForwardIn), "[{default [pi/default/fwd] Deny}]"},
		{"ForwardOut", chains(ep.ForwardOut), "[{default [pe/default/fwd] Deny}]"},
		{"PreDNAT", chains(ep.PreDNAT), "[{default [pi/default/prednat] Pass}]"},
		{"Untracked", chains(ep.Untracked), "[{default [pi/default/untracked] Pass}]"},
		{"UntrackedEgress", chains(ep.UntrackedEgress), "[{default [pe/default/untracked] Pass}]"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}
	w.check("hep/n1-eth0", in, tcp("192.168.56.12", "192.168.56.11", 22), "Allow by GlobalNetworkPolicy normal (tier default) ingress rule 0")
	// Workload endpoints never get preDNAT or untracked policy.
	w.pod("n1", "default", "a", "10.0.0.1/32", `{"role":"node"}`)
	wp, _ := FindEndpoint(w.c.Ruleset(), "wep/default/a")
	if len(wp.PreDNAT)+len(wp.Untracked)+len(wp.ForwardIn) != 0 || chains(wp.Ingress) != "[{default [pi/default/fwd pi/default/normal] Deny}]" {
		t.Errorf("workload endpoint dispatch %+v", wp)
	}
}

func srcPort(p Packet, port uint16) Packet {
	p.SrcPort = port
	return p
}
