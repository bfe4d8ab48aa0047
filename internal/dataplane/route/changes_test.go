package route

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestPrivilegedApplyChanges installs 300 routes incrementally (batched),
// changes and removes some, and checks the kernel each time; a route the
// kernel refuses is an error naming it.
func TestPrivilegedApplyChanges(t *testing.T) {
	_, h, b := d0Node(t)
	owner := Owner{Protocols: []int{12}}
	var want []Route
	for i := range 300 {
		want = append(want, Route{Dst: netip.MustParsePrefix(fmt.Sprintf("10.250.%d.%d/32", i/256, i%256)),
			Gw: netip.MustParseAddr("10.99.0.1"), LinkName: "d0", Protocol: 12})
	}
	check := func(want []Route) {
		t.Helper()
		got, err := List(h, owner)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d routes installed, want %d", len(got), len(want))
		}
		Sort(want)
		for i := range got {
			if !got[i].equal(want[i]) {
				t.Fatalf("route %d: got %s, want %s", i, got[i], want[i])
			}
		}
	}
	if r, err := ApplyChanges(h, b, owner, nil, want); err != nil || r.Added != 300 {
		t.Fatalf("apply: %+v %v", r, err)
	}
	check(want)
	next := append([]Route(nil), want[:200]...)
	next[0].Gw = netip.MustParseAddr("10.99.0.2")
	if r, err := ApplyChanges(h, b, owner, want, next); err != nil || r.Replaced != 1 || r.Deleted != 100 {
		t.Fatalf("change: %+v %v", r, err)
	}
	check(next)
	bad := append([]Route(nil), next...)
	for i := range 20 {
		bad = append(bad, Route{Dst: netip.MustParsePrefix(fmt.Sprintf("10.251.0.%d/32", i)), Gw: netip.MustParseAddr("192.0.2.1"), LinkName: "d0", Protocol: 12})
	}
	if _, err := ApplyChanges(h, b, owner, next, bad); err == nil {
		t.Fatal("unreachable gateways were accepted")
	}
}

// ApplyWith a Batcher: hundreds of routes added in batches, one of them
// failing alone; then a no-op; then every gateway changed (replaced in
// batches); then all removed.
func TestPrivilegedApplyWithBatcher(t *testing.T) {
	ns, h := node(t)
	b, err := NewBatcher(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	want := benchRoutes(200)
	bad := Route{Dst: pfx("10.245.0.0/26"), Gw: addr("172.16.0.1"), LinkName: "eth0", Protocol: 80} // unreachable gateway
	res, err := ApplyWith(h, b, owner, append(slices.Clone(want), bad))
	if err == nil || !strings.Contains(err.Error(), "replace route 10.245.0.0/26") {
		t.Fatalf("ApplyWith error = %v, want the unreachable gateway named", err)
	}
	// The stale route node() installs on cali1 is deleted.
	if res != (Result{Added: 200, Deleted: 1}) {
		t.Errorf("ApplyWith = %+v, want 200 added, 1 deleted", res)
	}
	check := func(want []Route) {
		t.Helper()
		got, err := List(h, owner)
		if err != nil {
			t.Fatal(err)
		}
		w := slices.Clone(want)
		Sort(w)
		if !slices.Equal(strs(got), strs(w)) {
			t.Fatalf("installed %d routes, want %d; first difference in\n%q\nvs\n%q", len(got), len(w), strs(got)[:min(3, len(got))], strs(w)[:min(3, len(w))])
		}
	}
	check(want)
	if res, err := ApplyWith(h, b, owner, want); err != nil || res != (Result{}) {
		t.Fatalf("second ApplyWith = %+v, %v; want no changes", res, err)
	}
	for i := range want {
		want[i].Gw = addr("10.99.0.250")
	}
	if res, err := ApplyWith(h, b, owner, want); err != nil || res != (Result{Replaced: 200}) {
		t.Fatalf("ApplyWith new gateways = %+v, %v; want 200 replaced", res, err)
	}
	check(want)
	if res, err := ApplyWith(h, b, owner, nil); err != nil || res != (Result{Deleted: 200}) {
		t.Fatalf("ApplyWith(nil) = %+v, %v; want 200 deleted", res, err)
	}
}
