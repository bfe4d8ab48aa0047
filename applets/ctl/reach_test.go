package ctl

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/testutil"
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

// TestStoppedEtcdFailsFast: against a real etcd stopped with SIGSTOP (its
// socket still accepts connections, nothing answers), calicoctl fails on
// its first read with a line naming the endpoint, instead of waiting for
// the store's 10 s request timeout.
func TestStoppedEtcdFailsFast(t *testing.T) {
	p := testutil.StartEtcdProcess(t)
	c := &ctlEnv{t: t, env: []string{"ETCD_ENDPOINTS=" + p.Endpoint, "DATASTORE_TYPE=etcdv3", "PATH=" + os.Getenv("PATH")}}
	c.mustRun("get", "ippool")
	p.Pause()
	defer p.Resume()
	start := time.Now()
	r := c.run("get", "ippool")
	took := time.Since(start)
	want := "etcd at " + p.Endpoint + " did not answer a read within 2s"
	if r.rc != 1 || !strings.Contains(r.stderr, want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("calicoctl against a stopped etcd, want one line containing %q:\n%s", want, r)
	}
	t.Logf("calicoctl failed after %v: %s", took.Round(10*time.Millisecond), strings.TrimSpace(r.stderr))
	p.Resume()
	c.mustRun("get", "ippool")
}
