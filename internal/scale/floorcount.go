package scale

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/onecalico/calico/internal/kv"
)

// floorCounts counts the requests the floor nodes' registration and claim
// make (not their watches), by step, method and outcome: "ok", "cas" (a
// failed compare-and-swap: another node got there first) or "err" (a
// timeout or another failure, which the step retries).
type floorCounts struct {
	mu sync.Mutex
	n  map[string]int64 // "step method outcome"
}

func (c *floorCounts) add(step, method string, err error) {
	outcome := "ok"
	switch {
	case err == nil:
	case errors.Is(err, kv.ErrExists), errors.Is(err, kv.ErrConflict), errors.Is(err, kv.ErrNotFound):
		outcome = "cas"
	default:
		outcome = "err"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int64{}
	}
	c.n[step+" "+method+" "+outcome]++
}

// String lists the counts per floor node (n of them), largest first.
func (c *floorCounts) String(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.n))
	for k := range c.n {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return c.n[keys[i]] > c.n[keys[j]] || c.n[keys[i]] == c.n[keys[j]] && keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.2f", k, float64(c.n[k])/float64(n))
	}
	return "requests per floor node (step method outcome): " + strings.Join(parts, ", ")
}

// countedStore is a kv.Store whose one-shot requests are counted under a
// step name (the watches are not: the floor counts their events itself).
type countedStore struct {
	kv.Store
	c    *floorCounts
	step string
}

func (s countedStore) Get(ctx context.Context, key string) (*kv.KV, error) {
	r, err := s.Store.Get(ctx, key)
	s.c.add(s.step, "Get", err)
	return r, err
}

func (s countedStore) List(ctx context.Context, prefix string) ([]*kv.KV, int64, error) {
	r, rev, err := s.Store.List(ctx, prefix)
	s.c.add(s.step, "List", err)
	return r, rev, err
}

func (s countedStore) ListKeys(ctx context.Context, prefix string) ([]*kv.KV, int64, error) {
	kl, ok := s.Store.(kv.KeyLister)
	if !ok {
		return nil, 0, errors.New("the store cannot list keys")
	}
	r, rev, err := kl.ListKeys(ctx, prefix)
	s.c.add(s.step, "ListKeys", err)
	return r, rev, err
}

func (s countedStore) Create(ctx context.Context, key string, value []byte) (int64, error) {
	rev, err := s.Store.Create(ctx, key, value)
	s.c.add(s.step, "Create", err)
	return rev, err
}

func (s countedStore) Update(ctx context.Context, key string, value []byte, rev int64) (int64, error) {
	r, err := s.Store.Update(ctx, key, value, rev)
	s.c.add(s.step, "Update", err)
	return r, err
}

func (s countedStore) Delete(ctx context.Context, key string, rev int64) error {
	err := s.Store.Delete(ctx, key, rev)
	s.c.add(s.step, "Delete", err)
	return err
}

func (s countedStore) Read(ctx context.Context, keys, prefixes []string) (*kv.ReadResult, error) {
	r, err := s.Store.Read(ctx, keys, prefixes)
	s.c.add(s.step, "Read", err)
	return r, err
}

func (s countedStore) Commit(ctx context.Context, writes []kv.Write) (int64, error) {
	rev, err := s.Store.Commit(ctx, writes)
	s.c.add(s.step, "Commit", err)
	return rev, err
}
