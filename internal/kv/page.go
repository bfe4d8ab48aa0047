package kv

import "context"

// Pager is a Store that can list a prefix in pages, every page read at one
// revision. A daemon reading tens of thousands of keys at start then never
// holds more than one page of raw values at a time.
type Pager interface {
	// ListPage returns up to limit keys under prefix, in key order,
	// starting at from (inclusive; from must be under prefix), read at
	// revision rev (0: the current one), with the revision it was read at
	// and whether more keys follow. A revision that has been compacted
	// away fails with ErrCompacted.
	ListPage(ctx context.Context, prefix, from string, rev int64, limit int) ([]*KV, int64, bool, error)
}

// PageHandler is a SyncHandler that takes a snapshot page by page instead
// of in one OnSnapshot call. Sync uses it when the Store is a Pager.
type PageHandler interface {
	SyncHandler
	// OnPage receives the next page of a snapshot. first starts a new
	// snapshot (dropping any unfinished one: a failed listing starts over);
	// last completes it, and only then does it replace what the handler
	// knew. rev is the revision every page of the snapshot is read at.
	OnPage(kvs []*KV, first, last bool, rev int64)
}

// DefaultPageSize is the number of keys per page Sync reads: small enough
// that a page of Calico blocks (about 1 KB each) is a few hundred KB,
// large enough that 10,000 keys take 20 round trips.
const DefaultPageSize = 500

// ListPages calls fn with every page of keys under prefix, all read at one
// revision rev (also returned); last marks the final page. When be is not
// a Pager it lists in one request and calls fn once. To bound memory, fn
// should not keep the values beyond its call.
func ListPages(ctx context.Context, be Store, prefix string, limit int, fn func(kvs []*KV, last bool, rev int64)) (int64, error) {
	p, ok := be.(Pager)
	if !ok {
		kvs, rev, err := be.List(ctx, prefix)
		if err != nil {
			return 0, err
		}
		fn(kvs, true, rev)
		return rev, nil
	}
	from, rev := prefix, int64(0)
	for {
		kvs, r, more, err := p.ListPage(ctx, prefix, from, rev, limit)
		if err != nil {
			return 0, err
		}
		if rev == 0 {
			// etcd's header carries the current revision, not the one
			// read at: pin the first page's.
			rev = r
		}
		last := !more || len(kvs) == 0
		if !last {
			// Just past the last key of this page.
			from = kvs[len(kvs)-1].Key + "\x00"
		}
		fn(kvs, last, rev)
		if last {
			return rev, nil
		}
	}
}

// snapshot delivers the state of prefix to h and returns the revision it
// was read at: page by page when h is a PageHandler, else in one call.
func snapshot(ctx context.Context, be Store, prefix string, h SyncHandler, pageSize int) (int64, error) {
	ph, ok := h.(PageHandler)
	if !ok {
		kvs, rev, err := be.List(ctx, prefix)
		if err == nil {
			h.OnSnapshot(kvs, rev)
		}
		return rev, err
	}
	first := true
	return ListPages(ctx, be, prefix, pageSize, func(kvs []*KV, last bool, rev int64) {
		ph.OnPage(kvs, first, last, rev)
		first = false
	})
}

// KeyLister is a Store that can list the keys under a prefix without their
// values (each KV's Value nil, Revision its mod revision). Finding which of
// N blocks exist then costs N keys, not N values.
type KeyLister interface {
	ListKeys(ctx context.Context, prefix string) ([]*KV, int64, error)
}
