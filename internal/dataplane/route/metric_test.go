package route

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/testutil"
)

// TestPrivilegedRouteMetric: a route's Metric is its kernel priority
// (`ip route ... metric N`), through Apply, the batched and the plain
// incremental path; a changed metric leaves one route, not two.
func TestPrivilegedRouteMetric(t *testing.T) {
	ns, h, b := d0Node(t)
	owner := Owner{Protocols: []int{12}}
	r := func(dst string, metric int) Route {
		return Route{Dst: netip.MustParsePrefix(dst), Gw: netip.MustParseAddr("10.99.0.1"), Protocol: 12, Metric: metric}
	}
	show := func() string {
		return strings.TrimSpace(testutil.RunIn(t, ns, "ip", "-4", "route", "show", "proto", "12"))
	}
	v1 := []Route{r("10.123.0.0/26", 300), r("10.123.1.0/26", 0)}
	if _, err := Apply(h, owner, v1); err != nil {
		t.Fatal(err)
	}
	want := "10.123.0.0/26 via 10.99.0.1 dev d0 metric 300 \n10.123.1.0/26 via 10.99.0.1 dev d0"
	if got := show(); got != want {
		t.Errorf("after Apply:\n%s\nwant:\n%s", got, want)
	}
	if res, err := Apply(h, owner, v1); err != nil || res != (Result{}) {
		t.Errorf("second Apply changed %+v %v", res, err)
	}
	v2 := []Route{r("10.123.0.0/26", 0), r("10.123.1.0/26", 500)}
	for _, bb := range []*Batcher{nil, b} {
		if _, err := ApplyChanges(h, bb, owner, v1, v2); err != nil {
			t.Fatal(err)
		}
		want = "10.123.0.0/26 via 10.99.0.1 dev d0 \n10.123.1.0/26 via 10.99.0.1 dev d0 metric 500"
		if got := show(); got != want {
			t.Errorf("after ApplyChanges (batcher %v):\n%s\nwant:\n%s", bb != nil, got, want)
		}
		if _, err := ApplyChanges(h, bb, owner, v2, v1); err != nil {
			t.Fatal(err)
		}
		if got, want := show(), "10.123.0.0/26 via 10.99.0.1 dev d0 metric 300 \n10.123.1.0/26 via 10.99.0.1 dev d0"; got != want {
			t.Errorf("back (batcher %v):\n%s\nwant:\n%s", bb != nil, got, want)
		}
	}
	if _, err := Apply(h, owner, v2); err != nil {
		t.Fatal(err)
	}
	if got, want := show(), "10.123.0.0/26 via 10.99.0.1 dev d0 \n10.123.1.0/26 via 10.99.0.1 dev d0 metric 500"; got != want {
		t.Errorf("after Apply of changed metrics:\n%s\nwant:\n%s", got, want)
	}
	// Enough changes to go in a batch.
	var many []Route
	for i := range 2 * minBatch {
		many = append(many, r(fmt.Sprintf("10.124.%d.0/24", i), 700))
	}
	if _, err := ApplyChanges(h, b, owner, v2, many); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(show(), "metric 700"); got != len(many) || strings.Contains(show(), "10.123.") {
		t.Errorf("batched: %d routes with metric 700, want %d:\n%s", got, len(many), show())
	}
}
