package labtest

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Pinger is a ping running every 10 ms from a namespace, to show that
// traffic flows through an event (a daemon restart, a configuration
// change) without losing a packet.
type Pinger struct {
	Name string
	cmd  *exec.Cmd
	out  *SyncBuffer
	done chan struct{}
}

// StartPing starts ping from namespace ns to dst; it is killed at test end
// if Stop was not called. name labels it in messages.
func StartPing(t testing.TB, name, ns string, dst netip.Addr) *Pinger {
	t.Helper()
	pg := &Pinger{Name: name, out: &SyncBuffer{}, done: make(chan struct{})}
	// ip netns exec execs ping, so the process is ping itself.
	pg.cmd = exec.Command("ip", "netns", "exec", filepath.Base(ns), "ping", "-n", "-i", "0.01", "-W", "1", dst.String())
	pg.cmd.Stdout, pg.cmd.Stderr = pg.out, pg.out
	pg.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test
	if err := pg.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = pg.cmd.Wait(); close(pg.done) }()
	t.Cleanup(func() {
		select {
		case <-pg.done:
		default:
			_ = pg.cmd.Process.Kill()
			<-pg.done
		}
	})
	return pg
}

// replyRE matches a reply line of ping, to an IPv4 or IPv6 address.
var replyRE = regexp.MustCompile(`(?m)^\d+ bytes from [0-9a-f.:]+: icmp_seq=(\d+) `)

// Replies counts the replies received so far.
func (pg *Pinger) Replies() int { return len(replyRE.FindAllStringIndex(pg.out.String(), -1)) }

// WaitReplies waits until n replies have arrived in all.
func (pg *Pinger) WaitReplies(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	err := Poll(timeout, func() error {
		if got := pg.Replies(); got < n {
			return fmt.Errorf("%d replies, want %d", got, n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v\n%s", pg.Name, err, pg.out)
	}
}

// Stop interrupts the ping and returns how many requests it sent and the
// sequence numbers that got no reply, leaving out the last few, which may
// have been in flight at the interrupt.
func (pg *Pinger) Stop(t testing.TB) (sent int, lost []int) {
	t.Helper()
	_ = pg.cmd.Process.Signal(os.Interrupt)
	select {
	case <-pg.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not stop", pg.Name)
	}
	out := pg.out.String()
	m := regexp.MustCompile(`(\d+) packets transmitted`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s: no summary:\n%s", pg.Name, out)
	}
	sent, _ = strconv.Atoi(m[1])
	got := map[int]bool{}
	for _, m := range replyRE.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[1])
		got[n] = true
	}
	const inFlight = 5
	for seq := 1; seq <= sent-inFlight; seq++ {
		if !got[seq] {
			lost = append(lost, seq)
		}
	}
	return sent, lost
}

// RouteMonitor records, straight from the kernel (netlink), every route
// added or deleted in a namespace's main and local tables: a witness
// independent of the daemon's own counters.
type RouteMonitor struct {
	updates chan netlink.RouteUpdate
	done    chan struct{}
}

// WatchRoutes starts a RouteMonitor on namespace ns until test end.
func WatchRoutes(t testing.TB, ns string) *RouteMonitor {
	t.Helper()
	h, err := vnetns.GetFromPath(ns)
	if err != nil {
		t.Fatal(err)
	}
	m := &RouteMonitor{updates: make(chan netlink.RouteUpdate, 4096), done: make(chan struct{})}
	if err := netlink.RouteSubscribeWithOptions(m.updates, m.done, netlink.RouteSubscribeOptions{Namespace: &h}); err != nil {
		h.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(m.done)
		h.Close()
	})
	return m
}

// Changes returns the route changes seen since the last call.
func (m *RouteMonitor) Changes() []string {
	var out []string
	for {
		select {
		case u := <-m.updates:
			if u.Table != unix.RT_TABLE_MAIN && u.Table != unix.RT_TABLE_LOCAL {
				continue
			}
			verb := "added"
			if u.Type == unix.RTM_DELROUTE {
				verb = "deleted"
			}
			out = append(out, fmt.Sprintf("%s %s", verb, u.Route))
		default:
			return out
		}
	}
}

// WaitIPv6DAD waits until no address in namespace ns is tentative: new
// links get IPv6 link-local addresses (and the kernel adds their local
// routes) only after duplicate address detection, which a RouteMonitor
// would otherwise see as changes.
func WaitIPv6DAD(t testing.TB, ns string, timeout time.Duration) {
	t.Helper()
	h := handle(t, ns)
	err := Poll(timeout, func() error {
		addrs, err := h.AddrList(nil, netlink.FAMILY_V6)
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
	if err != nil {
		t.Fatalf("IPv6 DAD in %s: %v", ns, err)
	}
}
