package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/nft"
	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/testutil"
)

// These tests run the product against etcd as operators run it: three
// `calico etcd` members (a static cluster, client TLS with certificates
// from a CA made in the test, ETCD_ENDPOINTS listing all three), a real
// calico-node process on a lab node and the CNI plugin and calico-ipam
// through the exec path. The daemon reaches the members through
// testutil.CutProxy, so a test can cut it off while the cluster still
// serves the test's own writes (and a compaction).

// etcdLab is one lab node (n1, with calico-node running) on a 3-member
// TLS cluster.
type etcdLab struct {
	cl      *testutil.EtcdCluster
	lab     *labtest.Lab
	n1      *labtest.Node
	proc    *labtest.Process
	proxies []*testutil.CutProxy
	bin     string
	netconf []byte
}

// Remote blocks the daemon routes to (n2 stays; the tests add and remove others).
var n2Block = netip.MustParsePrefix("10.244.2.0/26")

func remoteRoute(b netip.Prefix) string {
	return fmt.Sprintf("%s via %s dev vxlan.calico onlink proto 80", b, b.Addr())
}

func newEtcdLab(t *testing.T) *etcdLab {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireCmd(t, "ip", "ping")
	if os.Getenv("CALICO_BIN") == "" {
		testutil.Unavailable(t, "needs the make-built binary with the embedded etcd server: run `make test` (CALICO_BIN unset)")
	}
	bin := labtest.BinDir(t)
	cl := testutil.StartEtcdCluster(t, bin, 3)
	st, err := etcd.New(etcd.Config{Endpoints: cl.Endpoints(), CACertFile: cl.CACertFile, CertFile: cl.CertFile, KeyFile: cl.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &etcdLab{cl: cl, bin: bin, lab: labtest.NewWithStore(t, testutil.NewNetNS, strings.Join(cl.Endpoints(), ","), st)}
	// The daemon's path to each member: same socket names in another
	// directory, so the members' certificates fit.
	var agentEPs []string
	if err := os.Mkdir(filepath.Join(cl.Dir, "a"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, m := range cl.Members {
		target := strings.TrimPrefix(m.Endpoint, "unixs://")
		p := testutil.StartCutProxy(t, filepath.Join(cl.Dir, "a", filepath.Base(target)), target)
		e.proxies = append(e.proxies, p)
		agentEPs = append(agentEPs, "unixs://"+p.Path)
	}
	e.n1 = e.lab.AddNode("n1", 99, 11)
	e.lab.Pool("pool1", "10.244.0.0/16", api.VXLANModeAlways, api.IPIPModeNever, false)
	e.lab.PutNode("n2", netip.MustParsePrefix("10.99.0.12/24"), n2Block.Addr())
	e.lab.ClaimBlock("n2", n2Block.Addr())
	e.netconf = e.tlsNetconf(t)
	env := e.n1.Env(append(cl.Env(), "ETCD_ENDPOINTS="+strings.Join(agentEPs, ","), "FELIX_LOGSEVERITYSCREEN=Debug")...)
	e.proc = e.n1.StartProcess(labtest.Binary(t), env)
	if _, err := e.proc.WaitReady(readyTimeout); err != nil {
		t.Fatal(err)
	}
	e.waitRoutes(t, func(rs []string) error {
		if !slices.Contains(rs, remoteRoute(n2Block)) {
			return fmt.Errorf("routes %q lack n2's block", rs)
		}
		return nil
	})
	return e
}

// tlsNetconf is n1's netconf with the cluster's endpoints and certificates.
func (e *etcdLab) tlsNetconf(t *testing.T) []byte {
	var m map[string]any
	if err := json.Unmarshal(e.n1.Netconf(), &m); err != nil {
		t.Fatal(err)
	}
	m["etcd_ca_cert_file"], m["etcd_cert_file"], m["etcd_key_file"] = e.cl.CACertFile, e.cl.CertFile, e.cl.KeyFile
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cni runs the plugin (command ADD or DEL) for container cid in podNS.
func (e *etcdLab) cni(ctx context.Context, command, cid, podNS string) ([]byte, error) {
	return e.n1.CNI(ctx, e.bin, command, cid, podNS, e.netconf)
}

// addPod runs CNI ADD for a new pod and returns its namespace and address.
func (e *etcdLab) addPod(t *testing.T, cid string) (string, netip.Addr, time.Duration) {
	t.Helper()
	ns := testutil.NewNetNS(t)
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	out, err := e.cni(c, "ADD", cid, ns)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	var res types100.Result
	if err := json.Unmarshal(out, &res); err != nil || len(res.IPs) == 0 {
		t.Fatalf("ADD %s result: %v: %s", cid, err, out)
	}
	a, _ := netip.AddrFromSlice(res.IPs[0].Address.IP.To4())
	return ns, a, took
}

func (e *etcdLab) delPod(t *testing.T, cid, ns string) {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.cni(c, "DEL", cid, ns); err != nil {
		t.Fatal(err)
	}
}

// calicoctl runs calicoctl against the whole cluster (every member, TLS).
func (e *etcdLab) calicoctl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "calicoctl"), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, e.cl.Env()...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *etcdLab) waitRoutes(t *testing.T, cond func([]string) error) {
	t.Helper()
	if err := labtest.Poll(convergeTimeout, func() error { return cond(routes(t, e.n1)) }); err != nil {
		t.Fatalf("%v\ncalico-node log tail:\n%s", err, tail(e.proc.Stderr.String(), 40))
	}
}

// snapshotRE matches the daemon's debug line for each list (first sync or relist) of a prefix.
var snapshotRE = regexp.MustCompile(`msg=snapshot .*prefix=(\S+)`)

// snapshots counts the daemon's snapshots (lists) per watched prefix so far.
func (e *etcdLab) snapshots() map[string]int {
	out := map[string]int{}
	for _, m := range snapshotRE.FindAllStringSubmatch(e.proc.Stderr.String(), -1) {
		out[m[1]]++
	}
	return out
}

func p50(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// addDelRounds runs n sequential CNI ADDs (each followed by its DEL and the
// removal of the pod's namespace) and returns the ADD times.
func (e *etcdLab) addDelRounds(t *testing.T, tag string, n int) []time.Duration {
	t.Helper()
	var took []time.Duration
	for i := range n {
		cid := fmt.Sprintf("%s-%03d", tag, i)
		ns, _, d := e.addPod(t, cid)
		took = append(took, d)
		e.delPod(t, cid, ns)
		testutil.DeleteNetNS(t, ns)
	}
	return took
}

// waitLeader waits until the running members have a leader.
func (e *etcdLab) waitLeader(t *testing.T) *testutil.EtcdMember {
	t.Helper()
	var leader *testutil.EtcdMember
	if err := labtest.Poll(30*time.Second, func() error {
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var err error
		leader, err = e.cl.Leader(c)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return leader
}

// TestPrivilegedEtcdClusterMemberLoss kills (kill -9) each member in turn,
// the leader last, restarting each before the next, so the member
// carrying the daemon's watch dies at some point. The first ADD after the
// leader's death runs at once, during the election. With a member down: CNI
// ADD and DEL (and so calico-ipam) and calicoctl work, and a change made
// then reaches the daemon's routes; through all three kills the daemon
// lists each prefix at most once more than at start (its watches move to
// another member without a resync storm). With the first member down,
// 100 sequential ADDs must all succeed; their p50 is logged beside the
// healthy figure.
func TestPrivilegedEtcdClusterMemberLoss(t *testing.T) {
	e := newEtcdLab(t)
	initial := e.snapshots()
	if len(initial) == 0 {
		t.Fatalf("no snapshot lines in the daemon's debug log:\n%s", tail(e.proc.Stderr.String(), 40))
	}
	const rounds = 100
	e.addDelRounds(t, "w", 5) // warm caches first: both figures measure the same steady state
	healthy := e.addDelRounds(t, "h", rounds)

	leader := e.waitLeader(t)
	var order []*testutil.EtcdMember
	for _, m := range e.cl.Members {
		if m != leader {
			order = append(order, m)
		}
	}
	order = append(order, leader)
	var oneDown []time.Duration
	for i, victim := range order {
		victim.Kill()
		what := fmt.Sprintf("%s killed (%s)", victim.Name, map[bool]string{true: "the leader", false: "a follower"}[victim == leader])
		n := 3
		if i == 0 {
			n = rounds
		}
		took := e.addDelRounds(t, fmt.Sprintf("k%d", i), n)
		if i == 0 {
			oneDown = took
		}
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := e.calicoctl(c, "get", "nodes")
		if err != nil || !strings.Contains(out, "n2") {
			t.Errorf("%s: calicoctl get nodes: %v\n%s", what, err, out)
		}
		if out, err := e.calicoctl(c, "ipam", "check"); err != nil {
			t.Errorf("%s: calicoctl ipam check: %v\n%s", what, err, out)
		}
		cancel()
		// A change made now reaches the daemon: its watch works.
		node := fmt.Sprintf("r%d", i)
		block := netip.MustParsePrefix(fmt.Sprintf("10.244.%d.0/26", 10+i))
		e.lab.PutNode(node, netip.MustParsePrefix(fmt.Sprintf("10.99.0.%d/24", 30+i)), block.Addr())
		e.lab.ClaimBlock(node, block.Addr())
		e.waitRoutes(t, func(rs []string) error {
			if !slices.Contains(rs, remoteRoute(block)) {
				return fmt.Errorf("%s: routes %q lack %s", what, rs, block)
			}
			return nil
		})
		victim.Restart()
		e.waitLeader(t)
		t.Logf("%s: %d ADD/DEL rounds, calicoctl and a new remote block all worked", what, n)
	}
	after, relists := e.snapshots(), 0
	for prefix, n := range after {
		extra := n - initial[prefix]
		if extra > 1 {
			t.Errorf("prefix %s listed %d more times through the kills (want at most 1)", prefix, extra)
		}
		relists += extra
	}
	t.Logf("%d watched prefixes; %d relists in all through the three kills", len(after), relists)
	h, d := p50(healthy), p50(oneDown)
	t.Logf("CNI ADD p50: healthy %v (%d ADDs), one member down %v (%d ADDs, all succeeded): %+.0f%%",
		h.Round(time.Microsecond), len(healthy), d.Round(time.Microsecond), len(oneDown), 100*(float64(d)/float64(h)-1))
}

// outageHold is how long the whole cluster stays away: the 30 s,
// three times the daemon's keepalive (10 s).
const outageHold = 30 * time.Second

// linkNames lists the links in namespace ns.
func linkNames(t *testing.T, ns string) []string {
	t.Helper()
	ls, err := testutil.Handle(t, ns).LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		out = append(out, l.Attrs().Name)
	}
	slices.Sort(out)
	return out
}

// TestPrivilegedEtcdClusterOutage takes the whole cluster away (every
// member SIGSTOPped: a partition, connections open and silent) with the
// daemon cut off from it too. During the outage the daemon reports
// not-ready with the reason and keeps every route (a ping between two of
// its pods loses nothing); CNI ADD fails with one clear line and leaves
// nothing behind (no link, no address, no record); calicoctl fails fast.
// Then the cluster comes back while the daemon is still cut off, a remote
// block is added, another removed, and the history compacted; once the
// daemon's path returns it must catch up (it relists: its watch revision
// is gone) and change exactly those two routes, as an independent netlink
// monitor sees. The times are logged.
func TestPrivilegedEtcdClusterOutage(t *testing.T) {
	e := newEtcdLab(t)
	n3Block, n4Block := netip.MustParsePrefix("10.244.3.0/26"), netip.MustParsePrefix("10.244.4.0/26")
	e.lab.PutNode("n4", netip.MustParsePrefix("10.99.0.14/24"), n4Block.Addr())
	e.lab.ClaimBlock("n4", n4Block.Addr())
	e.lab.PutNode("n3", netip.MustParsePrefix("10.99.0.13/24"), n3Block.Addr())
	e.waitRoutes(t, func(rs []string) error {
		if !slices.Contains(rs, remoteRoute(n4Block)) {
			return fmt.Errorf("routes %q lack n4's block", rs)
		}
		return nil
	})
	ns1, _, _ := e.addPod(t, "p1")
	_, ip2, _ := e.addPod(t, "p2")
	labtest.WaitIPv6DAD(t, e.n1.NS, 20*time.Second)
	pg := labtest.StartPing(t, "p1 -> p2", ns1, ip2)
	pg.WaitReplies(t, 5, 20*time.Second)
	mon := labtest.WatchRoutes(t, e.n1.NS)
	_ = mon.Changes()
	before := routes(t, e.n1)
	rulesBefore := kernelRules(t, e.n1.NS)
	if !strings.Contains(rulesBefore, "table inet calico\n") || !strings.Contains(rulesBefore, "table inet "+nft.VXLANFilterTableName+"\n") {
		t.Fatalf("the node's nft tables lack the daemon's NAT or VXLAN filter table:\n%s", rulesBefore)
	}
	links := linkNames(t, e.n1.NS)
	snap0 := e.snapshots()

	down := time.Now()
	for _, p := range e.proxies {
		p.Cut()
	}
	for _, m := range e.cl.Members {
		m.Pause()
	}
	reason := e.waitNotReady(t)
	detect := time.Since(down)
	const cid = "outage-add"
	_, addFail, addMsg := e.failedAdd(t, cid, links)
	ctlOut, ctlFail := e.failingCalicoctl(t)
	e.holdOutage(t, down, before, rulesBefore)

	// The cluster returns; the daemon is still cut off while n3 gets a
	// block, n4 loses its own, and the history is compacted.
	for _, m := range e.cl.Members {
		m.Resume()
	}
	e.waitLeader(t)
	e.lab.ClaimBlock("n3", n3Block.Addr())
	e.lab.DeleteBlock("n4", n4Block)
	e.lab.DeleteNode("n4")
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rev, err := e.cl.Compact(c)
	if err != nil {
		t.Fatalf("compact: %v", err)
	}
	kvs, _, err := e.lab.Store.List(c, "/calico/")
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range kvs {
		if strings.Contains(kv.Key, cid) || strings.Contains(string(kv.Value), cid) {
			t.Errorf("the failed ADD left a trace in the datastore: %s = %s", kv.Key, kv.Value)
		}
	}

	back := time.Now()
	for _, p := range e.proxies {
		p.Restore()
	}
	var caughtUp time.Duration
	e.waitRoutes(t, func(rs []string) error {
		if !slices.Contains(rs, remoteRoute(n3Block)) || slices.Contains(rs, remoteRoute(n4Block)) {
			return fmt.Errorf("routes %q: want n3's block and not n4's", rs)
		}
		caughtUp = time.Since(back)
		return nil
	})
	var readyAgain time.Duration
	if err := labtest.Poll(convergeTimeout, func() error {
		s, err := e.proc.Status()
		if err != nil || !s.Ready {
			return fmt.Errorf("status %+v, %v", s, err)
		}
		readyAgain = time.Since(back)
		return nil
	}); err != nil {
		t.Errorf("not ready again: %v", err)
	}

	// Exactly n3's route added and n4's deleted: no unchanged route was
	// removed and re-added.
	onlyRouteChanges(t, mon, n3Block, n4Block)
	if sent, lost := pg.Stop(t); len(lost) > 0 {
		t.Errorf("ping between two pods lost %d of %d packets through the outage: %v", len(lost), sent, lost)
	}
	snap1 := e.snapshots()
	relisted := 0
	for prefix, n := range snap1 {
		if n > snap0[prefix] {
			relisted++
		}
	}
	if relisted == 0 {
		t.Errorf("the daemon never relisted, so it did not meet the compaction (snapshots %v)", snap1)
	}

	// Last, every member killed (connections refused, not silent):
	// calicoctl fails at once naming each endpoint, CNI ADD fails.
	for _, m := range e.cl.Members {
		m.Kill()
	}
	deadOut, ctlDead := e.failingCalicoctl(t)
	if !strings.Contains(deadOut, e.cl.Members[0].Endpoint+" is not reachable") {
		t.Errorf("calicoctl get nodes with every member killed: %q, want each endpoint named", deadOut)
	}
	_, addDead, deadMsg := e.failedAdd(t, cid+"2", links)
	t.Logf("every member killed: calicoctl failed after %v: %s; CNI ADD failed after %v: %s",
		ctlDead.Round(time.Millisecond), strings.TrimSpace(deadOut), addDead.Round(time.Millisecond), deadMsg)
	t.Logf("not ready %v after the cluster went (%s); CNI ADD failed after %v: %s; calicoctl failed after %v: %s",
		detect.Round(time.Millisecond), reason, addFail.Round(time.Millisecond), addMsg, ctlFail.Round(time.Millisecond), strings.TrimSpace(ctlOut))
	t.Logf("outage %v; compacted at revision %d while the daemon was cut off; after its path returned: routes caught up in %v (target 1 s), ready in %v; %d prefixes relisted",
		back.Sub(down).Round(time.Millisecond), rev, caughtUp.Round(time.Millisecond), readyAgain.Round(time.Millisecond), relisted)
}

// waitNotReady waits until the daemon reports the datastore unreachable
// and returns its reason.
func (e *etcdLab) waitNotReady(t *testing.T) string {
	t.Helper()
	var reason string
	if err := labtest.Poll(30*time.Second, func() error {
		s, err := e.proc.Status()
		if err != nil {
			return err
		}
		if s.Ready || !strings.Contains(s.Datastore, "unreachable") {
			return fmt.Errorf("ready %v, datastore %q", s.Ready, s.Datastore)
		}
		reason = s.Datastore
		return nil
	}); err != nil {
		t.Fatalf("the daemon did not report the outage: %v", err)
	}
	return reason
}

// failedAdd runs a CNI ADD that must fail (the datastore is away) with one
// line naming the datastore, leaving the node's links as they were
// (links) and no link in the pod. It returns the pod namespace, how long
// the ADD took and its message.
func (e *etcdLab) failedAdd(t *testing.T, cid string, links []string) (string, time.Duration, string) {
	t.Helper()
	podNS := testutil.NewNetNS(t)
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	out, err := e.cni(c, "ADD", cid, podNS)
	took := time.Since(start)
	if err == nil || c.Err() != nil {
		t.Fatalf("CNI ADD with the datastore away: err %v, hung %v, output %s", err, c.Err() != nil, out)
	}
	var cniErr struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	}
	if err := json.Unmarshal(out, &cniErr); err != nil || cniErr.Msg == "" || strings.Contains(cniErr.Msg, "\n") ||
		!regexp.MustCompile(`(?i)etcd|datastore`).MatchString(cniErr.Msg) {
		t.Errorf("CNI ADD error is not one clear line naming the datastore: %s", out)
	}
	if got := linkNames(t, e.n1.NS); !slices.Equal(got, links) {
		t.Errorf("the failed ADD changed the node's links: %q, before %q", got, links)
	}
	if got := linkNames(t, podNS); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("the failed ADD left links in the pod: %q", got)
	}
	return podNS, took, fmt.Sprintf("code %d: %s", cniErr.Code, cniErr.Msg)
}

// failingCalicoctl runs calicoctl get nodes against every member, which
// must fail with a message (not hang); it returns the output and time.
func (e *etcdLab) failingCalicoctl(t *testing.T) (string, time.Duration) {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	out, err := e.calicoctl(c, "get", "nodes")
	took := time.Since(start)
	if err == nil || c.Err() != nil || strings.TrimSpace(out) == "" {
		t.Errorf("calicoctl get nodes with the datastore away: err %v, hung %v, output %q", err, c.Err() != nil, out)
	}
	return out, took
}

// holdOutage keeps the outage going until outageHold after down, checking
// all along that the routes and the rules (policy routing and every nft
// table, read over netlink) stay as before and the daemon not ready.
func (e *etcdLab) holdOutage(t *testing.T, down time.Time, before []string, rulesBefore string) {
	t.Helper()
	for time.Since(down) < outageHold {
		if rs := routes(t, e.n1); !slices.Equal(rs, before) {
			t.Fatalf("routes changed during the outage: %q, before %q", rs, before)
		}
		if rules := kernelRules(t, e.n1.NS); rules != rulesBefore {
			t.Fatalf("rules changed during the outage:\n%s\nbefore:\n%s", rules, rulesBefore)
		}
		if s, err := e.proc.Status(); err != nil || s.Ready {
			t.Fatalf("during the outage: status %+v, %v", s, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// onlyRouteChanges fails t unless the monitor saw nothing but the route
// to added appear and the route to deleted go.
func onlyRouteChanges(t *testing.T, mon *labtest.RouteMonitor, added, deleted netip.Prefix) {
	t.Helper()
	for _, ch := range mon.Changes() {
		isAdd := strings.HasPrefix(ch, "added ") && strings.Contains(ch, "Dst: "+added.String()+" ")
		isDel := strings.HasPrefix(ch, "deleted ") && strings.Contains(ch, "Dst: "+deleted.String()+" ")
		if !isAdd && !isDel {
			t.Errorf("unexpected route change through the outage: %s", ch)
		}
	}
}
