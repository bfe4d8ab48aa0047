package policy

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"

	"github.com/onecalico/calico/internal/ruleset"

	"github.com/onecalico/calico/internal/api"
)

// Test fixtures are written as upstream's JSON, decoded and defaulted as
// the datastore does.

func decode[T api.Resource](t testing.TB, r T, js string) T {
	t.Helper()
	if err := json.Unmarshal([]byte(js), r); err != nil {
		t.Fatalf("decode %s: %v", js, err)
	}
	api.Default(r)
	return r
}

func wep(t testing.TB, js string) *api.WorkloadEndpoint {
	return decode(t, api.NewWorkloadEndpoint(), js)
}
func gnp(t testing.TB, js string) *api.GlobalNetworkPolicy {
	return decode(t, api.NewGlobalNetworkPolicy(), js)
}
func np(t testing.TB, js string) *api.NetworkPolicy  { return decode(t, api.NewNetworkPolicy(), js) }
func prof(t testing.TB, js string) *api.Profile      { return decode(t, api.NewProfile(), js) }
func tier(t testing.TB, js string) *api.Tier         { return decode(t, api.NewTier(), js) }
func hep(t testing.TB, js string) *api.HostEndpoint  { return decode(t, api.NewHostEndpoint(), js) }
func netset(t testing.TB, js string) *api.NetworkSet { return decode(t, api.NewNetworkSet(), js) }
func gnetset(t testing.TB, js string) *api.GlobalNetworkSet {
	return decode(t, api.NewGlobalNetworkSet(), js)
}

// world is a Calculator for node n1 plus helpers to evaluate packets.
type world struct {
	t testing.TB
	c *Calculator
}

func newWorld(t testing.TB) *world { return &world{t: t, c: New("n1")} }

// pod adds a workload endpoint: name "<node>/<ns>/<name>" style args.
func (w *world) pod(node, ns, name, ip string, labels string, profiles ...string) {
	w.t.Helper()
	if labels == "" {
		labels = "{}"
	}
	pj, _ := json.Marshal(profiles)
	w.c.SetWorkloadEndpoint(wep(w.t, fmt.Sprintf(`{"metadata":{"name":%q,"namespace":%q,"labels":%s},
		"spec":{"node":%q,"orchestrator":"k8s","interfaceName":"cali%s","ipNetworks":[%q],"profiles":%s}}`,
		name, ns, labels, node, name, ip, pj)))
}

func (w *world) gnp(js string)     { w.t.Helper(); w.c.SetGlobalNetworkPolicy(gnp(w.t, js)) }
func (w *world) np(js string)      { w.t.Helper(); w.c.SetNetworkPolicy(np(w.t, js)) }
func (w *world) profile(js string) { w.t.Helper(); w.c.SetProfile(prof(w.t, js)) }
func (w *world) tier(js string)    { w.t.Helper(); w.c.SetTier(tier(w.t, js)) }

// check evaluates a packet at endpoint id and direction and compares the
// verdict's string form.
func (w *world) check(id string, dir ruleset.Direction, p Packet, want string) {
	w.t.Helper()
	v := Evaluate(w.c.Ruleset(), id, dir, p)
	if got := v.String(); got != want {
		w.t.Errorf("%s %s %+v:\n got  %s\n want %s", id, dir, p, got, want)
	}
}

func tcp(src, dst string, dport uint16) Packet {
	return Packet{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Protocol: 6, SrcPort: 40000, DstPort: dport}
}

func udp(src, dst string, dport uint16) Packet {
	p := tcp(src, dst, dport)
	p.Protocol = 17
	return p
}

func icmp(src, dst string, typ, code uint8) Packet {
	p := Packet{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Protocol: 1, ICMPType: typ, ICMPCode: code}
	if p.Src.Is6() {
		p.Protocol = 58
	}
	return p
}
