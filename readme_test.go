package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The README's install snippet works on a machine without /opt/cni/bin
// (run with / moved to a temporary directory that has only /usr/local/bin).
func TestReadmeInstallSnippet(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "### Installing on a node by hand\n\nWhat `calico install` does, step by step:\n\n```sh\n")
	snippet, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README has no install snippet under \"### Installing on a node by hand\"")
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "usr/local/bin"), 0o755)
	os.MkdirAll(filepath.Join(root, "work/bin"), 0o755)
	os.WriteFile(filepath.Join(root, "work/bin/calico"), []byte("#!/bin/sh\n"), 0o755)
	var lines []string
	for _, l := range strings.Split(snippet, "\n") {
		if strings.TrimSpace(l) == "make build" {
			continue // the build is not under test here
		}
		l = strings.ReplaceAll(l, "/usr/local/bin", root+"/usr/local/bin")
		lines = append(lines, strings.ReplaceAll(l, "/opt/cni/bin", root+"/opt/cni/bin"))
	}
	cmd := exec.Command("sh", "-ec", strings.Join(lines, "\n"))
	cmd.Dir = filepath.Join(root, "work")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install snippet: %v\n%s\n%s", err, strings.Join(lines, "\n"), out)
	}
	for _, p := range []string{"usr/local/bin/calico-node", "usr/local/bin/calicoctl", "opt/cni/bin/calico", "opt/cni/bin/calico-ipam"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("after the snippet: %v", err)
		}
	}
}
