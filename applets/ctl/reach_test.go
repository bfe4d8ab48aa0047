package ctl

import (
	"context"
	"net"
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
	for _, ep := range []string{"http://" + addr, addr, "localhost:" + port, "unix:///nonexistent.sock"} {
		if err := checkReachable(context.Background(), []string{ep}); err != nil {
			t.Errorf("%s: %v", ep, err)
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
