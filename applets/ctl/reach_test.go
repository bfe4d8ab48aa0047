package ctl

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckReachableEndpointForms(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	sock := filepath.Join(t.TempDir(), "etcd.sock:0") // etcd's unix URLs carry a port
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	for _, ep := range []string{"http://" + addr, addr, "localhost:" + port, "unix://" + sock, "unixs://" + sock} {
		if err := checkReachable(context.Background(), []string{ep}); err != nil {
			t.Errorf("%s: %v", ep, err)
		}
	}
	// A unix socket with no server (gone, or never there) is refused at once.
	for _, ep := range []string{"unix:///nonexistent.sock", "unixs://" + sock + ".gone"} {
		if err := checkReachable(context.Background(), []string{ep}); err == nil || !strings.Contains(err.Error(), ep+" is not reachable") {
			t.Errorf("%s: %v, want 'not reachable' naming it", ep, err)
		}
	}
	// One good endpoint of several is enough; with none, every one is named.
	if err := checkReachable(context.Background(), []string{"http://127.0.0.1:1", addr}); err != nil {
		t.Errorf("one reachable of two: %v", err)
	}
	err = checkReachable(context.Background(), []string{"http://127.0.0.1:1", "https://127.0.0.1:2"})
	if err == nil || !strings.Contains(err.Error(), "http://127.0.0.1:1 is not reachable") || !strings.Contains(err.Error(), "https://127.0.0.1:2 is not reachable") {
		t.Errorf("two refused endpoints: %v", err)
	}
}
