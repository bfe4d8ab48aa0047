package cni

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/onecalico/calico/internal/api"
)

// Issue 8, item 9: where the plugin differed from upstream's behaviour.

// TestClusterInformationRequired: without ClusterInformation/default the
// datastore is not initialised; ADD and DEL fail with code 999 "error
// getting ClusterInformation", saying who initialises it, and allocate
// nothing. STATUS says so too. Once initialised, ADD works.
func TestClusterInformationRequired(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.store.Delete(ctx, clusterInfoKey(), 0); err != nil {
		t.Fatal(err)
	}
	conf := e.conf("1.1.0", nil)
	p := e.newPod("noci")
	for _, cmd := range []string{"ADD", "DEL"} {
		te := cniError(t, e.runWithin(time.Minute, cmd, "noci", p.ns, "", conf))
		if te.Code != types.ErrInternal || !strings.HasPrefix(te.Msg, "error getting ClusterInformation: ") || !strings.Contains(te.Msg, "calico-node") || !strings.Contains(te.Msg, "calicoctl") {
			t.Errorf("%s without ClusterInformation: code %d %q", cmd, te.Code, te.Msg)
		}
	}
	if s := e.datastoreState(); len(s) != 0 {
		t.Errorf("ADD without ClusterInformation wrote %v", s)
	}
	if te := cniError(t, e.runWithin(time.Minute, "STATUS", "", "", "", conf)); te.Code != 50 || !strings.Contains(te.Msg, "not initialised") {
		t.Errorf("STATUS without ClusterInformation: %d %q", te.Code, te.Msg)
	}
	if err := e.c.EnsureInitialized(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.add(conf, p); err != nil {
		t.Fatal(err)
	}
	if err := e.del(conf, p); err != nil {
		t.Fatal(err)
	}
	e.requireClean(t)
}

// TestDeprecatedHostname: with no "nodename" and no nodename file, the
// deprecated "hostname" key names the node, as upstream's.
func TestDeprecatedHostname(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("1.0.0", map[string]any{"nodename": nil, "hostname": nodeName, "nodename_file": filepath.Join(e.dir, "no-nodename")})
	p := e.newPod("oldhost")
	if _, err := e.add(conf, p); err != nil {
		t.Fatal(err)
	}
	if w := e.getWEP("default", nodeName+"-cni-oldhost-eth0"); w.Spec.Node != nodeName {
		t.Errorf("endpoint node %q", w.Spec.Node)
	}
	if err := e.del(conf, p); err != nil {
		t.Fatal(err)
	}
}

// TestSameContainerSecondNetwork: ADD of a container that has an endpoint,
// under another network name, reuses the endpoint (same address and
// interface, no new allocation) and appends that network's profile, as
// upstream does.
func TestSameContainerSecondNetwork(t *testing.T) {
	e := newEnv(t)
	conf, conf2 := e.conf("1.0.0", nil), e.conf("1.0.0", map[string]any{"name": "net2"})
	p := e.newPod("twonets")
	r1, err := e.add(conf, p)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := e.add(conf2, p)
	if err != nil {
		t.Fatalf("ADD under a second network: %v", err)
	}
	if a1, a2 := podAddr(t, r1), podAddr(t, r2); a1 != a2 {
		t.Errorf("second network got %s, first %s", a2, a1)
	}
	w := e.getWEP("default", nodeName+"-cni-twonets-eth0")
	if !slices.Equal(w.Spec.Profiles, []string{netName, "net2"}) {
		t.Errorf("profiles %v", w.Spec.Profiles)
	}
	if n := len(e.allocated()); n != 1 {
		t.Errorf("%d addresses allocated, want 1", n)
	}
	if _, err := e.c.Get(context.Background(), api.KindProfile, "", "net2"); err != nil {
		t.Errorf("profile net2: %v", err)
	}
	ping(t, e.node, podAddr(t, r1).String())
	if err := e.del(conf, p); err != nil {
		t.Fatal(err)
	}
	if err := e.del(conf2, p); err != nil {
		t.Fatal(err)
	}
	e.requireClean(t)
}

// TestConnectionFlag: `calico -t` with a netconf on stdin exits 0 when
// the datastore answers, and 1 with the reason when it does not.
func TestConnectionFlag(t *testing.T) {
	e := newEnv(t)
	run := func(conf []byte) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(binDir, "calico"), "-t")
		cmd.Stdin = bytes.NewReader(conf)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), out.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, out.String()
	}
	if rc, out := run(e.conf("1.0.0", nil)); rc != 0 {
		t.Errorf("calico -t against a live datastore: rc %d %q", rc, out)
	}
	if rc, out := run(e.conf("1.0.0", map[string]any{"etcd_endpoints": "http://127.0.0.1:1"})); rc != 1 || !strings.Contains(out, "datastore does not answer") {
		t.Errorf("calico -t against nothing: rc %d %q", rc, out)
	}
	if rc, out := run([]byte("{")); rc != 1 || !strings.Contains(out, "netconf") {
		t.Errorf("calico -t with a bad netconf: rc %d %q", rc, out)
	}
}

// TestUpstreamErrorWording: a requested pool that does not exist keeps
// upstream's "(<pool>) does not exist"; feature_control.ip_addrs_no_ipam,
// which upstream applies to a Kubernetes annotation this plugin never
// reads, is refused (code 7) instead of silently ignored.
func TestUpstreamErrorWording(t *testing.T) {
	e := newEnv(t)
	p := e.newPod("wording")
	te := cniError(t, e.runWithin(time.Minute, "ADD", "wording", p.ns, "", e.conf("1.0.0", map[string]any{"ipam": map[string]any{"type": "calico-ipam", "ipv4_pools": []string{"192.169.1.0/24"}}})))
	if !strings.Contains(te.Msg, "(192.169.1.0/24) does not exist") {
		t.Errorf("missing pool: %d %q", te.Code, te.Msg)
	}
	te = cniError(t, e.runWithin(time.Minute, "ADD", "wording", p.ns, "IP=10.244.0.50", e.conf("1.0.0", map[string]any{"feature_control": map[string]any{"ip_addrs_no_ipam": true}})))
	if te.Code != types.ErrInvalidNetworkConfig || !strings.Contains(te.Msg, "feature_control.ip_addrs_no_ipam") {
		t.Errorf("ip_addrs_no_ipam: %d %q", te.Code, te.Msg)
	}
	e.requireClean(t)
}
