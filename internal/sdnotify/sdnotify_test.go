package sdnotify

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestNotify: one call is one datagram of newline-terminated assignments
// on the socket NOTIFY_SOCKET names.
func TestNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	n, err := New(env(map[string]string{"NOTIFY_SOCKET": path}))
	if err != nil || n == nil {
		t.Fatalf("New: %v %v", n, err)
	}
	if err := n.Notify("READY=1", "STATUS=ready: 3 routes"); err != nil {
		t.Fatal(err)
	}
	if err := n.Notify("WATCHDOG=1"); err != nil {
		t.Fatal(err)
	}
	l.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	for _, want := range []string{"READY=1\nSTATUS=ready: 3 routes\n", "WATCHDOG=1\n"} {
		k, err := l.Read(buf)
		if err != nil || string(buf[:k]) != want {
			t.Errorf("datagram %q %v, want %q", buf[:k], err, want)
		}
	}
	if err := n.Notify("BAD"); err == nil || !strings.Contains(err.Error(), "not a single VAR=VALUE") {
		t.Errorf("Notify(BAD) = %v", err)
	}
	if err := n.Notify("STATUS=a\nb"); err == nil {
		t.Error("Notify with a newline in a value succeeded")
	}
}

// TestNoSocket: without NOTIFY_SOCKET there is no notifier, and a nil one
// is silent; an unsupported socket kind is an error naming it.
func TestNoSocket(t *testing.T) {
	n, err := New(env(nil))
	if n != nil || err != nil {
		t.Fatalf("New without NOTIFY_SOCKET = %v %v", n, err)
	}
	if err := n.Notify("READY=1"); err != nil {
		t.Errorf("nil Notify: %v", err)
	}
	if _, err := New(env(map[string]string{"NOTIFY_SOCKET": "vsock:2:1234"})); err == nil || !strings.Contains(err.Error(), "vsock:2:1234") {
		t.Errorf("vsock socket: %v", err)
	}
	n, _ = New(env(map[string]string{"NOTIFY_SOCKET": filepath.Join(t.TempDir(), "none")}))
	if err := n.Notify("READY=1"); err == nil {
		t.Error("Notify to a missing socket succeeded")
	}
}

func TestWatchdog(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want time.Duration
		err  string
	}{
		{nil, 0, ""},
		{map[string]string{"WATCHDOG_USEC": "60000000"}, time.Minute, ""},
		{map[string]string{"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "42"}, 200 * time.Millisecond, ""},
		{map[string]string{"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "7"}, 0, ""}, // another process's
		{map[string]string{"WATCHDOG_USEC": "0"}, 0, "WATCHDOG_USEC"},
		{map[string]string{"WATCHDOG_USEC": "soon"}, 0, "WATCHDOG_USEC"},
		{map[string]string{"WATCHDOG_USEC": "1", "WATCHDOG_PID": "x"}, 0, "WATCHDOG_PID"},
		{map[string]string{"WATCHDOG_USEC": "18446744073709551615"}, time.Duration(1<<63-1) / 1000 * 1000, ""},
	} {
		got, err := Watchdog(env(tc.env), 42)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Watchdog(%v) = %v %v, want %v %q", tc.env, got, err, tc.want, tc.err)
		}
	}
}
