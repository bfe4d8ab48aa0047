package cniipam

import (
	"context"
	"errors"
	"fmt"
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

// DatastoreBudget is how long one CNI operation (an ADD, a calico-ipam
// ADD) may wait for the datastore, every round trip together: with the
// datastore unreachable the first request uses it up and the plugin fails
// with "try again later" within a second of it, well inside the 5 s a
// runtime allows; a healthy ADD spends milliseconds of it. Time waiting
// for the host lock or for the kernel does not count.
const DatastoreBudget = 4 * time.Second

// budget is the datastore time an operation has left.
type budget struct {
	mu          sync.Mutex
	total, left time.Duration
}

type budgetKey struct{}

// WithBudget returns ctx carrying a datastore budget of d for the Store's
// requests made with it (or a context derived from it). A clean-up after
// a failure should use a context without it, so that it is not starved by
// the failure it cleans up after.
func WithBudget(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, budgetKey{}, &budget{total: d, left: d})
}

// ErrBudget is wrapped by a request that the datastore budget cut short.
var ErrBudget = errors.New("the datastore did not answer within the CNI operation's time budget")

func (t *Store) begin(ctx context.Context) (context.Context, func(error) error) {
	limit := RequestTimeout
	b, _ := ctx.Value(budgetKey{}).(*budget)
	bound := false // the budget, not RequestTimeout, sets this request's deadline
	if b != nil {
		b.mu.Lock()
		bound = b.left < limit
		limit = min(limit, b.left)
		b.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(ctx, max(limit, 0))
	t0 := time.Now()
	return ctx, func(err error) error {
		cancel()
		took := time.Since(t0)
		t.mu.Lock()
		t.trips++
		if t.record {
			t.calls = append(t.calls, took)
		}
		t.mu.Unlock()
		if b == nil {
			return err
		}
		b.mu.Lock()
		b.left -= took
		b.mu.Unlock()
		if bound && errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%w (%v): %w", ErrBudget, b.total, err)
		}
		return err
	}
}

// Get implements kv.Store.
func (t *Store) Get(ctx context.Context, key string) (*kv.KV, error) {
	ctx, done := t.begin(ctx)
	v, err := t.Store.Get(ctx, key)
	return v, done(err)
}

// List implements kv.Store.
func (t *Store) List(ctx context.Context, prefix string) ([]*kv.KV, int64, error) {
	ctx, done := t.begin(ctx)
	v, rev, err := t.Store.List(ctx, prefix)
	return v, rev, done(err)
}

// Read implements kv.Store.
func (t *Store) Read(ctx context.Context, keys, prefixes []string) (*kv.ReadResult, error) {
	ctx, done := t.begin(ctx)
	v, err := t.Store.Read(ctx, keys, prefixes)
	return v, done(err)
}

// Commit implements kv.Store.
func (t *Store) Commit(ctx context.Context, writes []kv.Write) (int64, error) {
	ctx, done := t.begin(ctx)
	v, err := t.Store.Commit(ctx, writes)
	return v, done(err)
}

// Create implements kv.Store.
func (t *Store) Create(ctx context.Context, key string, value []byte) (int64, error) {
	ctx, done := t.begin(ctx)
	v, err := t.Store.Create(ctx, key, value)
	return v, done(err)
}

// Update implements kv.Store.
func (t *Store) Update(ctx context.Context, key string, value []byte, rev int64) (int64, error) {
	ctx, done := t.begin(ctx)
	v, err := t.Store.Update(ctx, key, value, rev)
	return v, done(err)
}

// Put implements kv.Store.
func (t *Store) Put(ctx context.Context, key string, value []byte) (int64, error) {
	ctx, done := t.begin(ctx)
	v, err := t.Store.Put(ctx, key, value)
	return v, done(err)
}

// Delete implements kv.Store.
func (t *Store) Delete(ctx context.Context, key string, rev int64) error {
	ctx, done := t.begin(ctx)
	err := t.Store.Delete(ctx, key, rev)
	return done(err)
}
