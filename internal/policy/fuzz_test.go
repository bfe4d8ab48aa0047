package policy

import (
	"encoding/json"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/ruleset"
)

// FuzzPolicy decodes arbitrary bytes as a GlobalNetworkPolicy, a
// NetworkPolicy and a Profile (as the daemon reads what the datastore holds,
// without validation), feeds them to a Calculator with a few endpoints and
// checks: no panic; the ruleset is closed (every chain an endpoint names and
// every set a rule names is present); evaluation never panics; removing the
// inputs again leaves exactly the ruleset from before.
func FuzzPolicy(f *testing.F) {
	for _, s := range []string{
		`{"metadata":{"name":"p"},"spec":{"selector":"all()","ingress":[{"action":"Allow","protocol":"TCP","source":{"selector":"app == 'b'","ports":["http",80,"1:2"]}}]}}`,
		`{"metadata":{"name":"p","namespace":"ns"},"spec":{"selector":"has(app)","egress":[{"action":"Deny","destination":{"nets":["10.0.0.0/8","fd00::/8"],"notNets":["10.1.0.0/16"],"namespaceSelector":"all()"}}]}}`,
		`{"metadata":{"name":"p"},"spec":{"types":["Egress"],"namespaceSelector":"team == 'x'","serviceAccountSelector":"all()","egress":[{"action":"Pass","source":{"serviceAccounts":{"names":["a"],"selector":"r == 'x'"}}}]}}`,
		`{"metadata":{"name":"p"},"spec":{"ingress":[{"action":"Log","protocol":"ICMP","icmp":{"type":8,"code":0},"notICMP":{"type":3}},{"action":"Allow","ipVersion":6,"notProtocol":17}],"labelsToApply":{"app":"b"}}}`,
		`{"metadata":{"name":"p"},"spec":{"preDNAT":true,"applyOnForward":true,"ingress":[{"action":"Deny","destination":{"notPorts":["http"],"notSelector":"x == 'y'"},"http":{"methods":["GET"]}}]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := New("n1")
		c.SetWorkloadEndpoint(wep(t, `{"metadata":{"name":"a","namespace":"ns","labels":{"app":"a"}},"spec":{"node":"n1","interfaceName":"calia","ipNetworks":["10.0.0.1/32","fd00::1/128"],"profiles":["p"],"ports":[{"name":"http","protocol":"TCP","port":8080}]}}`))
		c.SetWorkloadEndpoint(wep(t, `{"metadata":{"name":"b","namespace":"ns","labels":{"app":"b"}},"spec":{"node":"n2","interfaceName":"calib","ipNetworks":["10.0.0.2/32"],"serviceAccountName":"a","profiles":["p"],"ports":[{"name":"http","protocol":"TCP","port":8080}]}}`))
		c.SetHostEndpoint(hep(t, `{"metadata":{"name":"h","labels":{"app":"a"}},"spec":{"node":"n1","interfaceName":"eth0","expectedIPs":["192.168.0.1"]}}`))
		before := c.Ruleset()
		c.TakeChanges()

		g, n, p := api.NewGlobalNetworkPolicy(), api.NewNetworkPolicy(), api.NewProfile()
		okG := json.Unmarshal(data, g) == nil
		okN := json.Unmarshal(data, n) == nil
		okP := json.Unmarshal(data, p) == nil
		if okG {
			g.Default()
			c.SetGlobalNetworkPolicy(g)
		}
		if okN {
			n.Default()
			c.SetNetworkPolicy(n)
		}
		if okP {
			c.SetProfile(p)
		}
		rs := c.Ruleset()
		checkClosed(t, rs)
		for _, ep := range rs.Endpoints {
			for _, dir := range []ruleset.Direction{ruleset.Ingress, ruleset.Egress} {
				for _, pkt := range []Packet{tcp("10.0.0.2", "10.0.0.1", 8080), icmp("fd00::2", "fd00::1", 128, 0)} {
					Evaluate(rs, ep.ID, dir, pkt)
				}
			}
		}
		c.TakeChanges()
		if okG {
			c.DeleteGlobalNetworkPolicy(g.Name)
		}
		if okN {
			c.DeleteNetworkPolicy(n.Namespace, n.Name)
		}
		if okP {
			c.DeleteProfile(p.Name)
		}
		after := c.Ruleset()
		if okP && p.Name == "p" {
			return // the endpoints' own profile was replaced and is now gone
		}
		if !equalRulesets(before, after) {
			t.Fatalf("set then delete did not restore the ruleset\nbefore %+v\nafter  %+v", before, after)
		}
	})
}

func checkClosed(t *testing.T, rs *ruleset.Ruleset) {
	t.Helper()
	for _, ep := range rs.Endpoints {
		for id := range chainIDs(&ep) {
			if rs.Chains[id] == nil {
				t.Fatalf("endpoint %s uses chain %s, which is not in the ruleset", ep.ID, id)
			}
		}
	}
	for id, ch := range rs.Chains {
		for _, r := range ch.Rules {
			for _, e := range []ruleset.EntityMatch{r.Src, r.Dst} {
				ids := append(append(append([]string{}, e.InSets...), e.NotInSets...), e.NotNamedPortSets...)
				if e.NamedPortSet != "" {
					ids = append(ids, e.NamedPortSet)
				}
				for _, s := range ids {
					if rs.Sets[s] == nil {
						t.Fatalf("chain %s uses set %s, which is not in the ruleset", id, s)
					}
				}
			}
		}
	}
	for id, s := range rs.Sets {
		for _, n := range s.Nets {
			if n != n.Masked() {
				t.Fatalf("set %s has an unmasked prefix %s", id, n)
			}
		}
	}
}

func equalRulesets(a, b *ruleset.Ruleset) bool {
	return jsonOf(normalise(a)) == jsonOf(normalise(b))
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
