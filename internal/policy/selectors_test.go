package policy

import (
	"testing"

	"github.com/onecalico/calico/internal/api"
)

// TestPolicySelector pins how a policy's selector is built, as upstream's
// syncer does: namespace scope for NetworkPolicy, pcns./pcsa. prefixes,
// and all() meaning "namespaced" / "has a service account" only where
// upstream rewrites it (GlobalNetworkPolicy).
func TestPolicySelector(t *testing.T) {
	ns1 := map[string]string{"projectcalico.org/namespace": "ns1", "app": "a"}
	ns2 := map[string]string{"projectcalico.org/namespace": "ns2", "app": "a"}
	host := map[string]string{"app": "a"}
	withSA := map[string]string{"projectcalico.org/namespace": "ns1", "app": "a", "pcsa.role": "x", "projectcalico.org/serviceaccount": "s"}
	cases := []struct {
		name         string
		sel, ns      string
		global       bool
		nsSel, saSel string
		labels       map[string]string
		want         bool
	}{
		{"np own namespace", "app == 'a'", "ns1", false, "", "", ns1, true},
		{"np other namespace", "app == 'a'", "ns1", false, "", "", ns2, false},
		{"np empty selector", "", "ns1", false, "", "", ns1, true},
		{"np sa selector", "", "ns1", false, "", "role == 'x'", withSA, true},
		{"np sa selector miss", "", "ns1", false, "", "role == 'x'", ns1, false},
		{"np sa all() is not rewritten", "", "ns1", false, "", "all()", ns1, true},
		{"gnp sa all() needs a service account", "", "", true, "", "all()", ns1, false},
		{"gnp sa all() with one", "", "", true, "", "all()", withSA, true},
		{"gnp namespaceSelector all() excludes hosts", "has(app)", "", true, "all()", "", host, false},
		{"gnp namespaceSelector all() namespaced", "has(app)", "", true, "all()", "", ns1, true},
		{"gnp no selector", "", "", true, "", "", host, true},
	}
	for _, c := range cases {
		sel, err := policySelector(c.sel, c.ns, c.global, c.nsSel, c.saSel)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := sel.Evaluate(c.labels); got != c.want {
			t.Errorf("%s: %s on %v = %v, want %v", c.name, sel, c.labels, got, c.want)
		}
	}
}

// TestEntitySelector pins the rule side selector: scoped to the policy's
// namespace as soon as any selector field is used.
func TestEntitySelector(t *testing.T) {
	for _, c := range []struct {
		er   api.EntityRule
		ns   string
		want string
	}{
		{api.EntityRule{}, "ns1", ""},
		{api.EntityRule{Nets: []string{"10.0.0.0/8"}}, "ns1", ""},
		{api.EntityRule{Selector: "a == 'b'"}, "", "a == 'b'"},
		{api.EntityRule{Selector: "a == 'b'"}, "ns1", `(projectcalico.org/namespace == "ns1") && (a == 'b')`},
		{api.EntityRule{NotSelector: "a == 'b'"}, "ns1", `projectcalico.org/namespace == "ns1"`},
		{api.EntityRule{NamespaceSelector: "t == 'x'"}, "ns1", `pcns.t == "x"`},
		{api.EntityRule{NamespaceSelector: "all()", Selector: "has(a)"}, "", `(has(projectcalico.org/namespace)) && (has(a))`},
		{api.EntityRule{ServiceAccounts: &api.ServiceAccountMatch{Names: []string{"s1", "s2"}, Selector: "r == 'x'"}}, "",
			`(pcsa.r == "x") && (projectcalico.org/serviceaccount in {"s1", "s2"})`},
		{api.EntityRule{ServiceAccounts: &api.ServiceAccountMatch{Names: []string{"s1"}}, Selector: "has(a)"}, "ns1",
			`(projectcalico.org/namespace == "ns1") && ((projectcalico.org/serviceaccount in {"s1"}) && (has(a)))`},
	} {
		if got := entitySelector(&c.er, c.ns); got != c.want {
			t.Errorf("%+v in %q: %s, want %s", c.er, c.ns, got, c.want)
		}
	}
}

func TestMissingActionIsAllow(t *testing.T) {
	w := newWorld(t)
	w.pod("n1", "default", "a", "10.0.0.1/32", `{"app":"a"}`)
	g := gnp(t, `{"metadata":{"name":"p"},"spec":{"selector":"app == 'a'","ingress":[{"action":""}]}}`)
	w.c.SetGlobalNetworkPolicy(g)
	w.check("wep/default/a", in, tcp("10.0.0.9", "10.0.0.1", 80), "Allow by GlobalNetworkPolicy p (tier default) ingress rule 0")
}
