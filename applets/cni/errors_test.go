package cni

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/ipam"
	"github.com/onecalico/calico/internal/testutil"
)

// TestBadInput: a bad netconf or environment is refused with the spec's
// code and a message naming what to fix, before anything is created.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	p := e.newPod("bad")
	noFile := filepath.Join(e.dir, "no-such-nodename")
	badMTU := filepath.Join(e.dir, "bad-mtu")
	if err := os.WriteFile(badMTU, []byte("jumbo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		conf    []byte
		cniArgs string
		code    uint
		msg     string
	}{
		{"mtu of the wrong type", e.conf("1.0.0", map[string]any{"mtu": "abc"}), "", types.ErrInvalidNetworkConfig, `netconf field "mtu": expected a number, got "abc"`},
		{"nodename of the wrong type", e.conf("1.0.0", map[string]any{"nodename": 5}), "", types.ErrInvalidNetworkConfig, `netconf field "nodename": expected a string, got 5`},
		{"ipam flag of the wrong type", e.conf("1.0.0", map[string]any{"ipam": map[string]any{"type": "calico-ipam", "assign_ipv4": "maybe"}}), "", types.ErrInvalidNetworkConfig, `netconf field "ipam.assign_ipv4": expected "true" or "false", got "maybe"`},
		{"container_settings of the wrong type", e.conf("1.0.0", map[string]any{"container_settings": map[string]any{"allow_ip_forwarding": "yes"}}), "", types.ErrInvalidNetworkConfig, `netconf field "container_settings.allow_ip_forwarding": expected true or false, got "yes"`},
		{"unknown ipam type", e.conf("1.0.0", map[string]any{"ipam": map[string]any{"type": "nosuch-ipam"}}), "", types.ErrInvalidNetworkConfig, `netconf field "ipam.type": IPAM plugin "nosuch-ipam" not found in CNI_PATH`},
		{"no ipam", e.conf("1.0.0", map[string]any{"ipam": nil}), "", types.ErrInvalidNetworkConfig, `netconf field "ipam.type": missing`},
		{"missing nodename", e.conf("1.0.0", map[string]any{"nodename": nil, "nodename_file": noFile}), "", types.ErrInvalidNetworkConfig, "read node name from " + noFile},
		{"bad MTU file", e.conf("1.0.0", map[string]any{"mtu_file": badMTU}), "", types.ErrInvalidNetworkConfig, `pod MTU file ` + badMTU + ` holds "jumbo"`},
		{"no datastore", e.conf("1.0.0", map[string]any{"etcd_endpoints": nil}), "", types.ErrInvalidNetworkConfig, `no datastore configured: set "etcd_endpoints"`},
		{"datastore down", e.conf("1.0.0", map[string]any{"etcd_endpoints": "unix:///nonexistent/etcd.sock:0"}), "", types.ErrTryAgainLater, "etcd did not answer"},
		{"malformed CNI_ARGS", e.conf("1.0.0", nil), "K8S_POD_NAME", types.ErrInvalidEnvironmentVariables, `CNI_ARGS: invalid pair "K8S_POD_NAME"`},
		{"bad IP= arg", e.conf("1.0.0", nil), "IP=10.1", types.ErrInvalidEnvironmentVariables, `CNI_ARGS: IP="10.1" is not an IP address`},
		{"unsupported version", e.conf("0.2.0", nil), "", types.ErrIncompatibleCNIVersion, "incompatible CNI versions"},
	} {
		o := e.run("ADD", "bad", p.ns, c.cniArgs, c.conf)
		te := cniError(t, o)
		if te.Code != c.code || !strings.Contains(te.Msg, c.msg) {
			t.Errorf("%s: code %d %q; want code %d and %q", c.name, te.Code, te.Msg, c.code, c.msg)
		}
		if strings.Contains(o.stdout, "\n{") {
			t.Errorf("%s: more than one JSON document on stdout: %s", c.name, o.stdout)
		}
	}
	// Unknown CNI_ARGS are ignored, as upstream does (runtimes pass their own).
	if o := e.run("ADD", "bad", p.ns, "FOO=bar;K8S_POD_INFRA_CONTAINER_ID=x", e.conf("1.0.0", nil)); o.rc != 0 {
		t.Fatalf("unknown CNI_ARGS: %+v", o)
	}
	if o := e.run("DEL", "bad", p.ns, "FOO=bar", e.conf("1.0.0", nil)); o.rc != 0 {
		t.Fatalf("DEL: %+v", o)
	}
	e.requireClean(t)
}

// TestDatastoreNotReady: with datastoreReady=false in ClusterInformation,
// ADD and DEL are refused with upstream's message and change no record.
func TestDatastoreNotReady(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("1.0.0", nil)
	ready := e.conf("1.0.0", nil)
	p := e.newPod("migrating")
	if _, err := e.add(ready, p); err != nil {
		t.Fatal(err)
	}
	setReady := func(v bool) {
		ctx := context.Background()
		r, err := e.c.Get(ctx, api.KindClusterInformation, "", "default")
		if err != nil {
			t.Fatal(err)
		}
		ci := r.(*api.ClusterInformation)
		ci.Spec.DatastoreReady = &v
		if _, err := e.c.Update(ctx, ci); err != nil {
			t.Fatal(err)
		}
	}
	setReady(false)
	q := e.newPod("refused")
	for _, c := range []struct{ cmd, cid, ns string }{{"ADD", "refused", q.ns}, {"DEL", "migrating", p.ns}} {
		o := e.run(c.cmd, c.cid, c.ns, "", conf)
		if te := cniError(t, o); te.Code != types.ErrTryAgainLater || te.Msg != "Calico is currently not ready to process requests" {
			t.Errorf("%s while not ready: %+v", c.cmd, te)
		}
	}
	if keys := e.wepKeys(); len(keys) != 1 || len(e.allocated()) != 1 {
		t.Fatalf("records changed while not ready: endpoints %v, allocated %v", keys, e.allocated())
	}
	if _, err := testutil.Handle(t, e.node).LinkByName("calirefused"); err == nil {
		t.Fatal("refused ADD created a link")
	}
	setReady(true)
	if err := e.del(conf, p); err != nil {
		t.Fatal(err)
	}
	e.requireClean(t)
}

// TestKubernetesNaming: with K8S_POD_NAMESPACE and K8S_POD_NAME in
// CNI_ARGS the pod is named the Kubernetes way: endpoint
// <node>-k8s-<pod>-<if> in the pod's namespace (dashes doubled), host veth
// from sha1("<namespace>.<pod>"), pod and namespace attributes on the
// allocation. A newer sandbox of the same pod takes the endpoint over, and
// the late DEL of the old sandbox leaves the new one alone.
func TestKubernetesNaming(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("1.0.0", nil)
	args := func(sandbox string) [][2]string {
		return [][2]string{{"K8S_POD_NAMESPACE", "ns1"}, {"K8S_POD_NAME", "web-1"}, {"K8S_POD_INFRA_CONTAINER_ID", sandbox}, {"IgnoreUnknown", "1"}}
	}
	old := e.newPod("sandbox1", args("sandbox1")...)
	res, err := e.add(conf, old)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum([]byte("ns1.web-1"))
	veth := "cali" + hex.EncodeToString(sum[:])[:11]
	r := result100(t, res)
	if r.Interfaces[0].Name != veth {
		t.Fatalf("host veth %s, want %s", r.Interfaces[0].Name, veth)
	}
	w := e.getWEP("ns1", "node1-k8s-web--1-eth0")
	if w.Spec.Orchestrator != "k8s" || w.Spec.Pod != "web-1" || w.Spec.ContainerID != "sandbox1" || w.Spec.InterfaceName != veth ||
		w.Labels[api.LabelNamespace] != "ns1" || w.Labels[api.LabelOrchestrator] != "k8s" {
		t.Fatalf("endpoint %+v", w)
	}
	info, err := ipam.New(e.store, ipam.Options{}).Lookup(context.Background(), podAddr(t, res))
	if err != nil || *info.HandleID != netName+".sandbox1" || info.Attrs["pod"] != "web-1" || info.Attrs["namespace"] != "ns1" {
		t.Fatalf("allocation %+v %v", info, err)
	}
	// The profile made for a Kubernetes pod allows ingress from anywhere.
	pr, err := e.c.Get(context.Background(), api.KindProfile, "", netName)
	if err != nil || pr.(*api.Profile).Spec.Ingress[0].Source.Selector != "" {
		t.Fatalf("profile %+v %v", pr, err)
	}

	// The pod's sandbox is recreated without a DEL: the new one takes the
	// endpoint and the veth name over.
	cur := e.newPod("sandbox2", args("sandbox2")...)
	res2, err := e.add(conf, cur)
	if err != nil {
		t.Fatal(err)
	}
	if w := e.getWEP("ns1", "node1-k8s-web--1-eth0"); w.Spec.ContainerID != "sandbox2" || w.UID == "" {
		t.Fatalf("endpoint not taken over: %+v", w)
	}
	// The old sandbox's late DEL changes nothing of the new one.
	if err := e.del(conf, old); err != nil {
		t.Fatal(err)
	}
	if err := e.check(conf, cur); err != nil {
		t.Fatalf("new sandbox broken by the old one's DEL: %v", err)
	}
	ping(t, e.node, podAddr(t, res2).String())
	if err := e.del(conf, cur); err != nil {
		t.Fatal(err)
	}
	e.requireClean(t)
}
