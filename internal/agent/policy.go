package agent

import (
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/kv"
	"github.com/onecalico/calico/internal/policy"
	"github.com/onecalico/calico/internal/ruleset"
)

// The policy side of the datastore: every kind the policy calculation reads
// besides workload endpoints (which the WEP handler already watches; it is
// wrapped to feed the calculator too).
var policyKinds = []string{
	api.KindProfile, api.KindNetworkPolicy, api.KindGlobalNetworkPolicy, api.KindTier,
	api.KindNetworkSet, api.KindGlobalNetworkSet, api.KindHostEndpoint,
}

// policyPrefixes are the watched prefixes of policyKinds.
func policyPrefixes() []string {
	out := make([]string, len(policyKinds))
	for i, k := range policyKinds {
		out[i] = mustKind(k).ListPrefix("")
	}
	return out
}

// policyCalcLocked returns the agent's policy calculator, creating it on
// first use; a.mu is held.
func (a *Agent) policyCalcLocked() *policy.Calculator {
	if a.policy == nil {
		a.policy = policy.New(a.cfg.NodeName)
	}
	return a.policy
}

// policySnapshot is what the reconcile step calls: the whole desired
// ruleset of this node and what changed in it since the previous call.
// The Ruleset's chains and sets are shared with later calls: read only.
func (a *Agent) policySnapshot() (*ruleset.Ruleset, policy.Changes) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.policyCalcLocked()
	return c.Ruleset(), c.TakeChanges()
}

// withPolicy makes the WEP handler feed the policy calculator as well and
// adds one handler per policy kind.
func (a *Agent) withPolicy(hs []*syncHandler) []*syncHandler {
	wepKind := mustKind(api.KindWorkloadEndpoint)
	for _, h := range hs {
		if h.prefix == prefixWEPs {
			a.feedPolicy(h, wepKind)
		}
	}
	for _, k := range policyKinds {
		h := &syncHandler{a: a, prefix: mustKind(k).ListPrefix(""), noBGP: true,
			reset: func(*Model) {}, put: func(*Model, string, *kv.KV) error { return nil }, del: func(*Model, string) {},
			mark: func(*dirtySet, string) {}} // policy is not part of the model
		a.feedPolicy(h, mustKind(k))
		hs = append(hs, h)
	}
	return hs
}

// feedPolicy chains the calculator onto h's reset, put and del (which run
// under a.mu). The calculator is live state, not part of a staging model,
// so such a handler takes its snapshot pages whole under the lock
// (move = nil) instead of decoding them into a staging model unlocked.
func (a *Agent) feedPolicy(h *syncHandler, k api.KindInfo) {
	h.move = nil
	reset, put, del := h.reset, h.put, h.del
	h.reset = func(m *Model) {
		reset(m)
		a.policyCalcLocked().Reset(k.Kind)
	}
	h.put = func(m *Model, key string, item *kv.KV) error {
		if err := put(m, key, item); err != nil {
			return err
		}
		r, err := datastore.Decode(k, item)
		if err != nil {
			return err
		}
		// The key names the object (a delete only has the key).
		if _, ns, name, err := api.ParseKey(key); err == nil {
			om := r.GetObjectMeta()
			om.Namespace, om.Name = ns, name
		}
		c := a.policyCalcLocked()
		setPolicyInput(c, r)
		om := r.GetObjectMeta()
		for _, p := range c.ProblemsOf(k.Kind, om.Namespace, om.Name) {
			a.log.Warn("policy rule cannot be enforced", "component", "policy", "problem", p)
		}
		return nil
	}
	h.del = func(m *Model, key string) {
		del(m, key)
		if _, ns, name, err := api.ParseKey(key); err == nil {
			deletePolicyInput(a.policyCalcLocked(), k.Kind, ns, name)
		}
	}
}

func setPolicyInput(c *policy.Calculator, r api.Resource) {
	switch r := r.(type) {
	case *api.WorkloadEndpoint:
		c.SetWorkloadEndpoint(r)
	case *api.HostEndpoint:
		c.SetHostEndpoint(r)
	case *api.Profile:
		c.SetProfile(r)
	case *api.NetworkPolicy:
		c.SetNetworkPolicy(r)
	case *api.GlobalNetworkPolicy:
		c.SetGlobalNetworkPolicy(r)
	case *api.Tier:
		c.SetTier(r)
	case *api.NetworkSet:
		c.SetNetworkSet(r)
	case *api.GlobalNetworkSet:
		c.SetGlobalNetworkSet(r)
	}
}

func deletePolicyInput(c *policy.Calculator, kind, ns, name string) {
	switch kind {
	case api.KindWorkloadEndpoint:
		c.DeleteWorkloadEndpoint(ns, name)
	case api.KindHostEndpoint:
		c.DeleteHostEndpoint(name)
	case api.KindProfile:
		c.DeleteProfile(name)
	case api.KindNetworkPolicy:
		c.DeleteNetworkPolicy(ns, name)
	case api.KindGlobalNetworkPolicy:
		c.DeleteGlobalNetworkPolicy(name)
	case api.KindTier:
		c.DeleteTier(name)
	case api.KindNetworkSet:
		c.DeleteNetworkSet(ns, name)
	case api.KindGlobalNetworkSet:
		c.DeleteGlobalNetworkSet(name)
	}
}
