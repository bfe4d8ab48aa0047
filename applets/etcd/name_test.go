package etcd_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/testutil"
)

// The server is executed from an in-memory file; ps and ss -p must still
// show it by name, on every thread, not as the file descriptor's number.
func TestEmbeddedServerIsNamed(t *testing.T) {
	testutil.RequireRoot(t)
	bin := binDir(t)
	ns := testutil.NewNetNS(t)
	s := start(t, bin, ns, filepath.Join(t.TempDir(), "data"))
	testutil.Eventually(t, 30*time.Second, func() error {
		_, err := ctl(bin, ns, "get", "ippool")
		return err
	})
	pid := s.cmd.Process.Pid // ip netns exec and calico exec in place: same pid
	comms, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/comm", pid))
	if err != nil || len(comms) == 0 {
		t.Fatalf("no threads for pid %d: %v", pid, err)
	}
	for _, c := range comms {
		b, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(b)); got != "calico-etcd" {
			t.Errorf("%s = %q, want calico-etcd", c, got)
		}
	}
	out := testutil.RunIn(t, ns, "ss", "-ltnp")
	if !strings.Contains(out, `"calico-etcd",pid=`) {
		t.Errorf("ss -ltnp does not name the server:\n%s", out)
	}
}
