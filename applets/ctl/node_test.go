package ctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/agent"
)

func TestNodeStatusNotRunning(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	e := &Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		if k == "CALICO_RUN_DIR" {
			return dir
		}
		return ""
	}}
	if code := run(context.Background(), e, []string{"node", "status"}); code != exitError {
		t.Errorf("exit %d, want 1", code)
	}
	if out.String() != "Calico process is not running.\n" {
		t.Errorf("stdout %q", out.String())
	}
}

func TestNodeStatusRunning(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("unix", filepath.Join(dir, agent.ControlSocketName))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if line, _ := bufio.NewReader(c).ReadString('\n'); line != "status\n" {
			return
		}
		_ = json.NewEncoder(c).Encode(agent.Status{NodeName: "n1", IPv4Address: "10.99.0.11/24", Live: true, Ready: true,
			LastApply: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Degraded: []string{"ipip: a", "vxlan: b"}, Routes: 3, VTEPs: 2, Version: "v1"})
	}()
	var out, errb bytes.Buffer
	e := &Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	if code := run(context.Background(), e, []string{"node", "status", "--run-dir", dir}); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want := `Calico process is running.

Node:             n1
IPv4 address:     10.99.0.11/24
Version:          v1
Live:             yes
Ready:            yes (last dataplane apply 2026-01-02T03:04:05Z)
Local endpoints:  0
Routes:           3
VXLAN peers:      2
Degraded:         ipip: a
                  vxlan: b

No BGP peers (BGP speaker not enabled)
`
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
	if code := run(context.Background(), e, []string{"node", "bogus"}); code != exitUsage || !strings.Contains(errb.String(), "Invalid node command") {
		t.Errorf("bogus: exit %d %s", code, errb.String())
	}
}
