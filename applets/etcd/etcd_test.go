package etcd_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/testutil"
)

// binDir is where `make build` put the binary; the embedded etcd server only
// exists in a make-built binary, so this test needs it.
func binDir(t *testing.T) string {
	dir := os.Getenv("CALICO_BIN")
	if dir == "" {
		testutil.Unavailable(t, "needs the make-built binary: run `make test` (CALICO_BIN unset)")
	}
	return dir
}

type server struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan error
}

// start runs `calico etcd` inside ns, listening on that namespace's loopback.
func start(t *testing.T, bin, ns, dataDir string, extra ...string) *server {
	t.Helper()
	args := append([]string{"netns", "exec", filepath.Base(ns), filepath.Join(bin, "calico"), "etcd", "--data-dir", dataDir}, extra...)
	s := &server{cmd: exec.Command("ip", args...), done: make(chan error, 1)}
	s.cmd.Stderr = &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.done
	})
	return s
}

func ctl(bin, ns string, args ...string) (string, error) {
	full := append([]string{"env", "ETCD_ENDPOINTS=http://127.0.0.1:2379", "DATASTORE_TYPE=etcdv3", filepath.Join(bin, "calicoctl")}, args...)
	return testutil.RunInErr(ns, full...)
}

func TestEmbeddedServerServesStopsAndKeepsData(t *testing.T) {
	testutil.RequireRoot(t)
	bin := binDir(t)
	ns := testutil.NewNetNS(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	pool := filepath.Join(t.TempDir(), "pool.yaml")
	os.WriteFile(pool, []byte("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: demo\nspec:\n  cidr: 10.244.0.0/16\n"), 0o644)

	s := start(t, bin, ns, dataDir)
	testutil.Eventually(t, 30*time.Second, func() error {
		_, err := ctl(bin, ns, "apply", "-f", pool)
		return err
	})
	out, err := ctl(bin, ns, "get", "ippool")
	if err != nil || !strings.Contains(out, "demo   10.244.0.0/16") {
		t.Fatalf("get ippool: %v\n%s", err, out)
	}

	// SIGTERM stops it cleanly: exit status 0, and it says so.
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, s.stderr.String())
		}
		s.done <- nil // for the cleanup
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20s after SIGTERM\n%s", s.stderr.String())
	}
	if !strings.Contains(s.stderr.String(), "calico etcd: stopping") || hasErrorLine(s.stderr.String()) {
		t.Fatalf("stderr of a clean stop:\n%s", s.stderr.String())
	}

	// A restart on the same data directory still has the pool.
	start(t, bin, ns, dataDir)
	testutil.Eventually(t, 30*time.Second, func() error {
		out, err := ctl(bin, ns, "get", "ippool", "demo")
		if err == nil && !strings.Contains(out, "10.244.0.0/16") {
			return errors.New("pool missing after restart: " + out)
		}
		return err
	})
}

func TestBadFlagsAreRefused(t *testing.T) {
	bin := binDir(t)
	for _, args := range [][]string{
		{"etcd", "--listen-client-urls", "127.0.0.1:2379"},
		{"etcd", "--no-such-flag"},
		{"etcd", "extra-argument"},
	} {
		out, err := exec.Command(filepath.Join(bin, "calico"), args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("calico %v: %v, want a non-zero exit\n%s", args, err, out)
		}
		if len(bytes.TrimSpace(out)) == 0 {
			t.Errorf("calico %v: no message", args)
		}
	}
}

// hasErrorLine reports an error-level line in the server's log, except
// etcd 3.6's storage-version monitor racing the first commit: on a
// loaded machine it can run before the consistent index has a term
// ("cannot detect storage schema version: missing term information"),
// logs that at error level and succeeds on its next tick.
func hasErrorLine(log string) bool {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `"level":"error"`) && !strings.Contains(l, "missing term information") {
			return true
		}
	}
	return false
}
