package agent

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSecretWatcherSymlinkSwap: a Kubernetes-style update (a new
// timestamped directory, ..data renamed over the old link), a plain
// rewrite and a new secret directory each wake the watcher.
func TestSecretWatcherSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	sec := filepath.Join(dir, "bgp-pw")
	mkdata := func(name, val string) {
		if err := os.MkdirAll(filepath.Join(sec, name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sec, name, "key"), []byte(val), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mkdata("..2026_01", "one")
	if err := os.Symlink("..2026_01", filepath.Join(sec, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/key", filepath.Join(sec, "key")); err != nil {
		t.Fatal(err)
	}
	kicks := make(chan struct{}, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := watchSecrets(ctx, dir, slog.New(slog.NewTextHandler(io.Discard, nil)), func() { kicks <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	wait := func(what string) {
		t.Helper()
		select {
		case <-kicks:
		case <-time.After(10 * time.Second):
			t.Fatalf("no event for %s", what)
		}
		for len(kicks) > 0 {
			<-kicks
		}
	}
	// The swap as the kubelet does it.
	mkdata("..2026_02", "two")
	wait("new data directory")
	if err := os.Symlink("..2026_02", filepath.Join(sec, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(sec, "..data_tmp"), filepath.Join(sec, "..data")); err != nil {
		t.Fatal(err)
	}
	wait("..data swap")
	if b, _ := os.ReadFile(filepath.Join(sec, "key")); string(b) != "two" {
		t.Fatalf("key reads %q", b)
	}
	// A new secret directory is watched too.
	other := filepath.Join(dir, "other")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	wait("new secret directory")
	if err := os.WriteFile(filepath.Join(other, "k"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	wait("write in the new secret directory")
	if !w.watching() {
		t.Error("not watching the secret directory")
	}
	// Removing the directory ends the watch (the caller then polls).
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.watching() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if w.watching() {
		t.Error("still watching a removed directory")
	}
	if _, err := watchSecrets(ctx, dir, slog.New(slog.NewTextHandler(io.Discard, nil)), func() {}); err == nil {
		t.Error("watching a missing directory did not fail")
	}
}
