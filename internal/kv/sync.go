package kv

import (
	"context"
	"errors"
	"time"
)

// SyncHandler receives the state of a prefix. OnSnapshot replaces
// everything the handler knew (it is called first, and again after any relist);
// OnEvents applies changes on top of the last snapshot.
type SyncHandler interface {
	OnSnapshot(kvs []*KV, rev int64)
	OnEvents(events []Event)
}

// Sync keeps h in step with everything under prefix until ctx ends: it lists,
// then watches from the list's revision; when the watch fails (compaction,
// a lost connection) it relists after a short back-off and delivers a new
// snapshot, so the handler never misses a change. It returns ctx.Err().
//
// When be is a Pager and h a PageHandler, each listing is read in pages of
// DefaultPageSize keys, all at one revision (the watch resumes from it).
func Sync(ctx context.Context, be Store, prefix string, h SyncHandler) error {
	return SyncPages(ctx, be, prefix, h, DefaultPageSize)
}

// SyncPages is Sync with pages of pageSize keys.
func SyncPages(ctx context.Context, be Store, prefix string, h SyncHandler, pageSize int) error {
	backoff := 50 * time.Millisecond
	for {
		rev, err := snapshot(ctx, be, prefix, h, pageSize)
		if err == nil {
			backoff = 50 * time.Millisecond
			err = watchFrom(ctx, be, prefix, rev, h)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && !errors.Is(err, ErrCompacted) {
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return ctx.Err()
			}
			// Capped low: while the store is down each List waits for its
			// own request deadline anyway, and once it is back the relist
			// must not sit out a long back-off (catch up within a second).
			backoff = min(2*backoff, maxSyncBackoff)
		}
	}
}

func watchFrom(ctx context.Context, be Store, prefix string, rev int64, h SyncHandler) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for resp := range be.Watch(wctx, prefix, rev) {
		if resp.Err != nil {
			return resp.Err
		}
		if len(resp.Events) > 0 {
			h.OnEvents(resp.Events)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errWatchClosed
}

var errWatchClosed = errors.New("watch closed")

// maxSyncBackoff bounds the pause between a failed watch or list and the
// next list.
const maxSyncBackoff = 500 * time.Millisecond
