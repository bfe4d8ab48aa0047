package cniipam

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/cniconf"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/ipam"
	"github.com/onecalico/calico/internal/testutil"
)

func TestHandlesAndAttrs(t *testing.T) {
	if h, l := Handles("net1", "c1", cniconf.Args{}); h != "net1.c1" || l != "c1" {
		t.Errorf("plain CNI handles %q %q", h, l)
	}
	k8s := cniconf.Args{K8sPodNamespace: "ns", K8sPodName: "web-1"}
	if h, l := Handles("net1", "c1", k8s); h != "net1.c1" || l != "ns.web-1" {
		t.Errorf("k8s handles %q %q", h, l)
	}
	now := time.Date(2026, 11, 21, 13, 3, 4, 708173901, time.UTC)
	a := Attrs("node1", k8s, now)
	if len(a) != 4 || a["node"] != "node1" || a["pod"] != "web-1" || a["namespace"] != "ns" || a["timestamp"] != "2026-11-21 13:03:04.708173901 +0000 UTC" {
		t.Errorf("attrs %v", a)
	}
	if a := Attrs("node1", cniconf.Args{}, now); len(a) != 2 {
		t.Errorf("plain attrs %v", a)
	}
}

func TestCNIError(t *testing.T) {
	for _, c := range []struct {
		err  error
		code uint
	}{
		{types.NewError(7, "x", ""), 7},
		{fmt.Errorf("read: %w", context.DeadlineExceeded), types.ErrTryAgainLater},
		{fmt.Errorf("assign: %w", ipam.ErrTooManyConflicts), types.ErrTryAgainLater},
		{fmt.Errorf("assign: %w", ipam.ErrPoolExhausted), types.ErrInternal},
	} {
		te := CNIError(c.err).(*types.Error)
		if te.Code != c.code || (c.code != 7 && te.Msg != c.err.Error()) {
			t.Errorf("CNIError(%v) = %d %q, want %d", c.err, te.Code, te.Msg, c.code)
		}
	}
	if CNIError(nil) != nil {
		t.Error("CNIError(nil) is not nil")
	}
}

func TestValidContainers(t *testing.T) {
	c, _ := cniconf.Parse([]byte(`{"name":"n"}`))
	if _, ok := ValidContainers(c); ok {
		t.Error("no list taken as a list")
	}
	c, _ = cniconf.Parse([]byte(`{"name":"n","cni.dev/valid-attachments":[]}`))
	if v, ok := ValidContainers(c); !ok || len(v) != 0 {
		t.Errorf("empty list: %v %v", v, ok)
	}
	c, _ = cniconf.Parse([]byte(`{"name":"n","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}`))
	if v, ok := ValidContainers(c); !ok || !v["a"] || len(v) != 1 {
		t.Errorf("list: %v %v", v, ok)
	}
}

// TestSession drives a session against a real etcd the way the plugins do:
// assign, check, release, GC, status, with every request counted.
func TestSession(t *testing.T) {
	e := testutil.StartEtcd(t)
	s0, err := etcd.New(etcd.Config{Endpoints: []string{e.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	defer s0.Close()
	c := datastore.NewClient(s0)
	ctx := context.Background()
	for _, r := range []api.Resource{
		func() api.Resource { n := api.NewNode(); n.Name = "n1"; return n }(),
		func() api.Resource { p := api.NewIPPool(); p.Name, p.Spec.CIDR = "p", "10.9.0.0/24"; return p }(),
	} {
		if _, err := c.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	var stderr bytes.Buffer
	env := Env{Getenv: func(string) string { return "" }, Stderr: &stderr, ReadFile: os.ReadFile, Hostname: os.Hostname}
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "net1", "type": "calico", "etcd_endpoints": e.Endpoint,
		"nodename": "n1", "ipam_lock_file": filepath.Join(dir, "lock"), "log_level": "debug", "ipam": map[string]any{"type": "calico-ipam"}})
	s, err := Open(env, "test", conf)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(env, "test", []byte(`{"name":"n","mtu":"x"}`)); err == nil || err.(*types.Error).Code != types.ErrInvalidNetworkConfig {
		t.Fatalf("bad netconf: %v", err)
	}
	if err := s.Connect(); err != nil {
		t.Fatal(err)
	}
	node, err := s.NodeName()
	if err != nil || node != "n1" {
		t.Fatal(node, err)
	}
	unlock, err := s.Lock()
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := s.Assign(ctx, node, "net1.c1", cniconf.Args{})
	unlock()
	if err != nil || len(addrs) != 1 || addrs[0].Bits() != 26 {
		t.Fatalf("Assign = %v, %v", addrs, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "lock")); err != nil {
		t.Errorf("lock file: %v", err)
	}
	if trips, calls := s.Store.Trips(); trips < 3 || len(calls) != trips {
		t.Errorf("trips %d, recorded %d", trips, len(calls))
	}
	a := addrs[0].Addr()
	if err := s.CheckHandle(ctx, "net1.c1", []netip.Addr{a}, true); err != nil {
		t.Fatal(err)
	}
	other := netip.MustParseAddr("10.9.0.200")
	if err := s.CheckHandle(ctx, "net1.c1", []netip.Addr{a, other}, false); err == nil || !strings.Contains(err.Error(), "does not hold 10.9.0.200") {
		t.Fatalf("CheckHandle missing address: %v", err)
	}
	if err := s.CheckHandle(ctx, "net1.c1", nil, true); err == nil || !strings.Contains(err.Error(), "also holds "+a.String()) {
		t.Fatalf("CheckHandle extra address: %v", err)
	}
	if err := s.CheckHandle(ctx, "net1.nope", nil, true); err.(*types.Error).Code != types.ErrUnknownContainer {
		t.Fatalf("CheckHandle unknown handle: %v", err)
	}
	// IP= assigns that address as a /32.
	got, err := s.Assign(ctx, node, "net1.c2", cniconf.Args{IP: other})
	if err != nil || got[0] != netip.MustParsePrefix("10.9.0.200/32") {
		t.Fatalf("Assign IP= %v %v", got, err)
	}
	if _, err := s.Assign(ctx, node, "net1.c3", cniconf.Args{IP: other}); err == nil || !strings.Contains(err.Error(), "already allocated") {
		t.Fatalf("Assign a held address: %v", err)
	}
	// GC keeps c1, releases c2.
	released, err := s.GCHandles(ctx, node, map[string]bool{"c1": true})
	if err != nil || len(released) != 1 || released[0] != "net1.c2" {
		t.Fatalf("GCHandles = %v, %v", released, err)
	}
	if err := s.Status(ctx, node); err != nil {
		t.Fatal(err)
	}
	if err := s.Status(ctx, "ghost"); err == nil || err.(*types.Error).Code != ErrPluginNotAvailable {
		t.Fatalf("Status of an unknown node: %v", err)
	}
	if err := s.Release(ctx, "net1.c1", "c1", "net1.c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Alloc.IPsByHandle(ctx, "net1.c1"); !errors.Is(err, ipam.ErrHandleNotFound) {
		t.Fatalf("handle after Release: %v", err)
	}
	if !strings.Contains(stderr.String(), "component=test") {
		t.Errorf("debug log lacks the component: %q", stderr.String())
	}
}
