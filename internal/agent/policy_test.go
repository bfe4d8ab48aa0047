package agent

import (
	"context"
	"github.com/onecalico/calico/internal/datastore/memory"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/kv"
	"github.com/onecalico/calico/internal/policy"
	"github.com/onecalico/calico/internal/ruleset"
	"github.com/onecalico/calico/internal/testutil"
)

// TestPolicySnapshotFollowsTheDatastore runs the agent's sync handlers
// against a real etcd and checks that policySnapshot follows what is
// written: the local endpoint with its profile, a policy's chain appearing
// and leaving, a remote pod only adding set members, and every policy
// prefix counted as watched.
func TestPolicySnapshotFollowsTheDatastore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	e := testutil.StartEtcd(t)
	st, err := etcd.New(etcd.Config{Endpoints: []string{e.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	put := func(key, value string) {
		t.Helper()
		if _, err := st.Put(ctx, key, []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
	const res = "/calico/resources/v3/projectcalico.org/"
	put(res+"profiles/net1", `{"kind":"Profile","apiVersion":"projectcalico.org/v3","metadata":{"name":"net1"},"spec":{"ingress":[{"action":"Allow","source":{"selector":"has(net1)"},"destination":{}}],"egress":[{"action":"Allow","source":{},"destination":{}}],"labelsToApply":{"net1":""}}}`)
	put(res+"workloadendpoints/default/n1-cni-a-eth0", `{"kind":"WorkloadEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"n1-cni-a-eth0","namespace":"default","labels":{"projectcalico.org/namespace":"default","projectcalico.org/orchestrator":"cni"}},"spec":{"orchestrator":"cni","node":"n1","containerID":"a","endpoint":"eth0","ipNetworks":["10.65.0.1/32"],"profiles":["net1"],"interfaceName":"calia"}}`)

	a, err := New(Config{Store: st, NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, h := range a.handlers() {
		wg.Go(func() { _ = kv.Sync(ctx, a.store, h.prefix, h) })
	}
	for _, p := range policyPrefixes() {
		if !slices.Contains(a.watchedPrefixes(), p) {
			t.Errorf("%s is not a watched prefix", p)
		}
	}

	var rs *ruleset.Ruleset
	var ch policy.Changes
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var c policy.Changes
			rs, c = a.policySnapshot()
			ch = mergeChanges(ch, c)
			if ok() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; ruleset %+v, changes %+v", what, rs, ch)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("the local endpoint", func() bool {
		return len(rs.Endpoints) == 1 && slices.Equal(rs.Endpoints[0].IngressProfiles, []string{"ri/net1"})
	})
	if !ch.Full {
		t.Errorf("first changes are not Full: %+v", ch)
	}
	setID := rs.Chains["ri/net1"].Rules[0].Src.InSets[0]

	ch = policy.Changes{}
	put(res+"globalnetworkpolicies/deny-web", `{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"deny-web"},"spec":{"tier":"default","selector":"has(net1)","ingress":[{"action":"Deny","protocol":"TCP","source":{},"destination":{"ports":[80]}}],"types":["Ingress"]}}`)
	waitFor("the policy's chain", func() bool { return rs.Chains["pi/default/deny-web"] != nil })
	if !slices.Equal(ch.Chains, []string{"pi/default/deny-web"}) || !slices.Equal(ch.Endpoints, []string{"wep/default/n1-cni-a-eth0"}) {
		t.Errorf("policy add changes %+v", ch)
	}

	ch = policy.Changes{}
	put(res+"workloadendpoints/default/n2-cni-b-eth0", `{"kind":"WorkloadEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"n2-cni-b-eth0","namespace":"default"},"spec":{"orchestrator":"cni","node":"n2","ipNetworks":["10.65.1.1/32"],"profiles":["net1"],"interfaceName":"calib"}}`)
	waitFor("the remote pod's address in the set", func() bool { return len(rs.Sets[setID].Nets) == 2 })
	if len(ch.Endpoints)+len(ch.Chains)+len(ch.Sets) != 0 || len(ch.Members[setID].AddedNets) != 1 {
		t.Errorf("remote pod changes %+v", ch)
	}

	ch = policy.Changes{}
	if err := st.Delete(ctx, res+"globalnetworkpolicies/deny-web", 0); err != nil {
		t.Fatal(err)
	}
	waitFor("the policy's chain to go", func() bool { return rs.Chains["pi/default/deny-web"] == nil })
	if !slices.Equal(ch.ChainsRemoved, []string{"pi/default/deny-web"}) {
		t.Errorf("policy delete changes %+v", ch)
	}
}

// mergeChanges accumulates the lists of successive Changes (enough for the
// assertions above, which look at additions and removals).
func mergeChanges(a, b policy.Changes) policy.Changes {
	a.Full = a.Full || b.Full
	a.Endpoints = append(a.Endpoints, b.Endpoints...)
	a.Chains = append(a.Chains, b.Chains...)
	a.ChainsRemoved = append(a.ChainsRemoved, b.ChainsRemoved...)
	a.Sets = append(a.Sets, b.Sets...)
	for id, d := range b.Members {
		if a.Members == nil {
			a.Members = map[string]policy.SetDelta{}
		}
		x := a.Members[id]
		x.AddedNets = append(x.AddedNets, d.AddedNets...)
		x.RemovedNets = append(x.RemovedNets, d.RemovedNets...)
		a.Members[id] = x
	}
	return a
}

// The policy calculator is live state: a handler that feeds it must not
// decode snapshot pages into a staging model outside the lock (a paged
// WorkloadEndpoint list of more than one page once raced the reconcile
// loop: "concurrent map read and map write" in BenchmarkPolicyScale).
func TestPolicyFedHandlersTakePagesUnderTheLock(t *testing.T) {
	a, err := New(Config{Store: memory.New(), NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range a.handlers() {
		if h.move != nil && (h.prefix == prefixWEPs || slices.Contains(policyPrefixes(), h.prefix)) {
			t.Errorf("handler for %s feeds the policy calculator but stages pages unlocked", h.prefix)
		}
	}
}
