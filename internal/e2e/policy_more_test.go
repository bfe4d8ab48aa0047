package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/testutil"
)

// TestPrivilegedPolicyNode runs policy cases that need one node only (n1
// with a real calico-node, pods through the CNI plugin, the external host
// behind the router): host endpoint stages with explain checked against
// the kernel, the daemon repairing an edited table on resync and keeping
// counters across a restart, named ports, and IPv6 between two pods.
func TestPrivilegedPolicyNode(t *testing.T) {
	c := newLab(t)
	c.n1 = c.lab.AddNode("n1", 99, 11)
	c.nodes = []*labtest.Node{c.n1}
	c.lab.AddExternal()
	c.applyPools(t, poolAlways)
	c.start(t, false)
	pc := &policyCase{cluster: c}
	pods := c.addPods(t, "a1", "always", c.n1)
	pc.a1 = pods[0]
	pc.a2 = c.addPods(t, "a2", "always", c.n1)[0]
	for _, p := range []*labtest.CNIPod{pc.a1, pc.a2} {
		testutil.ServeTCP(t, p.NS, p.IP.String(), 7070, 8080, 9090)
	}
	t.Run("NamedPorts", pc.namedPorts)
	t.Run("ResyncRepair", pc.resyncRepair)
	t.Run("HostEndpointStages", pc.hepStages)
	t.Run("IPv6", pc.ipv6)
}

// explainVerdict runs calicoctl policy explain and returns its output and
// whether it says Allow.
func (pc *policyCase) explainVerdict(t *testing.T, args ...string) (string, bool) {
	t.Helper()
	out := pc.calicoctl(t, "", append([]string{"policy", "explain"}, args...)...)
	ok := strings.Contains(out, "Verdict: Allow\n")
	if !ok && !strings.Contains(out, "Verdict: Deny\n") {
		t.Fatalf("explain %v: no verdict:\n%s", args, out)
	}
	return out, ok
}

// patchWEP merges patch into a pod's WorkloadEndpoint (as an orchestrator
// writes labels and ports; the CNI plugin has neither).
func (pc *policyCase) patchWEP(t *testing.T, p *labtest.CNIPod, patch string) {
	t.Helper()
	pc.calicoctl(t, "", "patch", "workloadendpoint", p.WEPName, "-n", "default", "--type", "merge", "-p", patch)
}

// namedPorts: a policy allows the named port "http" of a1's endpoint
// (TCP 8080); 9090 is denied, and the name does not open a2's 8080, whose
// endpoint has no such port.
func (pc *policyCase) namedPorts(t *testing.T) {
	a1, a2 := pc.a1, pc.a2
	pc.patchWEP(t, a1, `{"metadata":{"labels":{"app":"web"}},"spec":{"ports":[{"name":"http","protocol":"TCP","port":8080}]}}`)
	pc.patchWEP(t, a2, `{"metadata":{"labels":{"app":"web"}}}`)
	pc.calicoctl(t, `apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web-http, namespace: default}
spec:
  selector: app == 'web'
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    destination: {ports: [http]}
`, "apply", "-f", "-")
	defer func() {
		pc.calicoctl(t, "", "delete", "networkpolicy", "web-http", "-n", "default")
		pc.patchWEP(t, a1, `{"metadata":{"labels":{"app":null}},"spec":{"ports":null}}`)
		pc.patchWEP(t, a2, `{"metadata":{"labels":{"app":null}}}`)
	}()
	pc.expect(t,
		allow("a2 -> a1 tcp 8080 (named port http)", func() error { return tcpTo(a2.NS, a1.IP, 8080) }),
		deny("a2 -> a1 tcp 9090", func() error { return tcpTo(a2.NS, a1.IP, 9090) }),
		deny("a1 -> a2 tcp 8080 (a2 has no port http)", func() error { return tcpTo(a1.NS, a2.IP, 8080) }),
	)
	if out, ok := pc.explainVerdict(t, "--from", a2.IP.String(), "--to", a1.IP.String(), "--port", "8080"); !ok ||
		!strings.Contains(out, "Allow by NetworkPolicy default/web-http") {
		t.Errorf("explain of the named port:\n%s", out)
	}
}

// resyncRepair: someone inserts an accept rule at the top of n1's
// forward-to chain (every pod's ingress) and deletes a1's ingress
// dispatch; the control socket's resync restores the table in place, the
// denied flow is denied again, and a restart of calico-node keeps the
// per-rule counters of the unchanged table.
func (pc *policyCase) resyncRepair(t *testing.T) {
	a1, a2, n1 := pc.a1, pc.a2, pc.n1
	pc.calicoctl(t, `apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: noicmp, namespace: default}
spec:
  selector: all()
  types: [Ingress]
  ingress: [{action: Deny, protocol: ICMP}, {action: Allow}]
`, "apply", "-f", "-")
	defer pc.calicoctl(t, "", "delete", "networkpolicy", "noicmp", "-n", "default")
	pc.expect(t, deny("a2 -> a1 icmp", func() error { return pingTo(a2.NS, a1.IP) }),
		allow("a2 -> a1 tcp", func() error { return tcpTo(a2.NS, a1.IP, 8080) }))
	list := func() string {
		return testutil.RunIn(t, n1.NS, "nft", "-s", "list", "table", "inet", "calico-policy")
	}
	want := list()
	testutil.RunIn(t, n1.NS, "nft", "insert rule inet calico-policy forward-to accept; add chain inet calico-policy extra")
	pc.expect(t, allow("a2 -> a1 icmp (table edited)", func() error { return pingTo(a2.NS, a1.IP) }))
	if _, err := agent.RequestResyncAt(ctx(t), filepath.Join(n1.RunDir(), agent.ControlSocketName)); err != nil {
		t.Fatalf("resync request: %v", err)
	}
	pc.eventually(t, "the policy table restored", func() error {
		if got := list(); got != want {
			return fmt.Errorf("table:\n%s", got)
		}
		return nil
	})
	pc.expect(t, deny("a2 -> a1 icmp (repaired)", func() error { return pingTo(a2.NS, a1.IP) }))

	// Counters across a restart: the unchanged table is kept.
	before := ruleCounter(t, n1, "noicmp")
	if before == 0 {
		t.Fatal("noicmp's deny rule counted nothing")
	}
	old := pc.procs["n1"]
	if code, err := old.Stop(10 * time.Second); err != nil || code != 0 {
		t.Fatalf("stop calico-node n1: exit %d, %v", code, err)
	}
	p := n1.StartProcess(pc.bin, n1.Env())
	pc.procs["n1"] = p
	if _, err := p.WaitReady(readyTimeout); err != nil {
		t.Fatal(err)
	}
	if after := ruleCounter(t, n1, "noicmp"); after < before {
		t.Errorf("noicmp's deny counter went from %d to %d across a restart", before, after)
	}
	if got := list(); got != want {
		t.Errorf("table after the restart:\n%s\nwant\n%s", got, want)
	}
}

// ruleCounter is the packet count of the first named counter of n's
// policy table whose name contains sub and ends in "#0" (rule 0).
func ruleCounter(t *testing.T, n *labtest.Node, sub string) uint64 {
	t.Helper()
	out := testutil.RunIn(t, n.NS, "nft", "list", "counters", "table", "inet", "calico-policy")
	re := regexp.MustCompile(`counter (\S*` + regexp.QuoteMeta(sub) + `\S*#0) \{\s*packets (\d+)`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no rule 0 counter of %s:\n%s", sub, out)
	}
	v, _ := strconv.ParseUint(m[2], 10, 64)
	return v
}

// hepStages: host endpoint n1-eth0 with normal (deny all), preDNAT,
// doNotTrack and applyOnForward policy; for a set of flows from and to
// the external host, calicoctl policy explain names the stage that
// decides, and the kernel does what it says.
func (pc *policyCase) hepStages(t *testing.T) {
	a1, n1, ext := pc.a1, pc.n1, pc.lab.External
	// The external host reaches a1 through the router and n1.
	testutil.RunIn(t, ext, "ip", "route", "add", a1.IP.String()+"/32", "via", labtest.ExternalRouterIP.String())
	testutil.RunIn(t, pc.lab.Router, "ip", "route", "add", a1.IP.String()+"/32", "via", n1.IP.Addr().String())
	defer func() {
		testutil.RunIn(t, ext, "ip", "route", "del", a1.IP.String()+"/32")
		testutil.RunIn(t, pc.lab.Router, "ip", "route", "del", a1.IP.String()+"/32")
	}()
	testutil.ServeTCP(t, n1.NS, "0.0.0.0", 22, 2222, 2223)
	testutil.ServeTCP(t, ext, labtest.ExternalIP.String(), 2000, 2001)
	pc.calicoctl(t, fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: n1-eth0, labels: {hep: n1-eth0}}
spec: {node: n1, interfaceName: eth0, expectedIPs: [%s]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: hep-normal}
spec: {selector: hep == 'n1-eth0', types: [Ingress, Egress]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: hep-prednat}
spec:
  selector: hep == 'n1-eth0'
  preDNAT: true
  applyOnForward: true
  types: [Ingress]
  ingress: [{action: Deny, protocol: TCP, destination: {ports: [9090]}}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: hep-untracked}
spec:
  selector: hep == 'n1-eth0'
  doNotTrack: true
  applyOnForward: true
  types: [Ingress, Egress]
  ingress:
  - {action: Allow, protocol: TCP, destination: {ports: [2222]}}
  - {action: Deny, protocol: ICMP, destination: {nets: [10.244.0.0/16]}}
  egress: [{action: Allow, protocol: TCP, source: {ports: [2222]}}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: hep-forward}
spec:
  selector: hep == 'n1-eth0'
  applyOnForward: true
  types: [Ingress, Egress]
  ingress: [{action: Allow, protocol: TCP, destination: {ports: [8080, 9090]}}]
  egress: [{action: Allow, protocol: TCP, destination: {ports: [2000]}}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: pods-from-ext}
spec:
  selector: has(projectcalico.org/orchestrator)
  types: [Ingress]
  ingress: [{action: Allow, source: {nets: [203.0.113.0/24]}}, {action: Pass}]
`, n1.IP.Addr()), "apply", "-f", "-")
	defer func() {
		for _, r := range []string{"hep-normal", "hep-prednat", "hep-untracked", "hep-forward", "pods-from-ext"} {
			pc.calicoctl(t, "", "delete", "globalnetworkpolicy", r)
		}
		pc.calicoctl(t, "", "delete", "hostendpoint", "n1-eth0")
	}()
	extIP, n1IP, a1IP := labtest.ExternalIP.String(), n1.IP.Addr(), a1.IP
	cases := []struct {
		name  string
		args  []string
		stage string // what explain must name as deciding
		allow bool
		probe func() error
	}{
		{"ext -> a1 tcp 8080", []string{"--from", extIP, "--to", a1IP.String(), "--port", "8080"},
			"Ingress: forward at host endpoint n1-eth0: Allow", true, func() error { return tcpTo(ext, a1IP, 8080) }},
		{"ext -> a1 tcp 9090", []string{"--from", extIP, "--to", a1IP.String(), "--port", "9090"},
			"Ingress: preDNAT at host endpoint n1-eth0: Deny", false, func() error { return tcpTo(ext, a1IP, 9090) }},
		{"ext -> a1 tcp 7070", []string{"--from", extIP, "--to", a1IP.String(), "--port", "7070"},
			"Ingress: forward at host endpoint n1-eth0: Deny at the end of tier default", false, func() error { return tcpTo(ext, a1IP, 7070) }},
		{"ext -> a1 icmp", []string{"--from", extIP, "--to", a1IP.String(), "--protocol", "ICMP"},
			"Ingress: untracked at host endpoint n1-eth0: Deny", false, func() error { return pingTo(ext, a1IP) }},
		{"ext -> n1 tcp 2222", []string{"--from", extIP, "--to", n1IP.String(), "--port", "2222"},
			"Ingress: untracked at host endpoint n1-eth0: Allow", true, func() error { return tcpTo(ext, n1IP, 2222) }},
		{"ext -> n1 tcp 2223", []string{"--from", extIP, "--to", n1IP.String(), "--port", "2223"},
			"Ingress: Deny at the end of tier default", false, func() error { return tcpTo(ext, n1IP, 2223) }},
		{"ext -> n1 ssh", []string{"--from", extIP, "--to", n1IP.String(), "--port", "22"},
			"Ingress: Allow (failsafe port tcp:22)", true, func() error { return tcpTo(ext, n1IP, 22) }},
		{"a1 -> ext tcp 2000", []string{"--from", a1IP.String(), "--to", extIP, "--port", "2000"},
			"Egress:  forward at host endpoint n1-eth0: Allow", true, func() error { return tcpTo(a1.NS, labtest.ExternalIP, 2000) }},
		{"a1 -> ext tcp 2001", []string{"--from", a1IP.String(), "--to", extIP, "--port", "2001"},
			"Egress:  forward at host endpoint n1-eth0: Deny at the end of tier default", false, func() error { return tcpTo(a1.NS, labtest.ExternalIP, 2001) }},
		{"n1 -> ext tcp 2000 (hep-forward applies to the host too)", []string{"--from", "n1-eth0", "--to", extIP, "--port", "2000"},
			"Egress:  Allow by GlobalNetworkPolicy hep-forward", true, func() error { return tcpTo(n1.NS, labtest.ExternalIP, 2000) }},
		{"n1 -> ext tcp 2001", []string{"--from", "n1-eth0", "--to", extIP, "--port", "2001"},
			"Egress:  Deny at the end of tier default", false, func() error { return tcpTo(n1.NS, labtest.ExternalIP, 2001) }},
	}
	var checks []check
	for _, c := range cases {
		out, ok := pc.explainVerdict(t, c.args...)
		if ok != c.allow || !strings.Contains(out, c.stage) || strings.Contains(out, "note:") {
			t.Errorf("%s: explain says\n%s\nwant %v decided by %q", c.name, out, c.allow, c.stage)
		}
		checks = append(checks, check{fmt.Sprintf("%s (explain: %s)", c.name, strings.TrimSpace(out)), c.probe, ok})
	}
	pc.expect(t, checks...)
}

// ipv6: a dual-stack pool; two pods on n1 get IPv4 and IPv6 addresses
// through the CNI plugin; a policy on b6 allows IPv6 TCP 8080 and denies
// 9090 (end of tier), checked with IPv6 packets and against explain.
func (pc *policyCase) ipv6(t *testing.T) {
	n1 := pc.n1
	pc.calicoctl(t, `apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: v6}
spec: {cidr: "fd00:244::/64", blockSize: 122, vxlanMode: Never, ipipMode: Never, natOutgoing: false}
`, "apply", "-f", "-")
	if err := netns.SetSysctl(n1.NS, "net/ipv6/conf/all/forwarding", "1"); err != nil {
		t.Fatal(err)
	}
	var pods [2]*labtest.CNIPod
	var v6 [2]netip.Addr
	for i, name := range []string{"a6", "b6"} {
		pods[i], v6[i] = pc.addDualStack(t, name)
		testutil.ServeTCP(t, pods[i].NS, v6[i].String(), 8080, 9090)
	}
	pc.patchWEP(t, pods[1], `{"metadata":{"labels":{"app":"v6web"}}}`)
	pc.calicoctl(t, `apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: v6web, namespace: default}
spec:
  selector: app == 'v6web'
  types: [Ingress]
  ingress: [{action: Allow, ipVersion: 6, protocol: TCP, destination: {ports: [8080]}}]
`, "apply", "-f", "-")
	defer pc.calicoctl(t, "", "delete", "networkpolicy", "v6web", "-n", "default")
	var checks []check
	for _, port := range []int{8080, 9090} {
		out, ok := pc.explainVerdict(t, "--from", v6[0].String(), "--to", v6[1].String(), "--port", fmt.Sprint(port))
		if ok != (port == 8080) {
			t.Errorf("explain tcp6 %d:\n%s", port, out)
		}
		checks = append(checks, check{fmt.Sprintf("a6 -> b6 tcp6 %d (explain: %s)", port, strings.TrimSpace(out)),
			func() error { return tcpTo(pods[0].NS, v6[1], port) }, ok})
	}
	checks = append(checks, allow("b6 -> a6 tcp6 8080 (profile)", func() error { return tcpTo(pods[1].NS, v6[0], 8080) }))
	pc.expect(t, checks...)
}

// addDualStack adds pod name on n1 through the CNI plugin with a netconf
// asking for both address families; it returns the pod and its IPv6
// address.
func (pc *policyCase) addDualStack(t *testing.T, name string) (*labtest.CNIPod, netip.Addr) {
	t.Helper()
	n := pc.n1
	var conf map[string]any
	if err := json.Unmarshal(n.Netconf(), &conf); err != nil {
		t.Fatal(err)
	}
	conf["ipam"] = map[string]any{"type": "calico-ipam", "assign_ipv4": "true", "assign_ipv6": "true",
		"ipv4_pools": []string{"always"}, "ipv6_pools": []string{"v6"}}
	netconf, _ := json.Marshal(conf)
	p := &labtest.CNIPod{Node: n, Name: name, ContainerID: n.ContainerID(name), NS: testutil.NewNetNS(t)}
	out, err := n.CNI(ctx(t), labtest.BinDir(t), "ADD", p.ContainerID, p.NS, netconf)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		IPs []struct{ Address string } `json:"ips"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	var v6 netip.Addr
	for _, ip := range res.IPs {
		if pfx, err := netip.ParsePrefix(ip.Address); err == nil && pfx.Addr().Is6() {
			v6 = pfx.Addr()
		}
	}
	if !v6.IsValid() {
		t.Fatalf("no IPv6 address for %s: %s", name, out)
	}
	name, err = api.WorkloadEndpointName(api.WorkloadEndpointIdentifiers{Node: n.Name, Orchestrator: api.OrchestratorCNI, ContainerID: p.ContainerID, Endpoint: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	p.WEPName = name
	return p, v6
}
