package policy

import (
	"testing"

	"github.com/onecalico/calico/internal/ruleset"
)

// TestEvaluateStage: untracked and preDNAT tiers decide only by a rule
// (a Pass or an undecided tier goes on, nothing is dropped at their end),
// forward tiers end like normal policy without profiles; a host endpoint
// without policy of a stage lets the packet through.
func TestEvaluateStage(t *testing.T) {
	w := newWorld(t)
	w.c.SetHostEndpoint(hep(t, `{"metadata":{"name":"h1","labels":{"host":"h1"}},"spec":{"node":"n1","interfaceName":"eth0"}}`))
	w.c.SetHostEndpoint(hep(t, `{"metadata":{"name":"h2","labels":{"host":"h2"}},"spec":{"node":"n1","interfaceName":"eth1"}}`))
	w.tier(`{"metadata":{"name":"first"},"spec":{"order":10}}`)
	w.gnp(`{"metadata":{"name":"first.pass"},"spec":{"tier":"first","selector":"host == 'h1'","doNotTrack":true,"applyOnForward":true,
		"types":["Ingress"],"ingress":[{"action":"Pass","protocol":"TCP","destination":{"ports":[22]}},{"action":"Deny","protocol":"TCP","destination":{"ports":[23]}}]}}`)
	w.gnp(`{"metadata":{"name":"untracked"},"spec":{"selector":"host == 'h1'","doNotTrack":true,"applyOnForward":true,
		"types":["Ingress"],"ingress":[{"action":"Allow","protocol":"TCP","destination":{"ports":[22]}}]}}`)
	w.gnp(`{"metadata":{"name":"prednat"},"spec":{"selector":"host == 'h1'","preDNAT":true,"applyOnForward":true,
		"types":["Ingress"],"ingress":[{"action":"Deny","protocol":"TCP","destination":{"ports":[80]}}]}}`)
	w.gnp(`{"metadata":{"name":"fwd"},"spec":{"selector":"host == 'h1'","applyOnForward":true,
		"types":["Ingress"],"ingress":[{"action":"Allow","protocol":"UDP"}]}}`)
	rs := w.c.Ruleset()
	for _, c := range []struct {
		ep    string
		stage Stage
		p     Packet
		want  string
	}{
		{"hep/h1", Untracked, tcp("10.0.0.1", "10.0.0.2", 22), "Allow by GlobalNetworkPolicy untracked (tier default) ingress rule 0"},
		{"hep/h1", Untracked, tcp("10.0.0.1", "10.0.0.2", 23), "Deny by GlobalNetworkPolicy first.pass (tier first) ingress rule 1"},
		{"hep/h1", Untracked, tcp("10.0.0.1", "10.0.0.2", 80), "no verdict: no rule decided; the packet goes on"},
		{"hep/h1", PreDNAT, tcp("10.0.0.1", "10.0.0.2", 80), "Deny by GlobalNetworkPolicy prednat (tier default) ingress rule 0"},
		{"hep/h1", PreDNAT, tcp("10.0.0.1", "10.0.0.2", 81), "no verdict: no rule decided; the packet goes on"},
		{"hep/h1", Forward, udp("10.0.0.1", "10.0.0.2", 53), "Allow by GlobalNetworkPolicy fwd (tier default) ingress rule 0"},
		{"hep/h1", Forward, tcp("10.0.0.1", "10.0.0.2", 53), "Deny at the end of tier default (no policy in it allowed or passed the packet)"},
		{"hep/h2", Forward, tcp("10.0.0.1", "10.0.0.2", 53), "no verdict: no policy of this kind applies"},
		{"hep/h1", Untracked, icmp("10.0.0.1", "10.0.0.2", 8, 0), "no verdict: no rule decided; the packet goes on"},
	} {
		v := EvaluateStage(rs, c.ep, c.stage, ruleset.Ingress, c.p)
		if got := v.String(); got != c.want {
			t.Errorf("%s %s %+v: %s, want %s", c.ep, c.stage, c.p, got, c.want)
		}
	}
	// Untracked egress of h1 has no policy.
	if v := EvaluateStage(rs, "hep/h1", Untracked, ruleset.Egress, tcp("10.0.0.2", "10.0.0.1", 22)); v.Reason != NoPolicy {
		t.Errorf("untracked egress: %s", v.String())
	}
}
