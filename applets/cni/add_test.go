package cni

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/testutil"
)

var macRE = regexp.MustCompile(`"mac": "([0-9a-f]{2}(:[0-9a-f]{2}){5})"`)

// maskMAC replaces the kernel's random container MAC with a placeholder.
func maskMAC(s string) (string, string) {
	m := macRE.FindStringSubmatch(s)
	if m == nil {
		return s, ""
	}
	return strings.Replace(s, m[1], "MAC", 1), m[1]
}

// The exact stdout upstream prints (calico-observed.md §3), for the same
// node name, pool and container IDs; only the MAC and sandbox differ.
const golden031 = `{
    "cniVersion": "0.3.1",
    "interfaces": [
        {
            "name": "calianchorp1"
        },
        {
            "name": "eth0",
            "mac": "MAC",
            "sandbox": "SANDBOX"
        }
    ],
    "ips": [
        {
            "version": "4",
            "interface": 1,
            "address": "10.244.166.128/32"
        }
    ],
    "routes": [
        {
            "dst": "10.244.166.128/26"
        }
    ],
    "dns": {}
}`

const golden100 = `{
    "cniVersion": "1.0.0",
    "interfaces": [
        {
            "name": "calianchorp2"
        },
        {
            "mac": "MAC",
            "name": "eth0",
            "sandbox": "SANDBOX"
        }
    ],
    "ips": [
        {
            "address": "10.244.166.129/32",
            "interface": 1
        }
    ],
    "routes": [
        {
            "dst": "10.244.166.129/26"
        }
    ]
}`

// TestAddStdoutLikeUpstream: ADD prints exactly upstream's result for 0.3.1
// and 1.0.0, writes nothing to stderr at the default log level, plumbs
// the pod as upstream does and records the endpoint and profile as
// upstream does; the pods reach the node, each other and the node reaches
// them.
func TestAddStdoutLikeUpstream(t *testing.T) {
	e := newEnv(t)
	p1, p2 := e.newPod("anchorp1"), e.newPod("anchorp2")
	for _, c := range []struct {
		p       *pod
		version string
		golden  string
	}{{p1, "0.3.1", golden031}, {p2, "1.0.0", golden100}} {
		if _, err := e.add(e.conf(c.version, nil), c.p); err != nil {
			t.Fatalf("ADD %s: %v", c.version, err)
		}
		call := e.rec.last("calico", "ADD")
		t.Logf("ADD %s stdout:\n%s", c.version, call.stdout)
		got, mac := maskMAC(call.stdout)
		want := strings.Replace(c.golden, "SANDBOX", c.p.ns, 1)
		if got != want {
			t.Errorf("ADD %s stdout:\n%s\nwant:\n%s", c.version, got, want)
		}
		if call.stderr != "" {
			t.Errorf("ADD %s wrote to stderr: %s", c.version, call.stderr)
		}
		// The endpoint, as upstream records it.
		w := e.getWEP("default", "node1-cni-"+c.p.rt.ContainerID+"-eth0")
		if w.Spec.Orchestrator != "cni" || w.Spec.Node != nodeName || w.Spec.ContainerID != c.p.rt.ContainerID ||
			w.Spec.Endpoint != "eth0" || w.Spec.InterfaceName != "cali"+c.p.rt.ContainerID || w.Spec.MAC != mac ||
			len(w.Spec.Profiles) != 1 || w.Spec.Profiles[0] != netName ||
			w.Labels[api.LabelNamespace] != "default" || w.Labels[api.LabelOrchestrator] != "cni" || w.UID == "" || w.CreationTimestamp == "" {
			t.Errorf("endpoint %+v", w)
		}
	}
	w1 := e.getWEP("default", "node1-cni-anchorp1-eth0")
	if strings.Join(w1.Spec.IPNetworks, ",") != "10.244.166.128/32" {
		t.Errorf("endpoint addresses %v", w1.Spec.IPNetworks)
	}
	// The profile, created once with upstream's rules.
	pr, err := e.c.Get(context.Background(), api.KindProfile, "", netName)
	if err != nil {
		t.Fatal(err)
	}
	prof := pr.(*api.Profile)
	if len(prof.Spec.Ingress) != 1 || prof.Spec.Ingress[0].Action != api.Allow || prof.Spec.Ingress[0].Source.Selector != "has(k8s-pod-network)" ||
		len(prof.Spec.Egress) != 1 || prof.Spec.Egress[0].Action != api.Allow || len(prof.Spec.LabelsToApply) != 1 || prof.Spec.LabelsToApply[netName] != "" {
		t.Errorf("profile %+v", prof.Spec)
	}
	if prof.ResourceVersion != pr.GetObjectMeta().ResourceVersion || len(e.keys(api.ResourcePrefix+"profiles/")) != 1 {
		t.Errorf("profiles %v", e.keys(api.ResourcePrefix+"profiles/"))
	}

	// The stored values are upstream's byte for byte (calico-etcd-dump.txt,
	// with uid, creation time and MAC masked).
	upstreamWEP := `{"kind":"WorkloadEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"node1-cni-anchorp1-eth0","namespace":"default","uid":"UID","creationTimestamp":"TS","labels":{"projectcalico.org/namespace":"default","projectcalico.org/orchestrator":"cni"}},"spec":{"orchestrator":"cni","node":"node1","containerID":"anchorp1","endpoint":"eth0","ipNetworks":["10.244.166.128/32"],"profiles":["k8s-pod-network"],"interfaceName":"calianchorp1","mac":"MAC"}}`
	upstreamProfile := `{"kind":"Profile","apiVersion":"projectcalico.org/v3","metadata":{"name":"k8s-pod-network","uid":"UID","creationTimestamp":"TS"},"spec":{"ingress":[{"action":"Allow","source":{"selector":"has(k8s-pod-network)"},"destination":{}}],"egress":[{"action":"Allow","source":{},"destination":{}}],"labelsToApply":{"k8s-pod-network":""}}}`
	for key, want := range map[string]string{
		api.ResourcePrefix + "workloadendpoints/default/node1-cni-anchorp1-eth0": upstreamWEP,
		api.ResourcePrefix + "profiles/k8s-pod-network":                          upstreamProfile,
	} {
		it, err := e.store.Get(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		got := regexp.MustCompile(`"uid":"[0-9a-f-]{36}","creationTimestamp":"[0-9TZ:-]{20}"`).ReplaceAllString(string(it.Value), `"uid":"UID","creationTimestamp":"TS"`)
		got = regexp.MustCompile(`"mac":"[0-9a-f:]{17}"`).ReplaceAllString(got, `"mac":"MAC"`)
		if got != want {
			t.Errorf("stored %s:\n%s\nupstream:\n%s", key, got, want)
		}
	}

	// What users see with ip: the host side and the pod side.
	hostLink := testutil.RunIn(t, e.node, "ip", "-d", "link", "show", "calianchorp1")
	for _, want := range []string{"link/ether ee:ee:ee:ee:ee:ee", "state UP", "veth"} {
		if !strings.Contains(hostLink, want) {
			t.Errorf("host link lacks %q:\n%s", want, hostLink)
		}
	}
	if out := testutil.RunIn(t, e.node, "ip", "route", "show", "10.244.166.128"); strings.TrimSpace(out) != "10.244.166.128 dev calianchorp1 scope link" {
		t.Errorf("host route: %q", out)
	}
	if out := testutil.RunIn(t, e.node, "ip", "-4", "addr", "show", "dev", "calianchorp1"); strings.TrimSpace(out) != "" {
		t.Errorf("host veth has an IPv4 address: %q", out)
	}
	if out := testutil.RunIn(t, p1.ns, "ip", "route"); out != "default via 169.254.1.1 dev eth0 \n169.254.1.1 dev eth0 scope link \n" {
		t.Errorf("pod routes: %q", out)
	}
	if out := testutil.RunIn(t, p1.ns, "ip", "-4", "addr", "show", "dev", "eth0"); !strings.Contains(out, "inet 10.244.166.128/32 scope global eth0") {
		t.Errorf("pod address: %q", out)
	}
	for key, want := range map[string]string{
		"net.ipv4.conf.calianchorp1.proxy_arp": "1", "net.ipv4.conf.calianchorp1.forwarding": "1",
		"net.ipv4.conf.calianchorp1.route_localnet": "1", "net.ipv4.neigh.calianchorp1.proxy_delay": "0",
		"net.ipv6.conf.calianchorp1.accept_ra": "0",
	} {
		if out := strings.TrimSpace(testutil.RunIn(t, e.node, "sysctl", "-n", key)); out != want {
			t.Errorf("%s = %s, want %s", key, out, want)
		}
	}
	if out := strings.TrimSpace(testutil.RunIn(t, p1.ns, "sysctl", "-n", "net.ipv4.ip_forward")); out != "0" {
		t.Errorf("pod ip_forward = %s", out)
	}

	// Traffic: node to pod, pod to pod on one node, pod to its node.
	ping(t, e.node, "10.244.166.128")
	ping(t, p1.ns, "10.244.166.129")
	ping(t, p2.ns, "10.244.166.128")
	ping(t, p1.ns, nodeIP)
}
