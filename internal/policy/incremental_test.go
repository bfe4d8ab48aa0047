package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/onecalico/calico/internal/ruleset"
)

// inputs is the current state of the world as JSON documents by key, so a
// fresh Calculator can be built from it.
type inputs map[string]func(c *Calculator)

// randomOp changes one input at random and records it in in.
func randomOp(t *testing.T, r *rand.Rand, c *Calculator, in inputs) string {
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	sels := []string{"app == 'a'", "app == 'b'", "has(env)", "env == 'x' && app != 'c'", "all()", "team == 'blue'"}
	switch r.IntN(11) {
	case 9: // a host endpoint
		name := pick("h1", "h2")
		key := "hep/" + name
		if r.IntN(4) == 0 {
			delete(in, key)
			c.DeleteHostEndpoint(name)
			return "delete " + key
		}
		h := hep(t, fmt.Sprintf(`{"metadata":{"name":%q,"labels":{"app":%q}},"spec":{"node":%q,"interfaceName":%q,"expectedIPs":[%q],"profiles":[%q],
			"ports":[{"name":"http","protocol":"TCP","port":80}]}}`, name, pick("a", "b"), pick("n1", "n2"), pick("eth0", "*"), pick("192.168.0.1", "10.0.1.9"), pick("prof1", "projectcalico-default-allow")))
		in[key] = func(c *Calculator) { c.SetHostEndpoint(h) }
		c.SetHostEndpoint(h)
		return "set " + key
	case 10: // a host-endpoint policy kind
		key := "gnp/host"
		if r.IntN(4) == 0 {
			delete(in, key)
			c.DeleteGlobalNetworkPolicy("host")
			return "delete " + key
		}
		flags := pick(`"preDNAT":true,"applyOnForward":true`, `"doNotTrack":true,"applyOnForward":true`, `"applyOnForward":true`, `"applyOnForward":false`)
		g := gnp(t, fmt.Sprintf(`{"metadata":{"name":"host"},"spec":{"selector":%q,%s,"ingress":[{"action":"Deny","protocol":"TCP","destination":{"ports":["http"]}}]}}`, pick(sels...), flags))
		in[key] = func(c *Calculator) { c.SetGlobalNetworkPolicy(g) }
		c.SetGlobalNetworkPolicy(g)
		return "set " + key
	case 0, 1, 2: // a pod, local or remote, added, changed or deleted
		name := pick("p1", "p2", "p3", "p4", "p5", "p6")
		ns := pick("ns1", "ns2")
		key := "wep/" + ns + "/" + name
		if r.IntN(5) == 0 {
			delete(in, key)
			c.DeleteWorkloadEndpoint(ns, name)
			return "delete " + key
		}
		js := fmt.Sprintf(`{"metadata":{"name":%q,"namespace":%q,"labels":{"app":%q,"env":%q}},"spec":{"node":%q,"interfaceName":"cali%s",
			"ipNetworks":["10.0.%d.%d/32"],"profiles":[%q,"kns.%s"],"ports":[{"name":"http","protocol":"TCP","port":%d}]}}`,
			name, ns, pick("a", "b", "c"), pick("x", "y"), pick("n1", "n2"), name, r.IntN(2), 1+r.IntN(6), pick("prof1", "prof2"), ns, 8000+r.IntN(3))
		w := wep(t, js)
		in[key] = func(c *Calculator) { c.SetWorkloadEndpoint(w) }
		c.SetWorkloadEndpoint(w)
		return "set " + key
	case 3: // a profile's labels or rules
		name := pick("prof1", "prof2", "kns.ns1", "kns.ns2")
		key := "profile/" + name
		if r.IntN(4) == 0 {
			delete(in, key)
			c.DeleteProfile(name)
			return "delete " + key
		}
		js := fmt.Sprintf(`{"metadata":{"name":%q},"spec":{"labelsToApply":{%q:%q},"ingress":[{"action":%q,"source":{"selector":%q}}],"egress":[{"action":"Allow"}]}}`,
			name, pick("team", "pcns.team", "env"), pick("blue", "red", "x"), pick("Allow", "Deny", "Pass"), pick(sels...))
		p := prof(t, js)
		in[key] = func(c *Calculator) { c.SetProfile(p) }
		c.SetProfile(p)
		return "set " + key
	case 4, 5: // a global policy
		name := pick("g1", "g2", "g3", "t1.g4")
		key := "gnp/" + name
		if r.IntN(5) == 0 {
			delete(in, key)
			c.DeleteGlobalNetworkPolicy(name)
			return "delete " + key
		}
		tierName := "default"
		if name == "t1.g4" {
			tierName = "t1"
		}
		js := fmt.Sprintf(`{"metadata":{"name":%q},"spec":{"tier":%q,"order":%d,"selector":%q,"ingress":[
			{"action":%q,"protocol":"TCP","source":{"selector":%q},"destination":{"ports":[%s]}},
			{"action":"Deny","source":{"nets":[%q],"notSelector":%q}}],
			"egress":[{"action":"Allow","destination":{"namespaceSelector":%q}}]}}`,
			name, tierName, r.IntN(3), pick(sels...), pick("Allow", "Deny", "Pass", "Log"), pick(sels...),
			pick(`80`, `"http"`, `"http", 22`, `"1:100"`), pick("10.0.0.0/24", "10.0.1.0/24", "fd00::/64"), pick(sels...), pick(sels...))
		p := gnp(t, js)
		in[key] = func(c *Calculator) { c.SetGlobalNetworkPolicy(p) }
		c.SetGlobalNetworkPolicy(p)
		return "set " + key
	case 6: // a namespaced policy
		ns := pick("ns1", "ns2")
		key := "np/" + ns + "/n"
		if r.IntN(4) == 0 {
			delete(in, key)
			c.DeleteNetworkPolicy(ns, "n")
			return "delete " + key
		}
		js := fmt.Sprintf(`{"metadata":{"name":"n","namespace":%q},"spec":{"selector":%q,"types":["Ingress","Egress"],
			"ingress":[{"action":"Allow","protocol":"TCP","source":{"selector":%q},"destination":{"notPorts":["http"]}}]}}`, ns, pick(sels...), pick(sels...))
		p := np(t, js)
		in[key] = func(c *Calculator) { c.SetNetworkPolicy(p) }
		c.SetNetworkPolicy(p)
		return "set " + key
	case 7: // the tier
		key := "tier/t1"
		if r.IntN(3) == 0 {
			delete(in, key)
			c.DeleteTier("t1")
			return "delete " + key
		}
		tr := tier(t, fmt.Sprintf(`{"metadata":{"name":"t1"},"spec":{"order":%d,"defaultAction":%q}}`, r.IntN(3)*1000000, pick("Deny", "Pass")))
		in[key] = func(c *Calculator) { c.SetTier(tr) }
		c.SetTier(tr)
		return "set " + key
	default: // a network set
		key := "netset/ns1/s"
		if r.IntN(3) == 0 {
			delete(in, key)
			c.DeleteNetworkSet("ns1", "s")
			return "delete " + key
		}
		n := netset(t, fmt.Sprintf(`{"metadata":{"name":"s","namespace":"ns1","labels":{"app":%q}},"spec":{"nets":[%q]}}`,
			pick("a", "b"), pick("192.168.0.0/16", "10.0.1.0/24")))
		in[key] = func(c *Calculator) { c.SetNetworkSet(n) }
		c.SetNetworkSet(n)
		return "set " + key
	}
}

// applyChanges brings a copy of an earlier Ruleset up to date with ch,
// taking new and changed items from full, as an applier would.
func applyChanges(t *testing.T, old, full *ruleset.Ruleset, ch Changes) *ruleset.Ruleset {
	if ch.Full {
		return full
	}
	eps := map[string]ruleset.Endpoint{}
	for _, e := range old.Endpoints {
		eps[e.ID] = e
	}
	for _, id := range ch.EndpointsRemoved {
		delete(eps, id)
	}
	for _, id := range ch.Endpoints {
		e, ok := FindEndpoint(full, id)
		if !ok {
			t.Fatalf("changed endpoint %s is not in the ruleset", id)
		}
		eps[id] = *e
	}
	out := &ruleset.Ruleset{Chains: map[string]*ruleset.Chain{}, Sets: map[string]*ruleset.Set{}}
	for _, id := range slices.Sorted(mapKeys(eps)) {
		out.Endpoints = append(out.Endpoints, eps[id])
	}
	for id, c := range old.Chains {
		out.Chains[id] = c
	}
	for _, id := range ch.ChainsRemoved {
		delete(out.Chains, id)
	}
	for _, id := range ch.Chains {
		out.Chains[id] = full.Chains[id]
	}
	for id, s := range old.Sets {
		out.Sets[id] = s
	}
	for _, id := range ch.SetsRemoved {
		delete(out.Sets, id)
	}
	for _, id := range ch.Sets {
		out.Sets[id] = full.Sets[id]
	}
	for id, d := range ch.Members {
		s := *out.Sets[id]
		s.Nets = slices.DeleteFunc(slices.Clone(s.Nets), func(n netip.Prefix) bool { return slices.Contains(d.RemovedNets, n) })
		s.Nets = append(s.Nets, d.AddedNets...)
		slices.SortFunc(s.Nets, comparePrefix)
		s.Members = slices.DeleteFunc(slices.Clone(s.Members), func(m ruleset.NamedPortMember) bool { return slices.Contains(d.Removed, m) })
		s.Members = append(s.Members, d.Added...)
		slices.SortFunc(s.Members, compareMember)
		out.Sets[id] = &s
	}
	return out
}

// normalise makes empty and nil slices compare equal.
func normalise(rs *ruleset.Ruleset) *ruleset.Ruleset {
	c := *rs
	c.Sets = map[string]*ruleset.Set{}
	for id, s := range rs.Sets {
		x := *s
		if len(x.Nets) == 0 {
			x.Nets = nil
		}
		if len(x.Members) == 0 {
			x.Members = nil
		}
		c.Sets[id] = &x
	}
	if len(c.Endpoints) == 0 {
		c.Endpoints = nil
	}
	return &c
}

// TestIncrementalMatchesFresh applies random changes one by one and checks,
// after each, that the incremental Ruleset equals one computed from
// scratch, and that the reported Changes turn the previous Ruleset into the
// new one.
func TestIncrementalMatchesFresh(t *testing.T) {
	var stats [4]int
	for seed := uint64(1); seed <= 20; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		c := New("n1")
		in := inputs{}
		prev := c.Ruleset()
		c.TakeChanges()
		var log []string
		for step := 0; step < 150; step++ {
			log = append(log, randomOp(t, r, c, in))
			got := c.Ruleset()
			fresh := New("n1")
			for _, k := range slices.Sorted(mapKeys(in)) {
				in[k](fresh)
			}
			want := fresh.Ruleset()
			if !reflect.DeepEqual(normalise(got), normalise(want)) {
				t.Fatalf("seed %d step %d: incremental ruleset differs from a fresh one\nops: %v\ngot  %+v\nwant %+v", seed, step, log, got, want)
			}
			ch := c.TakeChanges()
			applied := applyChanges(t, prev, got, ch)
			if !reflect.DeepEqual(normalise(applied), normalise(got)) {
				t.Fatalf("seed %d step %d: the changes %+v do not turn the previous ruleset into the new one\nops: %v\napplied %+v\nwant    %+v",
					seed, step, ch, log, applied, got)
			}
			prev = got
			stats[0] += len(ch.Endpoints) + len(ch.EndpointsRemoved)
			stats[1] += len(ch.Chains) + len(ch.ChainsRemoved)
			stats[2] += len(ch.Sets) + len(ch.SetsRemoved)
			stats[3] += len(ch.Members)
		}
	}
	// The random walk must exercise every kind of change.
	for i, n := range stats {
		if n == 0 {
			t.Errorf("no change of kind %d (endpoints, chains, sets, members) in the whole walk", i)
		}
	}
	t.Logf("changes seen: endpoints %d, chains %d, sets %d, member deltas %d", stats[0], stats[1], stats[2], stats[3])
}

// TestChangesAreMinimal: a remote pod appearing only adds set members; a
// label change only moves them; a policy edit changes only its chain.
func TestChangesAreMinimal(t *testing.T) {
	w := newWorld(t)
	w.pod("n1", "default", "a", "10.0.0.1/32", `{"app":"a"}`)
	w.gnp(`{"metadata":{"name":"p"},"spec":{"selector":"app == 'a'","ingress":[{"action":"Allow","source":{"selector":"role == 'client'"}}]}}`)
	w.gnp(`{"metadata":{"name":"q"},"spec":{"selector":"app == 'a'","ingress":[{"action":"Allow","protocol":"UDP"}]}}`)
	if ch := w.c.TakeChanges(); !ch.Full {
		t.Fatalf("first changes not Full: %+v", ch)
	}
	setID := w.c.Ruleset().Chains["pi/default/p"].Rules[0].Src.InSets[0]

	w.pod("n2", "default", "c", "10.0.5.5/32", `{"role":"client"}`)
	ch := w.c.TakeChanges()
	want := Changes{Members: map[string]SetDelta{setID: {AddedNets: []netip.Prefix{netip.MustParsePrefix("10.0.5.5/32")}}}}
	if !reflect.DeepEqual(ch, want) {
		t.Errorf("remote pod add: %+v, want %+v", ch, want)
	}
	w.pod("n2", "default", "c", "10.0.5.5/32", `{"role":"server"}`)
	ch = w.c.TakeChanges()
	want = Changes{Members: map[string]SetDelta{setID: {RemovedNets: []netip.Prefix{netip.MustParsePrefix("10.0.5.5/32")}}}}
	if !reflect.DeepEqual(ch, want) {
		t.Errorf("label change: %+v, want %+v", ch, want)
	}
	w.gnp(`{"metadata":{"name":"q"},"spec":{"selector":"app == 'a'","ingress":[{"action":"Allow","protocol":"TCP"}]}}`)
	ch = w.c.TakeChanges()
	if !reflect.DeepEqual(ch, Changes{Chains: []string{"pi/default/q"}}) {
		t.Errorf("policy edit: %+v", ch)
	}
	// Setting the same thing again changes nothing.
	w.gnp(`{"metadata":{"name":"q"},"spec":{"selector":"app == 'a'","ingress":[{"action":"Allow","protocol":"TCP"}]}}`)
	w.pod("n2", "default", "c", "10.0.5.5/32", `{"role":"server"}`)
	if ch = w.c.TakeChanges(); !ch.Empty() {
		t.Errorf("no-op updates reported %+v", ch)
	}
}
