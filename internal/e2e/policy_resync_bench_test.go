package e2e_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/testutil"
)

// BenchmarkPolicyNoopResync: with 1,000 GlobalNetworkPolicies and 5,000
// workload endpoints in the datastore, 100 of them on n1, calico-node on
// n1 is asked for 20 full resyncs that find nothing to change; it reports
// the daemon's CPU per resync (the policy table's content check
// included), and then the CPU of one resync after someone flushed a
// policy chain (the table read back and repaired).
func BenchmarkPolicyNoopResync(b *testing.B) {
	c := newLab(b)
	c.n1 = c.lab.AddNode("n1", 99, 11)
	c.nodes = []*labtest.Node{c.n1}
	c.applyPools(b, poolAlways)
	if err := c.lab.EnsureNetworkProfile(ctx(b), labtest.NetworkName); err != nil {
		b.Fatal(err)
	}
	writeScale(b, c, 1000, 5000, 100)
	p := c.n1.StartProcess(c.bin, c.n1.Env())
	if _, err := p.WaitReady(readyTimeout); err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(c.n1.RunDir(), agent.ControlSocketName)
	resync := func() {
		s0, err := p.Status()
		if err != nil {
			b.Fatal(err)
		}
		cx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := agent.RequestResyncAt(cx, sock); err != nil {
			b.Fatal(err)
		}
		if err := labtest.Poll(30*time.Second, func() error {
			s, err := p.Status()
			if err == nil && !s.LastApply.After(s0.LastApply) {
				err = fmt.Errorf("resync not done")
			}
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
	resync() // the first after start may still settle
	b.ResetTimer()
	for range b.N {
		before, err := labtest.Stats(p.PID)
		if err != nil {
			b.Fatal(err)
		}
		for range 20 {
			resync()
		}
		after, err := labtest.Stats(p.PID)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(ms((after.CPU-before.CPU)/20), "noop-resync-cpu-ms")

		testutil.RunIn(b, c.n1.NS, "nft", "flush chain inet calico-policy egress/wep/default/n1-cni-scale00000-eth0")
		before, _ = labtest.Stats(p.PID)
		resync()
		after, _ = labtest.Stats(p.PID)
		b.ReportMetric(ms(after.CPU-before.CPU), "repair-resync-cpu-ms")
	}
}
