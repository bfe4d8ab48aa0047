package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/testutil"
)

// Tests for issue 8 (hardening): the node's own namespace, the IPAM lock,
// GC after a killed ADD, late checks, upstream behaviours and host veth
// name collisions.

// nodeSnapshot is everything of the node a CNI command must not change
// when it refuses to run: links and addresses, routes, forwarding sysctls.
func (e *env) nodeSnapshot() string {
	e.t.Helper()
	// Link states and IPv6 link-local addresses of the fresh namespace may
	// still be settling (DAD), so links are compared by name, type and
	// index, addresses by IPv4 and global IPv6, routes by IPv4 and IPv6
	// default.
	var b strings.Builder
	links, err := testutil.Handle(e.t, e.node).LinkList()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, l := range links {
		fmt.Fprintf(&b, "link %s %s %d\n", l.Attrs().Name, l.Type(), l.Attrs().Index)
	}
	for _, cmd := range [][]string{{"ip", "-o", "-4", "addr"}, {"ip", "-o", "-6", "addr", "show", "scope", "global"}, {"ip", "-4", "route", "show", "table", "all"}, {"ip", "-6", "route", "show", "default"}} {
		b.WriteString(testutil.RunIn(e.t, e.node, cmd...))
	}
	for _, k := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", "net/ipv4/conf/eth0/proxy_arp"} {
		v, err := netns.GetSysctl(e.node, k)
		if err != nil {
			v = err.Error()
		}
		b.WriteString(k + "=" + strings.TrimSpace(v) + "\n")
	}
	return b.String()
}

// datastoreState lists every key a pod could leave: endpoints, handles,
// blocks and affinities.
func (e *env) datastoreState() []string {
	e.t.Helper()
	var out []string
	out = append(out, e.wepKeys()...)
	out = append(out, e.keys(api.IPAMPrefix)...)
	return out
}

// runWithin is run with a deadline (a plugin that never returns is a
// failure, not a hung test).
func (e *env) runWithin(d time.Duration, command, cid, podNS, cniArgs string, conf []byte) outcome {
	var o outcome
	err := e.inNode(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(binDir, "calico"))
		cmd.Env = []string{
			"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + cid, "CNI_NETNS=" + podNS, "CNI_IFNAME=eth0",
			"CNI_ARGS=" + cniArgs, "CNI_PATH=" + binDir, "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		}
		cmd.Stdin = bytes.NewReader(conf)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		o = outcome{stdout: out.String(), stderr: errb.String()}
		if ctx.Err() != nil {
			o.rc = -1
			return nil
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			o.rc = ee.ExitCode()
			return nil
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return o
}

// TestOwnNetNSRefused (item 1): CNI_NETNS naming the namespace the plugin
// runs in (the node's, by its /var/run/netns path or as /proc/self/ns/net)
// is refused by ADD, CHECK and DEL with a CNI error naming both, and the
// node keeps its links, addresses, routes and sysctls; nothing is written
// to the datastore.
func TestOwnNetNSRefused(t *testing.T) {
	e := newEnv(t)
	before, storeBefore := e.nodeSnapshot(), e.datastoreState()
	prev := `{"cniVersion":"1.0.0","interfaces":[{"name":"calinodeself"},{"name":"eth0","sandbox":"x"}],"ips":[{"address":"10.244.0.9/32","interface":1}]}`
	conf := e.conf("1.0.0", nil)
	var m map[string]any
	_ = json.Unmarshal(conf, &m)
	m["prevResult"] = json.RawMessage(prev)
	checkConf := mustJSON(t, m)
	for _, path := range []string{e.node, "/proc/self/ns/net"} {
		for _, cmd := range []string{"ADD", "CHECK", "DEL"} {
			c := conf
			if cmd == "CHECK" {
				c = checkConf
			}
			o := e.runWithin(time.Minute, cmd, "nodeself", path, "", c)
			var te types.Error
			if o.rc == 0 || json.Unmarshal([]byte(o.stdout), &te) != nil || te.Code == 0 {
				t.Errorf("%s with CNI_NETNS=%s: rc %d, stdout %.200q; want a CNI error", cmd, path, o.rc, o.stdout)
				continue
			}
			if te.Code != types.ErrInvalidEnvironmentVariables || !strings.Contains(te.Msg, path) || strings.Count(te.Msg, "net:[") != 2 {
				t.Errorf("%s with CNI_NETNS=%s: code %d %q; want code 4 naming both namespaces", cmd, path, te.Code, te.Msg)
			}
		}
	}
	if after := e.nodeSnapshot(); after != before {
		t.Errorf("the node changed:\n%s\nwas:\n%s", after, before)
	}
	if after := e.datastoreState(); strings.Join(after, "\n") != strings.Join(storeBefore, "\n") {
		t.Errorf("the datastore changed: %v, was %v", after, storeBefore)
	}
	// A real pod still works on that node.
	p := e.newPod("afterself")
	res, err := e.add(conf, p)
	if err != nil {
		t.Fatal(err)
	}
	ping(t, e.node, podAddr(t, res).String())
}

// TestIPAMLockBounded (item 4): the lock file is created 0600 in a
// directory created 0700 (an existing 0644 file is narrowed to 0600); while
// another process holds it, ADD fails with code 11 saying so after
// ipam_lock_timeout_seconds, having undone everything; once released, ADD
// works.
func TestIPAMLockBounded(t *testing.T) {
	e := newEnv(t)
	lock := filepath.Join(e.dir, "run", "calico", "ipam.lock")
	conf := e.conf("1.0.0", map[string]any{"ipam_lock_file": lock, "ipam_lock_timeout_seconds": 2})
	if _, err := e.add(conf, e.newPod("lock1")); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{filepath.Dir(lock): 0o700, lock: 0o600} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	// An existing world-readable lock file (an older release) is narrowed.
	old := filepath.Join(e.dir, "old.lock")
	if err := os.WriteFile(old, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.add(e.conf("1.0.0", map[string]any{"ipam_lock_file": old}), e.newPod("lock2")); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(old); fi.Mode().Perm() != 0o600 {
		t.Errorf("existing lock file left %v", fi.Mode().Perm())
	}

	f, err := os.Open(lock) // a read-only descriptor is enough to hold a flock
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	storeBefore, nodeBefore := e.datastoreState(), e.nodeState()
	p := e.newPod("lock3")
	o := e.runWithin(time.Minute, "ADD", "lock3", p.ns, "", conf)
	if o.rc == -1 {
		t.Fatal("ADD did not return while another process held the IPAM lock: the wait is unbounded")
	}
	te := cniError(t, o)
	if te.Code != types.ErrTryAgainLater || !strings.Contains(te.Msg, "timed out after 2s waiting for the host IPAM lock "+lock) {
		t.Fatalf("ADD with the lock held: code %d %q", te.Code, te.Msg)
	}
	if s, n := e.datastoreState(), e.nodeState(); strings.Join(s, ",") != strings.Join(storeBefore, ",") || strings.Join(n, ",") != strings.Join(nodeBefore, ",") {
		t.Errorf("the failed ADD left: datastore %v (was %v), node %v (was %v)", s, storeBefore, n, nodeBefore)
	}
	if _, err := testutil.Handle(t, p.ns).LinkByName("eth0"); err == nil {
		t.Error("the failed ADD left the pod's eth0")
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	res, err := e.add(conf, p)
	if err != nil {
		t.Fatalf("ADD after the lock was released: %v", err)
	}
	ping(t, e.node, podAddr(t, res).String())
}

// TestGCAfterKilledAdd (item 5): an ADD killed after it allocated and
// plumbed, before it recorded the endpoint, leaves a handle, a host veth
// and its /32 route. GC removes the veth and route, then releases the
// address, so a later IP= request for it succeeds. Live pods (of this
// network and of another) keep everything.
func TestGCAfterKilledAdd(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("1.1.0", nil)
	net2 := e.conf("1.1.0", map[string]any{"name": "net2"})
	live, other, killed := e.newPod("gclive"), e.newPod("gcother"), e.newPod("gckilled")
	liveRes, err := e.add(conf, live)
	if err != nil {
		t.Fatal(err)
	}
	otherRes, err := e.add(net2, other)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.add(conf, killed)
	if err != nil {
		t.Fatal(err)
	}
	addr := podAddr(t, res)
	// The killed ADD's state: no endpoint, the rest in place.
	if _, err := e.c.Delete(context.Background(), api.KindWorkloadEndpoint, "default", nodeName+"-cni-gckilled-eth0", ""); err != nil {
		t.Fatal(err)
	}
	// Its namespace is held by nobody now, but the runtime has not
	// deleted it (so the veth stays, as after a kill).
	gc := e.conf("1.1.0", map[string]any{"cni.dev/valid-attachments": []map[string]string{{"containerID": "gclive", "ifname": "eth0"}, {"containerID": "gcother", "ifname": "eth0"}}})
	if o := e.runWithin(time.Minute, "GC", "", "", "", gc); o.rc != 0 {
		t.Fatalf("GC: %+v", o)
	}
	h := testutil.Handle(t, e.node)
	if _, err := h.LinkByName("caligckilled"); err == nil {
		t.Error("GC left the killed ADD's host veth")
	}
	for _, s := range e.nodeState() {
		if s == "route "+addr.String()+"/32" {
			t.Errorf("GC left the route %s", s)
		}
	}
	if len(e.keys(api.HandleKey(netName+".gckilled"))) != 0 {
		t.Error("GC kept the killed ADD's handle")
	}
	ping(t, e.node, podAddr(t, liveRes).String())
	ping(t, e.node, podAddr(t, otherRes).String())

	// The address can be asked for again.
	again := e.newPod("gcagain")
	if _, err := e.add(conf, &pod{ns: again.ns, rt: withArgs(again.rt, [2]string{"IP", addr.String()})}); err != nil {
		t.Fatalf("IP=%s after GC: %v", addr, err)
	}
	ping(t, e.node, addr.String())
}

func withArgs(rt *libcni.RuntimeConf, args ...[2]string) *libcni.RuntimeConf {
	c := *rt
	c.Args = append(append([][2]string(nil), rt.Args...), args...)
	return &c
}

// TestChecksBeforeWork (item 7): a network name that is too long (10 MB,
// or 64 bytes) or an MTU out of range is refused with code 7 before
// anything is allocated or plumbed, and the error quotes at most a short
// prefix of the bad value.
func TestChecksBeforeWork(t *testing.T) {
	e := newEnv(t)
	p := e.newPod("late")
	for _, c := range []struct {
		name  string
		extra map[string]any
		want  string
	}{
		{"10 MB name", map[string]any{"name": strings.Repeat("n", 10<<20)}, "10485760 bytes long"},
		{"64-byte name", map[string]any{"name": strings.Repeat("n", 64)}, "more than 63"},
		{"upper-case name", map[string]any{"name": "MyNet"}, "cannot name a Calico profile"},
		{"MTU 70000", map[string]any{"mtu": 70000}, `"mtu": 70000 is out of range`},
		{"MTU 10", map[string]any{"mtu": 10}, `"mtu": 10 is out of range`},
	} {
		o := e.runWithin(time.Minute, "ADD", "late", p.ns, "", e.conf("1.0.0", c.extra))
		te := cniError(t, o)
		if te.Code != types.ErrInvalidNetworkConfig || !strings.Contains(te.Msg, c.want) {
			t.Errorf("%s: code %d %.300q", c.name, te.Code, te.Msg)
		}
		if n := len(o.stdout) + len(o.stderr); n > 4096 {
			t.Errorf("%s: %d bytes of output", c.name, n)
		}
	}
	// A 100 kB container ID (nothing but the plugin bounds it).
	o := e.runWithin(time.Minute, "ADD", strings.Repeat("c", 100<<10), p.ns, "", e.conf("1.0.0", nil))
	if te := cniError(t, o); te.Code != types.ErrInvalidEnvironmentVariables || !strings.Contains(te.Msg, "102400 bytes long") || len(o.stdout)+len(o.stderr) > 4096 {
		t.Errorf("100 kB container ID: code %d %.300q, %d bytes of output", te.Code, te.Msg, len(o.stdout)+len(o.stderr))
	}
	if s := e.datastoreState(); len(s) != 0 {
		t.Errorf("refused ADDs wrote to the datastore: %v", s)
	}
	if n := e.nodeState(); len(n) != 0 {
		t.Errorf("refused ADDs plumbed: %v", n)
	}
}

// TestAddAfterKilledAddNewNetNS: an ADD killed before it recorded the
// endpoint, retried by the runtime for the same container in a new
// namespace while the old one still exists: the retry removes the old
// veth (it routes only the old allocation's addresses) before releasing
// them, so it can take any address again; the pod is reachable.
func TestAddAfterKilledAddNewNetNS(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("1.0.0", nil)
	first := e.newPod("reborn")
	if _, err := e.add(conf, first); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Delete(context.Background(), api.KindWorkloadEndpoint, "default", nodeName+"-cni-reborn-eth0", ""); err != nil {
		t.Fatal(err)
	}
	second := e.newPod("reborn")
	res, err := e.add(conf, second)
	if err != nil {
		t.Fatalf("retried ADD in a new namespace: %v", err)
	}
	ping(t, e.node, podAddr(t, res).String())
	if n := len(e.allocated()); n != 1 {
		t.Errorf("%d addresses allocated, want 1", n)
	}
	if err := e.del(conf, second); err != nil {
		t.Fatal(err)
	}
	e.requireClean(t)
}
