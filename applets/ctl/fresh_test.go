package ctl

import (
	"strings"
	"testing"
)

// A fresh datastore takes a file with a pool, a node, a BGP peer and a
// global policy in the default tier in one apply: the built-in tiers are
// created by the first write, so the policy's tier check must not refuse it.
func TestApplyMixedKindsToFreshDatastore(t *testing.T) {
	c := newCtlEnv(t)
	r := c.run("apply", "-f", "testdata/ctl/mixed-kinds.yaml")
	if r.rc != 0 || r.stdout != "Successfully applied 4 resource(s)\n" {
		t.Fatalf("apply:\n%s", r)
	}
	for _, key := range []string{
		resPrefix + "ippools/pool1",
		resPrefix + "nodes/node1",
		resPrefix + "bgppeers/rack1-tor",
		resPrefix + "globalnetworkpolicies/allow-ping",
		resPrefix + "tiers/default",
		resPrefix + "clusterinformations/default",
	} {
		if v := c.value(key); v == "" {
			t.Errorf("%s was not written", key)
		}
	}
	if v := c.value(resPrefix + "globalnetworkpolicies/allow-ping"); !strings.Contains(v, `"tier":"default"`) {
		t.Errorf("policy: %s", v)
	}
}
