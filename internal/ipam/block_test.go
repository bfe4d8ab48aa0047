package ipam

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore/memory"
)

const (
	upBlockKey  = "/calico/ipam/v2/assignment/ipv4/block/10.244.166.128-26"
	upAffKey    = "/calico/ipam/v2/host/node1/ipv4/block/10.244.166.128-26"
	upHandleKey = "/calico/ipam/v2/handle/k8s-pod-network.anchorp1"
	upHandle    = "k8s-pod-network.anchorp1"
	upTimestamp = "2026-11-21 13:03:04.708173901 +0000 UTC"
	upSeq       = 1795266184720467413 // the new block's sequence number = its creation time
)

func TestOrdinalMath(t *testing.T) {
	for _, tc := range []struct {
		cidr string
		ord  int
		addr string
	}{
		{"10.244.166.128/26", 0, "10.244.166.128"},
		{"10.244.166.128/26", 63, "10.244.166.191"},
		{"10.0.0.0/30", 3, "10.0.0.3"},
		{"10.255.255.0/24", 255, "10.255.255.255"},
		{"fd00::/122", 63, "fd00::3f"},
		{"fd00:0:0:1::ff00/120", 255, "fd00:0:0:1::ffff"},
	} {
		c := netip.MustParsePrefix(tc.cidr)
		if got := ordinalAddr(c, tc.ord); got.String() != tc.addr {
			t.Errorf("ordinalAddr(%s, %d) = %s, want %s", c, tc.ord, got, tc.addr)
		}
		if got, ok := addrOrdinal(c, netip.MustParseAddr(tc.addr)); !ok || got != tc.ord {
			t.Errorf("addrOrdinal(%s, %s) = %d %v, want %d", c, tc.addr, got, ok, tc.ord)
		}
	}
	if _, ok := addrOrdinal(netip.MustParsePrefix("10.0.0.0/30"), netip.MustParseAddr("10.0.0.4")); ok {
		t.Error("10.0.0.4 reported inside 10.0.0.0/30")
	}
	if got := blockCIDRFor(netip.MustParseAddr("10.244.166.130"), 26); got.String() != "10.244.166.128/26" {
		t.Errorf("blockCIDRFor = %s", got)
	}
	if n := blockSizeOf(netip.MustParsePrefix("fd00::/116")); n != 4096 {
		t.Errorf("blockSizeOf(/116) = %d", n)
	}
}

// TestRandomBlockOrderMatchesUpstream checks the walk against what upstream
// v3.32.1 chose: node1's first block in 10.244.0.0/16 was
// 10.244.166.128/26, and its second 10.244.166.192/26.
func TestRandomBlockOrderMatchesUpstream(t *testing.T) {
	g := newBlockOrder(netip.MustParsePrefix("10.244.0.0/16"), 26, "node1", time.Now)
	var got []string
	g.each(func(c netip.Prefix) bool {
		got = append(got, c.String())
		return len(got) < 3
	})
	want := []string{"10.244.166.128/26", "10.244.166.192/26", "10.244.167.0/26"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("walk = %v, want %v", got, want)
		}
	}
	// position() agrees with the walk, and the walk covers every block once.
	seen := map[netip.Prefix]bool{}
	n := 0
	g.each(func(c netip.Prefix) bool {
		if seen[c] {
			t.Fatalf("block %s visited twice", c)
		}
		seen[c] = true
		if pos := g.position(c); pos.Int64() != int64(n) {
			t.Fatalf("position(%s) = %v, want %d", c, pos, n)
		}
		n++
		return true
	})
	if n != 1024 {
		t.Fatalf("walk visited %d blocks, want 1024", n)
	}
	// Other hosts start elsewhere; the same host always starts at the same place.
	other := newBlockOrder(netip.MustParsePrefix("10.244.0.0/16"), 26, "node2", time.Now).at(bigZero())
	if other.String() == want[0] {
		t.Errorf("node2 starts at node1's block %s", other)
	}
	again := newBlockOrder(netip.MustParsePrefix("10.244.0.0/16"), 26, "node1", time.Now).at(bigZero())
	if again.String() != want[0] {
		t.Errorf("node1 restarted at %s", again)
	}
	// IPv6: huge pools work without walking them.
	g6 := newBlockOrder(netip.MustParsePrefix("fd00::/48"), 122, "node1", time.Now)
	first := g6.at(bigZero())
	if !netip.MustParsePrefix("fd00::/48").Contains(first.Addr()) || first.Bits() != 122 || g6.position(first).Sign() != 0 {
		t.Errorf("IPv6 walk starts at %s", first)
	}
}

// TestBlockJSONMatchesUpstream replays upstream's first ADD and DEL on the
// pure block functions and compares the bytes with what upstream stored.
func TestBlockJSONMatchesUpstream(t *testing.T) {
	writes := readDump(t, "upstream-section2b.txt")
	created := dumpValue(t, writes, upBlockKey, 0)
	allocated := dumpValue(t, writes, upBlockKey, 1)
	released := dumpValue(t, readDump(t, "upstream-section3.txt"), upBlockKey, 0)

	// A new block, made at the same instant, is byte-identical.
	cidr := netip.MustParsePrefix("10.244.166.128/26")
	nb := newBlock(cidr, "host:node1", time.Unix(0, upSeq))
	if got := string(encodeBlock(nb)); got != created {
		t.Fatalf("new block:\n got %s\nwant %s", got, created)
	}
	// Decoding and re-encoding upstream's values is lossless.
	for _, v := range []string{created, allocated, released} {
		b, _, err := decodeBlock(upBlockKey, []byte(v))
		if err != nil {
			t.Fatal(err)
		}
		if got := string(encodeBlock(b)); got != v {
			t.Fatalf("round trip:\n got %s\nwant %s", got, v)
		}
	}
	// Allocating ordinal 0 gives upstream's next value.
	b, _, _ := decodeBlock(upBlockKey, []byte(created))
	h := upHandle
	ords := autoAssignOrdinals(b, cidr, 1, &h, map[string]string{"node": "node1", "timestamp": upTimestamp}, nil)
	b.SequenceNumber++
	if len(ords) != 1 || ords[0] != 0 {
		t.Fatalf("assigned %v, want [0]", ords)
	}
	if got := string(encodeBlock(b)); got != allocated {
		t.Fatalf("after allocation:\n got %s\nwant %s", got, allocated)
	}
	// Releasing it by handle gives upstream's value after DEL: ordinal 0
	// at the END of unallocated, attributes [], sequence entry kept.
	if got := ordinalsOfHandle(b, upHandle); len(got) != 1 || got[0] != 0 {
		t.Fatalf("ordinalsOfHandle = %v", got)
	}
	per := releaseOrdinals(b, []int{0}, false, cooldown{})
	b.SequenceNumber++
	if per[upHandle] != 1 {
		t.Fatalf("released per handle %v", per)
	}
	if got := string(encodeBlock(b)); got != released {
		t.Fatalf("after release:\n got %s\nwant %s", got, released)
	}
	if !blockEmpty(b) {
		t.Fatal("released block not empty")
	}
}

func TestAttributesDeduplicatedAndCompacted(t *testing.T) {
	cidr := netip.MustParsePrefix("10.0.0.0/29")
	b := newBlock(cidr, "host:n", time.Unix(0, 1))
	ha, hb := "a", "b"
	attrs := map[string]string{"node": "n"}
	o1 := autoAssignOrdinals(b, cidr, 2, &ha, attrs, nil)
	o2 := autoAssignOrdinals(b, cidr, 1, &hb, attrs, nil)
	o3 := autoAssignOrdinals(b, cidr, 1, &ha, map[string]string{"node": "n"}, nil)
	if len(b.Attributes) != 2 {
		t.Fatalf("attributes %+v, want 2 (identical {handle, attrs} shared)", b.Attributes)
	}
	if *b.Allocations[o3[0]] != *b.Allocations[o1[0]] {
		t.Fatal("identical attribute not reused")
	}
	// Release handle a's addresses: its attribute goes, b's is renumbered to 0.
	releaseOrdinals(b, append(o1, o3...), true, cooldown{})
	if len(b.Attributes) != 1 || attrHandle(b.Attributes[0]) != "b" || *b.Allocations[o2[0]] != 0 {
		t.Fatalf("after release: attrs %+v alloc %v", b.Attributes, *b.Allocations[o2[0]])
	}
	for _, o := range o1 {
		if _, ok := b.SequenceNumberForAllocation[seqKey(o)]; ok {
			t.Fatalf("ReleaseIPs-style release kept the sequence number of %d", o)
		}
	}
	// Freed ordinals go to the end, in release order.
	u := b.Unallocated
	if u[len(u)-3] != o1[0] || u[len(u)-2] != o1[1] || u[len(u)-1] != o3[0] {
		t.Fatalf("unallocated %v", u)
	}
}

func TestReservedOrdinalsSkipped(t *testing.T) {
	cidr := netip.MustParsePrefix("10.0.0.0/30")
	b := newBlock(cidr, "host:n", time.Unix(0, 1))
	rsv := reservations{netip.MustParsePrefix("10.0.0.0/31")}
	if n := freeCount(b, cidr, rsv, cooldown{}); n != 2 {
		t.Fatalf("freeCount = %d, want 2", n)
	}
	got := autoAssignOrdinals(b, cidr, 4, nil, nil, rsv)
	if len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Fatalf("assigned %v, want [2 3] (ordinals 0 and 1 reserved)", got)
	}
	if len(b.Unallocated) != 2 || b.Unallocated[0] != 0 || b.Unallocated[1] != 1 {
		t.Fatalf("reserved ordinals lost their place: %v", b.Unallocated)
	}
	if !rsv.covers(netip.MustParsePrefix("10.0.0.0/31")) || rsv.covers(cidr) {
		t.Fatal("covers wrong")
	}
}

func TestDecodeBlockRejectsInconsistentArrays(t *testing.T) {
	for _, v := range []string{
		`{"cidr":"10.0.0.0/30","allocations":[null,null],"unallocated":[0,1],"attributes":null}`,
		`{"cidr":"10.0.0.0/30","allocations":[5,null,null,null],"unallocated":[1,2,3],"attributes":[]}`,
		`{"cidr":"10.0.0.0/30","allocations":[null,null,null,null],"unallocated":[9],"attributes":[]}`,
		`{"cidr":"bogus"}`,
	} {
		if _, _, err := decodeBlock("k", []byte(v)); err == nil {
			t.Errorf("decodeBlock(%s) accepted", v)
		}
	}
}

// TestFirstAllocationMatchesUpstream runs AutoAssign and ReleaseByHandle
// on upstream's section-1 data with upstream's clock and compares every
// IPAM key with what upstream v3.32.1 stored (sections 2 and 3).
func TestFirstAllocationMatchesUpstream(t *testing.T) {
	s := memory.New()
	load(t, s, readDump(t, "upstream-section1.txt"))
	a := New(s, Options{Now: func() time.Time { return time.Unix(0, upSeq) }})
	ctx := context.Background()
	v4, v6, err := a.AutoAssign(ctx, AutoAssignArgs{
		Num4: 1, HandleID: upHandle, Hostname: "node1",
		Attrs: map[string]string{"node": "node1", "timestamp": upTimestamp},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(v4) != 1 || v4[0].String() != "10.244.166.128/26" || len(v6) != 0 {
		t.Fatalf("got %v %v, want [10.244.166.128/26]", v4, v6)
	}
	up := readDump(t, "upstream-section2.txt")
	for _, k := range []string{upBlockKey, upAffKey, upHandleKey} {
		item, err := s.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if want := dumpValue(t, up, k, 0); string(item.Value) != want {
			t.Errorf("%s:\n got %s\nwant %s", k, item.Value, want)
		}
	}
	// The config is not written (master's behaviour: defaults in memory).
	if _, err := s.Get(ctx, api.IPAMConfigKey); err == nil {
		t.Error("AutoAssign wrote the IPAM config")
	}
	if err := a.ReleaseByHandle(ctx, upHandle); err != nil {
		t.Fatal(err)
	}
	up3 := readDump(t, "upstream-section3.txt")
	if item, _ := s.Get(ctx, upBlockKey); string(item.Value) != dumpValue(t, up3, upBlockKey, 0) {
		t.Errorf("block after release:\n got %s\nwant %s", item.Value, dumpValue(t, up3, upBlockKey, 0))
	}
	if _, err := s.Get(ctx, upHandleKey); err == nil {
		t.Error("handle not deleted")
	}
	if item, _ := s.Get(ctx, upAffKey); string(item.Value) != `{"state":"confirmed","deleted":false}` {
		t.Errorf("affinity after release = %s", item.Value)
	}
	// The next allocation gets ordinal 1 (ordinal 0 went to the end).
	v4, _, err = a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: "k8s-pod-network.anchorp2", Hostname: "node1"})
	if err != nil || v4[0].String() != "10.244.166.129/26" {
		t.Fatalf("second allocation %v %v, want 10.244.166.129/26", v4, err)
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatalf("invariants: %v", bad)
	}
}
