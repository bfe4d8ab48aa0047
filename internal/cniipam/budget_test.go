package cniipam

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/datastore/memory"
	"github.com/onecalico/calico/internal/kv"
)

// slowStore answers every Get after delay, or when its context ends.
type slowStore struct {
	kv.Store
	delay time.Duration
}

func (s slowStore) Get(ctx context.Context, key string) (*kv.KV, error) {
	select {
	case <-time.After(s.delay):
		return s.Store.Get(ctx, key)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestBudgetCoversEveryRoundTrip: requests made with a budget share it;
// the one that runs it out fails with ErrBudget (and DeadlineExceeded, so
// the plugin answers "try again later"); a context without the budget is
// bounded by RequestTimeout only.
func TestBudgetCoversEveryRoundTrip(t *testing.T) {
	s := NewStore(slowStore{Store: memory.New(), delay: 400 * time.Millisecond}, false)
	ctx := WithBudget(context.Background(), time.Second)
	for i := range 2 {
		if _, err := s.Get(ctx, "/k"); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("request %d within the budget: %v", i, err)
		}
	}
	_, err := s.Get(ctx, "/k") // 800 ms spent: 200 left, the answer takes 400
	if !errors.Is(err, ErrBudget) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request past the budget: %v", err)
	}
	if _, err := s.Get(ctx, "/k"); !errors.Is(err, ErrBudget) {
		t.Fatalf("request after the budget ran out: %v", err)
	}
	if _, err := s.Get(context.Background(), "/k"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("request without a budget: %v", err)
	}
}
