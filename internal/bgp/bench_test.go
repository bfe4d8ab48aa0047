//go:build !nogobgp

package bgp

import (
	"context"
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
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/onecalico/calico/internal/api"
)

// BenchmarkMeshEstablished: k in-process speakers on 127.0.0.1..k (one
// port, bindMode NodeIP) form a full mesh with upstream's passive rule;
// time from the first Apply to every session Established.
func BenchmarkMeshEstablished(b *testing.B) {
	for _, k := range []int{3, 20} {
		b.Run(fmt.Sprint(k), func(b *testing.B) { benchMesh(b, k) })
	}
}

func benchMesh(b *testing.B, k int) {
	port := freePortB(b, k)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	nodes := map[string]Node{}
	for i := 1; i <= k; i++ {
		name := fmt.Sprintf("n%02d", i)
		nodes[name] = Node{Name: name, IPv4: netip.MustParsePrefix(fmt.Sprintf("127.0.0.%d/8", i))}
	}
	bind := api.BindModeNodeIP
	g := &api.BGPConfigurationSpec{ListenPort: port, BindMode: &bind}
	var total, applied time.Duration
	for range b.N {
		speakers := make([]*Speaker, 0, k)
		t0 := time.Now()
		for name := range nodes {
			s := NewSpeaker(log, nil)
			speakers = append(speakers, s)
			if err := s.Apply(context.Background(), Calc(&Input{NodeName: name, Nodes: nodes, Global: g})); err != nil {
				b.Fatal(err)
			}
		}
		applied += time.Since(t0)
		waitMesh(b, speakers, k)
		total += time.Since(t0)
		for _, s := range speakers {
			s.Stop(true)
		}
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "established-ms")
	b.ReportMetric(float64(applied.Milliseconds())/float64(b.N), "all-started-ms")
}

// freePortB finds a port free on 127.0.0.1..k.
func freePortB(b *testing.B, k int) uint16 {
	b.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		ok := true
		for i := 2; i <= k && ok; i++ {
			l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%d", i, port))
			if err != nil {
				ok = false
				continue
			}
			l2.Close()
		}
		if ok {
			return uint16(port)
		}
	}
	b.Fatal("no free port")
	return 0
}

// BenchmarkMeshFloorGoBGP is BenchmarkMeshEstablished's floor set by
// GoBGP v3.37.0 alone: 20 bare servers (no calico code: GoBGP's API only,
// its default logger at warning level) on 127.0.0.1..20, one port, each
// configured with a session to every other, the lower address dialling
// (upstream's passive rule, as the speaker's mesh) and ConnectRetry 1 s as
// the speaker sets it, all started at once. Reported over 5 rounds: the
// median and maximum of the time from the first start to all 190 sessions
// Established on both ends (peer-state watch events, no polling), and
// the largest time from a session's peer being added on the dialling end
// to that end's Established. GoBGP dials a new peer after a random
// 1,000-1,999 ms (pkg/server/fsm.go connectLoop), so with 190 dialled
// sessions the expected latest draw is 1 + 190/191 s = 1.995 s.
func BenchmarkMeshFloorGoBGP(b *testing.B) {
	const k, rounds = 20, 5
	var total, dial []time.Duration
	for range b.N {
		for range rounds {
			t, d := meshFloorRound(b, k)
			total, dial = append(total, t), append(dial, d)
		}
	}
	slices.Sort(total)
	slices.Sort(dial)
	b.ReportMetric(float64(total[len(total)/2].Milliseconds()), "established-p50-ms")
	b.ReportMetric(float64(total[len(total)-1].Milliseconds()), "established-max-ms")
	b.ReportMetric(float64(dial[len(dial)-1].Milliseconds()), "added-to-established-max-ms")
	b.ReportMetric(float64(total[0].Milliseconds()), "established-min-ms")
}

// meshFloorRound starts k bare GoBGP servers in a full mesh and returns
// the time from the first start to the last Established event, and the
// largest time from adding a session's peer on its dialling end to that
// end's Established.
func meshFloorRound(b *testing.B, k int) (time.Duration, time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	port := int32(freePortB(b, k))
	addr := func(i int) string { return fmt.Sprintf("127.0.0.%d", i) }
	type ev struct {
		at     time.Time
		dialer bool
		peer   string
	}
	var mu sync.Mutex
	est := map[string]ev{}          // "local>remote" -> first Established
	added := map[string]time.Time{} // same key -> peer added
	srvs := make([]*server.BgpServer, 0, k)
	defer func() {
		for _, s := range srvs {
			s.Stop()
		}
	}()
	t0 := time.Now()
	for i := 1; i <= k; i++ {
		me := addr(i)
		s := server.NewBgpServer(server.LoggerOption(warnLog()))
		go s.Serve()
		srvs = append(srvs, s)
		err := s.StartBgp(ctx, &gobgpapi.StartBgpRequest{Global: &gobgpapi.Global{
			Asn: 64512, RouterId: me, ListenPort: port, ListenAddresses: []string{me},
			GracefulRestart: &gobgpapi.GracefulRestart{Enabled: true},
		}})
		if err != nil {
			b.Fatal(err)
		}
		err = s.WatchEvent(ctx, &gobgpapi.WatchEventRequest{Peer: &gobgpapi.WatchEventRequest_Peer{}}, func(r *gobgpapi.WatchEventResponse) {
			st := r.GetPeer().GetPeer().GetState()
			if st.GetSessionState() != gobgpapi.PeerState_ESTABLISHED {
				return
			}
			now := time.Now()
			key := me + ">" + st.NeighborAddress
			mu.Lock()
			if _, ok := est[key]; !ok {
				est[key] = ev{at: now, dialer: st.NeighborAddress > me, peer: st.NeighborAddress}
			}
			mu.Unlock()
		})
		if err != nil {
			b.Fatal(err)
		}
		for j := 1; j <= k; j++ {
			if j == i {
				continue
			}
			other := addr(j)
			p := &gobgpapi.Peer{
				Conf:            &gobgpapi.PeerConf{NeighborAddress: other, PeerAsn: 64512},
				Transport:       &gobgpapi.Transport{LocalAddress: me, PassiveMode: other > me, RemotePort: uint32(port)},
				Timers:          &gobgpapi.Timers{Config: &gobgpapi.TimersConfig{ConnectRetry: 1}},
				GracefulRestart: &gobgpapi.GracefulRestart{Enabled: true},
				AfiSafis: []*gobgpapi.AfiSafi{{
					Config:            &gobgpapi.AfiSafiConfig{Family: familyV4, Enabled: true},
					MpGracefulRestart: &gobgpapi.MpGracefulRestart{Config: &gobgpapi.MpGracefulRestartConfig{Enabled: true}},
				}},
			}
			mu.Lock()
			added[me+">"+other] = time.Now()
			mu.Unlock()
			if err := s.AddPeer(ctx, &gobgpapi.AddPeerRequest{Peer: p}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(est)
		mu.Unlock()
		if n == k*(k-1) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d session ends Established after 30 s", n, k*(k-1))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var last time.Time
	var dial time.Duration
	for key, e := range est {
		if e.at.After(last) {
			last = e.at
		}
		if e.dialer {
			dial = max(dial, e.at.Sub(added[key]))
		}
	}
	return last.Sub(t0), dial
}

// warnLog is GoBGP's default logger at warning level.
func warnLog() gobgplog.Logger {
	l := gobgplog.NewDefaultLogger()
	l.SetLevel(gobgplog.WarnLevel)
	return l
}
