package ipam

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/api"
)

// loadUpstream100 loads upstream v3.32.1's state after 100 calico-ipam ADDs
// (dump section 5) on top of its pool and node (section 1). The dump shows
// only 2 of the 100 handles; the other 98 are rebuilt from the blocks.
func loadUpstream100(t *testing.T, s Store) map[string]string {
	t.Helper()
	load(t, s, readDump(t, "upstream-section1.txt"))
	sec5 := readDump(t, "upstream-section5.txt")
	load(t, s, sec5)
	held := map[string]string{} // address -> handle
	for _, kv := range sec5 {
		if !strings.HasPrefix(kv.key, api.IPAMBlockPrefix) {
			continue
		}
		b, cidr, err := decodeBlock(kv.key, []byte(kv.value))
		if err != nil {
			t.Fatal(err)
		}
		for o, idx := range b.Allocations {
			if idx == nil {
				continue
			}
			h := attrHandle(b.Attributes[*idx])
			held[ordinalAddr(cidr, o).String()] = h
			key := api.HandleKey(h)
			if _, err := s.Get(context.Background(), key); err != nil {
				v, _ := json.Marshal(api.Handle{Block: map[string]int{cidr.String(): 1}})
				if _, err := s.Create(context.Background(), key, v); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if len(held) != 100 {
		t.Fatalf("upstream data holds %d addresses, want 100", len(held))
	}
	return held
}

// TestUpstreamDataIsRespected runs our allocator on the data upstream
// Calico wrote: it must read it, never hand out an address upstream
// allocated, count it as upstream's `ipam show` did, and release it.
func TestUpstreamDataIsRespected(t *testing.T) {
	s := etcdStore(t)
	ctx := context.Background()
	held := loadUpstream100(t, s)
	a := New(s, Options{})
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatalf("upstream data does not pass our check: %v", bad)
	}
	// ipam show's counts, as upstream printed them: pool 100 in use,
	// block .128/26 64 (100%), block .192/26 36.
	u, err := a.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(u) != 1 || u[0].InUse != 100 || u[0].Capacity != 65536 || len(u[0].Blocks) != 2 ||
		u[0].Blocks[0].InUse != 64 || u[0].Blocks[1].InUse != 36 {
		t.Fatalf("usage %+v", u)
	}
	// 50 more on node1: the 28 free addresses of the second block, then a
	// third block; none of upstream's 100.
	var got []string
	for i := range 50 {
		v4, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: fmt.Sprintf("ours.%d", i), Hostname: "node1", Attrs: map[string]string{"node": "node1"}})
		if err != nil {
			t.Fatal(err)
		}
		ip := v4[0].Addr().String()
		if h, ok := held[ip]; ok {
			t.Fatalf("%s handed out again (upstream's handle %s holds it)", ip, h)
		}
		got = append(got, v4[0].String())
	}
	if got[0] != "10.244.166.228/26" || got[27] != "10.244.166.255/26" || got[28] != "10.244.167.0/26" {
		t.Fatalf("allocation order %v", got)
	}
	if n := len(allAllocated(t, s)); n != 150 {
		t.Fatalf("%d allocated, want 150", n)
	}
	// Upstream's allocations release through our code.
	for i := 1; i <= 100; i++ {
		if err := a.ReleaseByHandle(ctx, fmt.Sprintf("k8s-pod-network.ipamfill%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(allAllocated(t, s)); n != 50 {
		t.Fatalf("%d allocated after releasing upstream's, want 50", n)
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatal(bad)
	}
}

// TestUpstreamFreedOrderIsKept starts from upstream's final state (dump
// section 6: an empty block whose unallocated list starts at ordinal 3)
// and checks the next address is the one upstream would give.
func TestUpstreamFreedOrderIsKept(t *testing.T) {
	s := etcdStore(t)
	ctx := context.Background()
	load(t, s, readDump(t, "upstream-section1.txt"))
	load(t, s, readDump(t, "upstream-section6.txt")[:3]) // block, config, affinity
	a := New(s, Options{})
	v4, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "h", Hostname: "node1"})
	if err != nil || v4[0] != netip.MustParsePrefix("10.244.166.131/26") {
		t.Fatalf("got %v %v, want 10.244.166.131/26", v4, err)
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatal(bad)
	}
}
