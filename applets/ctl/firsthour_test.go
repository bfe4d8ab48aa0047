package ctl

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/testutil"
)

// First-hour friction (issue 8, item 8): what a new user tries first.

func TestVersionAndHelpOptions(t *testing.T) {
	c := &ctlEnv{t: t, env: []string{"PATH=" + os.Getenv("PATH")}}
	for _, args := range [][]string{{"--version"}, {"-v"}} {
		r := c.run(args...)
		if r.rc != 0 || !strings.HasPrefix(r.stdout, "Client Version:") || !strings.Contains(r.stdout, "Cluster Version:   unknown") {
			t.Errorf("calicoctl %v: %s", args, r)
		}
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		r := c.run(args...)
		if r.rc != 0 || !strings.Contains(r.stdout, "Usage:") || r.stderr != "" {
			t.Errorf("calicoctl %v: %s", args, r)
		}
	}
}

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestRefusedEndpointFailsAtOnceNamingIt(t *testing.T) {
	ep := "http://" + freePort(t)
	c := &ctlEnv{t: t}
	env := []string{"ETCD_ENDPOINTS=" + ep, "DATASTORE_TYPE=etcdv3", "PATH=" + os.Getenv("PATH")}
	for _, args := range [][]string{{"get", "ippool"}, {"ipam", "show"}, {"delete", "ippool", "x"}} {
		r := c.runEnv(env, "", args...)
		oneErrorLine(t, r, "etcd endpoint "+ep+" is not reachable", "connection refused")
	}
}

// A black-holed endpoint (packets dropped, no answer at all) fails after
// the dial bound with a message naming it, not after the request timeout
// with "context deadline exceeded".
func TestBlackHoledEndpointFailsNamingIt(t *testing.T) {
	testutil.RequireRoot(t)
	ns := testutil.NewNetNS(t)
	// Frames to 10.99.0.2 go out of a veth to a peer that drops them (their
	// MAC is not its own): no reply, no ICMP error.
	testutil.RunIn(t, ns, "ip", "link", "add", "bh0", "type", "veth", "peer", "name", "bh1")
	testutil.RunIn(t, ns, "ip", "addr", "add", "10.99.0.1/24", "dev", "bh0")
	testutil.RunIn(t, ns, "ip", "link", "set", "bh0", "up")
	testutil.RunIn(t, ns, "ip", "link", "set", "bh1", "up")
	testutil.RunIn(t, ns, "ip", "neigh", "add", "10.99.0.2", "lladdr", "02:00:00:00:00:02", "dev", "bh0", "nud", "permanent")
	ep := "http://10.99.0.2:2379"
	out, err := testutil.RunInErr(ns, "env", "ETCD_ENDPOINTS="+ep, "DATASTORE_TYPE=etcdv3", filepath.Join(binDir, "calicoctl"), "get", "ippool")
	if err == nil {
		t.Fatalf("get ippool against a black hole succeeded:\n%s", out)
	}
	if !strings.Contains(out, "etcd endpoint "+ep+" did not answer within 1.5s") || strings.Contains(out, "deadline exceeded") {
		t.Errorf("output does not name the endpoint and the dial bound:\n%s", out)
	}
}
