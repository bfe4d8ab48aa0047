package policy

import (
	"slices"
	"testing"

	"github.com/onecalico/calico/internal/ruleset"
)

const (
	in  = ruleset.Ingress
	out = ruleset.Egress
)

// The seed 003 scenario: the profile the CNI plugin creates admits only
// endpoints of the same network; changing the rule admits another host;
// a policy takes precedence over the profile.
func TestSeed003ProfileIsolation(t *testing.T) {
	w := newWorld(t)
	w.profile(`{"metadata":{"name":"test-calico"},"spec":{"ingress":[{"action":"Allow","source":{"selector":"has(test-calico)"}}],
		"egress":[{"action":"Allow"}],"labelsToApply":{"test-calico":""}}}`)
	w.pod("n1", "default", "a", "10.1.240.64/32", "", "test-calico")
	w.pod("n2", "default", "b", "10.1.240.128/32", "", "test-calico")
	w.pod("n2", "default", "other", "10.1.240.129/32", "")
	a := "wep/default/a"
	w.check(a, in, icmp("10.1.240.128", "10.1.240.64", 8, 0), "Allow by Profile test-calico ingress rule 0")
	w.check(a, in, icmp("10.1.240.129", "10.1.240.64", 8, 0), "Deny: no profile allowed it (default deny)")
	w.check(a, in, icmp("192.168.56.12", "10.1.240.64", 8, 0), "Deny: no profile allowed it (default deny)")
	w.check(a, out, icmp("10.1.240.64", "192.168.56.12", 8, 0), "Allow by Profile test-calico egress rule 0")
	w.check("wep/default/b", in, icmp("10.1.240.64", "10.1.240.128", 8, 0), "no policy here: not a local endpoint")

	// The user removes the selector: the other machine gets in.
	w.profile(`{"metadata":{"name":"test-calico"},"spec":{"ingress":[{"action":"Allow"}],"egress":[{"action":"Allow"}],"labelsToApply":{"test-calico":""}}}`)
	w.check(a, in, icmp("192.168.56.12", "10.1.240.64", 8, 0), "Allow by Profile test-calico ingress rule 0")

	// A policy selecting the pod decides before the profile.
	w.gnp(`{"metadata":{"name":"deny-icmp"},"spec":{"selector":"has(test-calico)","ingress":[{"action":"Deny","protocol":"ICMP"}]}}`)
	w.check(a, in, icmp("10.1.240.128", "10.1.240.64", 8, 0), "Deny by GlobalNetworkPolicy deny-icmp (tier default) ingress rule 0")
	w.check(a, in, tcp("10.1.240.128", "10.1.240.64", 80), "Deny at the end of tier default (no policy in it allowed or passed the packet)")
}

func TestTierOrderPassAndDefaultAction(t *testing.T) {
	w := newWorld(t)
	w.pod("n1", "default", "a", "10.0.0.1/32", `{"app":"a"}`)
	w.tier(`{"metadata":{"name":"security"},"spec":{"order":100}}`)
	w.tier(`{"metadata":{"name":"platform"},"spec":{"order":200,"defaultAction":"Pass"}}`)
	w.tier(`{"metadata":{"name":"last"},"spec":{}}`)
	w.tier(`{"metadata":{"name":"also-last"},"spec":{}}`)
	w.tier(`{"metadata":{"name":"default"},"spec":{"order":1000000}}`)
	w.gnp(`{"metadata":{"name":"security.pass-web"},"spec":{"tier":"security","selector":"app == 'a'",
		"ingress":[{"action":"Pass","protocol":"TCP","destination":{"ports":[80]}},{"action":"Deny","protocol":"TCP","destination":{"ports":[22]}}]}}`)
	w.gnp(`{"metadata":{"name":"platform.nothing"},"spec":{"tier":"platform","selector":"app == 'a'","ingress":[{"action":"Deny","protocol":"UDP"}]}}`)
	w.gnp(`{"metadata":{"name":"allow-web"},"spec":{"selector":"app == 'a'","ingress":[{"action":"Allow","protocol":"TCP","destination":{"ports":[80]}}]}}`)
	w.gnp(`{"metadata":{"name":"last.x"},"spec":{"tier":"last","selector":"app == 'a'","ingress":[{"action":"Allow"}]}}`)
	w.gnp(`{"metadata":{"name":"also-last.x"},"spec":{"tier":"also-last","selector":"app == 'a'","ingress":[{"action":"Allow"}]}}`)

	ep, _ := FindEndpoint(w.c.Ruleset(), "wep/default/a")
	var names []string
	for _, tr := range ep.Ingress {
		names = append(names, tr.Name+":"+tr.EndOfTier.String())
	}
	want := []string{"security:Deny", "platform:Pass", "default:Deny", "also-last:Deny", "last:Deny"}
	if !slices.Equal(names, want) {
		t.Fatalf("tiers = %v, want %v (order, nil last, then name)", names, want)
	}
	// Pass in security, nothing in platform (defaultAction Pass), allowed in default.
	w.check("wep/default/a", in, tcp("10.0.0.9", "10.0.0.1", 80), "Allow by GlobalNetworkPolicy allow-web (tier default) ingress rule 0")
	v := Evaluate(w.c.Ruleset(), "wep/default/a", in, tcp("10.0.0.9", "10.0.0.1", 80))
	if !slices.Equal(v.Passed, []string{"security", "platform"}) {
		t.Errorf("passed = %v", v.Passed)
	}
	w.check("wep/default/a", in, tcp("10.0.0.9", "10.0.0.1", 22), "Deny by GlobalNetworkPolicy security.pass-web (tier security) ingress rule 1")
	w.check("wep/default/a", in, tcp("10.0.0.9", "10.0.0.1", 443), "Deny at the end of tier security (no policy in it allowed or passed the packet)")
	w.check("wep/default/a", in, udp("10.0.0.9", "10.0.0.1", 53), "Deny at the end of tier security (no policy in it allowed or passed the packet)")
	// Egress: no policy has egress, so no tier applies and the (absent) profiles deny.
	if len(ep.Egress) != 0 {
		t.Errorf("egress tiers = %+v, want none", ep.Egress)
	}
}

func TestTierEnteredOnlyWhenSelected(t *testing.T) {
	w := newWorld(t)
	w.profile(`{"metadata":{"name":"open"},"spec":{"ingress":[{"action":"Allow"}],"egress":[{"action":"Allow"}]}}`)
	w.pod("n1", "default", "a", "10.0.0.1/32", `{"app":"a"}`, "open")
	w.tier(`{"metadata":{"name":"security"},"spec":{"order":100}}`)
	w.gnp(`{"metadata":{"name":"security.other"},"spec":{"tier":"security","selector":"app == 'b'","ingress":[{"action":"Deny"}]}}`)
	w.check("wep/default/a", in, tcp("10.0.0.9", "10.0.0.1", 80), "Allow by Profile open ingress rule 0")
	// An egress-only policy selecting it makes the tier apply to egress only.
	w.gnp(`{"metadata":{"name":"security.egress"},"spec":{"tier":"security","selector":"app == 'a'","egress":[{"action":"Deny","protocol":"UDP"}]}}`)
	w.check("wep/default/a", in, tcp("10.0.0.9", "10.0.0.1", 80), "Allow by Profile open ingress rule 0")
	w.check("wep/default/a", out, tcp("10.0.0.1", "10.0.0.9", 80), "Deny at the end of tier security (no policy in it allowed or passed the packet)")
	w.check("wep/default/a", out, udp("10.0.0.1", "10.0.0.9", 53), "Deny by GlobalNetworkPolicy security.egress (tier security) egress rule 0")
}

func TestPolicyOrder(t *testing.T) {
	w := newWorld(t)
	w.pod("n1", "default", "a", "10.0.0.1/32", `{"app":"a"}`)
	w.gnp(`{"metadata":{"name":"b-allow"},"spec":{"order":10,"selector":"app == 'a'","ingress":[{"action":"Allow"}]}}`)
	w.gnp(`{"metadata":{"name":"a-deny"},"spec":{"order":10,"selector":"app == 'a'","ingress":[{"action":"Deny"}]}}`)
	w.gnp(`{"metadata":{"name":"first"},"spec":{"order":5,"selector":"app == 'a'","ingress":[{"action":"Allow","protocol":"UDP"}]}}`)
	w.gnp(`{"metadata":{"name":"no-order"},"spec":{"selector":"app == 'a'","ingress":[{"action":"Allow"}]}}`)
	w.check("wep/default/a", in, udp("10.0.0.9", "10.0.0.1", 53), "Allow by GlobalNetworkPolicy first (tier default) ingress rule 0")
	// Same order: by name, so a-deny before b-allow.
	w.check("wep/default/a", in, tcp("10.0.0.9", "10.0.0.1", 80), "Deny by GlobalNetworkPolicy a-deny (tier default) ingress rule 0")
	ep, _ := FindEndpoint(w.c.Ruleset(), "wep/default/a")
	want := []string{"pi/default/first", "pi/default/a-deny", "pi/default/b-allow", "pi/default/no-order"}
	if !slices.Equal(ep.Ingress[0].Chains, want) {
		t.Errorf("chains = %v, want %v", ep.Ingress[0].Chains, want)
	}
}

func TestTypes(t *testing.T) {
	w := newWorld(t)
	w.profile(`{"metadata":{"name":"open"},"spec":{"ingress":[{"action":"Allow"}],"egress":[{"action":"Allow"}]}}`)
	w.pod("n1", "default", "a", "10.0.0.1/32", `{"app":"a"}`, "open")
	a := "wep/default/a"
	// No rules at all: types default to Ingress; ingress is now default-deny.
	w.gnp(`{"metadata":{"name":"isolate"},"spec":{"selector":"app == 'a'"}}`)
	w.check(a, in, tcp("10.0.0.9", "10.0.0.1", 80), "Deny at the end of tier default (no policy in it allowed or passed the packet)")
	w.check(a, out, tcp("10.0.0.1", "10.0.0.9", 80), "Allow by Profile open egress rule 0")
	// Only egress rules: Egress only.
	w.gnp(`{"metadata":{"name":"isolate"},"spec":{"selector":"app == 'a'","egress":[{"action":"Deny","protocol":"UDP"}]}}`)
	w.check(a, in, tcp("10.0.0.9", "10.0.0.1", 80), "Allow by Profile open ingress rule 0")
	w.check(a, out, tcp("10.0.0.1", "10.0.0.9", 80), "Deny at the end of tier default (no policy in it allowed or passed the packet)")
	// Explicit types without rules: both directions isolated.
	w.gnp(`{"metadata":{"name":"isolate"},"spec":{"selector":"app == 'a'","types":["Ingress","Egress"]}}`)
	w.check(a, in, tcp("10.0.0.9", "10.0.0.1", 80), "Deny at the end of tier default (no policy in it allowed or passed the packet)")
	w.check(a, out, tcp("10.0.0.1", "10.0.0.9", 80), "Deny at the end of tier default (no policy in it allowed or passed the packet)")
}

func TestLogContinues(t *testing.T) {
	w := newWorld(t)
	w.pod("n1", "default", "a", "10.0.0.1/32", `{"app":"a"}`)
	w.gnp(`{"metadata":{"name":"p"},"spec":{"selector":"app == 'a'","ingress":[{"action":"Log"},{"action":"Allow"}]}}`)
	v := Evaluate(w.c.Ruleset(), "wep/default/a", in, tcp("10.0.0.9", "10.0.0.1", 80))
	if v.Action != ruleset.Allow || v.Rule.Index != 1 || len(v.Logged) != 1 || v.Logged[0].Index != 0 {
		t.Errorf("verdict %+v", v)
	}
}

func TestProfilePassGoesToNextProfile(t *testing.T) {
	w := newWorld(t)
	w.profile(`{"metadata":{"name":"p1"},"spec":{"ingress":[{"action":"Pass"},{"action":"Deny"}]}}`)
	w.profile(`{"metadata":{"name":"p2"},"spec":{"ingress":[{"action":"Allow"}]}}`)
	w.pod("n1", "default", "a", "10.0.0.1/32", "", "p1", "missing", "p2")
	w.check("wep/default/a", in, tcp("10.0.0.9", "10.0.0.1", 80), "Allow by Profile p2 ingress rule 0")
	ep, _ := FindEndpoint(w.c.Ruleset(), "wep/default/a")
	if !slices.Equal(ep.IngressProfiles, []string{"ri/p1", "ri/p2"}) {
		t.Errorf("profiles %v: a missing profile is left out", ep.IngressProfiles)
	}
	// The built-in default-allow profile needs no resource.
	w.pod("n1", "default", "b", "10.0.0.2/32", "", "projectcalico-default-allow")
	w.check("wep/default/b", in, tcp("10.0.0.9", "10.0.0.2", 80), "Allow by Profile projectcalico-default-allow ingress rule 0")
}

// A policy whose tier has no resource still applies, as upstream, its tier
// after every existing tier (even one without an order) and denying at
// its end.
func TestMissingTierSortsLast(t *testing.T) {
	w := newWorld(t)
	w.pod("n1", "default", "a", "10.0.0.1/32", `{"app":"a"}`)
	w.tier(`{"metadata":{"name":"zz"},"spec":{}}`)
	w.gnp(`{"metadata":{"name":"aa.p"},"spec":{"tier":"aa","selector":"app == 'a'","ingress":[{"action":"Pass","protocol":"UDP"}]}}`)
	w.gnp(`{"metadata":{"name":"zz.p"},"spec":{"tier":"zz","selector":"app == 'a'","ingress":[{"action":"Pass"}]}}`)
	ep, _ := FindEndpoint(w.c.Ruleset(), "wep/default/a")
	if len(ep.Ingress) != 2 || ep.Ingress[0].Name != "zz" || ep.Ingress[1].Name != "aa" || ep.Ingress[1].EndOfTier != ruleset.Deny {
		t.Fatalf("tiers %+v", ep.Ingress)
	}
	w.check("wep/default/a", in, tcp("10.0.0.9", "10.0.0.1", 80), "Deny at the end of tier aa (no policy in it allowed or passed the packet)")
	w.tier(`{"metadata":{"name":"aa"},"spec":{"order":1,"defaultAction":"Pass"}}`)
	ep, _ = FindEndpoint(w.c.Ruleset(), "wep/default/a")
	if ep.Ingress[0].Name != "aa" || ep.Ingress[0].EndOfTier != ruleset.Pass {
		t.Fatalf("after creating the tier: %+v", ep.Ingress)
	}
}

func TestProblemsAreReported(t *testing.T) {
	w := newWorld(t)
	w.np(`{"metadata":{"name":"p","namespace":"ns"},"spec":{"ingress":[{"action":"Allow","http":{"methods":["GET"]}},{"action":"Allow","source":{"selector":"a =="}}]}}`)
	if got := w.c.ProblemsOf("NetworkPolicy", "ns", "p"); len(got) != 2 {
		t.Errorf("problems %q", got)
	}
	w.np(`{"metadata":{"name":"p","namespace":"ns"},"spec":{"ingress":[{"action":"Allow"}]}}`)
	if got := w.c.ProblemsOf("NetworkPolicy", "ns", "p"); len(got) != 0 {
		t.Errorf("problems after the fix %q", got)
	}
}
