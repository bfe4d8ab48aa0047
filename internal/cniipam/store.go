package cniipam

import (
	"context"
	"sync"
	"time"

	"github.com/onecalico/calico/internal/ipam"
	"github.com/onecalico/calico/internal/kv"
)

// RequestTimeout bounds each datastore request. The etcd client retries an
// unreachable endpoint until its context ends, so without it a down
// datastore would hold an ADD for the whole operation timeout; with it the
// plugin answers "try again later" (11) within a few seconds.
const RequestTimeout = 5 * time.Second

// Store is a kv.Store that gives every request its own deadline and
// counts the round trips (and, when asked, their durations) so that the
// plugins can report them at debug level. It is safe for concurrent use.
type Store struct {
	kv.Store // Watch and Close pass through

	record bool
	mu     sync.Mutex
	trips  int
	calls  []time.Duration
}

var (
	_ ipam.Store = (*Store)(nil)
	_ kv.Store   = (*Store)(nil)
)

// NewStore wraps s; with record, each request's duration is kept.
func NewStore(s kv.Store, record bool) *Store { return &Store{Store: s, record: record} }

// Trips returns how many requests have been made, and their durations if
// recording.
func (t *Store) Trips() (int, []time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.trips, append([]time.Duration(nil), t.calls...)
}

func (t *Store) begin(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	t0 := time.Now()
	return ctx, func() {
		cancel()
		t.mu.Lock()
		t.trips++
		if t.record {
			t.calls = append(t.calls, time.Since(t0))
		}
		t.mu.Unlock()
	}
}

// Get implements kv.Store.
func (t *Store) Get(ctx context.Context, key string) (*kv.KV, error) {
	ctx, done := t.begin(ctx)
	defer done()
	return t.Store.Get(ctx, key)
}

// List implements kv.Store.
func (t *Store) List(ctx context.Context, prefix string) ([]*kv.KV, int64, error) {
	ctx, done := t.begin(ctx)
	defer done()
	return t.Store.List(ctx, prefix)
}

// Read implements kv.Store.
func (t *Store) Read(ctx context.Context, keys, prefixes []string) (*kv.ReadResult, error) {
	ctx, done := t.begin(ctx)
	defer done()
	return t.Store.Read(ctx, keys, prefixes)
}

// Commit implements kv.Store.
func (t *Store) Commit(ctx context.Context, writes []kv.Write) (int64, error) {
	ctx, done := t.begin(ctx)
	defer done()
	return t.Store.Commit(ctx, writes)
}

// Create implements kv.Store.
func (t *Store) Create(ctx context.Context, key string, value []byte) (int64, error) {
	ctx, done := t.begin(ctx)
	defer done()
	return t.Store.Create(ctx, key, value)
}

// Update implements kv.Store.
func (t *Store) Update(ctx context.Context, key string, value []byte, rev int64) (int64, error) {
	ctx, done := t.begin(ctx)
	defer done()
	return t.Store.Update(ctx, key, value, rev)
}

// Put implements kv.Store.
func (t *Store) Put(ctx context.Context, key string, value []byte) (int64, error) {
	ctx, done := t.begin(ctx)
	defer done()
	return t.Store.Put(ctx, key, value)
}

// Delete implements kv.Store.
func (t *Store) Delete(ctx context.Context, key string, rev int64) error {
	ctx, done := t.begin(ctx)
	defer done()
	return t.Store.Delete(ctx, key, rev)
}
