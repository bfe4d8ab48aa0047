package ipam

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNodeNameFallsBackToHostName (issue 8, item 9): calico-ipam run alone
// with no "nodename" and no nodename file uses the OS host name, as
// upstream's does (only the calico plugin insists on the file).
func TestNodeNameFallsBackToHostName(t *testing.T) {
	e := newEnv(t)
	hn, err := os.Hostname()
	if err != nil {
		t.Fatalf("no OS host name: %v", err)
	}
	hn = strings.ToLower(strings.TrimSpace(hn))
	e.node(hn)
	e.pool("p1", "10.77.0.0/24", nil)
	conf := e.netconf("1.0.0", "", map[string]any{"nodename_file": filepath.Join(e.dir, "no-such-nodename"), "ipam_lock_file": filepath.Join(e.dir, "lock")})
	r := e.plugin("ADD", "hostfallback", "", conf)
	if r.rc != 0 {
		t.Fatalf("ADD without nodename or nodename file: %+v", r)
	}
	items, _, err := e.store.List(context.Background(), "/calico/ipam/v2/host/"+hn+"/")
	if err != nil || len(items) == 0 {
		t.Errorf("no block affine to host %s: %v", hn, err)
	}
}

// TestIPAMLockBoundedStandalone (issue 8, item 4): calico-ipam creates its
// lock 0600 in a 0700 directory and, while another process holds it,
// fails with code 11 after ipam_lock_timeout_seconds instead of waiting
// for ever, leaving the datastore unchanged.
func TestIPAMLockBoundedStandalone(t *testing.T) {
	e := newEnv(t)
	e.node("n1")
	e.pool("p1", "10.78.0.0/24", nil)
	lock := filepath.Join(e.dir, "run", "calico", "ipam.lock")
	conf := e.netconf("1.0.0", "n1", map[string]any{"ipam_lock_file": lock, "ipam_lock_timeout_seconds": 1})
	if r := e.plugin("ADD", "l1", "", conf); r.rc != 0 {
		t.Fatalf("ADD: %+v", r)
	}
	for path, want := range map[string]os.FileMode{filepath.Dir(lock): 0o700, lock: 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	f, err := os.Open(lock)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	before := dumpIPAM(t, e.store)
	done := make(chan result, 1)
	cmd := cniCmd("ADD", "l2", "", conf)
	go func() { done <- run(cmd) }()
	var r result
	select {
	case r = <-done:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatal("ADD did not return while another process held the lock: the wait is unbounded")
	}
	if code, msg := cniErr(t, r); code != 11 || !strings.Contains(msg, "timed out after 1s waiting for the host IPAM lock") {
		t.Fatalf("ADD with the lock held: %d %q", code, msg)
	}
	if dumpIPAM(t, e.store) != before {
		t.Error("the refused ADD changed the datastore")
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	if r := e.plugin("ADD", "l2", "", conf); r.rc != 0 {
		t.Fatalf("ADD after release: %+v", r)
	}
}
