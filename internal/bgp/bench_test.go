//go:build !nogobgp

package bgp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

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
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d sessions Established after 30 s", up, k*(k-1))
			}
			time.Sleep(5 * time.Millisecond)
		}
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
