package ctl

import (
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/testutil"
)

const explainHostWorld = `
kind: HostEndpoint
apiVersion: projectcalico.org/v3
metadata: {name: h1, labels: {host: h1}}
spec: {node: n1, interfaceName: eth0, expectedIPs: [192.168.56.21]}
---
kind: GlobalNetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: host-deny-all}
spec: {selector: has(host), types: [Ingress, Egress]}
`

// TestPolicyExplainHostEndpoint: the failsafe ports open a host endpoint
// before its policy (as the kernel's policy table), an entry with a net
// only to that net, and tiers explain does not model are named.
func TestPolicyExplainHostEndpoint(t *testing.T) {
	p := &policyCtl{t: t, endpoint: testutil.StartEtcd(t).Endpoint}
	apply := func(doc string) {
		t.Helper()
		if out, errs, rc := p.run(doc, "apply", "-f", "-"); rc != 0 {
			t.Fatalf("apply: rc %d\n%s%s", rc, out, errs)
		}
	}
	explain := func(args ...string) string {
		t.Helper()
		out, errs, rc := p.run("", append([]string{"policy", "explain"}, args...)...)
		if rc != 0 {
			t.Fatalf("%v: rc %d, stderr %q", args, rc, errs)
		}
		return out
	}
	apply(explainHostWorld)

	// Upstream's default failsafe ports: SSH in, DNS out.
	want := `Flow:    192.168.56.99:40000 -> 192.168.56.21:22 protocol 6
From:    192.168.56.99 (not a Calico endpoint)
To:      host endpoint h1 (node n1)
Egress:  no Calico policy applies: 192.168.56.99 (not a Calico endpoint)
Ingress: Allow (failsafe port tcp:22)
Verdict: Allow
`
	if out := explain("--from", "192.168.56.99", "--to", "h1", "--port", "22"); out != want {
		t.Errorf("ssh in:\n%s\nwant:\n%s", out, want)
	}
	if out := explain("--from", "h1", "--to", "10.9.9.9", "--protocol", "udp", "--port", "53"); !strings.Contains(out, "Egress:  Allow (failsafe port udp:53)\n") ||
		!strings.Contains(out, "Verdict: Allow\n") {
		t.Errorf("dns out:\n%s", out)
	}
	// Not a failsafe port: the deny-all policy decides.
	if out := explain("--from", "192.168.56.99", "--to", "h1", "--port", "80"); !strings.Contains(out, "Ingress: Deny at the end of tier default") ||
		!strings.Contains(out, "Verdict: Deny\n") || strings.Contains(out, "note:") {
		t.Errorf("port 80:\n%s", out)
	}
	// Outbound ports do not open inbound traffic (UDP 53 is outbound only).
	if out := explain("--from", "192.168.56.99", "--to", "h1", "--protocol", "udp", "--port", "53"); !strings.Contains(out, "Verdict: Deny\n") {
		t.Errorf("udp 53 in:\n%s", out)
	}

	// node.n1 overrides default: SSH only from 10.1.0.0/16.
	apply(`{"kind":"FelixConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{"failsafeInboundHostPorts":[{"protocol":"TCP","port":80}]}}`)
	apply(`{"kind":"FelixConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"node.n1"},"spec":{"failsafeInboundHostPorts":[{"protocol":"TCP","port":22,"net":"10.1.0.0/16"}]}}`)
	if out := explain("--from", "10.1.2.3", "--to", "h1", "--port", "22"); !strings.Contains(out, "Ingress: Allow (failsafe port tcp:22) for net 10.1.0.0/16\nVerdict: Allow\n") {
		t.Errorf("ssh from inside the net:\n%s", out)
	}
	if out := explain("--from", "10.2.0.1", "--to", "h1", "--port", "22"); !strings.Contains(out, "Ingress: Deny at the end of tier default") || !strings.Contains(out, "Verdict: Deny\n") {
		t.Errorf("ssh from outside the net:\n%s", out)
	}
	if out := explain("--from", "10.1.2.3", "--to", "h1", "--port", "80"); !strings.Contains(out, "Verdict: Deny\n") {
		t.Errorf("port 80 of default is overridden by node.n1:\n%s", out)
	}

	// A preDNAT policy at the host endpoint decides before normal policy.
	apply(`
kind: GlobalNetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: host-prednat}
spec:
  selector: has(host)
  preDNAT: true
  applyOnForward: true
  types: [Ingress]
  ingress: [{action: Deny, protocol: TCP, destination: {ports: [8080]}}]
`)
	want = `Flow:    192.168.56.99:40000 -> 192.168.56.21:8080 protocol 6
From:    192.168.56.99 (not a Calico endpoint)
To:      host endpoint h1 (node n1)
Egress:  no Calico policy applies: 192.168.56.99 (not a Calico endpoint)
Ingress: preDNAT at host endpoint h1: Deny by GlobalNetworkPolicy host-prednat (tier default) ingress rule 0
Verdict: Deny
`
	if out := explain("--from", "192.168.56.99", "--to", "h1", "--port", "8080"); out != want {
		t.Errorf("preDNAT:\n%s\nwant:\n%s", out, want)
	}
	// A failsafe port passes before preDNAT policy too.
	if out := explain("--from", "10.1.2.3", "--to", "h1", "--port", "22"); strings.Contains(out, "preDNAT") || !strings.Contains(out, "Verdict: Allow\n") {
		t.Errorf("failsafe with preDNAT:\n%s", out)
	}

	// Forwarded to a workload of the node: the node's host endpoints'
	// preDNAT and forward (applyOnForward) policy also see it.
	apply(`
kind: WorkloadEndpoint
apiVersion: projectcalico.org/v3
metadata: {name: n1-cni-a-eth0, namespace: default}
spec: {node: n1, orchestrator: cni, containerID: a, endpoint: eth0, interfaceName: calia, ipNetworks: [10.65.0.1/32]}
---
kind: GlobalNetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: host-forward}
spec: {selector: has(host), applyOnForward: true, types: [Ingress], ingress: [{action: Allow}]}
`)
	want = `Flow:    192.168.56.99:40000 -> 10.65.0.1:80 protocol 6
From:    192.168.56.99 (not a Calico endpoint)
To:      workload endpoint default/n1-cni-a-eth0 (node n1)
Egress:  no Calico policy applies: 192.168.56.99 (not a Calico endpoint)
Ingress: preDNAT at host endpoint h1: no verdict: no rule decided; the packet goes on
Ingress: forward at host endpoint h1: Allow by GlobalNetworkPolicy host-forward (tier default) ingress rule 0
Ingress: Deny: no profile allowed it (default deny)
Verdict: Deny
`
	if out := explain("--from", "192.168.56.99", "--to", "n1-cni-a-eth0", "--port", "80"); out != want {
		t.Errorf("forwarded to a workload:\n%s\nwant:\n%s", out, want)
	}
	// Forward policy denies at the end of its tier what it does not allow;
	// a failsafe port does not open forwarded traffic.
	apply(`
kind: GlobalNetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: host-forward}
spec: {selector: has(host), applyOnForward: true, types: [Ingress], ingress: [{action: Allow, protocol: UDP}]}
`)
	if out := explain("--from", "10.1.2.3", "--to", "n1-cni-a-eth0", "--port", "22"); !strings.Contains(out, "Ingress: forward at host endpoint h1: Deny at the end of tier default") ||
		!strings.Contains(out, "Verdict: Deny\n") {
		t.Errorf("forward end of tier:\n%s", out)
	}

	// doNotTrack: an untracked Allow ends the node's stages; an untracked
	// egress Deny drops what the host sends.
	apply(`
kind: GlobalNetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: host-untracked}
spec:
  selector: has(host)
  doNotTrack: true
  applyOnForward: true
  types: [Ingress, Egress]
  ingress: [{action: Allow, protocol: TCP, destination: {ports: [8080]}}]
  egress: [{action: Deny, protocol: UDP, destination: {ports: [123]}}]
`)
	want = `Flow:    192.168.56.99:40000 -> 192.168.56.21:8080 protocol 6
From:    192.168.56.99 (not a Calico endpoint)
To:      host endpoint h1 (node n1)
Egress:  no Calico policy applies: 192.168.56.99 (not a Calico endpoint)
Ingress: untracked at host endpoint h1: Allow by GlobalNetworkPolicy host-untracked (tier default) ingress rule 0 (not tracked: the node's later stages accept it, and its replies need untracked policy too)
Verdict: Allow
`
	if out := explain("--from", "192.168.56.99", "--to", "h1", "--port", "8080"); out != want {
		t.Errorf("untracked allow:\n%s\nwant:\n%s", out, want)
	}
	if out := explain("--from", "h1", "--to", "10.9.9.9", "--protocol", "udp", "--port", "123"); !strings.Contains(out, "Egress:  untracked at host endpoint h1: Deny by GlobalNetworkPolicy host-untracked") ||
		!strings.Contains(out, "Verdict: Deny\n") {
		t.Errorf("untracked egress deny:\n%s", out)
	}
	if strings.Contains(explain("--from", "192.168.56.99", "--to", "n1-cni-a-eth0", "--port", "80"), "note:") {
		t.Error("a note about stages explain does not model")
	}
}
