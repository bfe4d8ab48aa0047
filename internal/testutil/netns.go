package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/dataplane/netns"
)

// NetNSDir is where NewNetNS bind-mounts namespaces, like `ip netns add`.
const NetNSDir = "/var/run/netns"

// RequireRoot skips the test, with a visible reason, unless it runs as
// root; under CI=true it fails instead (see Unavailable).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "privileged test: needs root to create network namespaces (euid %d)", os.Geteuid())
	}
}

// RequireCmd skips the test unless every named command is on PATH; under
// CI=true it fails instead (see Unavailable).
func RequireCmd(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			Unavailable(t, "test needs %s on PATH: %v", n, err)
		}
	}
}

// Unavailable is how a test says it cannot run here (not root, a tool or
// a build missing). Normally it skips with the reason; when the
// environment says CI=true (CI runs as root with every tool installed) it
// fails the test, so a CI run never passes with privileged tests silently
// skipped.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true and this test cannot run: "+format, args...)
	}
	t.Skipf(format, args...)
}

// InCI reports whether the environment says this is a CI run (CI=true, as
// CI systems set it).
func InCI() bool { return strings.EqualFold(os.Getenv("CI"), "true") }

// NewNetNS creates a fresh network namespace named "cdp" plus a random
// suffix, bind-mounted at /var/run/netns/<name>, brings its loopback up and
// removes it in t.Cleanup. It returns the namespace path.
//
// The namespace is created on a dedicated locked OS thread that returns to
// its original namespace afterwards (or dies if it cannot), so the test's
// goroutine never runs inside the new namespace.
func NewNetNS(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	var path string
	for range 5 {
		p, err := createNetNS()
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			t.Fatalf("create netns: %v", err)
		}
		path = p
		break
	}
	if path == "" {
		t.Fatal("create netns: no unique name after 5 tries")
	}
	t.Cleanup(func() {
		if err := removeNetNS(path); err != nil {
			t.Errorf("remove netns %s: %v", path, err)
		}
	})
	h, err := netns.NewHandle(path)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", path, err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("set lo up in %s: %v", path, err)
	}
	return path
}

func createNetNS() (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	if err := os.MkdirAll(NetNSDir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(NetNSDir, "cdp"+hex.EncodeToString(b))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return "", err
	}
	f.Close()

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		merr := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, "")
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Thread stays locked and dies with this goroutine.
			errc <- errors.Join(merr, fmt.Errorf("return to original netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		if merr != nil {
			merr = fmt.Errorf("bind mount netns: %w", merr)
		}
		errc <- merr
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return "", err
	}
	return path, nil
}

func removeNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// DeleteNetNS removes a namespace made by NewNetNS before the test ends
// (its Cleanup then finds nothing left to do).
func DeleteNetNS(t testing.TB, path string) {
	t.Helper()
	if err := removeNetNS(path); err != nil {
		t.Fatalf("delete netns %s: %v", path, err)
	}
}

// Handle returns a netlink handle in the namespace, closed in t.Cleanup.
func Handle(t testing.TB, nsPath string) *netlink.Handle {
	t.Helper()
	h, err := netns.NewHandle(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// RunInErr runs cmd inside the namespace at nsPath (via `ip netns exec`)
// with a 30 s limit and returns the combined output.
func RunInErr(nsPath string, cmd ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"netns", "exec", filepath.Base(nsPath)}, cmd...)
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s in %s: %w: %s", strings.Join(cmd, " "), filepath.Base(nsPath), err, out)
	}
	return string(out), nil
}

// RunIn is RunInErr that fails the test on error.
func RunIn(t testing.TB, nsPath string, cmd ...string) string {
	t.Helper()
	out, err := RunInErr(nsPath, cmd...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Eventually polls cond until it returns nil or timeout passes, then fails
// the test with the last error. The poll interval grows from 1 ms to 100 ms.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatalf("condition not met within %v: %v", timeout, err)
	}
}

// Poll is Eventually without a test: it returns the last error on timeout.
func Poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(wait)
		wait = min(wait*2, 100*time.Millisecond)
	}
}
