package ipam

import (
	"context"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/api"
	calicoipam "github.com/onecalico/calico/internal/ipam"
)

func TestAddDelOutputLikeUpstream(t *testing.T) {
	e := newEnv(t)
	e.pool("pool1", "10.244.0.0/16", nil)
	e.node("node1")
	r := e.plugin("ADD", "anchorp1", "", e.netconf("0.3.1", "node1", nil))
	want := "{\n    \"cniVersion\": \"0.3.1\",\n    \"ips\": [\n        {\n            \"version\": \"4\",\n            \"address\": \"10.244.166.128/26\"\n        }\n    ],\n    \"routes\": [\n        {\n            \"dst\": \"10.244.166.128/26\"\n        }\n    ],\n    \"dns\": {}\n}"
	if r.rc != 0 || r.stdout != want {
		t.Fatalf("ADD 0.3.1: rc %d\nstdout %q\nwant   %q\nstderr %s", r.rc, r.stdout, want, r.stderr)
	}
	if r.stderr != "" {
		t.Errorf("ADD wrote to stderr at the default log level: %s", r.stderr)
	}
	r = e.plugin("ADD", "anchorp2", "", e.netconf("1.0.0", "node1", nil))
	want = "{\n    \"cniVersion\": \"1.0.0\",\n    \"ips\": [\n        {\n            \"address\": \"10.244.166.129/26\"\n        }\n    ],\n    \"routes\": [\n        {\n            \"dst\": \"10.244.166.129/26\"\n        }\n    ]\n}"
	if r.rc != 0 || r.stdout != want {
		t.Fatalf("ADD 1.0.0: rc %d\nstdout %q\nwant   %q", r.rc, r.stdout, want)
	}
	// The handle is <network>.<containerID>, attributes node and timestamp.
	a := calicoipam.New(e.store, calicoipam.Options{})
	info, err := a.Lookup(context.Background(), mustAddr("10.244.166.128"))
	if err != nil || *info.HandleID != "net1.anchorp1" || info.Attrs["node"] != "node1" || !strings.HasSuffix(info.Attrs["timestamp"], "+0000 UTC") {
		t.Fatalf("allocation %+v %v", info, err)
	}
	// DEL prints nothing and succeeds, twice.
	for range 2 {
		r = e.plugin("DEL", "anchorp1", "", e.netconf("0.3.1", "node1", nil))
		if r.rc != 0 || r.stdout != "" {
			t.Fatalf("DEL: rc %d stdout %q stderr %s", r.rc, r.stdout, r.stderr)
		}
	}
	if _, err := a.Lookup(context.Background(), mustAddr("10.244.166.128")); err == nil {
		t.Fatal("address still allocated after DEL")
	}
	// The legacy handle <containerID> is released too.
	if _, _, err := a.AutoAssign(context.Background(), calicoipam.AutoAssignArgs{Num4: 1, HandleID: "legacy1", Hostname: "node1"}); err != nil {
		t.Fatal(err)
	}
	if r = e.plugin("DEL", "legacy1", "", e.netconf("0.3.1", "node1", nil)); r.rc != 0 {
		t.Fatalf("DEL legacy: %+v", r)
	}
	if _, err := a.IPsByHandle(context.Background(), "legacy1"); err == nil {
		t.Fatal("legacy handle not released")
	}
	// VERSION.
	r = e.plugin("VERSION", "", "", nil)
	if r.rc != 0 || strings.TrimSpace(r.stdout) != `{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}` {
		t.Fatalf("VERSION: %+v", r)
	}
}

func TestAddWithIPArgAndDualStack(t *testing.T) {
	e := newEnv(t)
	e.pool("v4", "10.1.0.0/24", nil)
	e.pool("v6", "fd00:1::/120", nil)
	e.node("n1")
	r := e.plugin("ADD", "c1", "IgnoreUnknown=1;IP=10.1.0.200;K8S_POD_NAME=web-1;K8S_POD_NAMESPACE=ns1", e.netconf("1.0.0", "n1", nil))
	if r.rc != 0 || addrOf(t, r) != "10.1.0.200/32" {
		t.Fatalf("IP= ADD: %+v", r)
	}
	a := calicoipam.New(e.store, calicoipam.Options{})
	info, err := a.Lookup(context.Background(), mustAddr("10.1.0.200"))
	if err != nil || info.Attrs["pod"] != "web-1" || info.Attrs["namespace"] != "ns1" {
		t.Fatalf("k8s attributes %+v %v", info, err)
	}
	// The same address again fails with a clear error and changes nothing.
	before := dumpIPAM(t, e.store)
	r = e.plugin("ADD", "c2", "IP=10.1.0.200", e.netconf("1.0.0", "n1", nil))
	if code, msg := cniErr(t, r); r.rc != 1 || code != 999 || !strings.Contains(msg, "already allocated") || !strings.Contains(msg, "net1.c1") {
		t.Fatalf("duplicate IP=: rc %d %d %q", r.rc, code, msg)
	}
	if dumpIPAM(t, e.store) != before {
		t.Fatal("failed ADD changed the datastore")
	}
	// Dual stack.
	conf := e.netconf("1.0.0", "n1", map[string]any{"ipam": map[string]any{"type": "calico-ipam", "assign_ipv6": "true"}})
	r = e.plugin("ADD", "c3", "", conf)
	if r.rc != 0 || !strings.Contains(r.stdout, `"address": "10.1.0.`) || !strings.Contains(r.stdout, `"address": "fd00:1::`) || !strings.Contains(r.stdout, "/122") {
		t.Fatalf("dual stack: %+v", r)
	}
	// DEL with k8s args releases the handle (and the legacy ns.pod one).
	if r = e.plugin("DEL", "c1", "K8S_POD_NAME=web-1;K8S_POD_NAMESPACE=ns1;IgnoreUnknown=1", e.netconf("1.0.0", "n1", nil)); r.rc != 0 {
		t.Fatalf("DEL: %+v", r)
	}
	if _, err := a.Lookup(context.Background(), mustAddr("10.1.0.200")); err == nil {
		t.Fatal("IP= address not released")
	}
}

func TestPluginErrors(t *testing.T) {
	e := newEnv(t)
	e.node("n1")
	// Bad netconf: code 7, the field named, nothing written.
	r := e.plugin("ADD", "c1", "", []byte(`{"cniVersion":"1.0.0","name":"net1","type":"calico","mtu":"abc","etcd_endpoints":"`+e.etcd.Endpoint+`","nodename":"n1"}`))
	if code, msg := cniErr(t, r); r.rc != 1 || code != 7 || msg != `netconf field "mtu": expected a number, got "abc"` {
		t.Fatalf("bad mtu: rc %d code %d %q", r.rc, code, msg)
	}
	// No pool: a message that says so.
	r = e.plugin("ADD", "c1", "", e.netconf("1.0.0", "n1", nil))
	if code, msg := cniErr(t, r); code != 999 || !strings.Contains(msg, "no usable IP pool") || !strings.Contains(msg, "calicoctl create") {
		t.Fatalf("no pool: %d %q", code, msg)
	}
	// Exhausted pool.
	e.pool("tiny", "10.2.0.0/30", func(p *api.IPPool) { p.Spec.BlockSize = 30 })
	for _, c := range []string{"a", "b", "c", "d"} {
		if r = e.plugin("ADD", c, "", e.netconf("1.0.0", "n1", nil)); r.rc != 0 {
			t.Fatalf("ADD %s: %+v", c, r)
		}
	}
	before := dumpIPAM(t, e.store)
	r = e.plugin("ADD", "e", "", e.netconf("1.0.0", "n1", nil))
	if code, msg := cniErr(t, r); code != 999 || !strings.Contains(msg, "no free addresses") || !strings.Contains(msg, "10.2.0.0/30") {
		t.Fatalf("exhausted: %d %q", code, msg)
	}
	if dumpIPAM(t, e.store) != before {
		t.Fatal("failed ADD changed the datastore")
	}
	// Unknown CNI_ARGS without IgnoreUnknown: code 4.
	r = e.plugin("ADD", "f", "FOO=1", e.netconf("1.0.0", "n1", nil))
	if code, _ := cniErr(t, r); code != 4 {
		t.Fatalf("unknown args: %+v", r)
	}
	// Unreachable datastore: try again later (11).
	conf := []byte(`{"cniVersion":"1.0.0","name":"net1","type":"calico","etcd_endpoints":"unix:///nonexistent/etcd.sock:0","nodename":"n1"}`)
	r = e.plugin("DEL", "g", "", conf)
	if code, _ := cniErr(t, r); r.rc != 1 || code != 11 {
		t.Fatalf("unreachable: %+v", r)
	}
}

func TestCheckGCStatus(t *testing.T) {
	e := newEnv(t)
	e.pool("p", "10.3.0.0/24", nil)
	e.node("n1")
	e.node("n2")
	conf := func(node string, extra map[string]any) []byte { return e.netconf("1.1.0", node, extra) }
	r := e.plugin("ADD", "c1", "", conf("n1", nil))
	addr := addrOf(t, r)
	// CHECK with the right prevResult passes.
	prev := map[string]any{"cniVersion": "1.1.0", "ips": []any{map[string]any{"address": addr}}}
	if r := e.plugin("CHECK", "c1", "", conf("n1", map[string]any{"prevResult": prev})); r.rc != 0 || r.stdout != "" {
		t.Fatalf("CHECK: %+v", r)
	}
	// CHECK of an address the handle does not hold, or of an unknown container, fails.
	bad := map[string]any{"cniVersion": "1.1.0", "ips": []any{map[string]any{"address": "10.3.0.250/26"}}}
	if code, msg := cniErr(t, e.plugin("CHECK", "c1", "", conf("n1", map[string]any{"prevResult": bad}))); code != 999 || !strings.Contains(msg, "10.3.0.250") {
		t.Fatalf("CHECK wrong address: %d %q", code, msg)
	}
	if code, _ := cniErr(t, e.plugin("CHECK", "nope", "", conf("n1", map[string]any{"prevResult": prev}))); code != 3 {
		t.Fatalf("CHECK unknown container: %d", code)
	}
	// GC releases n1's allocations of containers not in valid-attachments,
	// and leaves other nodes' and other networks' alone.
	for _, c := range []string{"c2", "c3"} {
		if r := e.plugin("ADD", c, "", conf("n1", nil)); r.rc != 0 {
			t.Fatal(r)
		}
	}
	if r := e.plugin("ADD", "c4", "", conf("n2", nil)); r.rc != 0 {
		t.Fatal(r)
	}
	other := conf("n1", map[string]any{"name": "net2"})
	if r := e.plugin("ADD", "c5", "", other); r.rc != 0 {
		t.Fatal(r)
	}
	valid := []any{map[string]any{"containerID": "c1", "ifname": "eth0"}, map[string]any{"containerID": "c3", "ifname": "eth0"}}
	if r := e.plugin("GC", "", "", conf("n1", map[string]any{"cni.dev/valid-attachments": valid})); r.rc != 0 {
		t.Fatalf("GC: %+v", r)
	}
	a := calicoipam.New(e.store, calicoipam.Options{})
	for h, want := range map[string]bool{"net1.c1": true, "net1.c2": false, "net1.c3": true, "net1.c4": true, "net2.c5": true} {
		_, err := a.IPsByHandle(context.Background(), h)
		if (err == nil) != want {
			t.Errorf("after GC handle %s present=%v, want %v", h, err == nil, want)
		}
	}
	// STATUS: fine; then no pool for the node; then an unreachable datastore.
	if r := e.plugin("STATUS", "", "", conf("n1", nil)); r.rc != 0 {
		t.Fatalf("STATUS: %+v", r)
	}
	if code, msg := cniErr(t, e.plugin("STATUS", "", "", conf("n1", map[string]any{"ipam": map[string]any{"type": "calico-ipam", "ipv4_pools": []string{"nosuch"}}}))); code != 50 || !strings.Contains(msg, "nosuch") {
		t.Fatalf("STATUS no pool: %d %q", code, msg)
	}
	if code, msg := cniErr(t, e.plugin("STATUS", "", "", conf("ghost", nil))); code != 50 || !strings.Contains(msg, "ghost") {
		t.Fatalf("STATUS unknown node: %d %q", code, msg)
	}
	down := []byte(`{"cniVersion":"1.1.0","name":"net1","type":"calico","etcd_endpoints":"unix:///nonexistent/etcd.sock:0","nodename":"n1"}`)
	if code, _ := cniErr(t, e.plugin("STATUS", "", "", down)); code != 50 {
		t.Fatalf("STATUS datastore down: %d", code)
	}
}

// TestDatastoreNotReady: with the datastore locked (ClusterInformation
// datastoreReady=false, set by `calicoctl datastore migrate lock`),
// calico-ipam refuses ADD and DEL with code 11 and upstream's message, as
// the calico plugin does, and changes nothing; unlocked, both work again.
func TestDatastoreNotReady(t *testing.T) {
	e := newEnv(t)
	e.pool("pool1", "10.244.0.0/16", nil)
	e.node("node1")
	if r := e.plugin("ADD", "held", "", e.netconf("1.0.0", "node1", nil)); r.rc != 0 {
		t.Fatalf("ADD before the lock: %+v", r)
	}
	if r := e.ctl("datastore", "migrate", "lock"); r.rc != 0 {
		t.Fatalf("lock: %+v", r)
	}
	before := dumpIPAM(t, e.store)
	r := e.plugin("ADD", "c1", "", e.netconf("1.0.0", "node1", nil))
	if code, msg := cniErr(t, r); r.rc != 1 || code != 11 || msg != "Calico is currently not ready to process requests" {
		t.Fatalf("ADD while locked: rc %d code %d %q", r.rc, code, msg)
	}
	r = e.plugin("DEL", "held", "", e.netconf("1.0.0", "node1", nil))
	if code, msg := cniErr(t, r); r.rc != 1 || code != 11 || msg != "Calico is currently not ready to process requests" {
		t.Fatalf("DEL while locked: rc %d code %d %q", r.rc, code, msg)
	}
	if dumpIPAM(t, e.store) != before {
		t.Fatal("a refused ADD or DEL changed IPAM")
	}
	if r := e.ctl("datastore", "migrate", "unlock"); r.rc != 0 {
		t.Fatalf("unlock: %+v", r)
	}
	if r := e.plugin("ADD", "c1", "", e.netconf("1.0.0", "node1", nil)); r.rc != 0 {
		t.Fatalf("ADD after unlock: %+v", r)
	}
	if r := e.plugin("DEL", "held", "", e.netconf("1.0.0", "node1", nil)); r.rc != 0 {
		t.Fatalf("DEL after unlock: %+v", r)
	}
}
