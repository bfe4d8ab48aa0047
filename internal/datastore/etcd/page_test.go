package etcd_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/kv"
	"github.com/onecalico/calico/internal/testutil"
)

var _ kv.Pager = (*etcd.Store)(nil)

// putKeys writes /p/k00 .. /p/k<n-1> with value "v0", and a key just past
// the prefix that no page may return.
func putKeys(t *testing.T, s *etcd.Store, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		if _, err := s.Put(ctx, fmt.Sprintf("/p/k%02d", i), []byte("v0")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Put(ctx, "/q", []byte("outside")); err != nil {
		t.Fatal(err)
	}
}

// TestListPagesOneRevision: pages cover every key once, in order, and a
// write made between two pages is not seen: every page is read at the
// first page's revision.
func TestListPagesOneRevision(t *testing.T) {
	e := testutil.StartEtcd(t)
	s := newStore(t, e, etcd.Config{})
	putKeys(t, s, 25)
	ctx := context.Background()
	var got []string
	pages := 0
	rev, err := kv.ListPages(ctx, s, "/p/", 10, func(kvs []*kv.KV, last bool, _ int64) {
		pages++
		for _, item := range kvs {
			got = append(got, item.Key+"="+string(item.Value))
		}
		if pages == 1 {
			if _, err := s.Put(ctx, "/p/k15", []byte("changed")); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Put(ctx, "/p/k99", []byte("new")); err != nil {
				t.Fatal(err)
			}
		}
		if last != (pages == 3) {
			t.Errorf("page %d: last = %v", pages, last)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if pages != 3 || len(got) != 25 {
		t.Fatalf("%d pages, %d keys: %v", pages, len(got), got)
	}
	for i, g := range got {
		if want := fmt.Sprintf("/p/k%02d=v0", i); g != want {
			t.Errorf("key %d: %s, want %s", i, g, want)
		}
	}
	if _, r, _ := s.List(ctx, "/p/"); r != rev+2 {
		t.Errorf("pages read at revision %d, store now at %d; want the two writes after it", rev, r)
	}
}

// pageRecorder is a kv.PageHandler that keeps the state it was given.
type pageRecorder struct {
	mu        sync.Mutex
	staging   map[string]string
	state     map[string]string
	snapshots int
	onFirst   func() // called once, inside the first page of the first snapshot
}

func (r *pageRecorder) OnSnapshot(kvs []*kv.KV, _ int64) {
	r.OnPage(kvs, true, true, 0)
}

func (r *pageRecorder) OnPage(kvs []*kv.KV, first, last bool, _ int64) {
	if first {
		r.staging = map[string]string{}
	}
	for _, item := range kvs {
		r.staging[item.Key] = string(item.Value)
	}
	if first && r.onFirst != nil && !last {
		f := r.onFirst
		r.onFirst = nil
		f()
	}
	if last {
		r.mu.Lock()
		r.state, r.snapshots = r.staging, r.snapshots+1
		r.mu.Unlock()
	}
}

func (r *pageRecorder) OnEvents(evs []kv.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range evs {
		if ev.Type == kv.EventDelete {
			delete(r.state, ev.Key)
		} else {
			r.state[ev.Key] = string(ev.Value)
		}
	}
}

func (r *pageRecorder) snapshot() (map[string]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.state), r.snapshots
}

// syncUntil runs SyncPages with pages of 4 keys until the handler's state
// is want (a poll, 10 s at most) and returns how many snapshots it took.
func syncUntil(t *testing.T, s *etcd.Store, h *pageRecorder, want map[string]string) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = kv.SyncPages(ctx, s, "/p/", h, 4)
	}()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, n := h.snapshot()
		if maps.Equal(got, want) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("state after %d snapshots:\n%v\nwant\n%v", n, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func wantKeys(n int, extra map[string]string) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf("/p/k%02d", i)] = "v0"
	}
	maps.Copy(m, extra)
	return m
}

// TestSyncPagesWatchFromPinnedRevision: changes made while a paged snapshot
// is being read reach the handler as events after it, not lost and not
// half-applied: the watch starts at the pages' revision.
func TestSyncPagesWatchFromPinnedRevision(t *testing.T) {
	e := testutil.StartEtcd(t)
	s := newStore(t, e, etcd.Config{})
	putKeys(t, s, 10)
	ctx := context.Background()
	h := &pageRecorder{onFirst: func() {
		for _, w := range []struct{ k, v string }{{"/p/k08", "changed"}, {"/p/k20", "new"}} {
			if _, err := s.Put(ctx, w.k, []byte(w.v)); err != nil {
				t.Error(err)
			}
		}
		if err := s.Delete(ctx, "/p/k09", 0); err != nil {
			t.Error(err)
		}
	}}
	want := wantKeys(9, map[string]string{"/p/k08": "changed", "/p/k20": "new"})
	if n := syncUntil(t, s, h, want); n != 1 {
		t.Errorf("%d snapshots, want 1 (the changes come as events)", n)
	}
}

// TestSyncPagesRelistAfterCompaction: when the pinned revision is compacted
// away between two pages, the listing starts over at a new revision and
// the handler ends with the current state.
func TestSyncPagesRelistAfterCompaction(t *testing.T) {
	e := testutil.StartEtcd(t)
	s := newStore(t, e, etcd.Config{})
	putKeys(t, s, 10)
	ctx := context.Background()
	h := &pageRecorder{onFirst: func() {
		rev, err := s.Put(ctx, "/p/k20", []byte("new"))
		if err == nil {
			_, err = s.Client().Compact(ctx, rev)
		}
		if err != nil {
			t.Error(err)
		}
	}}
	if n := syncUntil(t, s, h, wantKeys(10, map[string]string{"/p/k20": "new"})); n != 1 {
		t.Errorf("%d completed snapshots, want 1 (the compacted listing never completes)", n)
	}
}
