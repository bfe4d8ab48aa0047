package nft

import (
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/ruleset"
	"github.com/onecalico/calico/internal/testutil"
)

// scaleRuleset is 1,000 policies (ingress and egress chains), 100 local
// endpoints each selected by ten of them, and 200 sets of 50 members.
func scaleRuleset() *ruleset.Ruleset {
	rs := &ruleset.Ruleset{Chains: map[string]*ruleset.Chain{}, Sets: map[string]*ruleset.Set{}}
	tcp := u8(6)
	for i := range 200 {
		id := fmt.Sprintf("s:%03d", i)
		s := &ruleset.Set{ID: id, Kind: ruleset.Nets}
		for j := range 50 {
			s.Nets = append(s.Nets, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200, byte(i), byte(j + 1)}), 32))
		}
		rs.Sets[id] = s
	}
	for i := range 1000 {
		in, out := fmt.Sprintf("pi/default/p%04d", i), fmt.Sprintf("pe/default/p%04d", i)
		rs.Chains[in] = &ruleset.Chain{ID: in, Rules: []ruleset.Rule{
			{Ref: ref("default", fmt.Sprint(i), ruleset.Ingress, 0), Action: ruleset.Allow, Protocol: tcp,
				Src: ruleset.EntityMatch{InSets: []string{fmt.Sprintf("s:%03d", i%200)}}, Dst: ruleset.EntityMatch{Ports: []ruleset.PortRange{{First: uint16(8000 + i), Last: uint16(8000 + i)}}}},
			{Ref: ref("default", fmt.Sprint(i), ruleset.Ingress, 1), Action: ruleset.Deny, Src: ruleset.EntityMatch{InSets: []string{fmt.Sprintf("s:%03d", (i+1)%200)}}},
		}}
		rs.Chains[out] = &ruleset.Chain{ID: out, Rules: []ruleset.Rule{{Ref: ref("default", fmt.Sprint(i), ruleset.Egress, 0), Action: ruleset.Allow}}}
	}
	for e := range 100 {
		ep := ruleset.Endpoint{ID: fmt.Sprintf("wep/default/e%03d", e), Kind: ruleset.Workload, Interface: fmt.Sprintf("calis%07d", e),
			Addrs:           []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 201, 0, byte(e + 1)}), 32)},
			IngressProfiles: []string{}, EgressProfiles: []string{}}
		ti := ruleset.TierRef{Name: "default", EndOfTier: ruleset.Deny}
		te := ti
		for k := 0; k < 1000; k += 100 {
			ti.Chains = append(ti.Chains, fmt.Sprintf("pi/default/p%04d", k+e))
			te.Chains = append(te.Chains, fmt.Sprintf("pe/default/p%04d", k+e))
		}
		ep.Ingress, ep.Egress = []ruleset.TierRef{ti}, []ruleset.TierRef{te}
		rs.Endpoints = append(rs.Endpoints, ep)
	}
	return rs
}

func BenchmarkPolicyBuild(b *testing.B) {
	rs := scaleRuleset()
	for b.Loop() {
		if _, err := buildPolicy(PolicyTableName, rs, DefaultPolicyOptions()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPolicyApplyFull replaces the whole scale table in a namespace
// (what a daemon start does); BenchmarkPolicyApplyMember changes one set
// member (what a pod ADD elsewhere does).
func BenchmarkPolicyApplyFull(b *testing.B) { benchApplyFull(b, true) }

// BenchmarkPolicyApplyFullAckEach is BenchmarkPolicyApplyFull without a
// BatchSocket: google/nftables' Flush, one acknowledgement per message.
func BenchmarkPolicyApplyFullAckEach(b *testing.B) { benchApplyFull(b, false) }

// BenchmarkPolicyApplyFullWatched is BenchmarkPolicyApplyFull with the
// applier watching the namespace's nftables notifications (as the
// daemon's does): the process also receives the kernel's notification of
// every message.
func BenchmarkPolicyApplyFullWatched(b *testing.B) {
	p, ns := benchApplierNS(b, true)
	if err := p.Watch(int(ns.Fd())); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	benchFull(b, p)
}

func benchApplyFull(b *testing.B, batchSocket bool) { benchFull(b, benchApplier(b, batchSocket)) }

func benchFull(b *testing.B, p *PolicyApplier) {
	rs := scaleRuleset()
	cpu := startCPU()
	for b.Loop() {
		// No table: Apply writes it whole (Invalidate would make it read
		// the table back and send nothing).
		b.StopTimer()
		if err := p.Delete(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := p.Apply(rs, DefaultPolicyOptions()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
	b.ReportMetric(cpu.ms()/float64(b.N), "cpu-ms/op")
}

// cpuClock is the process's user+system CPU time since it was started
// (the kernel's work on our netlink batches is system time); on the shared
// machine wall time mostly measures the wait for a core.
type cpuClock struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuClock { return cpuClock{processCPU()} }

func (c cpuClock) ms() float64 { return float64((processCPU() - c.start).Microseconds()) / 1000 }

func BenchmarkPolicyApplyMember(b *testing.B) {
	p := benchApplier(b, true)
	rs := scaleRuleset()
	if _, err := p.Apply(rs, DefaultPolicyOptions()); err != nil {
		b.Fatal(err)
	}
	i := 0
	cpu := startCPU()
	for b.Loop() {
		s := rs.Sets["s:007"]
		s.Nets = append(s.Nets[:50:50], netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 202, byte(i >> 8), byte(i)}), 32))
		i++
		if _, err := p.Apply(rs, DefaultPolicyOptions()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
	b.ReportMetric(cpu.ms()/float64(b.N), "cpu-ms/op")
}

func benchApplier(b *testing.B, batchSocket bool) *PolicyApplier {
	p, _ := benchApplierNS(b, batchSocket)
	return p
}

// benchApplierNS returns an applier in a new namespace, and the
// namespace's file.
func benchApplierNS(b *testing.B, batchSocket bool) (*PolicyApplier, *os.File) {
	testutil.RequireRoot(b)
	ns := testutil.NewNetNS(b)
	f, err := netns.Open(ns)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	bs := &BatchSocket{}
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())), nftables.AsLasting(), nftables.WithSockOptions(bs.Grab))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.CloseLasting() })
	if !batchSocket {
		return NewPolicyApplier(c, PolicyTableName), f
	}
	return NewPolicyApplier(c, PolicyTableName).SendThrough(bs), f
}

// BenchmarkPolicyResyncCheck is the policy part of a no-op full resync
// with the scale table (1,000 policies, 100 local endpoints): "exists"
// is what the daemon did before it checked content (look the table up);
// "same-generation" is Check when nothing committed since the last
// Apply; "read-back" is Check after another table's commit moved the
// generation (the whole table read and compared).
func BenchmarkPolicyResyncCheck(b *testing.B) {
	p := benchApplier(b, true)
	if _, err := p.Apply(scaleRuleset(), DefaultPolicyOptions()); err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, f func() error) {
		cpu := startCPU()
		for b.Loop() {
			if err := f(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(cpu.ms()/float64(b.N), "cpu-ms/op")
	}
	b.Run("exists", func(b *testing.B) {
		run(b, func() error {
			_, err := p.conn.ListTableOfFamily(PolicyTableName, nftables.TableFamilyINet)
			return err
		})
	})
	check := func() error {
		if ok, err := p.Check(); !ok || err != nil {
			return fmt.Errorf("check: %v %v", ok, err)
		}
		return nil
	}
	b.Run("same-generation", func(b *testing.B) { run(b, check) })
	b.Run("read-back", func(b *testing.B) {
		run(b, func() error {
			p.genOK = false
			return check()
		})
	})
}
