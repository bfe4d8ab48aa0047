// Package memory is an in-process datastore.Backend with etcd's revision
// semantics (one global revision, per-key mod revision, CAS, watch from a
// revision, compaction). It is for unit tests of pure logic; datastore
// behaviour itself is tested against a real etcd.
package memory

import (
	"context"
	"sort"
	"strings"
	"sync"

	"github.com/onecalico/calico/internal/datastore"
)

// Store is the in-memory backend. The zero value is not usable; call New.
type Store struct {
	mu       sync.Mutex
	rev      int64
	compact  int64
	data     map[string]*datastore.KV
	history  []datastore.Event
	changed  *sync.Cond
}

var _ datastore.Backend = (*Store)(nil)

// New returns an empty store at revision 1, as a fresh etcd is.
func New() *Store {
	s := &Store{rev: 1, data: map[string]*datastore.KV{}}
	s.changed = sync.NewCond(&s.mu)
	return s
}

func clone(kv *datastore.KV) *datastore.KV {
	c := *kv
	c.Value = append([]byte(nil), kv.Value...)
	return &c
}

// Get implements datastore.Backend.
func (s *Store) Get(_ context.Context, key string) (*datastore.KV, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kv, ok := s.data[key]
	if !ok {
		return nil, &datastore.KeyError{Op: "get", Key: key, Err: datastore.ErrNotFound}
	}
	return clone(kv), nil
}

// List implements datastore.Backend.
func (s *Store) List(_ context.Context, prefix string) ([]*datastore.KV, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*datastore.KV
	for k, kv := range s.data {
		if strings.HasPrefix(k, prefix) {
			out = append(out, clone(kv))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, s.rev, nil
}

func (s *Store) put(key string, value []byte) int64 {
	s.rev++
	s.data[key] = &datastore.KV{Key: key, Value: append([]byte(nil), value...), Revision: s.rev}
	s.history = append(s.history, datastore.Event{Type: datastore.EventPut, Key: key, Value: append([]byte(nil), value...), Revision: s.rev})
	s.changed.Broadcast()
	return s.rev
}

// Create implements datastore.Backend.
func (s *Store) Create(_ context.Context, key string, value []byte) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.data[key]; ok {
		return 0, &datastore.KeyError{Op: "create", Key: key, Err: datastore.ErrExists}
	}
	return s.put(key, value), nil
}

// Update implements datastore.Backend.
func (s *Store) Update(_ context.Context, key string, value []byte, rev int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kv, ok := s.data[key]
	if !ok {
		return 0, &datastore.KeyError{Op: "update", Key: key, Err: datastore.ErrNotFound}
	}
	if kv.Revision != rev {
		return 0, &datastore.KeyError{Op: "update", Key: key, Err: datastore.ErrConflict}
	}
	return s.put(key, value), nil
}

// Put implements datastore.Backend.
func (s *Store) Put(_ context.Context, key string, value []byte) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.put(key, value), nil
}

// Delete implements datastore.Backend.
func (s *Store) Delete(_ context.Context, key string, rev int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	kv, ok := s.data[key]
	if !ok {
		return &datastore.KeyError{Op: "delete", Key: key, Err: datastore.ErrNotFound}
	}
	if rev != 0 && kv.Revision != rev {
		return &datastore.KeyError{Op: "delete", Key: key, Err: datastore.ErrConflict}
	}
	delete(s.data, key)
	s.rev++
	s.history = append(s.history, datastore.Event{Type: datastore.EventDelete, Key: key, Value: kv.Value, Revision: s.rev})
	s.changed.Broadcast()
	return nil
}

// Compact forgets history up to and including rev, like etcd compaction.
func (s *Store) Compact(rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.history), func(i int) bool { return s.history[i].Revision > rev })
	s.history = append([]datastore.Event(nil), s.history[i:]...)
	s.compact = rev
	s.changed.Broadcast()
}

// Watch implements datastore.Backend.
func (s *Store) Watch(ctx context.Context, prefix string, after int64) <-chan datastore.WatchResponse {
	out := make(chan datastore.WatchResponse, 16)
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
				out <- datastore.WatchResponse{Err: datastore.ErrCompacted}
				return
			}
			var evs []datastore.Event
			for _, e := range s.history {
				if e.Revision > next && strings.HasPrefix(e.Key, prefix) {
					evs = append(evs, e)
				}
			}
			next = s.rev
			s.mu.Unlock()
			if len(evs) > 0 {
				select {
				case out <- datastore.WatchResponse{Events: evs}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// Close implements datastore.Backend.
func (s *Store) Close() error { return nil }
