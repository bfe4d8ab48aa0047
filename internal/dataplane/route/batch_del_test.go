package route

import (
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/testutil"
)

// Single learned routes go through the Batcher's socket both ways (one
// add, one delete, IPv4 and IPv6 with a metric); a delete matches the
// protocol and metric (another protocol's route to the same destination
// stays) and deleting a route already gone is no error.
func TestPrivilegedBatcherSingleAddDelete(t *testing.T) {
	ns, h := node(t)
	b, err := NewBatcher(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	o := Owner{Protocols: []int{12}}
	v4 := Route{Dst: pfx("10.251.0.0/26"), Gw: addr("10.99.0.1"), LinkName: "eth0", Protocol: 12}
	v6 := Route{Dst: pfx("fd00:251::/64"), Gw: addr("fd00:99::1"), LinkName: "eth0", Protocol: 12, Metric: 300}
	other := Route{Dst: pfx("10.251.1.0/26"), Gw: addr("10.99.0.1"), LinkName: "eth0", Protocol: 12}
	testutil.RunIn(t, ns, "ip", "route", "add", "10.251.1.0/26", "via", "10.99.0.1", "dev", "eth0", "proto", "static")
	for _, r := range []Route{v4, v6} {
		if res, err := ApplyChanges(h, b, o, nil, []Route{r}); err != nil || res.Added != 1 {
			t.Fatalf("add %s: %+v %v", r, res, err)
		}
	}
	show := func() string {
		return testutil.RunIn(t, ns, "ip", "route", "show", "proto", "bird") + testutil.RunIn(t, ns, "ip", "-6", "route", "show", "proto", "bird")
	}
	if got := show(); !strings.Contains(got, "10.251.0.0/26 via 10.99.0.1 dev eth0") || !strings.Contains(got, "fd00:251::/64 via fd00:99::1 dev eth0 metric 300") {
		t.Fatalf("after the adds:\n%s", got)
	}
	for range 2 { // the second time every route is already gone
		res, err := ApplyChanges(h, b, o, []Route{v4, v6, other}, nil)
		if err != nil || res.Deleted != 3 {
			t.Fatalf("delete: %+v %v", res, err)
		}
		if got := show(); strings.Contains(got, "251") {
			t.Fatalf("after the delete:\n%s", got)
		}
	}
	if got := testutil.RunIn(t, ns, "ip", "route", "show", "10.251.1.0/26"); !strings.Contains(got, "proto static") {
		t.Errorf("the static route to the same destination went: %q", got)
	}
}
