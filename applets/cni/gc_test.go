package cni

import (
	"context"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/cniipam"
	"github.com/onecalico/calico/internal/testutil"
)

// TestGC: GC (spec 1.1) removes, for this network on this node only, every
// attachment not in cni.dev/valid-attachments: host veth and routes,
// endpoint, addresses. Other nodes' and other networks' attachments stay;
// without the list nothing is removed.
func TestGC(t *testing.T) {
	e := newEnv(t)
	n2 := api.NewNode()
	n2.Name = "node2"
	if _, err := e.c.Create(context.Background(), n2); err != nil {
		t.Fatal(err)
	}
	conf := e.conf("1.1.0", nil)
	other := e.conf("1.1.0", map[string]any{"nodename": "node2"})
	net2 := e.conf("1.1.0", map[string]any{"name": "net2"})
	pods := map[string]*pod{}
	for _, c := range []struct {
		cid  string
		conf []byte
	}{{"gca", conf}, {"gcb", conf}, {"gcc", conf}, {"gcd", other}, {"gce", net2}} {
		pods[c.cid] = e.newPod(c.cid)
		if _, err := e.add(c.conf, pods[c.cid]); err != nil {
			t.Fatal(err)
		}
	}
	gc := func(conf []byte) {
		t.Helper()
		if o := e.run("GC", "", "", "", conf); o.rc != 0 || o.stdout != "" {
			t.Fatalf("GC: %+v", o)
		}
	}
	// No list: nothing is collected.
	gc(conf)
	if n := len(e.wepKeys()); n != 5 {
		t.Fatalf("GC without valid-attachments removed endpoints: %d left", n)
	}
	gc(e.conf("1.1.0", map[string]any{"cni.dev/valid-attachments": []map[string]string{{"containerID": "gca", "ifname": "eth0"}}}))
	h := testutil.Handle(t, e.node)
	for cid, keep := range map[string]bool{"gca": true, "gcb": false, "gcc": false, "gcd": true, "gce": true} {
		node, net := nodeName, netName
		switch cid {
		case "gcd":
			node = "node2"
		case "gce":
			net = "net2"
		}
		_, werr := e.c.Get(context.Background(), api.KindWorkloadEndpoint, "default", node+"-cni-"+cid+"-eth0")
		_, lerr := h.LinkByName("cali" + cid)
		hasHandle := len(e.keys(api.HandleKey(net+"."+cid))) == 1
		if (werr == nil) != keep || (lerr == nil) != keep || hasHandle != keep {
			t.Errorf("%s after GC: endpoint %v, link %v, handle %v; want kept=%v", cid, werr, lerr, hasHandle, keep)
		}
	}
	if n := len(e.allocated()); n != 3 {
		t.Errorf("%d addresses allocated after GC, want 3", n)
	}
	for cid, c := range map[string][]byte{"gca": conf, "gcb": conf, "gcc": conf, "gcd": other, "gce": net2} {
		if err := e.del(c, pods[cid]); err != nil {
			t.Fatalf("DEL %s: %v", cid, err)
		}
	}
	e.requireClean(t)
}

// TestStatus: STATUS (spec 1.1) succeeds when the datastore answers, is
// ready, and a pool serves this node; otherwise it fails with code 50
// ("plugin not available") and the reason.
func TestStatus(t *testing.T) {
	e := newEnv(t)
	status := func(conf []byte) outcome { return e.run("STATUS", "", "", "", conf) }
	if o := status(e.conf("1.1.0", nil)); o.rc != 0 || o.stdout != "" {
		t.Fatalf("STATUS: %+v", o)
	}
	for _, c := range []struct {
		name string
		conf []byte
		want string
	}{
		{"no such pool", e.conf("1.1.0", map[string]any{"ipam": map[string]any{"type": "calico-ipam", "ipv4_pools": []string{"nosuch"}}}), "nosuch"},
		{"unknown node", e.conf("1.1.0", map[string]any{"nodename": "ghost"}), "ghost"},
		{"no node name", e.conf("1.1.0", map[string]any{"nodename": nil, "nodename_file": e.dir + "/none"}), e.dir + "/none"},
		{"datastore down", e.conf("1.1.0", map[string]any{"etcd_endpoints": "unix:///nonexistent/etcd.sock:0"}), "does not answer"},
		{"unknown IPAM plugin", e.conf("1.1.0", map[string]any{"ipam": map[string]any{"type": "nosuch-ipam"}}), "nosuch-ipam"},
	} {
		o := status(c.conf)
		if te := cniError(t, o); te.Code != cniipam.ErrPluginNotAvailable || !strings.Contains(te.Msg, c.want) {
			t.Errorf("%s: STATUS = %d %q, want 50 and %q", c.name, te.Code, te.Msg, c.want)
		}
	}
	ctx := context.Background()
	r, err := e.c.Get(ctx, api.KindClusterInformation, "", "default")
	if err != nil {
		t.Fatal(err)
	}
	ci := r.(*api.ClusterInformation)
	no := false
	ci.Spec.DatastoreReady = &no
	if _, err := e.c.Update(ctx, ci); err != nil {
		t.Fatal(err)
	}
	if te := cniError(t, status(e.conf("1.1.0", nil))); te.Code != 50 || te.Msg != "Calico is currently not ready to process requests" {
		t.Errorf("STATUS while not ready: %+v", te)
	}
}
