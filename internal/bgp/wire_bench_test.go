//go:build !nogobgp

package bgp

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	gobgpapi "github.com/osrg/gobgp/v3/api"
)

// BenchmarkWireToCallback: how long GoBGP holds an UPDATE between the
// socket and a watcher's callback, the part of UPDATE → kernel that is
// inside GoBGP. Speaker B announces one /32 at a time to speaker A
// through a relay on 127.0.0.3 that parses the BGP messages it forwards
// and notes when it writes each UPDATE into A's socket (just before the
// write: the moment it is on A's wire, plus the write's own few µs). On A, besides the speaker's own BEST watch, no-op
// watchers (they only note the time) of each table event type GoBGP v3
// offers: BEST (best path changed, after the RIB update), ADJIN (pre-
// policy, as received) and POST_POLICY (after import policy). Reported
// per watcher: p50, min, max of relay write → callback (µs), and the
// speaker's callback (decode, record, signal) as speaker-*.
func BenchmarkWireToCallback(b *testing.B) {
	const rounds = 50
	ctx := context.Background()
	portA, portB, portR := freePortK(b, 3), freePortK(b, 3), freePortK(b, 3)
	relay := newUpdateRelay(b, fmt.Sprintf("127.0.0.3:%d", portR), fmt.Sprintf("127.0.0.2:%d", portB))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	var mu sync.Mutex
	seen := map[string][]time.Time{} // watcher -> time of its first callback per round
	round := -1
	note := func(name string) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if round >= 0 && len(seen[name]) == round {
			seen[name] = append(seen[name], now)
		}
	}
	a := NewSpeaker(log, func(sessions bool) {
		if !sessions {
			note("speaker")
		}
	})
	bs := NewSpeaker(log, nil)
	b.Cleanup(func() { a.Stop(true); bs.Stop(true) })
	peer := func(port uint16, passive bool) Peer {
		return Peer{Type: PeerGlobal, Addr: netip.MustParseAddr("127.0.0.3"), Port: port, ASNumber: 64512, Passive: passive}
	}
	da := Desired{Enabled: true, NextHop: netip.MustParseAddr("127.0.0.1"),
		Global: Global{RouterID: netip.MustParseAddr("127.0.0.1"), ASNumber: 64512, ListenPort: int32(portA), ListenAddrs: []string{"127.0.0.1"}},
		Peers:  []Peer{peer(portR, false)}}
	db := Desired{Enabled: true, NextHop: netip.MustParseAddr("127.0.0.2"),
		Global: Global{RouterID: netip.MustParseAddr("127.0.0.2"), ASNumber: 64512, ListenPort: int32(portB), ListenAddrs: []string{"127.0.0.2"}},
		Peers:  []Peer{peer(0, true)}}
	if err := a.Apply(ctx, da); err != nil {
		b.Fatal(err)
	}
	if err := bs.Apply(ctx, db); err != nil {
		b.Fatal(err)
	}
	types := map[string]gobgpapi.WatchEventRequest_Table_Filter_Type{
		"best": gobgpapi.WatchEventRequest_Table_Filter_BEST, "adjin": gobgpapi.WatchEventRequest_Table_Filter_ADJIN,
		"postpolicy": gobgpapi.WatchEventRequest_Table_Filter_POST_POLICY,
	}
	wctx, cancel := context.WithCancel(ctx)
	b.Cleanup(cancel)
	for name, typ := range types {
		req := &gobgpapi.WatchEventRequest{Table: &gobgpapi.WatchEventRequest_Table{Filters: []*gobgpapi.WatchEventRequest_Table_Filter{{Type: typ}}}}
		a.opMu.Lock()
		err := a.srv.WatchEvent(wctx, req, func(r *gobgpapi.WatchEventResponse) {
			if len(r.GetTable().GetPaths()) > 0 {
				note(name)
			}
		})
		a.opMu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
	}
	waitEst := time.Now().Add(30 * time.Second)
	for !slices.ContainsFunc(a.Status(ctx), func(p PeerStatus) bool { return p.State == "Established" }) {
		if time.Now().After(waitEst) {
			b.Fatal("no session through the relay")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // initial exchange (EORs) done

	var wire []time.Time
	for range b.N {
		for r := range rounds {
			mu.Lock()
			round = r
			mu.Unlock()
			relay.expect()
			db.Originated = append(db.Originated, Origin{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 251, byte(r / 256), byte(r)}), 32)})
			if err := bs.Apply(ctx, db); err != nil {
				b.Fatal(err)
			}
			wire = append(wire, relay.wait(b))
			deadline := time.Now().Add(5 * time.Second)
			for {
				mu.Lock()
				done := len(seen["speaker"]) > r
				for name := range types {
					done = done && len(seen[name]) > r
				}
				mu.Unlock()
				if done {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("round %d: not every watcher called back", r)
				}
				time.Sleep(time.Millisecond)
			}
			time.Sleep(5 * time.Millisecond) // let the speaker settle between samples
		}
		break // rounds are the samples; one pass is enough
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	for name, ts := range seen {
		var d []time.Duration
		for i, t := range ts {
			d = append(d, t.Sub(wire[i]))
		}
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2].Microseconds()), name+"-p50-us")
		b.ReportMetric(float64(d[0].Microseconds()), name+"-min-us")
		b.ReportMetric(float64(d[len(d)-1].Microseconds()), name+"-max-us")
	}
}

// updateRelay forwards a BGP session between a connecting speaker and
// the one at dst, from its own address, and notes when it writes each
// UPDATE from dst to the connecting side.
type updateRelay struct {
	mu   sync.Mutex
	want bool
	at   chan time.Time
}

func newUpdateRelay(b *testing.B, listen, dst string) *updateRelay {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	r := &updateRelay{at: make(chan time.Time, 1)}
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			laddr, _ := net.ResolveTCPAddr("tcp", listen[:len("127.0.0.3")]+":0")
			out, err := (&net.Dialer{LocalAddr: laddr}).Dial("tcp", dst)
			if err != nil {
				in.Close()
				continue
			}
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go r.forward(in, out)
		}
	}()
	return r
}

// forward copies BGP messages from src to dst one at a time.
func (r *updateRelay) forward(dst, src net.Conn) {
	defer dst.Close()
	hdr := make([]byte, 19)
	for {
		if _, err := io.ReadFull(src, hdr); err != nil {
			return
		}
		body := make([]byte, int(binary.BigEndian.Uint16(hdr[16:18]))-19)
		if _, err := io.ReadFull(src, body); err != nil {
			return
		}
		msg := append(slices.Clone(hdr), body...)
		// The time before the write: the UPDATE is in A's socket when
		// the write returns, and A may take it before this goroutine
		// runs again.
		now := time.Now()
		if _, err := dst.Write(msg); err != nil {
			return
		}
		if hdr[18] == 2 { // UPDATE
			r.mu.Lock()
			if r.want {
				r.want = false
				r.at <- now
			}
			r.mu.Unlock()
		}
	}
}

// expect arms the relay to report the next UPDATE.
func (r *updateRelay) expect() {
	r.mu.Lock()
	r.want = true
	r.mu.Unlock()
}

func (r *updateRelay) wait(b *testing.B) time.Time {
	select {
	case t := <-r.at:
		return t
	case <-time.After(5 * time.Second):
		b.Fatal("no UPDATE through the relay")
		return time.Time{}
	}
}
