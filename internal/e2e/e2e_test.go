package e2e_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/testutil"
)

// The lab's pools. "always" exists before the daemons start, so their
// VXLAN tunnel addresses come from it; it is never deleted.
var (
	poolAlways = pool{"always", "10.244.0.0/16", "Always", true}
	poolCross  = pool{"cross", "10.245.0.0/16", "CrossSubnet", true}
	poolNever  = pool{"never", "10.246.0.0/16", "Never", true}
	poolNoNAT  = pool{"nonat", "10.247.0.0/16", "CrossSubnet", false}
	poolDoomed = pool{"doomed", "10.250.0.0/16", "Always", true}
)

// TestPrivilegedMultiNode runs the end-to-end cases on one shared
// three-node lab, in an order where each case leaves the lab usable for
// the next; node removal is last.
func TestPrivilegedMultiNode(t *testing.T) {
	c := newCluster(t, poolAlways)
	c.applyPools(t, poolCross, poolNever, poolNoNAT)
	t.Run("VXLANAlways", c.testVXLANAlways)
	t.Run("VXLANPeerFilter", c.testVXLANPeerFilter)
	t.Run("VXLANCrossSubnet", c.testCrossSubnet)
	t.Run("NoEncapsulation", c.testNoEncap)
	t.Run("NATOutgoing", c.testNATOutgoing)
	t.Run("RestartUnderPing", c.testRestartUnderPing)
	t.Run("PoolDeletion", c.testPoolDeletion)
	t.Run("NodeRemoval", c.testNodeRemoval)
}

// VXLAN Always: each node has a blackhole for its own block and a route
// over vxlan.calico to every other node's block (through the router for
// n3), and every pod pings every other pod (two pods per node, so pods on
// the same node are covered too).
func (c *cluster) testVXLANAlways(t *testing.T) {
	pods := append(c.addPods(t, "a1", "always", c.nodes...), c.addPods(t, "a2", "always", c.nodes...)...)
	for _, n := range c.nodes {
		for _, p := range pods[:3] {
			want := c.vxlanRoute(t, block(p), p.Node)
			if p.Node == n {
				want = blackhole(block(p))
			}
			c.waitRoute(t, n, block(p), want)
		}
	}
	pingMatrix(t, pods)
}

// VXLAN CrossSubnet: n1 and n2 share a subnet, so their blocks are routed
// directly via the node address on eth0 and that traffic never enters
// vxlan.calico; n3 is across the router, so traffic to and from it is
// encapsulated (vxlan.calico's TX counter grows by at least the pings).
func (c *cluster) testCrossSubnet(t *testing.T) {
	pods := c.addPods(t, "x1", "cross", c.nodes...)
	p1, p2, p3 := pods[0], pods[1], pods[2]
	c.waitRoute(t, c.n1, block(p2), directRoute(block(p2), c.n2))
	c.waitRoute(t, c.n2, block(p1), directRoute(block(p1), c.n1))
	c.waitRoute(t, c.n1, block(p3), c.vxlanRoute(t, block(p3), c.n3))
	c.waitRoute(t, c.n2, block(p3), c.vxlanRoute(t, block(p3), c.n3))
	c.waitRoute(t, c.n3, block(p1), c.vxlanRoute(t, block(p1), c.n1))
	c.waitRoute(t, c.n3, block(p2), c.vxlanRoute(t, block(p2), c.n2))

	const count = 50
	// Same subnet: direct, both ways.
	ping(t, p1, p2.IP, 1) // settle neighbours first
	before1, before2 := vxlanTX(t, c.n1), vxlanTX(t, c.n2)
	ping(t, p1, p2.IP, count)
	ping(t, p2, p1.IP, count)
	if d1, d2 := vxlanTX(t, c.n1)-before1, vxlanTX(t, c.n2)-before2; d1 != 0 || d2 != 0 {
		t.Errorf("n1<->n2 traffic went through %s: TX +%d on n1, +%d on n2", agent.VXLANDevice, d1, d2)
	}
	// Across the router: encapsulated, both ways.
	for _, src := range []*labtest.CNIPod{p1, p2} {
		ping(t, src, p3.IP, 1)
		beforeSrc, before3 := vxlanTX(t, src.Node), vxlanTX(t, c.n3)
		ping(t, src, p3.IP, count)
		if d := vxlanTX(t, src.Node) - beforeSrc; d < count {
			t.Errorf("%s->n3: %s TX on %s grew by %d, want >= %d", src.Node.Name, agent.VXLANDevice, src.Node.Name, d, count)
		}
		if d := vxlanTX(t, c.n3) - before3; d < count {
			t.Errorf("%s->n3: replies: %s TX on n3 grew by %d, want >= %d", src.Node.Name, agent.VXLANDevice, d, count)
		}
	}
	ping(t, p3, p1.IP, 3)
	ping(t, p3, p2.IP, 3)
}

// No encapsulation (vxlanMode and ipipMode Never) on one subnet: n1 and n2
// route each other's blocks directly and their pods talk without the
// tunnel; n3, on another subnet, gets no route at all for those blocks
// (that would need BGP), rather than a wrong one.
func (c *cluster) testNoEncap(t *testing.T) {
	pods := c.addPods(t, "e1", "never", c.n1, c.n2)
	p1, p2 := pods[0], pods[1]
	c.waitRoute(t, c.n1, block(p2), directRoute(block(p2), c.n2))
	c.waitRoute(t, c.n2, block(p1), directRoute(block(p1), c.n1))
	c.waitRoute(t, c.n1, block(p1), blackhole(block(p1)))
	ping(t, p1, p2.IP, 1)
	before := vxlanTX(t, c.n1)
	ping(t, p1, p2.IP, 20)
	ping(t, p2, p1.IP, 20)
	if d := vxlanTX(t, c.n1) - before; d != 0 {
		t.Errorf("unencapsulated traffic went through %s: TX +%d on n1", agent.VXLANDevice, d)
	}
	for _, p := range pods {
		if got := routesIn(t, c.n3, block(p)); len(got) != 0 {
			t.Errorf("n3 has a route for %s of a no-encapsulation pool on another subnet: %q", block(p), got)
		}
	}
}

// NAT outgoing: pods of a natOutgoing pool reach the external host, which
// has no route back to any pool, and a TCP server there sees the node's
// address as the source; a pod of a pool without natOutgoing arrives with
// its own address (seen by a UDP listener) and its TCP connection gets no
// answer.
func (c *cluster) testNATOutgoing(t *testing.T) {
	ext := c.lab.External
	tcp := listenTCP(t, ext)
	udp := listenUDP(t, ext)
	for _, p := range c.addPods(t, "o1", "always", c.n1, c.n3) {
		var seen string
		err := testutil.Poll(convergeTimeout, func() error {
			var err error
			seen, err = dialTCP(p.NS, tcp, 2*time.Second)
			return err
		})
		if err != nil {
			t.Fatalf("%s/%s (%s) -> %s: %v", p.Node.Name, p.Name, p.IP, tcp, err)
		}
		if seen != p.Node.IP.Addr().String() {
			t.Errorf("%s/%s (%s): the external host saw %s, want the node's address %s", p.Node.Name, p.Name, p.IP, seen, p.Node.IP.Addr())
		}
		t.Logf("%s/%s (%s) -> %s: the external host saw %s", p.Node.Name, p.Name, p.IP, tcp, seen)
	}

	p := c.addPods(t, "o2", "nonat", c.n1)[0]
	if src := sendUDP(t, p, udp); src != p.IP.String() {
		t.Errorf("without natOutgoing the external host saw %s, want the pod's %s", src, p.IP)
	}
	if seen, err := dialTCP(p.NS, tcp, 2*time.Second); err == nil {
		t.Errorf("without natOutgoing a TCP connection to the external host succeeded (it saw %s): replies came back", seen)
	}
}

// listenTCP serves, inside namespace ns on the external address, one line
// per connection: the source address the server sees.
func listenTCP(t testing.TB, ns string) string {
	t.Helper()
	var ln net.Listener
	addr := netip.AddrPortFrom(labtest.ExternalIP, 8080).String()
	if err := netns.Do(ns, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
			fmt.Fprintln(conn, host)
			conn.Close()
		}
	}()
	return addr
}

// dialTCP connects from namespace ns and returns what the server said.
func dialTCP(ns, addr string, timeout time.Duration) (string, error) {
	var line string
	err := netns.Do(ns, func() error {
		conn, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(timeout))
		line, err = bufio.NewReader(conn).ReadString('\n')
		return err
	})
	return strings.TrimSpace(line), err
}

// udpListener records the source of every datagram it receives.
type udpListener struct {
	addr string
	mu   sync.Mutex
	from map[string]string // payload -> source address
}

func listenUDP(t testing.TB, ns string) *udpListener {
	t.Helper()
	u := &udpListener{addr: netip.AddrPortFrom(labtest.ExternalIP, 8081).String(), from: map[string]string{}}
	var pc net.PacketConn
	if err := netns.Do(ns, func() (err error) { pc, err = net.ListenPacket("udp", u.addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 256)
		for {
			n, src, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(src.String())
			u.mu.Lock()
			u.from[string(buf[:n])] = host
			u.mu.Unlock()
		}
	}()
	return u
}

// sendUDP sends datagrams from pod p to the listener until one arrives and
// returns the source address the listener saw.
func sendUDP(t testing.TB, p *labtest.CNIPod, u *udpListener) string {
	t.Helper()
	payload := p.ContainerID
	var src string
	err := testutil.Poll(convergeTimeout, func() error {
		if err := netns.Do(p.NS, func() error {
			conn, err := net.Dial("udp", u.addr)
			if err != nil {
				return err
			}
			defer conn.Close()
			_, err = conn.Write([]byte(payload))
			return err
		}); err != nil {
			return err
		}
		deadline := time.Now().Add(200 * time.Millisecond)
		for time.Now().Before(deadline) {
			u.mu.Lock()
			s, ok := u.from[payload]
			u.mu.Unlock()
			if ok {
				src = s
				return nil
			}
			time.Sleep(5 * time.Millisecond)
		}
		return errors.New("no datagram arrived")
	})
	if err != nil {
		t.Fatalf("UDP from %s/%s to %s: %v", p.Node.Name, p.Name, u.addr, err)
	}
	return src
}

// Restart under traffic: n1's daemon is stopped (SIGTERM) and started
// again while pods ping each other every 10 ms in both directions, over
// VXLAN (n1<->n3) and directly (n2->n1). No packet may be lost, the
// kernel must not see a single route added or deleted during the restart,
// and everything the daemon programs must read back the same afterwards.
func (c *cluster) testRestartUnderPing(t *testing.T) {
	testutil.RequireCmd(t, "bridge")
	pods := c.addPods(t, "r1", "cross", c.nodes...)
	p1, p2, p3 := pods[0], pods[1], pods[2]
	for _, pr := range [][2]*labtest.CNIPod{{p1, p3}, {p3, p1}, {p2, p1}} {
		ping(t, pr[0], pr[1].IP, 3)
	}
	// New veths get IPv6 link-local addresses (and their local routes)
	// only after duplicate address detection: let that finish, so that the
	// kernel's own changes are not mistaken for the daemon's.
	c.eventually(t, "IPv6 DAD on n1", func() error {
		addrs, err := c.n1.Handle().AddrList(nil, netlink.FAMILY_V6)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if a.Flags&unix.IFA_F_TENTATIVE != 0 {
				return fmt.Errorf("%s is tentative", a.IPNet)
			}
		}
		return nil
	})
	before := state(t, c.n1)

	// Watch n1's routes for the whole restart.
	routes := labtest.WatchRoutes(t, c.n1.NS)

	var pingers []*labtest.Pinger
	for _, pr := range [][2]*labtest.CNIPod{{p1, p3}, {p3, p1}, {p2, p1}} {
		name := fmt.Sprintf("ping %s/%s -> %s", pr[0].Node.Name, pr[0].Name, pr[1].IP)
		pingers = append(pingers, labtest.StartPing(t, name, pr[0].NS, pr[1].IP))
	}
	// Let each pinger get going before the restart.
	for _, pg := range pingers {
		pg.WaitReplies(t, 20, convergeTimeout)
	}
	old := c.procs["n1"]
	stopStart := time.Now()
	if code, err := old.Stop(10 * time.Second); err != nil || code != 0 {
		t.Fatalf("stop calico-node n1: exit %d, %v", code, err)
	}
	p := c.n1.StartProcess(c.bin, c.n1.Env())
	c.procs["n1"] = p
	ready, err := p.WaitReady(readyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("n1 restarted: SIGTERM to ready %v (new process ready %v after exec)", time.Since(stopStart).Round(time.Millisecond), ready.Round(time.Millisecond))
	// Keep the traffic going while the new daemon settles (it applies in
	// full after its first sync, then watches).
	for _, pg := range pingers {
		pg.WaitReplies(t, pg.Replies()+100, convergeTimeout)
	}
	for _, pg := range pingers {
		sent, lost := pg.Stop(t)
		t.Logf("%s: %d sent, %d lost", pg.Name, sent, len(lost))
		if len(lost) > 0 {
			t.Errorf("%s lost %d of %d packets during the restart: icmp_seq %v", pg.Name, len(lost), sent, lost)
		}
	}
	changes := routes.Changes()
	if len(changes) > 0 {
		t.Errorf("the restart changed n1's routes:\n%s", strings.Join(changes, "\n"))
	}
	if after := state(t, c.n1); after != before {
		t.Errorf("n1's dataplane differs after the restart:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// Pool deletion: `calicoctl delete ippool` takes the pool's blocks out of
// every node's routes (remote routes and the local blackholes) and out of
// the NAT sets, while every other pool's routes stay exactly as they were.
func (c *cluster) testPoolDeletion(t *testing.T) {
	c.applyPools(t, poolDoomed)
	doomed := netip.MustParsePrefix(poolDoomed.cidr)
	pods := c.addPods(t, "d1", "doomed", c.nodes...)
	for _, n := range c.nodes {
		for _, p := range pods {
			want := c.vxlanRoute(t, block(p), p.Node)
			if p.Node == n {
				want = blackhole(block(p))
			}
			c.waitRoute(t, n, block(p), want)
		}
		c.eventually(t, "NAT sets on "+n.Name, func() error {
			for _, set := range []string{"all-ipam-pools-v4", "masq-ipam-pools-v4"} {
				if s := natSet(t, n, set); !strings.Contains(s, doomed.String()) {
					return fmt.Errorf("%s lacks %s", s, doomed)
				}
			}
			return nil
		})
	}
	others := map[string][]string{}
	for _, n := range c.nodes {
		others[n.Name] = routesOutside(t, n, doomed)
	}

	c.calicoctl(t, "", "delete", "ippool", poolDoomed.name)
	for _, n := range c.nodes {
		c.eventually(t, "pool routes gone on "+n.Name, func() error {
			if got := routesIn(t, n, doomed); len(got) > 0 {
				return fmt.Errorf("routes left: %q", got)
			}
			for _, set := range []string{"all-ipam-pools-v4", "masq-ipam-pools-v4"} {
				if s := natSet(t, n, set); strings.Contains(s, doomed.String()) {
					return fmt.Errorf("NAT set still holds %s: %s", doomed, s)
				}
			}
			return nil
		})
		if now := routesOutside(t, n, doomed); !slicesEqualSorted(now, others[n.Name]) {
			t.Errorf("%s: other pools' routes changed:\nbefore %q\nafter  %q", n.Name, others[n.Name], now)
		}
	}
	for _, p := range pods {
		if err := p.Del(ctx(t)); err != nil {
			t.Errorf("CNI DEL after the pool was deleted: %v", err)
		}
	}
}

// Node removal: after n3's daemon is stopped, `calicoctl delete node n3`
// releases n3's addresses and block affinities; n1 and n2 withdraw every
// route to n3's blocks and forget n3's VTEP, and their own traffic keeps
// flowing.
func (c *cluster) testNodeRemoval(t *testing.T) {
	pods := c.addPods(t, "z1", "always", c.nodes...)
	p1, p2, p3 := pods[0], pods[1], pods[2]
	c.waitRoute(t, c.n1, block(p3), c.vxlanRoute(t, block(p3), c.n3))
	ping(t, p1, p3.IP, 3)
	// Every block n3 has, in any pool.
	n3Blocks := c.blocksOf(t, "n3")
	if len(n3Blocks) < 2 { // pools "always" and "cross"
		t.Fatalf("n3 has %d blocks (%v), want one per pool it has pods in", len(n3Blocks), n3Blocks)
	}
	n3Tunnel := c.tunnelAddr(t, "n3")

	if code, err := c.procs["n3"].Stop(10 * time.Second); err != nil || code != 0 {
		t.Fatalf("stop calico-node n3: exit %d, %v", code, err)
	}
	out := c.calicoctl(t, "", "delete", "node", "n3")
	if !strings.Contains(out, "Successfully deleted 1 'Node' resource(s)") {
		t.Fatalf("calicoctl delete node n3: %s", out)
	}
	for _, n := range []*labtest.Node{c.n1, c.n2} {
		c.eventually(t, "n3's routes gone on "+n.Name, func() error {
			for _, b := range n3Blocks {
				if got := routesIn(t, n, b); len(got) > 0 {
					return fmt.Errorf("route for n3's block %s left: %q", b, got)
				}
			}
			out, err := testutil.RunInErr(n.NS, "ip", "neigh", "show", "dev", agent.VXLANDevice)
			if err != nil {
				return err
			}
			if strings.Contains(out, n3Tunnel.String()+" ") {
				return fmt.Errorf("n3's VTEP is still a neighbour: %s", out)
			}
			return nil
		})
	}
	if left := c.blocksOf(t, "n3"); len(left) > 0 {
		t.Errorf("n3 still has block affinities: %v", left)
	}
	if out := c.calicoctl(t, "", "get", "nodes"); strings.Contains(out, "n3") {
		t.Errorf("n3 is still listed:\n%s", out)
	}
	ping(t, p1, p2.IP, 3)
	ping(t, p2, p1.IP, 3)
}

// blocksOf lists the blocks affine to node (from the affinity keys).
func (c *cluster) blocksOf(t testing.TB, node string) []netip.Prefix {
	t.Helper()
	items, _, err := c.lab.Store.List(ctx(t), api.HostAffinityPrefix(node, 4))
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Prefix
	for _, it := range items {
		s := it.Key[strings.LastIndexByte(it.Key, '/')+1:]
		if p, err := netip.ParsePrefix(strings.Replace(s, "-", "/", 1)); err == nil {
			out = append(out, p)
		}
	}
	return out
}
