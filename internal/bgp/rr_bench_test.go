//go:build !nogobgp

package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"
)

// BenchmarkRouteReflectors: 100 in-process speakers as calico-node sets
// them up with the mesh off and two route reflectors (see rrCluster), each
// advertising its own block; the reflectors with their own cluster IDs
// (distinct) or both in 244.0.0.1 (shared). Reported:
//
//   - converged-ms: first Apply to every speaker holding every other
//     speaker's block; sessions-ms: to every session Established;
//   - first-session-ms, and connect-wait-min/p50/max-ms: per session, from
//     the later of its two ends being configured to Established. GoBGP
//     v3's connectLoop waits a random 1-2 s before its first connect
//     (fsm.go), both ends try, so the first to fire wins: this is the
//     floor of every session and so of convergence;
//   - start-cpu-s: the process's CPU from the first Apply to all sessions
//     up (a busy machine stretches wall times; this much less);
//   - block-p50/max-ms: a block added on one client (10 rounds, each on
//     another client) until each other speaker holds it;
//   - rr-loss-*: reflector 1 stopped with a NOTIFICATION: best paths of
//     live nodes withdrawn on any speaker (GoBGP's best-path events),
//     the most live routes any speaker lacked at one 2 ms sample, and the
//     time until every client held every path via the other reflector.
//
// The variants: only the end with the smaller address connects, as Calc
// configures peerSelector sessions (connect=one), or, with
// RR_BOTH_ACTIVE=1, also both ends (connect=both, forced by the harness:
// what Calc did before; its sessions can take over a minute, failing the
// run).
func BenchmarkRouteReflectors(b *testing.B) {
	for _, v := range []struct {
		name               string
		shared, bothActive bool
	}{
		{"cluster-ids=distinct/connect=one", false, false},
		{"cluster-ids=shared/connect=one", true, false},
		{"cluster-ids=distinct/connect=both", false, true},
	} {
		if v.bothActive && os.Getenv("RR_BOTH_ACTIVE") == "" {
			continue
		}
		b.Run("speakers=100/"+v.name, func(b *testing.B) { benchRR(b, 100, v.shared, v.bothActive) })
	}
}

func benchRR(b *testing.B, k int, shared, bothActive bool) {
	for range b.N {
		c := newRRCluster(b, k, freePortK(b, k), shared)
		c.bothActive = bothActive
		cpu0 := processCPU(b)
		t0 := time.Now()
		c.start()
		started := time.Since(t0)
		converged := c.converge(t0, 60*time.Second)
		sessions := c.waitSessions(t0, 60*time.Second)
		startCPU := processCPU(b) - cpu0
		waits := c.connectWaits()
		first, _, n := c.established(t0)

		var lat []time.Duration
		for r := range 10 {
			i := 2 + r*(k-2)/10
			cidr := rrBlock(k + 1 + r)
			t1 := time.Now()
			c.addBlock(i, cidr)
			seen := c.waitUntil(t1, c.all(i), 30*time.Second, func(j int) bool { return c.missing(j, []netip.Prefix{cidr}) == 0 })
			for _, d := range seen {
				lat = append(lat, d)
			}
		}
		slices.Sort(lat)
		loss := c.rrLoss(60 * time.Second)

		b.ReportMetric(ms(started), "all-started-ms")
		b.ReportMetric(ms(converged), "converged-ms")
		b.ReportMetric(ms(sessions), "sessions-ms")
		b.ReportMetric(startCPU.Seconds(), "start-cpu-s")
		b.ReportMetric(float64(n), "sessions")
		b.ReportMetric(ms(first), "first-session-ms")
		b.ReportMetric(ms(waits[0]), "connect-wait-min-ms")
		b.ReportMetric(ms(waits[len(waits)/2]), "connect-wait-p50-ms")
		b.ReportMetric(ms(waits[len(waits)-1]), "connect-wait-max-ms")
		b.ReportMetric(ms(lat[len(lat)/2]), "block-p50-ms")
		b.ReportMetric(ms(lat[len(lat)-1]), "block-max-ms")
		b.ReportMetric(float64(loss.withdrawn), "rr-loss-withdrawn")
		b.ReportMetric(float64(loss.worst), "rr-loss-worst-missing")
		b.ReportMetric(ms(loss.moved), "rr-loss-moved-ms")
		for _, s := range c.speakers {
			s.Stop(true)
		}
	}
}

// connectWaits returns, sorted, for every session (seen from both ends),
// the time from the later of its two ends' Apply to Established.
func (c *rrCluster) connectWaits() []time.Duration {
	applied := c.appliedAt
	byAddr := map[string]int{}
	for i, name := range c.names {
		byAddr[c.nodes[name].IPv4.Addr().String()] = i
	}
	var out []time.Duration
	for i, s := range c.speakers {
		for _, p := range s.Status(context.Background()) {
			host, _, ok := cutHostPort(p.Address)
			j, known := byAddr[host]
			if !ok || !known || p.State != "Established" {
				continue
			}
			out = append(out, p.Since.Sub(later(applied[i], applied[j])))
		}
	}
	slices.Sort(out)
	return out
}

func cutHostPort(s string) (string, string, bool) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		a, err := netip.ParseAddr(s)
		return a.String(), "", err == nil
	}
	return ap.Addr().String(), fmt.Sprint(ap.Port()), true
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// processCPU is the test process's user+system CPU so far: the cost of
// the speakers (and the harness's light watching), which a busy machine
// does not inflate the way it does wall time.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
