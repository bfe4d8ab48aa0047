//go:build !nogobgp

package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/api"
)

// timeline records, from every speaker's log (GoBGP's at debug level),
// the moments of each session's bring-up: the peer configured (our
// log), each connect attempt and its failure (GoBGP's connectLoop), the
// passive end accepting the connection, OPENSENT and ESTABLISHED (GoBGP's
// state changes), and connections closed on the way.
type timeline struct {
	mu sync.Mutex
	ev []tlEvent
}

type tlEvent struct {
	at     time.Time
	node   string // the local address of the speaker that logged it
	peer   string // the remote address
	kind   string
	detail string
}

// kinds of timeline events, by the log message that tells them.
var tlKinds = map[string]string{
	"BGP peer configured":               "added",
	"try to connect":                    "dial",
	"failed to connect":                 "dial-failed",
	"Accepted a new passive connection": "accepted",
	"Can't find configuration for a new passive connection": "unknown-peer",
	"Closed an accepted connection":                         "closed-accepted",
	"active conn is closed to avoid being blocked":          "closed-active",
	"accepted conn is closed to avoid be blocked":           "closed-accepted",
	"state changed": "state",
}

// handler is a slog.Handler for the speaker of the node at addr.
func (t *timeline) handler(addr string) slog.Handler { return &tlHandler{t: t, node: addr} }

type tlHandler struct {
	t    *timeline
	node string
}

func (h *tlHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *tlHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *tlHandler) WithGroup(string) slog.Handler            { return h }

func (h *tlHandler) Handle(_ context.Context, r slog.Record) error {
	kind, ok := tlKinds[r.Message]
	if !ok {
		return nil
	}
	e := tlEvent{at: r.Time, node: h.node, kind: kind}
	var old, neu, reason string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "key", "peer", "remote addr":
			host, _, _ := cutHostPort(a.Value.String())
			e.peer = host
		case "old":
			old = a.Value.String()
		case "new":
			neu = a.Value.String()
		case "reason":
			reason = a.Value.String()
		case "error":
			e.detail = a.Value.String()
		}
		return true
	})
	if kind == "state" {
		e.kind = strings.ToLower(strings.TrimPrefix(neu, "BGP_FSM_"))
		e.detail = strings.TrimPrefix(old, "BGP_FSM_") + " " + reason
	}
	h.t.mu.Lock()
	h.t.ev = append(h.t.ev, e)
	h.t.mu.Unlock()
	return nil
}

// tlSession is one session's bring-up, both ends merged.
type tlSession struct {
	a, b        string    // a < b
	added       time.Time // the later end's peer configured
	dialerAdded time.Time // the end that connected: its peer configured
	dial        time.Time // the connect attempt that led to the session
	firstDial   time.Time
	accepted    time.Time // by the passive end
	established time.Time // the later end's ESTABLISHED
	dials       int       // connect attempts, both ends
	failed      int       // failed connects and sessions that went down before ESTABLISHED
	notes       []string
}

// sessions merges the events per session.
func (t *timeline) sessions() []*tlSession {
	t.mu.Lock()
	ev := slices.Clone(t.ev)
	t.mu.Unlock()
	sort.SliceStable(ev, func(i, j int) bool { return ev[i].at.Before(ev[j].at) })
	by := map[[2]string]*tlSession{}
	get := func(x, y string) *tlSession {
		k := [2]string{min(x, y), max(x, y)}
		s := by[k]
		if s == nil {
			s = &tlSession{a: k[0], b: k[1]}
			by[k] = s
		}
		return s
	}
	addedAt := map[[2]string]time.Time{}
	lastDial := map[[2]string]time.Time{}
	for _, e := range ev {
		if e.peer == "" {
			continue
		}
		s := get(e.node, e.peer)
		if !s.established.IsZero() && e.kind != "established" {
			continue
		}
		switch e.kind {
		case "added":
			addedAt[[2]string{e.node, e.peer}] = e.at
			if e.at.After(s.added) {
				s.added = e.at
			}
		case "dial":
			s.dials++
			if s.firstDial.IsZero() {
				s.firstDial = e.at
			}
			lastDial[[2]string{e.node, e.peer}] = e.at
		case "dial-failed":
			s.failed++
			s.notes = append(s.notes, fmt.Sprintf("%s: dial %s->%s failed: %s", e.at.Format("15:04:05.000"), e.node, e.peer, e.detail))
		case "accepted":
			s.accepted = e.at
			// The other end dialled this one.
			s.dial = lastDial[[2]string{e.peer, e.node}]
			s.dialerAdded = addedAt[[2]string{e.peer, e.node}]
		case "idle", "active":
			if strings.HasPrefix(e.detail, "OPEN") {
				s.failed++
				s.notes = append(s.notes, fmt.Sprintf("%s: %s->%s down from %s", e.at.Format("15:04:05.000"), e.node, e.peer, e.detail))
			}
		case "unknown-peer", "closed-accepted", "closed-active":
			s.notes = append(s.notes, fmt.Sprintf("%s: %s on %s (from %s)", e.at.Format("15:04:05.000"), e.kind, e.node, e.peer))
		case "established":
			if e.at.After(s.established) {
				s.established = e.at
			}
		}
	}
	out := make([]*tlSession, 0, len(by))
	for _, s := range by {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].established.Before(out[j].established) })
	return out
}

// report adds the timeline's figures to b and logs the slowest sessions.
func (t *timeline) report(b *testing.B, t0 time.Time) {
	ss := t.sessions()
	var wait, handshake, fromCfg []time.Duration
	failed, retried := 0, 0
	for _, s := range ss {
		if s.established.IsZero() || s.dial.IsZero() {
			b.Logf("session %s-%s incomplete: %+v", s.a, s.b, s)
			continue
		}
		wait = append(wait, s.dial.Sub(s.dialerAdded))
		handshake = append(handshake, s.established.Sub(s.dial))
		fromCfg = append(fromCfg, s.established.Sub(s.added))
		failed += s.failed
		if s.dials > 1 || s.failed > 0 {
			retried++
		}
	}
	for _, d := range [][]time.Duration{wait, handshake, fromCfg} {
		slices.Sort(d)
	}
	if len(wait) == 0 {
		b.Fatal("no session came up")
	}
	b.ReportMetric(float64(len(wait)), "sessions")
	b.ReportMetric(ms(wait[0]), "dial-wait-min-ms")
	b.ReportMetric(ms(wait[len(wait)/2]), "dial-wait-p50-ms")
	b.ReportMetric(ms(wait[len(wait)-1]), "dial-wait-max-ms")
	b.ReportMetric(ms(handshake[len(handshake)/2]), "dial-to-est-p50-ms")
	b.ReportMetric(ms(handshake[len(handshake)-1]), "dial-to-est-max-ms")
	b.ReportMetric(ms(fromCfg[len(fromCfg)-1]), "cfg-to-est-max-ms")
	b.ReportMetric(float64(failed), "failed-attempts")
	b.ReportMetric(float64(retried), "retried-sessions")
	for _, s := range ss[max(0, len(ss)-3):] {
		b.Logf("late session %s-%s: both configured +%v, dialler configured +%v, first dial +%v, dial +%v (wait %v), accepted +%v, established +%v; %d dials, %d failed %v",
			s.a, s.b, s.added.Sub(t0).Round(time.Microsecond), s.dialerAdded.Sub(t0).Round(time.Microsecond),
			s.firstDial.Sub(t0).Round(time.Microsecond), s.dial.Sub(t0).Round(time.Microsecond),
			s.dial.Sub(s.dialerAdded).Round(time.Microsecond), s.accepted.Sub(t0).Round(time.Microsecond),
			s.established.Sub(t0).Round(time.Microsecond), s.dials, s.failed, s.notes)
	}
}

// BenchmarkSessionTimeline: where the time of a session's bring-up goes,
// per session, for the 20-node mesh and the 100-speaker route-reflected
// cluster (GoBGP at debug level, so a little slower than the plain
// benchmarks). Reported (ms): dial-wait: the dialling end's peer
// configured to the connect attempt that made the session (GoBGP's
// connectLoop timer); dial-to-est: that attempt to the later end's
// ESTABLISHED; cfg-to-est: the later end configured to ESTABLISHED;
// failed-attempts (connects refused or closed, sessions down before
// ESTABLISHED) and retried-sessions.
func BenchmarkSessionTimeline(b *testing.B) {
	b.Run("mesh=20", func(b *testing.B) {
		for range b.N {
			tl := &timeline{}
			t0, speakers := startMesh(b, 20, tl.handler, "debug")
			waitMesh(b, speakers, 20)
			b.ReportMetric(ms(time.Since(t0)), "established-ms")
			for _, s := range speakers {
				s.Stop(true)
			}
			tl.report(b, t0)
		}
	})
	b.Run("rr=100", func(b *testing.B) {
		for range b.N {
			tl := &timeline{}
			c := newRRCluster(b, 100, freePortK(b, 100), true)
			c.handler, c.severity = tl.handler, "debug"
			t0 := time.Now()
			c.start()
			b.ReportMetric(ms(c.converge(t0, 60*time.Second)), "converged-ms")
			b.ReportMetric(ms(c.waitSessions(t0, 60*time.Second)), "sessions-ms")
			for _, s := range c.speakers {
				s.Stop(true)
			}
			tl.report(b, t0)
		}
	})
}

// startMesh starts k speakers on 127.0.0.1..k (one port, bindMode NodeIP)
// in a full mesh, logging to handler(address) at severity; it returns
// when the first Apply began and the speakers.
func startMesh(b *testing.B, k int, handler func(addr string) slog.Handler, severity string) (time.Time, []*Speaker) {
	port := freePortB(b, k)
	nodes := map[string]Node{}
	for i := 1; i <= k; i++ {
		name := fmt.Sprintf("n%02d", i)
		nodes[name] = Node{Name: name, IPv4: netip.MustParsePrefix(fmt.Sprintf("127.0.0.%d/8", i))}
	}
	bind := api.BindModeNodeIP
	g := &api.BGPConfigurationSpec{ListenPort: port, BindMode: &bind, LogSeverityScreen: severity}
	speakers := make([]*Speaker, 0, k)
	t0 := time.Now()
	for name, n := range nodes {
		s := NewSpeaker(slog.New(handler(n.IPv4.Addr().String())), nil)
		speakers = append(speakers, s)
		if err := s.Apply(context.Background(), Calc(&Input{NodeName: name, Nodes: nodes, Global: g})); err != nil {
			b.Fatal(err)
		}
	}
	return t0, speakers
}

// waitMesh polls until all k*(k-1) sessions are Established.
func waitMesh(b *testing.B, speakers []*Speaker, k int) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		up := 0
		for _, s := range speakers {
			for _, p := range s.Status(context.Background()) {
				if p.State == "Established" {
					up++
				}
			}
		}
		if up == k*(k-1) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d sessions Established after 30 s", up, k*(k-1))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
