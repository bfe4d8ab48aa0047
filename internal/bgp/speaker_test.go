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

// freePort finds a TCP port free on both loopback addresses.
func freePort(t *testing.T) uint16 {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.2:%d", port)); err == nil {
			l2.Close()
			return uint16(port)
		}
	}
	t.Fatal("no free port")
	return 0
}

func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

// pair builds the desired states of two nodes on loopback addresses that
// listen on port (bindMode NodeIP): a two-node mesh.
func pair(port uint16, blocks []Block) (Desired, Desired) {
	nodes := map[string]Node{
		"a": {Name: "a", IPv4: netip.MustParsePrefix("127.0.0.1/8")},
		"b": {Name: "b", IPv4: netip.MustParsePrefix("127.0.0.2/8")},
	}
	bind := api.BindModeNodeIP
	g := &api.BGPConfigurationSpec{ListenPort: port, BindMode: &bind}
	pools := []Pool{{CIDR: netip.MustParsePrefix("10.244.0.0/16")}}
	da := Calc(&Input{NodeName: "a", Nodes: nodes, Global: g, Pools: pools, Blocks: blocks})
	db := Calc(&Input{NodeName: "b", Nodes: nodes, Global: g, Pools: pools, Blocks: blocks})
	return da, db
}

// TestSpeakersOnLoopback: two in-process speakers form a session, learn
// each other's blocks, and a withdrawn block disappears from the peer.
func TestSpeakersOnLoopback(t *testing.T) {
	port := freePort(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, b := NewSpeaker(log, nil), NewSpeaker(log, nil)
	t.Cleanup(func() { a.Stop(true); b.Stop(true) })
	ctx := context.Background()
	blocks := []Block{
		{CIDR: netip.MustParsePrefix("10.244.1.0/26"), Affinity: "a"},
		{CIDR: netip.MustParsePrefix("10.244.2.0/26"), Affinity: "b",
			Borrowed: map[netip.Addr]string{netip.MustParseAddr("10.244.2.9"): "a"}},
	}
	da, db := pair(port, blocks)
	if err := a.Apply(ctx, da); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, db); err != nil {
		t.Fatal(err)
	}
	learnedIs := func(s *Speaker, want map[string]string) func() error {
		return func() error {
			got, _ := s.Learned()
			if len(got) != len(want) {
				return fmt.Errorf("learned %v, want %v", got, want)
			}
			for p, nh := range want {
				if l, ok := got[netip.MustParsePrefix(p)]; !ok || l.NextHop.String() != nh {
					return fmt.Errorf("learned %v, want %v", got, want)
				}
			}
			return nil
		}
	}
	waitFor(t, "b learns a's routes", learnedIs(b, map[string]string{"10.244.1.0/26": "127.0.0.1", "10.244.2.9/32": "127.0.0.1"}))
	waitFor(t, "a learns b's block", learnedIs(a, map[string]string{"10.244.2.0/26": "127.0.0.2"}))
	st := a.Status(ctx)
	if len(st) != 1 || st[0].State != "Established" || st[0].Type != PeerMesh || st[0].Advertised < 2 || st[0].Received != 1 {
		t.Errorf("a's status %+v", st)
	}

	// The borrowed address is released: only it is withdrawn.
	blocks[1].Borrowed = nil
	da, _ = pair(port, blocks)
	if err := a.Apply(ctx, da); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b drops the /32", learnedIs(b, map[string]string{"10.244.1.0/26": "127.0.0.1"}))
	if st := b.Status(ctx); len(st) != 1 || st[0].Flaps != 0 {
		t.Errorf("withdraw reset the session: %+v", st)
	}
	// A new log level is applied in place: the server and its session stay.
	da.Global.LogSeverity = "Debug"
	if err := a.Apply(ctx, da); err != nil {
		t.Fatal(err)
	}
	if st := a.Status(ctx); len(st) != 1 || st[0].State != "Established" {
		t.Errorf("log level change restarted the speaker: %+v", st)
	}
}
