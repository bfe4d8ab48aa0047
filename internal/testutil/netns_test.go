package testutil

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func ino(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestPrivilegedNewNetNS(t *testing.T) {
	RequireRoot(t)
	RequireCmd(t, "ip")
	// Lock so that every check below looks at the same thread: the one
	// that called NewNetNS.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self := ino(t, "/proc/thread-self/ns/net")
	var path string
	t.Run("create", func(t *testing.T) {
		path = NewNetNS(t)
		if ino(t, "/proc/thread-self/ns/net") != self {
			t.Fatal("NewNetNS left the calling thread in another namespace")
		}
		if ino(t, path) == self {
			t.Fatal("new namespace is the caller's namespace")
		}
		if !strings.HasPrefix(path, NetNSDir+"/cdp") {
			t.Errorf("path %s", path)
		}
		if out := RunIn(t, path, "ip", "-o", "link", "show", "lo"); !strings.Contains(out, "UP") {
			t.Errorf("lo not up: %s", out)
		}
		if other := NewNetNS(t); other == path {
			t.Error("two namespaces with one name")
		}
	})
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s not removed by cleanup: %v", path, err)
	}
}

func TestPoll(t *testing.T) {
	n := 0
	if err := Poll(time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Errorf("Poll = %v after %d calls", err, n)
	}
	if err := Poll(10*time.Millisecond, func() error { return errors.New("never") }); err == nil || err.Error() != "never" {
		t.Errorf("Poll timeout = %v, want the last error", err)
	}
}
