package ipam

import (
	"context"
	"net/netip"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore/memory"
	"github.com/onecalico/calico/internal/kv"
)

// A fresh claim writes its block once, with the first address in it, and
// confirms the affinity in the same transaction; later hosts, whose walks
// may meet the blocks claimed before (values read after a keys-only
// listing), get blocks of their own.
func TestClaimWritesTheBlockOnce(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	putPool(t, s, "p", "10.1.0.0/24", func(p *api.IPPool) { p.Spec.BlockSize = 28 })
	a := New(s, Options{})
	var first netip.Prefix
	for i, host := range []string{"n1", "n2", "n3"} {
		putNode(t, s, host, nil)
		_, rev0, err := s.List(ctx, "/")
		if err != nil {
			t.Fatal(err)
		}
		v4, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, Hostname: host, HandleID: "h-" + host})
		if err != nil {
			t.Fatal(err)
		}
		blk := netip.PrefixFrom(v4[0].Addr(), 28).Masked()
		if i == 0 {
			first = blk
		} else if blk == first {
			t.Fatalf("%s got an address in %s, n1's block", host, blk)
		}
		if puts := blockPuts(ctx, s, blk, rev0); puts != 1 {
			t.Errorf("%s: block %s written %d times, want once", host, blk, puts)
		}
		aff, err := s.Get(ctx, api.AffinityKey(host, blk))
		if err != nil || decodeAffinity(aff).State != api.AffinityConfirmed {
			t.Errorf("%s: affinity of %s: %v %v", host, blk, aff, err)
		}
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Errorf("invariants: %v", bad)
	}
}

// blockPuts counts the writes of blk's key after rev0 (the memory store
// sends its history in one response).
func blockPuts(ctx context.Context, s *memory.Store, blk netip.Prefix, rev0 int64) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	puts := 0
	for resp := range s.Watch(ctx, api.IPAMBlockPrefix, rev0) {
		for _, ev := range resp.Events {
			if ev.Key == api.BlockKey(blk) && ev.Type == kv.EventPut {
				puts++
			}
		}
		cancel()
	}
	return puts
}
