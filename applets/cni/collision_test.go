package cni

import (
	"context"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/testutil"
)

// Issue 8, item 10: container IDs that share their first 11 characters
// (containerd's `ctr run --cni` passes "<namespace>-<name>") map to the
// same upstream host veth name, "calidefault-web".

const (
	alphaID  = "default-web-alpha"
	betaID   = "default-web-beta"
	gammaID  = "default-web-gamma"
	sharedIf = "calidefault-web"
)

// collider is one pod of the test: its namespace, address and endpoint.
type collider struct {
	p    *pod
	addr string
	wep  *api.WorkloadEndpoint
}

func (e *env) addCollider(conf []byte, cid string) *collider {
	e.t.Helper()
	c := &collider{p: e.newPod(cid)}
	res, err := e.add(conf, c.p)
	if err != nil {
		e.t.Fatalf("ADD %s: %v", cid, err)
	}
	c.addr = podAddr(e.t, res).String()
	c.wep = e.wepOf(cid)
	if got := result100(e.t, res).Interfaces[0].Name; got != c.wep.Spec.InterfaceName {
		e.t.Errorf("%s: result names host interface %s, endpoint %s", cid, got, c.wep.Spec.InterfaceName)
	}
	return c
}

// wepOf reads the endpoint of a cni-orchestrator container on this node.
func (e *env) wepOf(cid string) *api.WorkloadEndpoint {
	e.t.Helper()
	name, err := api.WorkloadEndpointName(api.WorkloadEndpointIdentifiers{Node: nodeName, Orchestrator: api.OrchestratorCNI, ContainerID: cid, Endpoint: "eth0"})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.getWEP("default", name)
}

// TestVethNameCollision: the second pod gets its own host veth (recorded
// on its endpoint) instead of taking over the first pod's; both are
// reachable and pass CHECK; DEL of either leaves the other working; and a
// DEL whose container side is gone never deletes a host link that routes
// another pod's address, even when its endpoint names that link (as the
// first release recorded it).
func TestVethNameCollision(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("1.0.0", nil)
	alpha := e.addCollider(conf, alphaID)
	beta := e.addCollider(conf, betaID)
	if alpha.wep.Spec.InterfaceName != sharedIf || beta.wep.Spec.InterfaceName == sharedIf {
		t.Fatalf("host interfaces: alpha %s, beta %s", alpha.wep.Spec.InterfaceName, beta.wep.Spec.InterfaceName)
	}
	for _, c := range []*collider{alpha, beta} {
		ping(t, e.node, c.addr)
		if err := e.check(conf, c.p); err != nil {
			t.Errorf("CHECK %s: %v", c.p.rt.ContainerID, err)
		}
	}
	// A repeated ADD of beta keeps its own name.
	if _, err := e.add(conf, beta.p); err != nil {
		t.Fatal(err)
	}
	if w := e.getWEP("default", beta.wep.Name); w.Spec.InterfaceName != beta.wep.Spec.InterfaceName {
		t.Errorf("repeated ADD moved beta to %s", w.Spec.InterfaceName)
	}
	ping(t, e.node, alpha.addr)

	// DEL of alpha leaves beta working, and the other way round.
	if err := e.del(conf, alpha.p); err != nil {
		t.Fatal(err)
	}
	ping(t, e.node, beta.addr)
	gamma := e.addCollider(conf, gammaID) // the upstream name is free again
	if gamma.wep.Spec.InterfaceName != sharedIf {
		t.Errorf("gamma got %s with %s free", gamma.wep.Spec.InterfaceName, sharedIf)
	}
	if err := e.del(conf, beta.p); err != nil {
		t.Fatal(err)
	}
	ping(t, e.node, gamma.addr)

	// delta's endpoint claims gamma's link, as the first release recorded
	// the second of two colliding pods; its namespace is gone. Its DEL must
	// leave gamma's link and route alone.
	delta := e.addCollider(conf, "default-web-delta")
	delta.wep.Spec.InterfaceName = sharedIf
	if _, err := e.c.Update(context.Background(), delta.wep); err != nil {
		t.Fatal(err)
	}
	testutil.DeleteNetNS(t, delta.p.ns)
	if err := e.del(conf, delta.p); err != nil {
		t.Fatal(err)
	}
	if _, err := testutil.Handle(t, e.node).LinkByName(sharedIf); err != nil {
		t.Fatalf("DEL of delta deleted gamma's host link: %v", err)
	}
	ping(t, e.node, gamma.addr)
	if err := e.check(conf, gamma.p); err != nil {
		t.Errorf("CHECK gamma after delta's DEL: %v", err)
	}
	if err := e.del(conf, gamma.p); err != nil {
		t.Fatal(err)
	}
	e.requireClean(t)
}

// TestVethNameCollisionConcurrent: colliding ADDs at the same time each
// end with their own host veth, all reachable (run with -count=20 under
// load: the loser of the race for the shared name must take its own).
func TestVethNameCollisionConcurrent(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("1.0.0", nil)
	ids := []string{alphaID, betaID, gammaID}
	pods := make([]*pod, len(ids))
	for i, id := range ids {
		pods[i] = e.newPod(id)
	}
	results := make([]types.Result, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.add(conf, pods[i])
		}()
	}
	wg.Wait()
	names := map[string]string{}
	for i, id := range ids {
		if errs[i] != nil {
			t.Fatalf("ADD %s: %v", id, errs[i])
		}
		w := e.wepOf(id)
		if other, dup := names[w.Spec.InterfaceName]; dup {
			t.Fatalf("%s and %s both claim %s", id, other, w.Spec.InterfaceName)
		}
		names[w.Spec.InterfaceName] = id
	}
	for i := range ids {
		ping(t, e.node, podAddr(t, results[i]).String())
	}
	for i := range ids {
		if err := e.del(conf, pods[i]); err != nil {
			t.Fatal(err)
		}
	}
	e.requireClean(t)
}
