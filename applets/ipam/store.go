package ipam

import (
	"context"
	"time"

	"github.com/onecalico/calico/internal/datastore/etcd"
	calicoipam "github.com/onecalico/calico/internal/ipam"
	"github.com/onecalico/calico/internal/kv"
)

// requestTimeout bounds each datastore request. The etcd client retries an
// unreachable endpoint until its context ends, so without it a down
// datastore would hold an ADD for the whole operation timeout; with it the
// plugin answers "try again later" (11) within a few seconds.
const requestTimeout = 5 * time.Second

// timeoutStore gives every request of the allocator its own deadline.
type timeoutStore struct {
	s     *etcd.Store
	calls *[]time.Duration // when non-nil, each request's duration (debug)
}

func (t timeoutStore) took(t0 time.Time) {
	if t.calls != nil {
		*t.calls = append(*t.calls, time.Since(t0))
	}
}

var _ calicoipam.Store = timeoutStore{}

func (t timeoutStore) Get(ctx context.Context, key string) (*kv.KV, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	defer t.took(time.Now())
	return t.s.Get(ctx, key)
}

func (t timeoutStore) List(ctx context.Context, prefix string) ([]*kv.KV, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	defer t.took(time.Now())
	return t.s.List(ctx, prefix)
}

func (t timeoutStore) Read(ctx context.Context, keys, prefixes []string) (*kv.ReadResult, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	defer t.took(time.Now())
	return t.s.Read(ctx, keys, prefixes)
}

func (t timeoutStore) Commit(ctx context.Context, writes []kv.Write) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	defer t.took(time.Now())
	return t.s.Commit(ctx, writes)
}

func (t timeoutStore) Create(ctx context.Context, key string, value []byte) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	defer t.took(time.Now())
	return t.s.Create(ctx, key, value)
}

func (t timeoutStore) Update(ctx context.Context, key string, value []byte, rev int64) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	defer t.took(time.Now())
	return t.s.Update(ctx, key, value, rev)
}

func (t timeoutStore) Delete(ctx context.Context, key string, rev int64) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	defer t.took(time.Now())
	return t.s.Delete(ctx, key, rev)
}
