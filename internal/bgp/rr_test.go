//go:build !nogobgp

package bgp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gobgpapi "github.com/osrg/gobgp/v3/api"

	"github.com/onecalico/calico/internal/api"
)

// rrCluster is k in-process speakers set up as calico-node sets them up
// for a route-reflected cluster: node-to-node mesh off, nodes 1 and 2
// carry routeReflectorClusterID 244.0.0.1 and the label route-reflector,
// and one BGPPeer (every node, peerSelector has(route-reflector)) makes
// every node peer with both reflectors and the reflectors with each other.
// Node i listens on 127.0.0.i (one port, bindMode NodeIP) and affine to
// block i of 10.128.0.0/10. Each speaker's Desired comes from Calc over
// the same Input the agent builds from its model.
type rrCluster struct {
	t        testing.TB
	port     uint16
	names    []string // n001..; the first two are the reflectors
	nodes    map[string]Node
	blocks   []Block
	speakers []*Speaker
	index    map[string]int // node name -> index in names
	// bothActive makes both ends of every session connect (Calc makes
	// only the end with the smaller address connect), to measure the
	// connection collisions that avoids.
	bothActive bool
	// appliedAt[i] is when speaker i's first Apply returned.
	appliedAt []time.Time
	// handler, if set, gives the log handler of the speaker at an
	// address (instead of RR_LOG or none); severity is logSeverityScreen.
	handler  func(addr string) slog.Handler
	severity string

	// changed[i] is set (and wake signalled) whenever speaker i's learned
	// routes change; watchers use it instead of polling every speaker.
	changed []atomic.Bool
	wake    chan struct{}
}

// newRRCluster sets up k nodes; with shared the two reflectors have the
// same routeReflectorClusterID (244.0.0.1, as upstream's documentation
// shows), else 244.0.0.1 and 244.0.0.2.
func newRRCluster(t testing.TB, k int, port uint16, shared bool) *rrCluster {
	c := &rrCluster{t: t, port: port, nodes: map[string]Node{}, index: map[string]int{}, changed: make([]atomic.Bool, k), wake: make(chan struct{}, 1)}
	for i := 1; i <= k; i++ {
		name := fmt.Sprintf("n%03d", i)
		n := Node{Name: name, IPv4: netip.MustParsePrefix(fmt.Sprintf("127.0.0.%d/8", i)), Labels: map[string]string{}}
		if i <= 2 {
			n.RRClusterID = "244.0.0.1"
			if !shared {
				n.RRClusterID = fmt.Sprintf("244.0.0.%d", i)
			}
			n.Labels["route-reflector"] = "true"
		}
		c.index[name] = len(c.names)
		c.names = append(c.names, name)
		c.nodes[name] = n
		c.blocks = append(c.blocks, Block{CIDR: rrBlock(i), Affinity: name})
	}
	return c
}

// rrBlock is the i-th /26 of 10.128.0.0/10.
func rrBlock(i int) netip.Prefix {
	v := uint32(10)<<24 | uint32(128)<<16 + uint32(i)<<6
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 26)
}

func (c *rrCluster) input(name string) *Input {
	bind, mesh := api.BindModeNodeIP, false
	p := api.NewBGPPeer()
	p.Name = "peer-with-route-reflectors"
	p.Spec.PeerSelector = "has(route-reflector)"
	return &Input{
		NodeName: name, Nodes: c.nodes,
		Global: &api.BGPConfigurationSpec{ListenPort: c.port, BindMode: &bind, NodeToNodeMeshEnabled: &mesh, LogSeverityScreen: c.severity},
		Peers:  map[string]*api.BGPPeer{p.Name: p},
		Pools:  []Pool{{CIDR: netip.MustParsePrefix("10.128.0.0/10")}},
		Blocks: c.blocks,
	}
}

// start creates and applies every speaker, in node order.
func (c *rrCluster) start() {
	var w io.Writer = io.Discard
	if path := os.Getenv("RR_LOG"); path != "" {
		// RR_LOG=<file>: every speaker's log (GoBGP's included), for
		// looking into slow sessions.
		f, err := os.Create(path)
		if err != nil {
			c.t.Fatal(err)
		}
		c.t.Cleanup(func() { f.Close() })
		w = f
	}
	for i, name := range c.names {
		log := slog.New(slog.NewTextHandler(w, nil)).With("node", name)
		if c.handler != nil {
			log = slog.New(c.handler(c.nodes[name].IPv4.Addr().String()))
		}
		s := NewSpeaker(log, func(sessions bool) {
			if sessions {
				return
			}
			c.changed[i].Store(true)
			select {
			case c.wake <- struct{}{}:
			default:
			}
		})
		c.speakers = append(c.speakers, s)
		if err := c.apply(i); err != nil {
			c.t.Fatal(err)
		}
		c.appliedAt = append(c.appliedAt, time.Now())
	}
	c.t.Cleanup(func() {
		for _, s := range c.speakers {
			s.Stop(true)
		}
	})
}

func (c *rrCluster) apply(i int) error {
	d := Calc(c.input(c.names[i]))
	if len(d.Problems) > 0 {
		return fmt.Errorf("%s: %v", c.names[i], d.Problems)
	}
	// Every node listens on c.port, not 179 (they share one host here);
	// Calc gives peerSelector sessions the default port, so point them at
	// c.port as a real cluster's port 179 would be.
	for j := range d.Peers {
		p := &d.Peers[j]
		if p.Port == 0 {
			p.Port = c.port
		}
		if c.bothActive {
			p.Passive = false
		}
	}
	return c.speakers[i].Apply(context.Background(), d)
}

// addBlock makes node i affine to one more block and applies its speaker.
func (c *rrCluster) addBlock(i int, cidr netip.Prefix) {
	c.blocks = append(slices.Clip(c.blocks), Block{CIDR: cidr, Affinity: c.names[i]})
	if err := c.apply(i); err != nil {
		c.t.Fatal(err)
	}
}

// expected is what speaker i must have learned: every other live node's
// blocks (skip lists nodes whose blocks are not expected).
func (c *rrCluster) expected(i int, skip ...int) []netip.Prefix {
	var out []netip.Prefix
	for _, b := range c.blocks {
		j := c.index[b.Affinity]
		if j != i && !slices.Contains(skip, j) {
			out = append(out, b.CIDR)
		}
	}
	return out
}

// missing counts the prefixes of want that speaker i has not learned.
func (c *rrCluster) missing(i int, want []netip.Prefix) int {
	l, _ := c.speakers[i].Learned()
	n := 0
	for _, p := range want {
		if _, ok := l[p]; !ok {
			n++
		}
	}
	return n
}

// waitUntil runs check(i) for every speaker in live at once and then for
// each speaker whose learned routes changed, until check has returned
// true for all of them; it records when each first did (relative to t0).
// It fails the test after timeout.
func (c *rrCluster) waitUntil(t0 time.Time, live []int, timeout time.Duration, check func(i int) bool) map[int]time.Duration {
	c.t.Helper()
	seen := map[int]time.Duration{}
	test := func(i int) {
		if _, ok := seen[i]; !ok && check(i) {
			seen[i] = time.Since(t0)
		}
	}
	for _, i := range live {
		test(i)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	// A backstop poll: a change that lands between a check and the flag
	// reset is caught by the next tick.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for len(seen) < len(live) {
		all := false
		select {
		case <-c.wake:
		case <-tick.C:
			all = true
		case <-deadline.C:
			c.t.Fatalf("after %v only %d of %d speakers are done", timeout, len(seen), len(live))
		}
		for _, i := range live {
			if c.changed[i].Swap(false) || all {
				test(i)
			}
		}
	}
	return seen
}

func (c *rrCluster) all(except ...int) []int {
	var out []int
	for i := range c.names {
		if !slices.Contains(except, i) {
			out = append(out, i)
		}
	}
	return out
}

// converge waits until every speaker has every other speaker's blocks and
// returns the time from t0 to the last one.
func (c *rrCluster) converge(t0 time.Time, timeout time.Duration) time.Duration {
	seen := c.waitUntil(t0, c.all(), timeout, func(i int) bool { return c.missing(i, c.expected(i)) == 0 })
	return maxOf(seen)
}

// waitSessions polls (every 10 ms) until every configured session of
// every speaker is Established and returns the time from t0.
func (c *rrCluster) waitSessions(t0 time.Time, timeout time.Duration) time.Duration {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		down := 0
		for _, s := range c.speakers {
			for _, p := range s.Status(context.Background()) {
				if p.State != "Established" {
					down++
				}
			}
		}
		if down == 0 {
			return time.Since(t0)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%d sessions not Established after %v", down, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// established returns the time (from t0) at which the first and the last
// session of the cluster became Established, counted from each speaker's
// own view, and how many sessions there are.
func (c *rrCluster) established(t0 time.Time) (first, last time.Duration, n int) {
	first = time.Hour
	for _, s := range c.speakers {
		for _, p := range s.Status(context.Background()) {
			if p.State != "Established" {
				continue
			}
			d := p.Since.Sub(t0)
			first, last = min(first, d), max(last, d)
			n++
		}
	}
	return first, last, n
}

// withdrawCounter counts, on every speaker but skip, the BEST-path
// withdrawals of prefixes in watch: a route the node's dataplane would
// lose. A best path that moves to another peer is not a withdrawal.
type withdrawCounter struct {
	n      atomic.Int64
	mu     sync.Mutex
	first  string
	cancel []context.CancelFunc
}

func (c *rrCluster) countWithdrawals(watch []netip.Prefix, skip int) *withdrawCounter {
	w := &withdrawCounter{}
	for i, s := range c.speakers {
		if i == skip {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		w.cancel = append(w.cancel, cancel)
		req := &gobgpapi.WatchEventRequest{Table: &gobgpapi.WatchEventRequest_Table{
			Filters: []*gobgpapi.WatchEventRequest_Table_Filter{{Type: gobgpapi.WatchEventRequest_Table_Filter_BEST}}}}
		name := c.names[i]
		s.opMu.Lock()
		err := s.srv.WatchEvent(ctx, req, func(r *gobgpapi.WatchEventResponse) {
			for _, p := range r.GetTable().GetPaths() {
				pfx, _, ok := decodePath(p)
				if ok && p.IsWithdraw && slices.Contains(watch, pfx) {
					w.n.Add(1)
					w.mu.Lock()
					if w.first == "" {
						w.first = fmt.Sprintf("%s lost %s", name, pfx)
					}
					w.mu.Unlock()
				}
			}
		})
		s.opMu.Unlock()
		if err != nil {
			c.t.Fatal(err)
		}
	}
	c.t.Cleanup(w.stop)
	return w
}

func (w *withdrawCounter) stop() {
	for _, f := range w.cancel {
		f()
	}
}

// sampler reads every live speaker's learned routes every interval and
// keeps the most prefixes of want(i) that any speaker i lacked at once.
type sampler struct {
	worst   atomic.Int64
	samples atomic.Int64
	stop    func()
}

func (c *rrCluster) sample(live []int, want func(i int) []netip.Prefix, interval time.Duration) *sampler {
	s := &sampler{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		round := func() {
			for _, i := range live {
				if m := int64(c.missing(i, want(i))); m > s.worst.Load() {
					s.worst.Store(m)
				}
			}
			s.samples.Add(1)
		}
		for {
			round()
			select {
			case <-ctx.Done():
				round() // the state at the end counts too
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	s.stop = func() { once.Do(func() { cancel(); <-done }) }
	c.t.Cleanup(s.stop)
	return s
}

// viaPeer reports whether every prefix of want is learned by speaker i
// from peer.
func (c *rrCluster) viaPeer(i int, want []netip.Prefix, peer netip.Addr) bool {
	l, _ := c.speakers[i].Learned()
	for _, p := range want {
		if r, ok := l[p]; !ok || r.Peer != peer {
			return false
		}
	}
	return true
}

// redundant reports whether speaker i holds every prefix of want from at
// least two peers (both reflectors, for a client).
func (c *rrCluster) redundant(i int, want []netip.Prefix) bool {
	n := map[string]int{}
	s := c.speakers[i]
	s.opMu.Lock()
	err := s.srv.ListPath(context.Background(), &gobgpapi.ListPathRequest{TableType: gobgpapi.TableType_GLOBAL, Family: familyV4},
		func(d *gobgpapi.Destination) { n[d.Prefix] = len(d.Paths) })
	s.opMu.Unlock()
	if err != nil {
		c.t.Fatal(err)
	}
	for _, p := range want {
		if n[p.String()] < 2 {
			return false
		}
	}
	return true
}

// lossResult is what losing a reflector did.
type lossResult struct {
	withdrawn int64         // best paths of live nodes withdrawn, on any speaker
	worst     int64         // most live nodes' routes one speaker lacked at a sample
	samples   int64         // sampling rounds (every speaker each)
	moved     time.Duration // until every client had every path via the other reflector
}

// rrLoss stops reflector 0 (with a NOTIFICATION, so clients drop its
// paths at once rather than keep them as stale under graceful restart)
// and waits until every client learns every live node's blocks via
// reflector 1, and reflector 1 still has them all.
func (c *rrCluster) rrLoss(timeout time.Duration) lossResult {
	// The lost reflector's own blocks go with it; every other must stay.
	keep := func(i int) []netip.Prefix { return c.expected(i, 0) }
	var watch []netip.Prefix
	for _, b := range c.blocks {
		if b.Affinity != c.names[0] {
			watch = append(watch, b.CIDR)
		}
	}
	// Steady state first: every client holds every route via both
	// reflectors (a change made just before may not have reached both).
	c.waitUntil(time.Now(), c.all(0, 1), timeout, func(i int) bool { return c.redundant(i, keep(i)) })
	w := c.countWithdrawals(watch, 0)
	smp := c.sample(c.all(0), keep, 2*time.Millisecond)
	rr1 := c.nodes[c.names[1]].IPv4.Addr()
	t0 := time.Now()
	c.speakers[0].Stop(true)
	seen := c.waitUntil(t0, c.all(0, 1), timeout, func(i int) bool { return c.viaPeer(i, keep(i), rr1) })
	c.waitUntil(t0, []int{1}, timeout, func(i int) bool { return c.missing(i, keep(i)) == 0 })
	smp.stop()
	w.stop()
	if w.n.Load() > 0 {
		c.t.Logf("first withdrawal: %s", w.first)
	}
	return lossResult{withdrawn: w.n.Load(), worst: smp.worst.Load(), samples: smp.samples.Load(), moved: maxOf(seen)}
}

// freePortK finds a port free on 127.0.0.1..k.
func freePortK(t testing.TB, k int) uint16 {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
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
	t.Fatal("no free port")
	return 0
}

func maxOf(m map[int]time.Duration) time.Duration {
	var out time.Duration
	for _, d := range m {
		out = max(out, d)
	}
	return out
}

// TestRouteReflectorsLoseNoRoute: 10 speakers behind 2 route reflectors
// (mesh off) learn every other node's block; a block added on one node
// reaches all; once every client holds every route via both reflectors,
// stopping one withdraws no route of a live node on any speaker (GoBGP's
// best-path events and a 2 ms sampler both watch), and every client ends
// with every path via the other reflector. The reflectors have their own
// cluster IDs, or share one (as upstream's documentation sets them up).
//
// The steady state matters: right after a change a client may hold the
// new route via one reflector only, and losing that one then withdraws it
// until the other's update arrives (seen here before the wait was added).
func TestRouteReflectorsLoseNoRoute(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared-cluster-id=%v", shared), func(t *testing.T) { testRRLoss(t, shared) })
	}
}

func testRRLoss(t *testing.T, shared bool) {
	const k = 10
	c := newRRCluster(t, k, freePortK(t, k), shared)
	t0 := time.Now()
	c.start()
	c.converge(t0, 60*time.Second)
	// Redundancy needs both reflectors' sessions up, which can come after
	// the routes have all arrived through one.
	c.waitSessions(t0, 60*time.Second)
	for _, i := range []int{0, 1} {
		if peers := len(c.speakers[i].Status(context.Background())); peers != k-1 {
			t.Errorf("reflector %s has %d peers, want %d", c.names[i], peers, k-1)
		}
	}
	if peers := len(c.speakers[5].Status(context.Background())); peers != 2 {
		t.Errorf("client %s has %d peers, want the 2 reflectors", c.names[5], peers)
	}

	extra := rrBlock(1000)
	t1 := time.Now()
	c.addBlock(5, extra)
	c.waitUntil(t1, c.all(5), 30*time.Second, func(i int) bool { return c.missing(i, []netip.Prefix{extra}) == 0 })

	r := c.rrLoss(30 * time.Second)
	if r.withdrawn != 0 {
		t.Errorf("%d best paths of live nodes withdrawn after a reflector stopped", r.withdrawn)
	}
	if r.worst != 0 || r.samples < 2 {
		t.Errorf("a speaker lacked %d live nodes' routes at a sample (%d samples)", r.worst, r.samples)
	}
}
