package policy

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/api"
)

// The scale of issue 10's figure: 1,000 policies and 5,000 endpoints in the
// datastore, 100 of them on this node.
const (
	benchPolicies  = 1000
	benchEndpoints = 5000
	benchLocal     = 100
	benchNodes     = benchEndpoints / benchLocal
)

func benchWEP(tb testing.TB, i int, role string) *api.WorkloadEndpoint {
	return wep(tb, fmt.Sprintf(`{"metadata":{"name":"pod-%d","namespace":"ns%d","labels":{"app":"app%d","role":%q}},
		"spec":{"node":"node%d","interfaceName":"cali%d","ipNetworks":["10.%d.%d.%d/32"],"profiles":["kns.ns%d"],
		"ports":[{"name":"http","protocol":"TCP","port":8080}]}}`,
		i, i%10, (i/benchNodes)%50, role, i%benchNodes, i, i>>16&255, i>>8&255, i&255, i%10))
}

func benchPolicy(tb testing.TB, i int, port int) *api.GlobalNetworkPolicy {
	return gnp(tb, fmt.Sprintf(`{"metadata":{"name":"pol-%d"},"spec":{"order":%d,"selector":"app == 'app%d'",
		"ingress":[{"action":"Allow","protocol":"TCP","source":{"selector":"role == 'role%d'"},"destination":{"ports":[%d,"http"]}},
		           {"action":"Deny","source":{"nets":["192.168.%d.0/24"]}}],
		"egress":[{"action":"Allow","destination":{"namespaceSelector":"team == 't%d'"}}]}}`,
		i, i%7, i%50, i%20, port, i%256, i%5))
}

type benchInputs struct {
	weps     []*api.WorkloadEndpoint
	pols     []*api.GlobalNetworkPolicy
	profiles []*api.Profile
}

func makeBenchInputs(tb testing.TB) benchInputs {
	var in benchInputs
	for i := 0; i < benchEndpoints; i++ {
		in.weps = append(in.weps, benchWEP(tb, i, fmt.Sprintf("role%d", i%20)))
	}
	for i := 0; i < benchPolicies; i++ {
		in.pols = append(in.pols, benchPolicy(tb, i, 80+i%10))
	}
	for i := 0; i < 10; i++ {
		in.profiles = append(in.profiles, prof(tb, fmt.Sprintf(`{"metadata":{"name":"kns.ns%d"},"spec":{"labelsToApply":{"pcns.team":"t%d"}}}`, i, i%5)))
	}
	return in
}

func (in benchInputs) load(node string) *Calculator {
	c := New(node)
	for _, p := range in.profiles {
		c.SetProfile(p)
	}
	for _, p := range in.pols {
		c.SetGlobalNetworkPolicy(p)
	}
	for _, w := range in.weps {
		c.SetWorkloadEndpoint(w)
	}
	return c
}

// BenchmarkFull: every input fed to a new Calculator, then the whole Ruleset.
func BenchmarkFull(b *testing.B) {
	in := makeBenchInputs(b)
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	defer reportCPU(b, start)
	for b.Loop() {
		c := in.load("node0")
		rs := c.Ruleset()
		c.TakeChanges()
		if len(rs.Endpoints) != benchLocal {
			b.Fatalf("%d local endpoints", len(rs.Endpoints))
		}
	}
}

// BenchmarkPodAdd: one more local pod (and its removal, so the state stays
// the same size), each followed by TakeChanges; reported per pod change.
func BenchmarkPodAdd(b *testing.B) {
	c := makeBenchInputs(b).load("node0")
	c.TakeChanges()
	add := benchWEP(b, benchEndpoints, "role3") // node0, since benchEndpoints % benchNodes == 0
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	defer reportCPU(b, start)
	for b.Loop() {
		c.SetWorkloadEndpoint(add)
		if ch := c.TakeChanges(); len(ch.Endpoints) != 1 {
			b.Fatalf("pod add reported %+v", ch)
		}
		c.DeleteWorkloadEndpoint(add.Namespace, add.Name)
		c.TakeChanges()
	}
}

// BenchmarkLabelChange: a remote pod's role label flips (it leaves one
// selector's set and joins another).
func BenchmarkLabelChange(b *testing.B) {
	c := makeBenchInputs(b).load("node0")
	c.TakeChanges()
	x, y := benchWEP(b, 1, "role0"), benchWEP(b, 1, "role10")
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	defer reportCPU(b, start)
	i := 0
	for b.Loop() {
		if i++; i%2 == 0 {
			c.SetWorkloadEndpoint(x)
		} else {
			c.SetWorkloadEndpoint(y)
		}
		if ch := c.TakeChanges(); len(ch.Members) == 0 {
			b.Fatalf("label change reported %+v", ch)
		}
	}
}

// BenchmarkPolicyEdit: one policy's port changes back and forth.
func BenchmarkPolicyEdit(b *testing.B) {
	c := makeBenchInputs(b).load("node0")
	c.TakeChanges()
	x, y := benchPolicy(b, 0, 80), benchPolicy(b, 0, 81)
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	defer reportCPU(b, start)
	i := 0
	for b.Loop() {
		if i++; i%2 == 0 {
			c.SetGlobalNetworkPolicy(x)
		} else {
			c.SetGlobalNetworkPolicy(y)
		}
		if ch := c.TakeChanges(); len(ch.Chains) != 1 {
			b.Fatalf("policy edit reported %+v", ch)
		}
	}
}

// cpuTime is the process's user+system CPU time: on a shared machine the
// wall time per op mostly measures the wait for a core, so the benchmarks
// report CPU time per op too (cpu-ns/op).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports CPU time per op since start.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}
