package cni

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/ipam"
	"github.com/onecalico/calico/internal/testutil"
)

// revision returns a key's mod revision (0 if absent).
func (e *env) revision(key string) int64 {
	e.t.Helper()
	it, err := e.store.Get(context.Background(), key)
	if err != nil {
		return 0
	}
	return it.Revision
}

// TestRepeatedAdd: a repeated ADD for the same container and interface
// prints the same result and writes nothing (no second allocation, no
// second veth, no endpoint rewrite); after the pod's interface is lost, an
// ADD plumbs it again with the same address; after the IPAM handle is
// lost, an ADD claims the same address again.
func TestRepeatedAdd(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("1.0.0", nil)
	p := e.newPod("again1")
	res, err := e.add(conf, p)
	if err != nil {
		t.Fatal(err)
	}
	first := e.rec.last("calico", "ADD").stdout
	addr := podAddr(t, res)
	handleKey, wepKey := api.HandleKey(netName+".again1"), api.ResourcePrefix+"workloadendpoints/default/node1-cni-again1-eth0"
	hRev, wRev := e.revision(handleKey), e.revision(wepKey)
	hostLink, err := testutil.Handle(t, e.node).LinkByName("caliagain1")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		o := e.run("ADD", "again1", p.ns, "", conf)
		if o.rc != 0 || o.stdout != first {
			t.Fatalf("repeated ADD: rc %d\n%s\nwant\n%s\nstderr %s", o.rc, o.stdout, first, o.stderr)
		}
	}
	if e.revision(handleKey) != hRev || e.revision(wepKey) != wRev {
		t.Errorf("repeated ADD wrote: handle rev %d -> %d, endpoint rev %d -> %d", hRev, e.revision(handleKey), wRev, e.revision(wepKey))
	}
	if got := e.allocated(); len(got) != 1 || got[0] != addr.String() {
		t.Errorf("allocated %v, want only %s", got, addr)
	}
	if l, err := testutil.Handle(t, e.node).LinkByName("caliagain1"); err != nil || l.Attrs().Index != hostLink.Attrs().Index {
		t.Errorf("host veth recreated: %v", err)
	}

	// The pod's interface is lost: the next ADD re-plumbs it, same address.
	testutil.RunIn(t, p.ns, "ip", "link", "del", "eth0")
	if err := e.check(conf, p); err == nil {
		t.Fatal("CHECK passed with the pod's interface gone")
	}
	o := e.run("ADD", "again1", p.ns, "", conf)
	if o.rc != 0 {
		t.Fatalf("ADD after the interface was lost: %+v", o)
	}
	second, mac := maskMAC(o.stdout)
	firstMasked, oldMAC := maskMAC(first)
	if second != firstMasked || mac == oldMAC {
		t.Errorf("re-plumbed result\n%s\nwant (MAC aside)\n%s", o.stdout, first)
	}
	if w := e.getWEP("default", "node1-cni-again1-eth0"); w.Spec.MAC != mac {
		t.Errorf("endpoint MAC %s, pod now has %s", w.Spec.MAC, mac)
	}
	ping(t, e.node, addr.String())
	if got := e.allocated(); len(got) != 1 || got[0] != addr.String() {
		t.Errorf("allocated %v after re-plumbing, want only %s", got, addr)
	}

	// The IPAM handle is lost (released by hand): the next ADD claims the
	// same address again.
	a := ipam.New(e.store, ipam.Options{})
	if err := a.ReleaseByHandle(context.Background(), netName+".again1"); err != nil {
		t.Fatal(err)
	}
	if o := e.run("ADD", "again1", p.ns, "", conf); o.rc != 0 || !strings.Contains(o.stdout, addr.String()+"/32") || !strings.Contains(o.stdout, addr.String()+"/26") {
		t.Fatalf("ADD after the handle was lost: %+v", o)
	}
	if held, err := a.IPsByHandle(context.Background(), netName+".again1"); err != nil || len(held) != 1 || held[0] != addr {
		t.Fatalf("handle holds %v, %v; want %s", held, err, addr)
	}
	if err := e.del(conf, p); err != nil {
		t.Fatal(err)
	}
	e.requireClean(t)
}

// TestDelIdempotent: DEL succeeds when everything, or any part, is already
// gone: twice in a row; after the pod's namespace was deleted (it still
// releases the address and the endpoint); with no CNI_NETNS; for a
// container that never existed.
func TestDelIdempotent(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("1.0.0", nil)

	p := e.newPod("twice")
	if _, err := e.add(conf, p); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := e.del(conf, p); err != nil {
			t.Fatalf("DEL %d: %v", i+1, err)
		}
	}
	e.requireClean(t)

	p = e.newPod("nsgone")
	if _, err := e.add(conf, p); err != nil {
		t.Fatal(err)
	}
	testutil.DeleteNetNS(t, p.ns)
	if err := e.del(conf, p); err != nil {
		t.Fatalf("DEL after the netns was deleted: %v", err)
	}
	e.requireClean(t)

	p = e.newPod("nonetns")
	if _, err := e.add(conf, p); err != nil {
		t.Fatal(err)
	}
	if o := e.run("DEL", "nonetns", "", "", conf); o.rc != 0 {
		t.Fatalf("DEL without CNI_NETNS: %+v", o)
	}
	e.requireClean(t)
	// The pod's own end went with its host peer.
	if _, err := testutil.Handle(t, p.ns).LinkByName("eth0"); err == nil {
		t.Error("pod interface left after DEL without CNI_NETNS")
	}

	if o := e.run("DEL", "neverwas", "/var/run/netns/cdp-never-existed", "", conf); o.rc != 0 || o.stdout != "" {
		t.Fatalf("DEL of an unknown container: %+v", o)
	}
	// Parts already gone: the endpoint, then the handle.
	p = e.newPod("partial")
	if _, err := e.add(conf, p); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Delete(context.Background(), api.KindWorkloadEndpoint, "default", "node1-cni-partial-eth0", ""); err != nil {
		t.Fatal(err)
	}
	if err := ipam.New(e.store, ipam.Options{}).ReleaseByHandle(context.Background(), netName+".partial"); err != nil {
		t.Fatal(err)
	}
	if err := e.del(conf, p); err != nil {
		t.Fatalf("DEL with the endpoint and handle gone: %v", err)
	}
	e.requireClean(t)
}

// TestAddFailureUndoes: a failure at any step of ADD leaves nothing: no
// link, route, endpoint, handle or allocation. The steps: IPAM (the pool
// is exhausted), plumbing (the pod already has an eth0; the netns path is
// not a netns; a host route to the address exists on another interface,
// which fails the very last plumbing step), and recording the endpoint
// (the datastore refuses the write).
func TestAddFailureUndoes(t *testing.T) {
	e := newEnv(t)
	// IPAM: a /30 pool with blockSize 30 whose 4 addresses are used.
	e.pool("tiny", "10.245.0.0/30", 30)
	tiny := e.conf("1.0.0", map[string]any{"ipam": map[string]any{"type": "calico-ipam", "ipv4_pools": []string{"tiny"}}})
	var full []*pod
	for i := range 4 {
		p := e.newPod(fmt.Sprintf("tiny%d", i))
		if _, err := e.add(tiny, p); err != nil {
			t.Fatal(err)
		}
		full = append(full, p)
	}
	before := e.nodeState()
	p := e.newPod("tinyfail")
	_, err := e.add(tiny, p)
	t.Logf("exhausted pool: %v", err)
	if te := asCNIError(t, err); !strings.Contains(te.Msg, "no free addresses") || !strings.Contains(te.Msg, "10.245.0.0/30") {
		t.Fatalf("exhausted pool: %v", err)
	}
	if got := e.nodeState(); !slices.Equal(got, before) || len(e.wepKeys()) != 4 || len(e.keys(api.IPAMHandlePrefix)) != 4 {
		t.Fatalf("failed ADD left: node %v endpoints %v handles %v", got, e.wepKeys(), e.keys(api.IPAMHandlePrefix))
	}
	for _, p := range full {
		if err := e.del(tiny, p); err != nil {
			t.Fatal(err)
		}
	}
	e.requireClean(t)

	conf := e.conf("1.0.0", nil)
	// Plumbing: the pod already has an eth0 that is not ours.
	p = e.newPod("haseth0")
	testutil.RunIn(t, p.ns, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0")
	_, err = e.add(conf, p)
	t.Logf("existing eth0: %v", err)
	if te := asCNIError(t, err); !strings.Contains(te.Msg, "create veth eth0") {
		t.Fatalf("existing eth0: %v", err)
	}
	if _, err := testutil.Handle(t, p.ns).LinkByName("eth0"); err != nil {
		t.Errorf("the pod's own eth0 was touched: %v", err)
	}
	e.requireClean(t)

	// Plumbing: CNI_NETNS is not a network namespace.
	notNS := e.dir + "/not-a-netns"
	if err := os.WriteFile(notNS, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if o := e.run("ADD", "notns", notNS, "", conf); o.rc == 0 || !strings.Contains(cniError(t, o).Msg, notNS) {
		t.Fatalf("bad netns: %+v", o)
	}
	e.requireClean(t)

	// Plumbing, last step: a route to the address already exists on
	// another interface (calico#3940's symptom).
	testutil.RunIn(t, e.node, "ip", "route", "add", "10.244.9.9/32", "dev", "eth0", "scope", "link")
	p = e.newPod("routeclash")
	o := e.run("ADD", "routeclash", p.ns, "IP=10.244.9.9", conf)
	t.Logf("route clash: %s", o.stdout)
	if te := cniError(t, o); !strings.Contains(te.Msg, "route 10.244.9.9/32 already exists for interface eth0") {
		t.Fatalf("route clash: %+v", o)
	}
	testutil.RunIn(t, e.node, "ip", "route", "del", "10.244.9.9/32", "dev", "eth0")
	e.requireClean(t)
	if out := testutil.RunIn(t, p.ns, "ip", "-o", "link"); strings.Contains(out, "eth0") {
		t.Errorf("pod interface left after the failed ADD: %s", out)
	}

	// Recording the endpoint: the datastore refuses the write.
	cni := e.restrictWEPWrites()
	p = e.newPod("wepfail")
	o = e.run("ADD", "wepfail", p.ns, "", conf, cni...)
	t.Logf("endpoint write refused: %s", o.stdout)
	if te := cniError(t, o); !strings.Contains(te.Msg, "record workload endpoint default/node1-cni-wepfail-eth0") || !strings.Contains(te.Msg, "permission denied") {
		t.Fatalf("endpoint write refused: %+v", o)
	}
	e.requireClean(t)
	if out := testutil.RunIn(t, p.ns, "ip", "-o", "link"); strings.Contains(out, "eth0") {
		t.Errorf("pod interface left after the failed ADD: %s", out)
	}
}

// TestConcurrentAdds: 50 pods added 4 at a time get 50 distinct addresses
// and working plumbing; deleting them 4 at a time leaves nothing.
func TestConcurrentAdds(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("1.0.0", nil)
	pods := make([]*pod, 50)
	for i := range pods {
		pods[i] = e.newPod(fmt.Sprintf("conc%02d", i))
	}
	addrs := make([]netip.Addr, len(pods))
	each := func(op func(i int) error) {
		jobs := make(chan int, len(pods))
		for i := range pods {
			jobs <- i
		}
		close(jobs)
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					if err := op(i); err != nil {
						t.Errorf("pod %d: %v", i, err)
					}
				}
			}()
		}
		wg.Wait()
	}
	each(func(i int) error {
		res, err := e.add(conf, pods[i])
		if err == nil {
			addrs[i] = podAddr(t, res)
		}
		return err
	})
	if t.Failed() {
		t.FailNow()
	}
	seen := map[netip.Addr]int{}
	for i, a := range addrs {
		if j, dup := seen[a]; dup {
			t.Errorf("pods %d and %d both got %s", j, i, a)
		}
		seen[a] = i
	}
	if n := len(e.allocated()); n != 50 {
		t.Errorf("%d addresses allocated, want 50", n)
	}
	if n := len(e.wepKeys()); n != 50 {
		t.Errorf("%d endpoints, want 50", n)
	}
	ping(t, pods[0].ns, addrs[49].String())
	each(func(i int) error { return e.del(conf, pods[i]) })
	e.requireClean(t)
}
