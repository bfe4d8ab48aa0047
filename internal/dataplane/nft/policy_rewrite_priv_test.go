package nft

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/ruleset"
	"github.com/onecalico/calico/internal/testutil"
)

// newFlowTimeout bounds one new-flow probe. A datagram policy drops is
// never answered, however long we wait; a slow scheduler on a loaded
// machine only delays the answer.
const newFlowTimeout = 3 * time.Second

// newFlow sends one UDP datagram from ns to addr:port from a fresh source
// port and waits for the echo. Every probe is a new conntrack entry, so
// its first packet runs the whole policy (an ICMP echo from a long-lived
// socket, or a flood ping, rides one entry after its first reply).
func newFlow(ns, addr string, port int, timeout time.Duration) error {
	return netns.Do(ns, func() error {
		c, err := net.Dial("udp", net.JoinHostPort(addr, fmt.Sprint(port)))
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		_, err = c.Read(make([]byte, 8))
		return err
	})
}

// flowCounts runs allowed new flows (pod2 -> pod1) on several goroutines
// and denied ones (ext -> pod1) on another until stop is closed.
type flowCounts struct {
	allowedOK, allowedLost, deniedPassed atomic.Int64
	mu                                   sync.Mutex
	lost                                 []string
}

func (f *flowCounts) run(l *policyLab, stop <-chan struct{}, wg *sync.WaitGroup) {
	loop := func(probe func()) {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				probe()
			}
		})
	}
	for range 4 {
		loop(func() {
			start := time.Now()
			if err := newFlow(l.pod2, pod1IP, 7070, newFlowTimeout); err != nil {
				f.allowedLost.Add(1)
				f.mu.Lock()
				f.lost = append(f.lost, fmt.Sprintf("%s: %v", start.Format("15:04:05.000000"), err))
				f.mu.Unlock()
				return
			}
			f.allowedOK.Add(1)
		})
	}
	loop(func() {
		if newFlow(l.ext, pod1IP, 7070, 200*time.Millisecond) == nil {
			f.deniedPassed.Add(1)
		}
	})
}

// TestPrivilegedPolicyRewriteKeepsNewFlows: new flows run through the
// policy table while it is rewritten every way the applier can: after
// Invalidate, by a second applier (a restarted daemon), and by an applier
// whose view another applier made stale. No allowed flow is dropped, no
// denied one passes, none of it rebuilds the table (deleting and adding
// the table in one batch dropped allowed flows: see PolicyApplier), and
// the table ends as built.
func TestPrivilegedPolicyRewriteKeepsNewFlows(t *testing.T) {
	l := newPolicyLab(t)
	serveUDP(t, l.pod1, pod1IP, 7070)
	l.apply(t, labRuleset(), DefaultPolicyOptions())
	if err := newFlow(l.pod2, pod1IP, 7070, newFlowTimeout); err != nil {
		t.Fatalf("allowed flow before any rewrite: %v", err)
	}
	var f flowCounts
	stop := make(chan struct{})
	var wg sync.WaitGroup
	f.run(l, stop, &wg)
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer halt()
	var rs *ruleset.Ruleset
	i := 0
	for ; i < 60 || f.allowedOK.Load() < 200; i++ {
		if i > 2000 {
			t.Fatalf("only %d allowed flows in %d rewrites", f.allowedOK.Load(), i)
		}
		rs = labRuleset()
		rs.Sets["s:net"].Nets = append(rs.Sets["s:net"].Nets, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}), 32))
		var st PolicyStats
		var err error
		switch i % 3 {
		case 0:
			l.p.Invalidate()
			st, err = l.p.Apply(rs, DefaultPolicyOptions())
		case 1:
			st, err = NewPolicyApplier(l.conn, PolicyTableName).Apply(rs, DefaultPolicyOptions())
		case 2: // l.p last applied two rewrites ago: its view is stale
			st, err = l.p.Apply(rs, DefaultPolicyOptions())
		}
		if err != nil {
			t.Fatalf("rewrite %d: %v", i, err)
		}
		if st.Full {
			t.Errorf("rewrite %d replaced the table whole: %+v", i, st)
		}
	}
	halt()
	t.Logf("%d rewrites, %d allowed new flows, %d denied", i, f.allowedOK.Load(), f.deniedPassed.Load())
	if f.allowedLost.Load() != 0 || f.deniedPassed.Load() != 0 {
		t.Errorf("%d allowed new flows lost (%v), %d denied ones passed", f.allowedLost.Load(), f.lost, f.deniedPassed.Load())
	}
	checkDump(t, l, rs)
}

// TestPrivilegedPolicyStaleApplierRepairs: another writer changes the
// table behind an applier (adds a set member, removes a chain's rules);
// the applier's next Apply notices (the generation moved) and leaves the
// table exactly as built, instead of sending a difference from what it
// applied last.
func TestPrivilegedPolicyStaleApplierRepairs(t *testing.T) {
	l := newPolicyLab(t)
	l.apply(t, labRuleset(), DefaultPolicyOptions())
	other := labRuleset()
	other.Sets["s:net"].Nets = append(other.Sets["s:net"].Nets, netip.MustParsePrefix(extIP+"/32"))
	if _, err := NewPolicyApplier(l.conn, PolicyTableName).Apply(other, DefaultPolicyOptions()); err != nil {
		t.Fatal(err)
	}
	testutil.RunIn(t, l.node, "nft", "flush chain inet "+PolicyTableName+" ri/net")
	rs := labRuleset()
	rs.Sets["s:net"].Nets = append(rs.Sets["s:net"].Nets, netip.MustParsePrefix("10.9.0.1/32"))
	st := l.apply(t, rs, DefaultPolicyOptions())
	if !st.Adopted || st.Full {
		t.Errorf("apply over a changed table: %+v, want a repair in place", st)
	}
	checkDump(t, l, rs)
	if err := testutil.Ping(l.ext, pod1IP, "-W", "0.2"); err == nil {
		t.Error("ext -> pod1 icmp passes: the other writer's set member stayed")
	}
}

// checkDump fails t unless the kernel's table renders as built from rs.
func checkDump(t *testing.T, l *policyLab, rs *ruleset.Ruleset) {
	t.Helper()
	dump, err := Dump(l.conn, PolicyTableName)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := buildPolicy(PolicyTableName, rs, DefaultPolicyOptions())
	if r := render(specOf(want)); dump != r {
		t.Errorf("kernel table differs from the built one:\n--- kernel\n%s--- built\n%s", dump, r)
	}
}
