package ifaces

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/testutil"
)

func TestPrivilegedListAndSourceAddr(t *testing.T) {
	ns := testutil.NewNetNS(t)
	testutil.RequireCmd(t, "ip")
	for _, cmd := range [][]string{
		{"ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"},
		{"ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p"},
		{"ip", "addr", "add", "10.99.0.11/24", "dev", "eth0"},
		{"ip", "addr", "add", "10.98.5.11/16", "dev", "eth1"},
		{"ip", "-6", "addr", "add", "fd00::11/64", "dev", "eth1", "nodad"},
		{"ip", "link", "set", "eth0", "up"}, {"ip", "link", "set", "eth0p", "up"},
		{"ip", "link", "set", "eth1", "up"}, {"ip", "link", "set", "eth1p", "up"},
		{"ip", "route", "add", "default", "via", "10.98.0.1"},
	} {
		testutil.RunIn(t, ns, cmd...)
	}
	ifs, err := List(testutil.Handle(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Interface{}
	for i, x := range ifs {
		byName[x.Name] = x
		if i > 0 && ifs[i-1].Index >= x.Index {
			t.Errorf("not sorted by index: %v", ifs)
		}
	}
	if lo := byName["lo"]; !slices.Contains(lo.Addrs, netip.MustParsePrefix("127.0.0.1/8")) || !lo.Up {
		t.Errorf("lo = %+v", lo)
	}
	if e := byName["eth0"]; !slices.Contains(e.Addrs, netip.MustParsePrefix("10.99.0.11/24")) || e.MTU != 1500 || !e.Up {
		t.Errorf("eth0 = %+v", e)
	}
	e1 := byName["eth1"]
	if !slices.Contains(e1.Addrs, netip.MustParsePrefix("10.98.5.11/16")) || !slices.Contains(e1.Addrs, netip.MustParsePrefix("fd00::11/64")) {
		t.Errorf("eth1 = %+v", e1)
	}

	for dest, want := range map[string]string{"10.99.0.50": "10.99.0.11", "192.0.2.1": "10.98.5.11", "10.98.200.1": "10.98.5.11"} {
		got, err := SourceAddr(ns, dest, 4)
		if err != nil || got.String() != want {
			t.Errorf("SourceAddr(%s) = %v, %v; want %s", dest, got, err, want)
		}
	}
	if _, err := SourceAddr(ns, "fd99::1", 6); err == nil || !strings.Contains(err.Error(), "fd99::1") {
		t.Errorf("SourceAddr to an unroutable IPv6 address: %v", err)
	}
}
