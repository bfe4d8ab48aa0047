package ipam

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/kv"
)

// countingStore counts datastore round trips.
type countingStore struct {
	Store
	n atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, key string) (*kv.KV, error) {
	c.n.Add(1)
	return c.Store.Get(ctx, key)
}

func (c *countingStore) List(ctx context.Context, prefix string) ([]*kv.KV, int64, error) {
	c.n.Add(1)
	return c.Store.List(ctx, prefix)
}

func (c *countingStore) Read(ctx context.Context, keys, prefixes []string) (*kv.ReadResult, error) {
	c.n.Add(1)
	return c.Store.Read(ctx, keys, prefixes)
}

func (c *countingStore) Commit(ctx context.Context, writes []kv.Write) (int64, error) {
	c.n.Add(1)
	return c.Store.Commit(ctx, writes)
}

func (c *countingStore) Create(ctx context.Context, key string, value []byte) (int64, error) {
	c.n.Add(1)
	return c.Store.Create(ctx, key, value)
}

func (c *countingStore) Update(ctx context.Context, key string, value []byte, rev int64) (int64, error) {
	c.n.Add(1)
	return c.Store.Update(ctx, key, value, rev)
}

func (c *countingStore) Delete(ctx context.Context, key string, rev int64) error {
	c.n.Add(1)
	return c.Store.Delete(ctx, key, rev)
}

// benchOps is the work done per b.N (make bench runs -benchtime 1x).
const benchOps = 300

// BenchmarkAutoAssignRelease: allocate and release one address, in process,
// against a real etcd, with a warm block: allocations per second and etcd
// round trips per allocation and per release.
func BenchmarkAutoAssignRelease(b *testing.B) {
	s := etcdStore(b)
	putPool(b, s, "p", "10.100.0.0/16", nil)
	putNode(b, s, "n1", nil)
	cs := &countingStore{Store: s}
	a := New(cs, Options{})
	ctx := context.Background()
	warm := AutoAssignArgs{Num4: 1, HandleID: "warm", Hostname: "n1"}
	if _, _, err := a.AutoAssign(ctx, warm); err != nil {
		b.Fatal(err)
	}
	var assignRT, releaseRT int64
	var assignT, releaseT time.Duration
	n := 0
	b.ResetTimer()
	for range b.N {
		for i := range benchOps {
			h := fmt.Sprintf("h%d", i)
			before, t0 := cs.n.Load(), time.Now()
			if _, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: h, Hostname: "n1", Attrs: map[string]string{"node": "n1"}}); err != nil {
				b.Fatal(err)
			}
			mid, t1 := cs.n.Load(), time.Now()
			if err := a.ReleaseByHandle(ctx, h); err != nil {
				b.Fatal(err)
			}
			assignRT += mid - before
			releaseRT += cs.n.Load() - mid
			assignT += t1.Sub(t0)
			releaseT += time.Since(t1)
			n++
		}
	}
	b.ReportMetric(float64(n)/(assignT+releaseT).Seconds(), "alloc+release/s")
	b.ReportMetric(float64(n)/assignT.Seconds(), "allocs/s")
	b.ReportMetric(float64(assignRT)/float64(n), "roundtrips/alloc")
	b.ReportMetric(float64(releaseRT)/float64(n), "roundtrips/release")
	b.ReportMetric(float64(assignT.Microseconds())/float64(n), "µs/alloc")
}

// BenchmarkAutoAssign: allocations only (blocks fill up and new ones are
// claimed along the way).
func BenchmarkAutoAssign(b *testing.B) {
	s := etcdStore(b)
	putPool(b, s, "p", "10.96.0.0/12", nil)
	putNode(b, s, "n1", nil)
	cs := &countingStore{Store: s}
	a := New(cs, Options{})
	ctx := context.Background()
	n := 0
	var elapsed time.Duration
	b.ResetTimer()
	for range b.N {
		for range benchOps {
			t0 := time.Now()
			if _, _, err := a.AutoAssign(ctx, AutoAssignArgs{Num4: 1, HandleID: fmt.Sprintf("h%d", n), Hostname: "n1", MaxBlocksPerHost: 1 << 20}); err != nil {
				b.Fatal(err)
			}
			elapsed += time.Since(t0)
			n++
		}
	}
	items, _, _ := s.List(context.Background(), api.BlockPrefix(4))
	b.ReportMetric(float64(n)/elapsed.Seconds(), "allocs/s")
	b.ReportMetric(float64(cs.n.Load())/float64(n), "roundtrips/alloc")
	b.ReportMetric(float64(len(items)), "blocks")
}
