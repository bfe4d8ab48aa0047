package agent

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/datastore/memory"
)

// fakeNotifier records notifications.
type fakeNotifier struct {
	mu   sync.Mutex
	msgs []string
}

func (f *fakeNotifier) Notify(a ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, strings.Join(a, "\n"))
	return nil
}

func (f *fakeNotifier) all() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.msgs...)
}

// logBuf is a log sink safe for concurrent use.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func pollNotify(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func countNotes(msgs []string, s string) int {
	n := 0
	for _, m := range msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}

// TestNotifyServiceManager: the watchdog is pinged only while the daemon is
// live, READY=1 follows readiness with a STATUS line, and STOPPING=1 ends
// the conversation.
func TestNotifyServiceManager(t *testing.T) {
	logs := &logBuf{}
	a, err := New(Config{Store: memory.New(), NodeName: "n1", Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	n := &fakeNotifier{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.NotifyServiceManager(ctx, n, 10*time.Millisecond); close(done) }()

	a.setLive(true)
	pollNotify(t, "two watchdog pings while live", func() bool { return countNotes(n.all(), "WATCHDOG=1") >= 2 })

	// Not live: after the first withheld ping, no ping goes out.
	a.setLive(false)
	pollNotify(t, "a withheld ping", func() bool { return logs.count("withholding the watchdog ping") >= 1 })
	pings := countNotes(n.all(), "WATCHDOG=1")
	pollNotify(t, "three withheld pings", func() bool { return logs.count("withholding the watchdog ping") >= 4 })
	if got := countNotes(n.all(), "WATCHDOG=1"); got != pings {
		t.Errorf("%d watchdog pings while not live", got-pings)
	}
	if countNotes(n.all(), "READY=1") != 0 {
		t.Errorf("READY=1 before ready: %q", n.all())
	}

	a.setLive(true)
	a.st.mu.Lock()
	a.st.ready, a.st.routes = true, 3
	a.st.mu.Unlock()
	close(a.readyCh)
	pollNotify(t, "READY=1", func() bool {
		return countNotes(n.all(), "READY=1\nSTATUS=ready: 3 routes, 0 VTEPs, 0 local workloads") == 1
	})
	pollNotify(t, "pings again", func() bool { return countNotes(n.all(), "WATCHDOG=1") >= pings+2 })

	cancel()
	<-done
	msgs := n.all()
	if msgs[0] != "STATUS=starting" || !strings.HasPrefix(msgs[len(msgs)-1], "STOPPING=1\n") || countNotes(msgs, "READY=1") != 1 {
		t.Errorf("notifications: %q", msgs)
	}
}

func TestStatusLine(t *testing.T) {
	for _, tc := range []struct {
		s    Status
		want string
	}{
		{Status{Live: true}, "starting: waiting for the datastore and the first dataplane apply"},
		{Status{Live: true, Errors: []string{"add route: boom"}}, "not ready: add route: boom"},
		{Status{Live: false, Ready: true}, "not live: the dataplane loop is stuck"},
		{Status{Live: true, Ready: true, Routes: 2, VTEPs: 1, LocalWorkloads: 4}, "ready: 2 routes, 1 VTEPs, 4 local workloads"},
		{Status{Live: true, Ready: true, Degraded: []string{"a\nb", "c"}}, "ready: 0 routes, 0 VTEPs, 0 local workloads; degraded: a b; c"},
	} {
		if got := statusLine(tc.s); got != tc.want {
			t.Errorf("statusLine(%+v) = %q, want %q", tc.s, got, tc.want)
		}
	}
}
