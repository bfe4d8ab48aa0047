package route

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestPrivilegedBatchErrors: in batches whose requests ask for no
// acknowledgement but the last, a refused route is still reported alone,
// wherever it is in its batch (first, middle, last of a batch, last of
// all), and every other route is installed.
func TestPrivilegedBatchErrors(t *testing.T) {
	ns, h := node(t)
	b, err := NewBatcher(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	routes := benchRoutes(250) // 10.244.<i>.0/26
	for i := range 250 {
		routes = append(routes, Route{Dst: pfx(fmt.Sprintf("10.245.%d.0/26", i)), Gw: addr("10.99.0.12"), LinkName: "eth0", Protocol: 80})
	}
	bad := []int{0, 7, batchChunk - 1, batchChunk, 300, len(routes) - 1}
	for _, i := range bad {
		routes[i].Gw = addr("172.16.0.1") // unreachable
	}
	res, err := ApplyWith(h, b, owner, routes)
	if err == nil {
		t.Fatal("no error for the unreachable gateways")
	}
	for _, i := range bad {
		if !strings.Contains(err.Error(), "replace route "+routes[i].Dst.String()+" ") {
			t.Errorf("error does not name route %d (%s):\n%v", i, routes[i].Dst, err)
		}
	}
	if n := strings.Count(err.Error(), "replace route"); n != len(bad) {
		t.Errorf("%d routes named in the error, want %d:\n%v", n, len(bad), err)
	}
	if want := len(routes) - len(bad); res.Added != want {
		t.Errorf("added %d, want %d", res.Added, want)
	}
	got, err := List(h, owner)
	if err != nil {
		t.Fatal(err)
	}
	var good []Route
	for i, r := range routes {
		if !slices.Contains(bad, i) {
			good = append(good, r)
		}
	}
	Sort(good)
	if !slices.Equal(strs(got), strs(good)) {
		t.Errorf("installed %d routes, want %d", len(got), len(good))
	}
}
