package install_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/agent/labtest"
)

func TestMain(m *testing.M) { os.Exit(labtest.RunTests(m)) }

// calico runs `calico install args...` from the test binary dir with only
// PATH and env in the environment; it returns stdout, stderr and the exit
// code.
func calico(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(labtest.BinDir(t), "calico"), append([]string{"install"}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err == nil && p != root {
			out = append(out, strings.TrimPrefix(p, root))
		}
		return err
	})
	return out
}

// TestCLIBadInput: bad input is one actionable line and exit 2, and
// nothing is written.
func TestCLIBadInput(t *testing.T) {
	root := t.TempDir()
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, nil, "--etcd-endpoints (or ETCD_ENDPOINTS) is required"},
		{nil, []string{"--etcd-endpoints", "10.0.0.1:2379"}, `etcd endpoint "10.0.0.1:2379": want a URL`},
		{[]string{"ETCD_ENDPOINTS=http://10.0.0.1:2379"}, []string{"--cni-bin-dir", "cni"}, `--cni-bin-dir "cni": want an absolute path`},
		{[]string{"ETCD_ENDPOINTS=http://10.0.0.1:2379"}, []string{"--portmap", "maybe"}, `--portmap "maybe"`},
		{[]string{"ETCD_ENDPOINTS=http://10.0.0.1:2379"}, []string{"--env", "FELIX_X"}, `--env "FELIX_X": want NAME=VALUE`},
		{[]string{"ETCD_ENDPOINTS=http://10.0.0.1:2379"}, []string{"--etcd-cert-file", "/c.pem"}, "set both ETCD_CERT_FILE and ETCD_KEY_FILE"},
		{[]string{"ETCD_ENDPOINTS=http://10.0.0.1:2379"}, []string{"--source", "/nonexistent"}, "--source /nonexistent: not a readable file"},
		{[]string{"ETCD_ENDPOINTS=http://10.0.0.1:2379"}, []string{"--networking-backend", "ipip"}, `CALICO_NETWORKING_BACKEND="ipip": want bird, vxlan or none`},
		{[]string{"ETCD_ENDPOINTS=http://10.0.0.1:2379"}, []string{"--ip", "10.0.0.300"}, `IP="10.0.0.300"`},
		{[]string{"ETCD_ENDPOINTS=http://10.0.0.1:2379"}, []string{"--env", "FELIX_VXLANVNI=big"}, "FELIX_"},
		{[]string{"ETCD_ENDPOINTS=http://10.0.0.1:2379"}, []string{"--no-default-pools", "yes please"}, `NO_DEFAULT_POOLS="yes please"`},
		{[]string{"ETCD_ENDPOINTS=http://10.0.0.1:2379"}, []string{"--root", filepath.Join(root, "missing")}, "missing: not a directory"},
		{nil, []string{"extra"}, `unexpected argument "extra"`},
		{nil, []string{"--bogus"}, "unknown flag: --bogus"},
	} {
		stdout, stderr, code := calico(t, tc.env, append([]string{"--root", root}, tc.args...)...)
		first, _, _ := strings.Cut(stderr, "\n")
		if code != 2 || !strings.Contains(first, tc.want) || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
	if got := listTree(t, root); len(got) != 0 {
		t.Errorf("bad input wrote %v", got)
	}
	if _, stderr, code := calico(t, nil, "--root", root, "--uninstall"); code != 1 || !strings.Contains(stderr, "nothing installed") {
		t.Errorf("uninstall with nothing installed: exit %d %q", code, stderr)
	}
}

// TestCLIInstall: the real binary installs itself into a root (the
// binary under /usr/local/bin is a copy of itself), a re-run reports
// every path unchanged, a dry run on a fresh root writes nothing, and
// --uninstall empties the root.
func TestCLIInstall(t *testing.T) {
	root := t.TempDir()
	args := []string{"--root", root, "--etcd-endpoints", "http://10.0.0.1:2379", "--networking-backend", "vxlan", "--portmap", "false"}
	stdout, stderr, code := calico(t, nil, args...)
	if code != 0 || strings.Count(stdout, "created ") != 9 || stderr != "" {
		t.Fatalf("install: exit %d\n%s%s", code, stdout, stderr)
	}
	self, _ := os.ReadFile(filepath.Join(labtest.BinDir(t), "calico"))
	if inst, err := os.ReadFile(filepath.Join(root, "usr/local/bin/calico")); err != nil || !bytes.Equal(inst, self) {
		t.Errorf("installed binary is not a copy of the running one: %v", err)
	}
	// The installed links run the installed binary under their names.
	out, err := exec.Command(filepath.Join(root, "usr/local/bin/calico-node"), "--version").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Errorf("installed calico-node --version: %v %s", err, out)
	}
	out, err = exec.Command(filepath.Join(root, "opt/cni/bin/calico-ipam")).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Calico CNI IPAM plugin")) {
		t.Errorf("installed calico-ipam (no CNI_COMMAND: its version): %v %s", err, out)
	}
	stdout, _, code = calico(t, nil, args...)
	if code != 0 || strings.Count(stdout, "unchanged ") != 9 || strings.Count(stdout, "\n") != 9 {
		t.Errorf("re-run: exit %d\n%s", code, stdout)
	}
	fresh := t.TempDir()
	stdout, _, code = calico(t, nil, append(args, "--root", fresh, "--dry-run")...)
	if code != 0 || !strings.Contains(stdout, "would create /etc/systemd/system/calico-node.service (mode 0644):\n    # Written by calico install") ||
		!strings.Contains(stdout, "would create /opt/cni/bin/calico -> ../../../usr/local/bin/calico") {
		t.Errorf("dry run: exit %d\n%s", code, stdout)
	}
	if got := listTree(t, fresh); len(got) != 0 {
		t.Errorf("dry run wrote %v", got)
	}
	stdout, _, code = calico(t, nil, "--root", root, "--uninstall")
	if code != 0 || strings.Count(stdout, "removed ") != 9 {
		t.Errorf("uninstall: exit %d\n%s", code, stdout)
	}
	if got := listTree(t, root); len(got) != 0 {
		t.Errorf("after uninstall the root holds %v", got)
	}
}
