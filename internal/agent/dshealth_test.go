package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/datastore/memory"
	"github.com/onecalico/calico/internal/kv"
	"github.com/onecalico/calico/internal/testutil"
)

// flakyStore fails every Get and Probe while down is set, as an
// unreachable etcd does (after the request deadline).
type flakyStore struct {
	kv.Store
	down atomic.Bool
}

func (s *flakyStore) Probe(ctx context.Context, key string) error {
	if s.down.Load() {
		return &kv.KeyError{Op: "probe", Key: key, Err: errors.New("etcd did not answer: context deadline exceeded")}
	}
	return s.Store.Probe(ctx, key)
}

func (s *flakyStore) Get(ctx context.Context, key string) (*kv.KV, error) {
	if s.down.Load() {
		return nil, &kv.KeyError{Op: "get", Key: key, Err: errors.New("etcd did not answer: context deadline exceeded")}
	}
	return s.Store.Get(ctx, key)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func gauge(t *testing.T, a *Agent, name string) float64 {
	t.Helper()
	mfs, err := a.met.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestDatastoreMonitor: failed probes make a ready daemon not ready with
// the reason, log one line, drop the gauge and count errors; the first
// good probe undoes it with one line.
func TestDatastoreMonitor(t *testing.T) {
	st := &flakyStore{Store: memory.New()}
	logs := &lockedBuffer{}
	a, err := New(Config{Store: st, NodeName: "n1", RunDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	a.st.ready, a.st.live = true, true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.datastoreMonitor(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	wait := func(what string, cond func(s Status) bool) {
		t.Helper()
		if err := testutil.Poll(10*time.Second, func() error {
			if s := a.Status(); !cond(s) {
				return fmt.Errorf("%s: status %+v", what, s)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	wait("up", func(s Status) bool { return s.Ready && s.Datastore == "connected" })
	if g := gauge(t, a, "calico_node_datastore_connected"); g != 1 {
		t.Fatalf("connected gauge %v", g)
	}
	st.down.Store(true)
	wait("down", func(s Status) bool {
		return !s.Ready && s.Live && strings.HasPrefix(s.Datastore, "datastore unreachable for ") && strings.Contains(s.Datastore, "deadline exceeded")
	})
	if g := gauge(t, a, "calico_node_datastore_connected"); g != 0 {
		t.Errorf("connected gauge %v while down", g)
	}
	// More failed probes: counted, but logged once.
	if err := testutil.Poll(10*time.Second, func() error {
		if n := gauge(t, a, "calico_node_datastore_errors_total"); n < 3 {
			return fmt.Errorf("%v errors counted", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	st.down.Store(false)
	wait("back", func(s Status) bool { return s.Ready && s.Datastore == "connected" })
	if g := gauge(t, a, "calico_node_datastore_connected"); g != 1 {
		t.Errorf("connected gauge %v after recovery", g)
	}
	out := logs.String()
	if strings.Count(out, "datastore unreachable") != 1 || strings.Count(out, "datastore reachable again") != 1 {
		t.Errorf("want one line on loss and one on recovery:\n%s", out)
	}
}
