package testutil

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/kv"
)

// KVStoreFactory makes an empty store for one subtest and a function that
// compacts its history up to a revision.
type KVStoreFactory func(t *testing.T) (store kv.Store, compact func(rev int64))

// RunKVSuite checks the contract every kv.Store must keep: etcd's revision
// semantics, atomic commits, watches from a revision, and compaction.
func RunKVSuite(t *testing.T, newStore KVStoreFactory) {
	ctx := context.Background()
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	wantErr := func(t *testing.T, err, sentinel error, key string) {
		t.Helper()
		if !errors.Is(err, sentinel) {
			t.Fatalf("got %v, want %v", err, sentinel)
		}
		var ke *kv.KeyError
		if !errors.As(err, &ke) || ke.Key != key {
			t.Fatalf("error %v does not name key %q", err, key)
		}
	}

	t.Run("Probe", func(t *testing.T) {
		s, _ := newStore(t)
		// Absent or present, the key does not matter: the store answers.
		must(t, s.Probe(ctx, "/absent"))
		_, err := s.Create(ctx, "/p", []byte("1"))
		must(t, err)
		must(t, s.Probe(ctx, "/p"))
		done, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Probe(done, "/p"); err == nil {
			t.Fatal("a probe with an ended context succeeded")
		}
	})

	t.Run("CreateGetUpdateDelete", func(t *testing.T) {
		s, _ := newStore(t)
		_, err := s.Get(ctx, "/a")
		wantErr(t, err, kv.ErrNotFound, "/a")
		r1, err := s.Create(ctx, "/a", []byte("1"))
		must(t, err)
		_, err = s.Create(ctx, "/a", []byte("x"))
		wantErr(t, err, kv.ErrExists, "/a")
		got, err := s.Get(ctx, "/a")
		must(t, err)
		if string(got.Value) != "1" || got.Revision != r1 {
			t.Fatalf("get = %q@%d, want 1@%d", got.Value, got.Revision, r1)
		}
		r2, err := s.Update(ctx, "/a", []byte("2"), r1)
		must(t, err)
		if r2 <= r1 {
			t.Fatalf("revision did not grow: %d -> %d", r1, r2)
		}
		_, err = s.Update(ctx, "/a", []byte("stale"), r1)
		wantErr(t, err, kv.ErrConflict, "/a")
		_, err = s.Update(ctx, "/missing", []byte("x"), r1)
		wantErr(t, err, kv.ErrNotFound, "/missing")
		err = s.Delete(ctx, "/a", r1)
		wantErr(t, err, kv.ErrConflict, "/a")
		must(t, s.Delete(ctx, "/a", r2))
		err = s.Delete(ctx, "/a", 0)
		wantErr(t, err, kv.ErrNotFound, "/a")
		r3, err := s.Put(ctx, "/a", []byte("3"))
		must(t, err)
		must(t, s.Delete(ctx, "/a", 0))
		if r3 <= r2 {
			t.Fatalf("put revision %d not after %d", r3, r2)
		}
	})

	t.Run("ListPrefixAndRead", func(t *testing.T) {
		s, _ := newStore(t)
		for _, k := range []string{"/p/b", "/p/a", "/pz", "/q/a"} {
			_, err := s.Create(ctx, k, []byte(k))
			must(t, err)
		}
		items, rev, err := s.List(ctx, "/p/")
		must(t, err)
		if len(items) != 2 || items[0].Key != "/p/a" || items[1].Key != "/p/b" {
			t.Fatalf("list /p/ = %v", keys(items))
		}
		if rev < items[1].Revision {
			t.Fatalf("list revision %d before item revision %d", rev, items[1].Revision)
		}
		res, err := s.Read(ctx, []string{"/q/a", "/nope"}, []string{"/p/", "/empty/"})
		must(t, err)
		if res.Keys[0] == nil || string(res.Keys[0].Value) != "/q/a" || res.Keys[1] != nil {
			t.Fatalf("read keys = %v", res.Keys)
		}
		if len(res.Prefixes[0]) != 2 || len(res.Prefixes[1]) != 0 || res.Revision != rev {
			t.Fatalf("read prefixes = %v %v at %d, want 2, 0 at %d", keys(res.Prefixes[0]), keys(res.Prefixes[1]), res.Revision, rev)
		}
	})

	t.Run("CommitAllOrNothing", func(t *testing.T) {
		s, _ := newStore(t)
		ra, err := s.Create(ctx, "/a", []byte("a0"))
		must(t, err)
		_, err = s.Create(ctx, "/d", []byte("d0"))
		must(t, err)
		// One failing condition (b must not exist, but it does) writes nothing.
		_, err = s.Create(ctx, "/b", []byte("b0"))
		must(t, err)
		_, err = s.Commit(ctx, []kv.Write{{Key: "/a", Value: []byte("a1"), Rev: ra}, {Key: "/b", Value: []byte("b1"), Rev: 0}})
		wantErr(t, err, kv.ErrExists, "/b")
		if got, _ := s.Get(ctx, "/a"); string(got.Value) != "a0" {
			t.Fatalf("failed commit wrote /a = %q", got.Value)
		}
		_, err = s.Commit(ctx, []kv.Write{{Key: "/c", Value: []byte("c"), Rev: 0}, {Key: "/a", Value: []byte("a1"), Rev: ra + 1000}})
		wantErr(t, err, kv.ErrConflict, "/a")
		if _, err := s.Get(ctx, "/c"); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("failed commit created /c: %v", err)
		}
		_, err = s.Commit(ctx, []kv.Write{{Key: "/gone", Value: []byte("x"), Rev: 5}})
		wantErr(t, err, kv.ErrNotFound, "/gone")
		// A good commit writes, deletes and puts at one revision.
		rev, err := s.Commit(ctx, []kv.Write{
			{Key: "/a", Value: []byte("a1"), Rev: ra},
			{Key: "/c", Value: []byte("c"), Rev: 0},
			{Key: "/d", Rev: kv.Unconditional, Delete: true},
			{Key: "/e", Value: []byte("e"), Rev: kv.Unconditional},
		})
		must(t, err)
		for k, want := range map[string]string{"/a": "a1", "/c": "c", "/e": "e"} {
			got, err := s.Get(ctx, k)
			must(t, err)
			if string(got.Value) != want || got.Revision != rev {
				t.Fatalf("%s = %q@%d, want %q@%d", k, got.Value, got.Revision, want, rev)
			}
		}
		if _, err := s.Get(ctx, "/d"); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("/d not deleted: %v", err)
		}
	})

	t.Run("CASCounterUnderContention", func(t *testing.T) {
		s, _ := newStore(t)
		_, err := s.Create(ctx, "/n", []byte("0"))
		must(t, err)
		const workers, each = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; {
					cur, err := s.Get(ctx, "/n")
					if err != nil {
						errs <- err
						return
					}
					var n int
					fmt.Sscan(string(cur.Value), &n)
					_, err = s.Update(ctx, "/n", []byte(fmt.Sprint(n+1)), cur.Revision)
					if errors.Is(err, kv.ErrConflict) {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					i++
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got, _ := s.Get(ctx, "/n")
		if string(got.Value) != fmt.Sprint(workers*each) {
			t.Fatalf("counter = %s, want %d: a compare-and-swap lost an update", got.Value, workers*each)
		}
	})

	t.Run("WatchFromRevision", func(t *testing.T) {
		s, _ := newStore(t)
		r0, err := s.Put(ctx, "/w/before", []byte("x"))
		must(t, err)
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		ch := s.Watch(wctx, "/w/", r0-1)
		_, err = s.Put(ctx, "/w/a", []byte("1"))
		must(t, err)
		_, err = s.Put(ctx, "/other", []byte("no"))
		must(t, err)
		must(t, s.Delete(ctx, "/w/a", 0))
		var got []string
		deadline := time.After(10 * time.Second)
		for len(got) < 3 {
			select {
			case resp, ok := <-ch:
				if !ok {
					t.Fatalf("watch closed early after %v", got)
				}
				if resp.Err != nil {
					t.Fatal(resp.Err)
				}
				for _, e := range resp.Events {
					if e.Type == kv.EventDelete {
						// The deleted value is optional (kv.Event).
						got = append(got, "del "+e.Key)
						continue
					}
					got = append(got, fmt.Sprintf("put %s=%s", e.Key, e.Value))
				}
			case <-deadline:
				t.Fatalf("watch events so far: %v", got)
			}
		}
		want := []string{"put /w/before=x", "put /w/a=1", "del /w/a"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("events = %v, want %v", got, want)
		}
	})

	t.Run("WatchCompacted", func(t *testing.T) {
		s, compact := newStore(t)
		r1, err := s.Put(ctx, "/c/a", []byte("1"))
		must(t, err)
		r2, err := s.Put(ctx, "/c/a", []byte("2"))
		must(t, err)
		compact(r2)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var last kv.WatchResponse
		for resp := range s.Watch(wctx, "/c/", r1-1) {
			last = resp
		}
		if !errors.Is(last.Err, kv.ErrCompacted) {
			t.Fatalf("watch from a compacted revision ended with %v, want ErrCompacted", last.Err)
		}
	})

	t.Run("SyncRelistsAfterCompaction", func(t *testing.T) {
		s, compact := newStore(t)
		_, err := s.Put(ctx, "/s/a", []byte("1"))
		must(t, err)
		h := &recordingHandler{}
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- kv.Sync(sctx, s, "/s/", h) }()
		defer func() { cancel(); <-done }()
		Eventually(t, 10*time.Second, check(func() bool { return h.snapshotCount() >= 1 }, "first snapshot"))
		_, err = s.Put(ctx, "/s/b", []byte("2"))
		must(t, err)
		Eventually(t, 10*time.Second, check(func() bool { return h.has("/s/b") }, "event for /s/b"))
		// Compact beyond what the watch has seen is not observable for a live
		// etcd watch, so prove recovery by compacting and forcing a new watch:
		// Sync must come back with a snapshot containing later writes.
		r, err := s.Put(ctx, "/s/c", []byte("3"))
		must(t, err)
		compact(r)
		Eventually(t, 10*time.Second, check(func() bool { return h.has("/s/c") }, "state after compaction"))
	})
}

func keys(items []*kv.KV) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Key
	}
	return out
}

type recordingHandler struct {
	mu        sync.Mutex
	snapshots int
	state     map[string]string
}

func (h *recordingHandler) OnSnapshot(items []*kv.KV, _ int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.snapshots++
	h.state = map[string]string{}
	for _, it := range items {
		h.state[it.Key] = string(it.Value)
	}
}

func (h *recordingHandler) OnEvents(events []kv.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range events {
		if e.Type == kv.EventDelete {
			delete(h.state, e.Key)
		} else {
			h.state[e.Key] = string(e.Value)
		}
	}
}

func (h *recordingHandler) snapshotCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.snapshots
}

func (h *recordingHandler) has(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.state[key]
	return ok
}

// check adapts a boolean condition to Eventually's error form.
func check(cond func() bool, what string) func() error {
	return func() error {
		if cond() {
			return nil
		}
		return errors.New("waiting for " + what)
	}
}
