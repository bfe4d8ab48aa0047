package e2e_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/testutil"
)

// prober sends an ICMP echo with a fresh identifier (a new conntrack
// flow) every interval from a namespace to dst, and records when each
// reply came back.
type prober struct {
	conn net.PacketConn
	dst  net.Addr
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	replies []time.Time // receive times, in order
	kick    chan struct{}
}

func startProber(b testing.TB, ns string, dst netip.Addr, interval time.Duration) *prober {
	b.Helper()
	var conn net.PacketConn
	if err := netns.Do(ns, func() (err error) {
		conn, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	p := &prober{conn: conn, dst: &net.IPAddr{IP: dst.AsSlice()}, stop: make(chan struct{}), kick: make(chan struct{}, 1)}
	base := uint16(time.Now().UnixNano())
	p.wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 8 || buf[0] != 0 { // echo reply
				continue
			}
			now := time.Now()
			p.mu.Lock()
			p.replies = append(p.replies, now)
			p.mu.Unlock()
			select {
			case p.kick <- struct{}{}:
			default:
			}
		}
	})
	p.wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for id := base; ; id++ {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			_, _ = conn.WriteTo(echo(id), p.dst)
		}
	})
	b.Cleanup(p.close)
	return p
}

// echo is an ICMP echo request with identifier id, sequence 1.
func echo(id uint16) []byte {
	m := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), 0, 1, 'c', 'a', 'l', 'i'}
	var sum uint32
	for i := 0; i < len(m); i += 2 {
		sum += uint32(m[i])<<8 | uint32(m[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(m[2:], ^uint16(sum))
	return m
}

func (p *prober) close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.conn.Close()
	p.wg.Wait()
}

// lastReply is the time of the latest reply (zero if none).
func (p *prober) lastReply() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.replies) == 0 {
		return time.Time{}
	}
	return p.replies[len(p.replies)-1]
}

// firstReplyAfter waits for the first reply received after t.
func (p *prober) firstReplyAfter(t time.Time, timeout time.Duration) (time.Time, bool) {
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		for i := len(p.replies) - 1; i >= 0 && p.replies[i].After(t); i-- {
			if i == 0 || !p.replies[i-1].After(t) {
				r := p.replies[i]
				p.mu.Unlock()
				return r, true
			}
		}
		p.mu.Unlock()
		select {
		case <-p.kick:
		case <-deadline:
			return time.Time{}, false
		}
	}
}

// quietFor waits until no reply has come for d, and returns the last one.
func (p *prober) quietFor(d, timeout time.Duration) (time.Time, bool) {
	end := time.Now().Add(timeout)
	for time.Now().Before(end) {
		last := p.lastReply()
		if time.Since(last) >= d {
			return last, true
		}
		time.Sleep(d / 10)
	}
	return time.Time{}, false
}

const denyAllYAML = `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: bench-deny
spec:
  selector: all()
  types: [Ingress]
`

// BenchmarkPolicyEnforcement: policy change -> enforced for new flows,
// two nodes with one pod each, as felix-observed.md §6(b) measured Felix:
// a prober in the pod on n2 sends an ICMP echo with a fresh identifier
// every 2 ms to the pod on n1; a deny-all-ingress GlobalNetworkPolicy is
// applied with calicoctl (deny latency: last reply - calicoctl returned),
// then deleted (allow latency: first reply - calicoctl returned).
// Negative: enforced before calicoctl had exited.
func BenchmarkPolicyEnforcement(b *testing.B) {
	c := newPair(b, poolAlways, true)
	pods := c.addPods(b, "e1", "always", c.n1, c.n2)
	ping(b, pods[1], pods[0].IP, 1)
	p := startProber(b, pods[1].NS, pods[0].IP, 2*time.Millisecond)
	if _, ok := p.firstReplyAfter(time.Now(), convergeTimeout); !ok {
		b.Fatal("prober gets no replies")
	}
	w := watchKey(b, c, api.KindGlobalNetworkPolicy, "bench-deny")
	const samples = 20
	var deny, allow, denyW, allowW []time.Duration
	b.ResetTimer()
	for range b.N {
		for range samples {
			c.calicoctl(b, denyAllYAML, "apply", "-f", "-")
			t0 := time.Now()
			last, ok := p.quietFor(300*time.Millisecond, convergeTimeout)
			if !ok {
				b.Fatal("deny never took effect")
			}
			deny = append(deny, last.Sub(t0))
			denyW = append(denyW, last.Sub(w.last()))
			c.calicoctl(b, "", "delete", "globalnetworkpolicy", "bench-deny")
			t1 := time.Now()
			first, ok := p.firstReplyAfter(last, convergeTimeout)
			if !ok {
				b.Fatal("allow never took effect")
			}
			allow = append(allow, first.Sub(t1))
			allowW = append(allowW, first.Sub(w.last()))
			time.Sleep(100 * time.Millisecond)
		}
	}
	b.StopTimer()
	b.Logf("from calicoctl's return: deny ms: %s", fmtMS(deny))
	b.Logf("from calicoctl's return: allow ms: %s", fmtMS(allow))
	b.Logf("from etcd's watch event: deny ms: %s", fmtMS(denyW))
	b.Logf("from etcd's watch event: allow ms: %s", fmtMS(allowW))
	b.ReportMetric(ms(percentile(deny, 0.5)), "deny-p50-ms")
	b.ReportMetric(ms(percentile(deny, 1)), "deny-max-ms")
	b.ReportMetric(ms(percentile(allow, 0.5)), "allow-p50-ms")
	b.ReportMetric(ms(percentile(allow, 1)), "allow-max-ms")
	b.ReportMetric(ms(percentile(denyW, 0.5)), "deny-from-watch-p50-ms")
	b.ReportMetric(ms(percentile(denyW, 1)), "deny-from-watch-max-ms")
	b.ReportMetric(ms(percentile(allowW, 0.5)), "allow-from-watch-p50-ms")
	b.ReportMetric(ms(percentile(allowW, 1)), "allow-from-watch-max-ms")
	b.ReportMetric(float64(len(deny)), "samples")
}

// keyWatch records when etcd's watch last reported a change of one key.
type keyWatch struct {
	mu sync.Mutex
	at time.Time
}

func (w *keyWatch) last() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.at
}

func watchKey(b *testing.B, c *cluster, kind, name string) *keyWatch {
	b.Helper()
	k, ok := api.LookupKind(kind)
	if !ok {
		b.Fatalf("kind %s", kind)
	}
	key := k.Key("", name)
	w := &keyWatch{}
	wctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	ch := c.lab.Store.Watch(wctx, key, 0)
	go func() {
		for r := range ch {
			now := time.Now()
			for _, e := range r.Events {
				if e.Key == key {
					w.mu.Lock()
					w.at = now
					w.mu.Unlock()
				}
			}
		}
	}()
	return w
}

func fmtMS(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = fmt.Sprintf("%.1f", ms(d))
	}
	return strings.Join(s, " ")
}

const egressToPodsYAML = `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: egress-to-pods
spec:
  selector: all()
  types: [Egress]
  egress:
  - action: Allow
    destination:
      selector: has(k8s-pod-network)
`

// BenchmarkPodReachableUnderPolicy: with a selector-based egress policy
// on every pod (allowed only towards pods, so n2 must add a new pod's
// address to its set), a pod is added on n1 through CNI; a prober in a
// pod on n2 starts at once when the ADD returns and sends a fresh echo
// every 2 ms: time to the first reply, from the ADD's start and return.
func BenchmarkPodReachableUnderPolicy(b *testing.B) {
	c := newPair(b, poolAlways, true)
	client := c.addPods(b, "cl", "always", c.n2)[0]
	first := c.addPods(b, "s0", "always", c.n1)[0]
	c.calicoctl(b, egressToPodsYAML, "apply", "-f", "-")
	ping(b, client, first.IP, 1)
	const samples = 20
	var fromStart, fromReturn []time.Duration
	b.ResetTimer()
	for i := range b.N * samples {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t0 := time.Now()
		p, err := c.n1.CNIAdd(ctx, fmt.Sprintf("s%d", i+1), "always")
		t1 := time.Now()
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		pr := startProber(b, client.NS, p.IP, 2*time.Millisecond)
		r, ok := pr.firstReplyAfter(t0, convergeTimeout)
		pr.close()
		if !ok {
			b.Fatalf("pod %s never reachable from n2", p.IP)
		}
		fromStart = append(fromStart, r.Sub(t0))
		fromReturn = append(fromReturn, r.Sub(t1))
	}
	b.StopTimer()
	b.ReportMetric(ms(percentile(fromStart, 0.5)), "start-p50-ms")
	b.ReportMetric(ms(percentile(fromStart, 0.99)), "start-p99-ms")
	b.ReportMetric(ms(percentile(fromReturn, 0.5)), "return-p50-ms")
	b.ReportMetric(ms(percentile(fromReturn, 0.99)), "return-p99-ms")
}

// BenchmarkPolicyScale: 1,000 GlobalNetworkPolicies, 5,000 workload
// endpoints in the datastore of which 100 are on n1; calico-node starts
// on n1: start -> ready (the first full apply, the policy table
// included), its RSS and CPU at that point, and the table's size.
func BenchmarkPolicyScale(b *testing.B) {
	c := newLab(b)
	c.n1 = c.lab.AddNode("n1", 99, 11)
	c.nodes = []*labtest.Node{c.n1}
	c.applyPools(b, poolAlways)
	if err := c.lab.EnsureNetworkProfile(ctx(b), labtest.NetworkName); err != nil {
		b.Fatal(err)
	}
	writeScale(b, c, 1000, 5000, 100)
	b.ResetTimer()
	for range b.N {
		p := c.n1.StartProcess(c.bin, c.n1.Env())
		ready, err := p.WaitReady(readyTimeout)
		if err != nil {
			b.Fatal(err)
		}
		st, err := labtest.Stats(p.PID)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		for _, l := range strings.Split(p.Stderr.String(), "\n") {
			if strings.Contains(l, "policy table written") || strings.Contains(l, "ready") {
				b.Log(l)
			}
		}
		out := testutil.RunIn(b, c.n1.NS, "nft", "list", "table", "inet", "calico-policy")
		chains, rules := strings.Count(out, "\tchain "), strings.Count(out, "counter")
		if chains < 1100 {
			b.Fatalf("policy table has %d chains, want the 1,000 policies' and the 100 endpoints'", chains)
		}
		b.Logf("start-to-ready %.0f ms, hwm %.1f MB, rss %.1f MB, cpu %.0f ms", ms(ready), float64(st.HWMKiB)/1024, float64(st.RSSKiB)/1024, ms(st.CPU))
		b.ReportMetric(ms(ready), "start-to-ready-ms")
		b.ReportMetric(float64(st.RSSKiB)/1024, "rss-MB")
		b.ReportMetric(float64(st.HWMKiB)/1024, "hwm-MB")
		b.ReportMetric(ms(st.CPU), "cpu-ms")
		b.ReportMetric(float64(chains), "chains")
		b.ReportMetric(float64(rules), "rules")
		if code, err := p.Stop(10 * time.Second); err != nil || code != 0 {
			b.Fatalf("stop: %d %v", code, err)
		}
		b.StartTimer()
	}
}

// writeScale writes policies GlobalNetworkPolicies and endpoints workload
// endpoints, local of them on n1 (interfaces need not exist: the table
// dispatches by name). Endpoint i has label app=a<i%100>; policy i selects
// app a<i%100>, allows TCP from app a<(i+1)%100> to one port, denies a /16
// and allows all egress.
func writeScale(b *testing.B, c *cluster, policies, endpoints, local int) {
	b.Helper()
	var wg sync.WaitGroup
	work := make(chan api.Resource)
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for r := range work {
				if _, err := c.lab.Client.Create(ctx(b), r); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for i := range endpoints {
		node := fmt.Sprintf("other%d", i%50)
		if i < local {
			node = "n1"
		}
		cid := fmt.Sprintf("scale%05d", i)
		name, err := api.WorkloadEndpointName(api.WorkloadEndpointIdentifiers{Node: node, Orchestrator: api.OrchestratorCNI, ContainerID: cid, Endpoint: "eth0"})
		if err != nil {
			b.Fatal(err)
		}
		w := api.NewWorkloadEndpoint()
		w.Name, w.Namespace = name, "default"
		w.Labels = map[string]string{"app": fmt.Sprintf("a%d", i%100)}
		w.Spec = api.WorkloadEndpointSpec{Orchestrator: "cni", Node: node, ContainerID: cid, Endpoint: "eth0",
			IPNetworks: []string{fmt.Sprintf("10.200.%d.%d/32", i/250, i%250+1)}, Profiles: []string{labtest.NetworkName},
			InterfaceName: fmt.Sprintf("calis%07d", i)}
		work <- w
	}
	tcp := api.ProtocolFromString("TCP")
	order := func(i int) *float64 { f := float64(i); return &f }
	for i := range policies {
		p := api.NewGlobalNetworkPolicy()
		p.Name = fmt.Sprintf("scale%04d", i)
		p.Spec = api.GlobalNetworkPolicySpec{Order: order(i), Selector: fmt.Sprintf("app == 'a%d'", i%100),
			Types: []api.PolicyType{api.PolicyTypeIngress, api.PolicyTypeEgress},
			Ingress: []api.Rule{
				{Action: api.Allow, Protocol: &tcp, Source: api.EntityRule{Selector: fmt.Sprintf("app == 'a%d'", (i+1)%100)},
					Destination: api.EntityRule{Ports: []api.Port{api.SinglePort(uint16(8000 + i))}}},
				{Action: api.Deny, Source: api.EntityRule{Nets: []string{fmt.Sprintf("10.%d.0.0/16", 100+i%100)}}},
			},
			Egress: []api.Rule{{Action: api.Allow}},
		}
		work <- p
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

// BenchmarkPolicyThroughput: single-stream TCP throughput (iperf3, 5 s)
// from a pod on n2 to a pod on n1 over VXLAN with no policy, then with a
// policy of 1,000 ingress rules on the server pod (999 that do not match
// and a final allow), alternately, twice each: the ratio of the means.
func BenchmarkPolicyThroughput(b *testing.B) {
	requireIPerf3(b)
	c := newPair(b, poolAlways, true)
	pods := c.addPods(b, "t1", "always", c.n1, c.n2)
	srv, cli := pods[0], pods[1]
	ping(b, cli, srv.IP, 1)
	var rules []string
	for i := range 999 {
		rules = append(rules, fmt.Sprintf("  - action: Deny\n    protocol: TCP\n    source:\n      nets: [10.%d.%d.0/24]\n    destination:\n      ports: [%d]", 100+i/250, i%250, 10000+i))
	}
	yaml := fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: thousand
spec:
  selector: all()
  types: [Ingress]
  ingress:
%s
  - action: Allow
`, strings.Join(rules, "\n"))
	var none, thousand []float64
	b.ResetTimer()
	for range b.N {
		for range 2 {
			none = append(none, iperf(b, cli.NS, srv.NS, srv.IP))
			c.calicoctl(b, yaml, "apply", "-f", "-")
			c.eventually(b, "1,000 rules on n1", func() error {
				out := testutil.RunIn(b, c.n1.NS, "nft", "list", "table", "inet", "calico-policy")
				if n := strings.Count(out, "thousand#"); n < 1000 {
					return fmt.Errorf("%d rules of the policy", n)
				}
				return nil
			})
			thousand = append(thousand, iperf(b, cli.NS, srv.NS, srv.IP))
			c.calicoctl(b, "", "delete", "globalnetworkpolicy", "thousand")
			c.eventually(b, "policy gone on n1", func() error {
				if out := testutil.RunIn(b, c.n1.NS, "nft", "list", "table", "inet", "calico-policy"); strings.Contains(out, "thousand#") {
					return fmt.Errorf("still there")
				}
				return nil
			})
		}
	}
	b.StopTimer()
	mean := func(xs []float64) float64 {
		var s float64
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	b.Logf("Gbit/s: none %v; 1,000 rules %v", none, thousand)
	b.ReportMetric(mean(none)/1e9, "none-Gbit/s")
	b.ReportMetric(mean(thousand)/1e9, "1000rules-Gbit/s")
	b.ReportMetric(mean(thousand)/mean(none), "ratio")
}

// BenchmarkPodAddsCPUWithPolicy: the daemon's CPU (user + system, from
// /proc) on n1 while 50 pods are added there one after another through
// CNI, with ten selector-based policies in force.
func BenchmarkPodAddsCPUWithPolicy(b *testing.B) {
	c := newPair(b, poolAlways, true)
	var docs []string
	for i := range 10 {
		docs = append(docs, fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: p%d
spec:
  order: %d
  selector: has(k8s-pod-network)
  types: [Ingress, Egress]
  ingress:
  - action: Allow
    protocol: TCP
    source:
      selector: has(k8s-pod-network)
    destination:
      ports: [%d]
  egress:
  - action: Allow
`, i, i, 8000+i))
	}
	c.calicoctl(b, strings.Join(docs, "---\n"), "apply", "-f", "-")
	pod := 0
	b.ResetTimer()
	for range b.N {
		pid := c.procs["n1"].PID
		before, err := labtest.Stats(pid)
		if err != nil {
			b.Fatal(err)
		}
		for range 50 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, err := c.n1.CNIAdd(ctx, fmt.Sprintf("q%d", pod), "always")
			cancel()
			pod++
			if err != nil {
				b.Fatal(err)
			}
		}
		// Let the daemon finish with the last ADD.
		time.Sleep(500 * time.Millisecond)
		after, err := labtest.Stats(pid)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(ms(after.CPU-before.CPU), "daemon-cpu-ms/50adds")
		b.ReportMetric(float64(after.RSSKiB)/1024, "rss-MB")
	}
}
