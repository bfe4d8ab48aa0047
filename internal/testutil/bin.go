package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// appletLinks are the names the binary is installed under.
var appletLinks = []string{"calico-ipam", "calico-node", "calicoctl"}

// RunWithBinary is a TestMain for packages whose tests run the calico
// binary: binDir receives $CALICO_BIN (set by `make test`), or a directory
// with a build made once for this package, with the applet symlinks. The
// build is removed after the tests. It returns the exit code for os.Exit.
func RunWithBinary(m *testing.M, binDir *string) int {
	if dir := os.Getenv("CALICO_BIN"); dir != "" {
		*binDir = dir
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "calico-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := buildCalico(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*binDir = dir
	return m.Run()
}

// buildCalico builds the binary into dir (without the embedded etcd
// server, which only `make build` adds) and links the applet names to it.
func buildCalico(dir string) error {
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "calico"), "github.com/onecalico/calico")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build calico: %v\n%s", err, out)
	}
	for _, name := range appletLinks {
		if err := os.Symlink("calico", filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}
