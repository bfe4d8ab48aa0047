// Package memory is an in-process kv.Store with etcd's revision
// semantics (one global revision, per-key mod revision, CAS, watch from a
// revision, compaction). It is for unit tests of pure logic; datastore
// behaviour itself is tested against a real etcd.
package memory

import (
	"context"
	"sort"
	"strings"
	"sync"

	"github.com/onecalico/calico/internal/kv"
)

// Store is the in-memory backend. The zero value is not usable; call New.
type Store struct {
	mu      sync.Mutex
	rev     int64
	compact int64
	data    map[string]*kv.KV
	history []kv.Event
	changed *sync.Cond
}

var (
	_ kv.Store     = (*Store)(nil)
	_ kv.KeyLister = (*Store)(nil)
)

// New returns an empty store at revision 1, as a fresh etcd is.
func New() *Store {
	s := &Store{rev: 1, data: map[string]*kv.KV{}}
	s.changed = sync.NewCond(&s.mu)
	return s
}

func clone(item *kv.KV) *kv.KV {
	c := *item
	c.Value = append([]byte(nil), item.Value...)
	return &c
}

// Get implements kv.Store.
func (s *Store) Get(_ context.Context, key string) (*kv.KV, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	item, ok := s.data[key]
	if !ok {
		return nil, &kv.KeyError{Op: "get", Key: key, Err: kv.ErrNotFound}
	}
	return clone(item), nil
}

// Probe implements kv.Store: the memory store is always there.
func (s *Store) Probe(ctx context.Context, _ string) error { return ctx.Err() }

// List implements kv.Store.
func (s *Store) List(_ context.Context, prefix string) ([]*kv.KV, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*kv.KV
	for k, item := range s.data {
		if strings.HasPrefix(k, prefix) {
			out = append(out, clone(item))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, s.rev, nil
}

// ListKeys implements kv.KeyLister.
func (s *Store) ListKeys(ctx context.Context, prefix string) ([]*kv.KV, int64, error) {
	out, rev, err := s.List(ctx, prefix)
	for _, item := range out {
		item.Value = nil
	}
	return out, rev, err
}

func (s *Store) put(key string, value []byte) int64 {
	s.rev++
	s.data[key] = &kv.KV{Key: key, Value: append([]byte(nil), value...), Revision: s.rev}
	s.history = append(s.history, kv.Event{Type: kv.EventPut, Key: key, Value: append([]byte(nil), value...), Revision: s.rev})
	s.changed.Broadcast()
	return s.rev
}

// Create implements kv.Store.
func (s *Store) Create(_ context.Context, key string, value []byte) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.data[key]; ok {
		return 0, &kv.KeyError{Op: "create", Key: key, Err: kv.ErrExists}
	}
	return s.put(key, value), nil
}

// Update implements kv.Store.
func (s *Store) Update(_ context.Context, key string, value []byte, rev int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	item, ok := s.data[key]
	if !ok {
		return 0, &kv.KeyError{Op: "update", Key: key, Err: kv.ErrNotFound}
	}
	if item.Revision != rev {
		return 0, &kv.KeyError{Op: "update", Key: key, Err: kv.ErrConflict}
	}
	return s.put(key, value), nil
}

// Put implements kv.Store.
func (s *Store) Put(_ context.Context, key string, value []byte) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.put(key, value), nil
}

// Delete implements kv.Store.
func (s *Store) Delete(_ context.Context, key string, rev int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	item, ok := s.data[key]
	if !ok {
		return &kv.KeyError{Op: "delete", Key: key, Err: kv.ErrNotFound}
	}
	if rev != 0 && item.Revision != rev {
		return &kv.KeyError{Op: "delete", Key: key, Err: kv.ErrConflict}
	}
	delete(s.data, key)
	s.rev++
	s.history = append(s.history, kv.Event{Type: kv.EventDelete, Key: key, Value: item.Value, Revision: s.rev})
	s.changed.Broadcast()
	return nil
}

// Read implements kv.Store under one lock, so it is one consistent snapshot.
func (s *Store) Read(_ context.Context, keys, prefixes []string) (*kv.ReadResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := &kv.ReadResult{Keys: make([]*kv.KV, len(keys)), Prefixes: make([][]*kv.KV, len(prefixes)), Revision: s.rev}
	for i, k := range keys {
		if item, ok := s.data[k]; ok {
			res.Keys[i] = clone(item)
		}
	}
	for j, p := range prefixes {
		var items []*kv.KV
		for k, item := range s.data {
			if strings.HasPrefix(k, p) {
				items = append(items, clone(item))
			}
		}
		sort.Slice(items, func(a, b int) bool { return items[a].Key < items[b].Key })
		res.Prefixes[j] = items
	}
	return res, nil
}

// Commit implements kv.Store: every condition is checked before anything is
// written, all under one lock. All writes of a commit share one revision, as
// in an etcd transaction.
func (s *Store) Commit(_ context.Context, writes []kv.Write) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range writes {
		item, exists := s.data[w.Key]
		switch {
		case w.Rev == 0 && exists:
			return 0, &kv.KeyError{Op: "commit", Key: w.Key, Err: kv.ErrExists}
		case w.Rev > 0 && !exists:
			return 0, &kv.KeyError{Op: "commit", Key: w.Key, Err: kv.ErrNotFound}
		case w.Rev > 0 && item.Revision != w.Rev:
			return 0, &kv.KeyError{Op: "commit", Key: w.Key, Err: kv.ErrConflict}
		}
	}
	s.rev++
	for _, w := range writes {
		if w.Delete {
			if item, ok := s.data[w.Key]; ok {
				delete(s.data, w.Key)
				s.history = append(s.history, kv.Event{Type: kv.EventDelete, Key: w.Key, Value: item.Value, Revision: s.rev})
			}
			continue
		}
		v := append([]byte(nil), w.Value...)
		s.data[w.Key] = &kv.KV{Key: w.Key, Value: v, Revision: s.rev}
		s.history = append(s.history, kv.Event{Type: kv.EventPut, Key: w.Key, Value: v, Revision: s.rev})
	}
	s.changed.Broadcast()
	return s.rev, nil
}

// Compact forgets history up to and including rev, like etcd compaction.
func (s *Store) Compact(rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.history), func(i int) bool { return s.history[i].Revision > rev })
	s.history = append([]kv.Event(nil), s.history[i:]...)
	s.compact = rev
	s.changed.Broadcast()
}

// Watch implements kv.Store.
func (s *Store) Watch(ctx context.Context, prefix string, after int64) <-chan kv.WatchResponse {
	out := make(chan kv.WatchResponse, 16)
	go func() {
		defer close(out)
		stop := context.AfterFunc(ctx, func() {
			s.mu.Lock()
			s.changed.Broadcast()
			s.mu.Unlock()
		})
		defer stop()
		next := after
		for {
			s.mu.Lock()
			for ctx.Err() == nil && s.rev <= next && s.compact <= next {
				s.changed.Wait()
			}
			if ctx.Err() != nil {
				s.mu.Unlock()
				return
			}
			if s.compact > next {
				s.mu.Unlock()
				out <- kv.WatchResponse{Err: kv.ErrCompacted}
				return
			}
			var evs []kv.Event
			for _, e := range s.history {
				if e.Revision > next && strings.HasPrefix(e.Key, prefix) {
					evs = append(evs, e)
				}
			}
			next = s.rev
			s.mu.Unlock()
			if len(evs) > 0 {
				select {
				case out <- kv.WatchResponse{Events: evs}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// Close implements kv.Store.
func (s *Store) Close() error { return nil }
