package ctl

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/testutil"
)

// policyCtl runs calicoctl in process against one embedded etcd.
type policyCtl struct {
	t        *testing.T
	endpoint string
}

func (p *policyCtl) run(stdin string, args ...string) (string, string, int) {
	p.t.Helper()
	var out, errb bytes.Buffer
	e := &Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		switch k {
		case "ETCD_ENDPOINTS":
			return p.endpoint
		case "DATASTORE_TYPE":
			return "etcdv3"
		}
		return ""
	}}
	defer e.Close()
	rc := run(context.Background(), e, args)
	return out.String(), errb.String(), rc
}

const explainWorld = `
kind: Profile
apiVersion: projectcalico.org/v3
metadata: {name: net1}
spec:
  ingress: [{action: Allow, source: {selector: has(net1)}}]
  egress: [{action: Allow}]
  labelsToApply: {net1: ""}
---
kind: WorkloadEndpoint
apiVersion: projectcalico.org/v3
metadata: {name: n1-cni-a-eth0, namespace: default, labels: {app: web}}
spec: {node: n1, orchestrator: cni, containerID: a, endpoint: eth0, interfaceName: calia, ipNetworks: [10.65.0.1/32], profiles: [net1]}
---
kind: WorkloadEndpoint
apiVersion: projectcalico.org/v3
metadata: {name: n2-cni-b-eth0, namespace: default, labels: {app: client}}
spec: {node: n2, orchestrator: cni, containerID: b, endpoint: eth0, interfaceName: calib, ipNetworks: [10.65.1.1/32], profiles: [net1]}
---
kind: Tier
apiVersion: projectcalico.org/v3
metadata: {name: security}
spec: {order: 100}
`

const explainPolicy = `
kind: GlobalNetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: security.no-telnet}
spec:
  tier: security
  selector: app == 'web'
  ingress:
  - {action: Deny, protocol: TCP, destination: {ports: [23]}}
  - {action: Pass}
`

func TestPolicyExplain(t *testing.T) {
	p := &policyCtl{t: t, endpoint: testutil.StartEtcd(t).Endpoint}
	for _, doc := range []string{explainWorld, explainPolicy} { // the tier must exist before its policy
		if out, errs, rc := p.run(doc, "apply", "-f", "-"); rc != 0 {
			t.Fatalf("apply: rc %d\n%s%s", rc, out, errs)
		}
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"allowed by the profile after a Pass", []string{"--from", "n2-cni-b-eth0", "--to", "n1-cni-a-eth0", "--port", "80"}, `Flow:    10.65.1.1:40000 -> 10.65.0.1:80 protocol 6
From:    workload endpoint default/n2-cni-b-eth0 (node n2)
To:      workload endpoint default/n1-cni-a-eth0 (node n1)
Egress:  Allow by Profile net1 egress rule 0
Ingress: Allow by Profile net1 ingress rule 0
         passed tier security
Verdict: Allow
`},
		{"denied by a tier's policy", []string{"--from", "default/n2-cni-b-eth0", "--to", "10.65.0.1", "--port", "23"}, `Flow:    10.65.1.1:40000 -> 10.65.0.1:23 protocol 6
From:    workload endpoint default/n2-cni-b-eth0 (node n2)
To:      workload endpoint default/n1-cni-a-eth0 (node n1)
Egress:  Allow by Profile net1 egress rule 0
Ingress: Deny by GlobalNetworkPolicy security.no-telnet (tier security) ingress rule 0
Verdict: Deny
`},
		{"from outside the cluster", []string{"--from", "192.168.56.12", "--to", "n1-cni-a-eth0", "--protocol", "icmp"}, `Flow:    192.168.56.12 -> 10.65.0.1 protocol 1 type 8 code 0
From:    192.168.56.12 (not a Calico endpoint)
To:      workload endpoint default/n1-cni-a-eth0 (node n1)
Egress:  no Calico policy applies: 192.168.56.12 (not a Calico endpoint)
Ingress: Deny: no profile allowed it (default deny)
         passed tier security
Verdict: Deny
`},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, errs, rc := p.run("", append([]string{"policy", "explain"}, c.args...)...)
			if rc != 0 || out != c.want {
				t.Errorf("rc %d, stderr %q, stdout:\n%s\nwant:\n%s", rc, errs, out, c.want)
			}
		})
	}
	// A node's own host and its workloads (as upstream Felix: the host is
	// never policed towards its local workloads; a workload's traffic to its
	// host is decided by defaultEndpointToHostAction, Drop by default).
	if out, errs, rc := p.run(`{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{"name":"n1"},"spec":{"bgp":{"ipv4Address":"192.168.56.11/24"}}}`, "apply", "-f", "-"); rc != 0 {
		t.Fatalf("apply node: %s%s", out, errs)
	}
	hostCases := []struct {
		args []string
		want string
	}{
		{[]string{"--from", "192.168.56.11", "--to", "n1-cni-a-eth0", "--port", "80"}, `Flow:    192.168.56.11:40000 -> 10.65.0.1:80 protocol 6
From:    192.168.56.11 (host of node n1, no host endpoint)
To:      workload endpoint default/n1-cni-a-eth0 (node n1)
Egress:  no Calico policy applies: 192.168.56.11 (host of node n1, no host endpoint)
Ingress: not policed: a node's own host always reaches its local workloads (as upstream Felix)
Verdict: Allow
`},
		{[]string{"--from", "n1-cni-a-eth0", "--to", "192.168.56.11", "--port", "22"}, `Flow:    10.65.0.1:40000 -> 192.168.56.11:22 protocol 6
From:    workload endpoint default/n1-cni-a-eth0 (node n1)
To:      192.168.56.11 (host of node n1, no host endpoint)
Egress:  Allow by Profile net1 egress rule 0
Ingress: Deny by defaultEndpointToHostAction Drop (a workload to its own host)
Verdict: Deny
`},
	}
	for _, c := range hostCases {
		out, errs, rc := p.run("", append([]string{"policy", "explain"}, c.args...)...)
		if rc != 0 || out != c.want {
			t.Errorf("%v: rc %d, stderr %q, stdout:\n%s\nwant:\n%s", c.args, rc, errs, out, c.want)
		}
	}
	if out, errs, rc := p.run(`{"kind":"FelixConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"node.n1"},"spec":{"defaultEndpointToHostAction":"Return"}}`, "apply", "-f", "-"); rc != 0 {
		t.Fatalf("apply felix: %s%s", out, errs)
	}
	out, _, _ := p.run("", "policy", "explain", "--from", "n1-cni-a-eth0", "--to", "192.168.56.11", "--port", "22")
	if !strings.Contains(out, "Ingress: Allow by defaultEndpointToHostAction Return (a workload to its own host; host endpoint policy does not apply to it here)\nVerdict: Allow") {
		t.Errorf("with Return:\n%s", out)
	}

	// Bad input: one line, non-zero exit.
	for _, args := range [][]string{
		{"--from", "nope", "--to", "10.65.0.1"},
		{"--from", "10.65.1.1", "--to", "10.65.0.1", "--protocol", "bogus"},
		{"--to", "10.65.0.1"},
	} {
		out, errs, rc := p.run("", append([]string{"policy", "explain"}, args...)...)
		if rc == 0 || out != "" || errs == "" {
			t.Errorf("%v: rc %d, stdout %q, stderr %q", args, rc, out, errs)
		}
	}
}
