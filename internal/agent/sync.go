package agent

import (
	"context"
	"errors"
	"net/netip"
	"strings"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/kv"
)

// The prefixes the daemon watches.
var (
	prefixNodes = mustKind(api.KindNode).ListPrefix("")
	prefixPools = mustKind(api.KindIPPool).ListPrefix("")
	prefixWEPs  = mustKind(api.KindWorkloadEndpoint).ListPrefix("")
	prefixFelix = mustKind(api.KindFelixConfiguration).ListPrefix("")
)

const prefixBlocks = api.IPAMBlockPrefix

func mustKind(k string) api.KindInfo {
	ki, ok := api.LookupKind(k)
	if !ok {
		panic("agent: unknown kind " + k)
	}
	return ki
}

// watchedPrefixes are every prefix that must deliver a snapshot before the
// first dataplane write.
func (a *Agent) watchedPrefixes() []string {
	return append([]string{prefixNodes, prefixPools, prefixBlocks, prefixWEPs, prefixBGPConfigs, prefixBGPPeers, prefixBGPFilters,
		prefixFelix + FelixConfigGlobal, prefixFelix + FelixConfigNodePrefix + a.cfg.NodeName}, policyPrefixes()...)
}

// syncHandler feeds one watched prefix into the Model. Its callbacks only
// record (decode, store under the lock) and signal; they never do I/O.
type syncHandler struct {
	a      *Agent
	prefix string
	// reset empties this prefix's part of the model (for a snapshot).
	reset func(m *Model)
	// put and del apply one key; they run under a.mu.
	put func(m *Model, key string, item *kv.KV) error
	del func(m *Model, key string)
	// mark records in d what an event on key changes (dirty.go); nil:
	// everything.
	mark func(d *dirtySet, key string)
	// noBGP: nothing under this prefix feeds the BGP speaker (its events
	// never wake it).
	noBGP bool
	// tunnels says whether a change to key can change this node's tunnel
	// addresses (nil: never).
	tunnels func(key string) bool
	// move hands this prefix's part of a model built from a paged
	// snapshot over to the live one (nil: pages are gathered and applied
	// as one snapshot; fine for prefixes that hold a few keys).
	move func(dst, src *Model)
	// staging and pending hold a paged snapshot until its last page; only
	// Sync's goroutine for this prefix touches them.
	staging *Model
	pending []*kv.KV
}

// touchesTunnels reports whether any of keys matters to the tunnel manager.
func (h *syncHandler) touchesTunnels(keys ...string) bool {
	if h.tunnels == nil {
		return false
	}
	for _, k := range keys {
		if h.tunnels(k) {
			return true
		}
	}
	return false
}

func (h *syncHandler) OnSnapshot(kvs []*kv.KV, rev int64) {
	a := h.a
	a.mu.Lock()
	h.reset(a.model)
	for _, item := range kvs {
		h.apply(item.Key, item, false)
	}
	a.synced[h.prefix] = true
	a.snapshotTakenLocked(h.prefix)
	a.mu.Unlock()
	a.log.Debug("snapshot", "component", "sync", "prefix", h.prefix, "keys", len(kvs), "revision", rev)
	// Every snapshot wakes the tunnel manager too: it waits for all of them
	// before it acts, so the last one must reach it.
	a.signal(true)
}

// OnPage takes one page of a snapshot. With move, each page is decoded
// into a staging model and its raw values dropped; the last page swaps the
// staged part in under the lock, so the reconcile loop never sees half a
// snapshot (on a relist it keeps using the previous state until then).
func (h *syncHandler) OnPage(kvs []*kv.KV, first, last bool, rev int64) {
	if h.move == nil {
		if first {
			h.pending = nil
		}
		h.pending = append(h.pending, kvs...)
		if last {
			all := h.pending
			h.pending = nil
			h.OnSnapshot(all, rev)
		}
		return
	}
	if first {
		h.staging = &Model{NodeName: h.a.cfg.NodeName}
		h.reset(h.staging)
	}
	for _, item := range kvs {
		h.applyTo(h.staging, item.Key, item, false)
	}
	if !last {
		return
	}
	a := h.a
	a.mu.Lock()
	h.move(a.model, h.staging)
	a.synced[h.prefix] = true
	a.snapshotTakenLocked(h.prefix)
	a.mu.Unlock()
	h.staging = nil
	a.log.Debug("snapshot", "component", "sync", "prefix", h.prefix, "paged", true, "revision", rev)
	a.signal(true)
}

func (h *syncHandler) OnEvents(events []kv.Event) {
	a := h.a
	tunnels, kickBGP := false, false
	a.mu.Lock()
	for _, ev := range events {
		was := !h.noBGP && a.bgpMattersLocked(h.prefix, ev.Key)
		h.apply(ev.Key, &kv.KV{Key: ev.Key, Value: ev.Value, Revision: ev.Revision}, ev.Type == kv.EventDelete)
		kickBGP = !h.noBGP && a.bgpMattersLocked(h.prefix, ev.Key) || was || kickBGP
		tunnels = tunnels || h.touchesTunnels(ev.Key)
		if h.mark == nil {
			a.markGlobalLocked()
		} else {
			h.mark(&a.dirty, ev.Key)
		}
	}
	if a.dirty.global {
		a.polGen++ // a Felix change, say: the policy options too
	}
	a.mu.Unlock()
	a.wake(tunnels, kickBGP)
}

// snapshotTakenLocked records that a prefix was (re)listed: every result
// may change. a.mu is held.
func (a *Agent) snapshotTakenLocked(prefix string) {
	a.markGlobalLocked()
	a.bgpSnapshotLocked()
	if prefix == prefixNodes {
		a.peers.ok = false
		a.peers.gen++
	}
}

// apply runs under a.mu.
func (h *syncHandler) apply(key string, item *kv.KV, deleted bool) {
	h.applyTo(h.a.model, key, item, deleted)
}

// applyTo changes m: the live model under a.mu, or a staging one.
func (h *syncHandler) applyTo(m *Model, key string, item *kv.KV, deleted bool) {
	if deleted {
		h.del(m, key)
		return
	}
	if err := h.put(m, key, item); err != nil {
		// Upstream skips values it cannot parse; so do we, once per key.
		h.a.log.Warn("ignoring a value that does not parse", "component", "sync", "key", key, "err", err)
		h.del(m, key)
	}
}

func (a *Agent) handlers() []*syncHandler {
	poolKind, wepKind := mustKind(api.KindIPPool), mustKind(api.KindWorkloadEndpoint)
	name := func(key, prefix string) string { return strings.TrimPrefix(key, prefix) }
	return a.withPolicy([]*syncHandler{
		{
			a: a, prefix: prefixNodes,
			tunnels: func(key string) bool { return key == prefixNodes+a.cfg.NodeName },
			reset:   func(m *Model) { m.Nodes = map[string]Node{} },
			move:    func(dst, src *Model) { dst.Nodes = src.Nodes },
			put: func(m *Model, key string, item *kv.KV) error {
				n, err := nodeFromJSON(key, item.Value)
				if err != nil {
					return err
				}
				old, had := m.Nodes[n.Name]
				m.Nodes[n.Name] = n
				if m == a.model {
					a.nodeChangedLocked(old, had, n, true)
				}
				return nil
			},
			del: func(m *Model, key string) {
				n := name(key, prefixNodes)
				old, had := m.Nodes[n]
				delete(m.Nodes, n)
				if m == a.model {
					a.nodeChangedLocked(old, had, Node{Name: n}, false)
				}
			},
			mark: func(d *dirtySet, key string) { d.node(name(key, prefixNodes)) },
		},
		{
			a: a, prefix: prefixPools,
			tunnels: func(string) bool { return true },
			reset:   func(m *Model) { m.Pools = map[string]Pool{} },
			put: func(m *Model, key string, item *kv.KV) error {
				r, err := datastore.Decode(poolKind, item)
				if err != nil {
					return err
				}
				p, ok := poolFromAPI(r.(*api.IPPool))
				if !ok {
					return errors.New("invalid cidr")
				}
				p.Name = name(key, prefixPools)
				m.Pools[p.Name] = p
				return nil
			},
			del:  func(m *Model, key string) { delete(m.Pools, name(key, prefixPools)) },
			mark: func(d *dirtySet, key string) { d.pool(name(key, prefixPools)) },
		},
		{
			a: a, prefix: prefixBlocks,
			reset: func(m *Model) { m.Blocks = map[netip.Prefix]Block{} },
			move:  func(dst, src *Model) { dst.Blocks = src.Blocks },
			put: func(m *Model, key string, item *kv.KV) error {
				b, err := blockFromJSON(key, item.Value)
				if err != nil {
					return err
				}
				m.Blocks[b.CIDR] = b
				return nil
			},
			del: func(m *Model, key string) {
				if c, err := api.ParseBlockKey(key); err == nil {
					delete(m.Blocks, c)
				}
			},
			mark: func(d *dirtySet, key string) {
				if c, err := api.ParseBlockKey(key); err == nil {
					d.block(c)
				} else {
					d.global = true
				}
			},
		},
		{
			a: a, prefix: prefixWEPs,
			reset: func(m *Model) { m.WEPs = map[string]WEP{} },
			move:  func(dst, src *Model) { dst.WEPs = src.WEPs },
			put: func(m *Model, key string, item *kv.KV) error {
				r, err := datastore.Decode(wepKind, item)
				if err != nil {
					return err
				}
				m.WEPs[key] = wepFromAPI(r.(*api.WorkloadEndpoint))
				return nil
			},
			del:  func(m *Model, key string) { delete(m.WEPs, key) },
			mark: func(d *dirtySet, key string) { d.wep(key) },
		},
		a.felixHandler(FelixConfigGlobal),
		a.felixHandler(FelixConfigNodePrefix + a.cfg.NodeName),
	})
}

// felixHandler feeds one FelixConfiguration layer: "default" or this
// node's "node.<name>". Each is its own watch, so another node's
// FelixConfiguration (every node writes its own at start) is never
// delivered here: with a watch on the whole kind, N nodes starting at
// once cost etcd N² events for nothing.
func (a *Agent) felixHandler(layer string) *syncHandler {
	key := prefixFelix + layer
	set := func(s api.FelixConfigurationSpec) {
		if layer == FelixConfigGlobal {
			a.felix.global = s
		} else {
			a.felix.node = s
		}
		a.resolveFelixLocked()
	}
	return &syncHandler{
		a: a, prefix: key, noBGP: true,
		reset: func(*Model) { set(api.FelixConfigurationSpec{}) },
		put: func(_ *Model, k string, item *kv.KV) error {
			if k != key { // a longer name sharing the prefix
				return nil
			}
			s, err := decodeFelix(layer, item)
			if err != nil {
				return err
			}
			set(s)
			return nil
		},
		del: func(_ *Model, k string) {
			if k == key {
				set(api.FelixConfigurationSpec{})
			}
		},
		mark: func(d *dirtySet, k string) {
			if k == key {
				d.felix = true
				a.polGen++ // the policy options read the Felix layers
			}
		},
	}
}

// resolveFelixLocked recomputes m.Felix from the layers; a.mu is held. A
// bad value keeps the last good configuration.
func (a *Agent) resolveFelixLocked() {
	s := overlayFelix(overlayFelix(a.felix.global, a.felix.node), a.felixEnv)
	fc, err := resolveFelix(s)
	if err != nil {
		a.log.Error("keeping the previous Felix configuration", "component", "sync", "err", err)
		return
	}
	if !equalFelix(fc, a.model.Felix) {
		a.model.Felix = fc
		a.applyLogLevel(fc.LogSeverityScreen)
	}
}

// countingStore counts datastore failures for the metrics. Conditions
// callers branch on (not found, exists, conflict) are not failures.
type countingStore struct {
	kv.Store
	count func()
}

func (s countingStore) note(err error) error {
	if err != nil && !errors.Is(err, kv.ErrNotFound) && !errors.Is(err, kv.ErrExists) &&
		!errors.Is(err, kv.ErrConflict) && !errors.Is(err, context.Canceled) {
		s.count()
	}
	return err
}

func (s countingStore) Get(ctx context.Context, key string) (*kv.KV, error) {
	v, err := s.Store.Get(ctx, key)
	return v, s.note(err)
}

func (s countingStore) Probe(ctx context.Context, key string) error {
	return s.note(s.Store.Probe(ctx, key))
}

func (s countingStore) List(ctx context.Context, prefix string) ([]*kv.KV, int64, error) {
	v, r, err := s.Store.List(ctx, prefix)
	return v, r, s.note(err)
}

// ListPage implements kv.Pager; a backend that cannot page answers the
// first page with everything.
func (s countingStore) ListPage(ctx context.Context, prefix, from string, rev int64, limit int) ([]*kv.KV, int64, bool, error) {
	p, ok := s.Store.(kv.Pager)
	if !ok {
		v, r, err := s.Store.List(ctx, prefix)
		return v, r, false, s.note(err)
	}
	v, r, more, err := p.ListPage(ctx, prefix, from, rev, limit)
	return v, r, more, s.note(err)
}

func (s countingStore) Create(ctx context.Context, key string, value []byte) (int64, error) {
	r, err := s.Store.Create(ctx, key, value)
	return r, s.note(err)
}

func (s countingStore) Update(ctx context.Context, key string, value []byte, rev int64) (int64, error) {
	r, err := s.Store.Update(ctx, key, value, rev)
	return r, s.note(err)
}

func (s countingStore) Put(ctx context.Context, key string, value []byte) (int64, error) {
	r, err := s.Store.Put(ctx, key, value)
	return r, s.note(err)
}

func (s countingStore) Delete(ctx context.Context, key string, rev int64) error {
	return s.note(s.Store.Delete(ctx, key, rev))
}

func (s countingStore) Read(ctx context.Context, keys, prefixes []string) (*kv.ReadResult, error) {
	r, err := s.Store.Read(ctx, keys, prefixes)
	return r, s.note(err)
}

func (s countingStore) Commit(ctx context.Context, writes []kv.Write) (int64, error) {
	r, err := s.Store.Commit(ctx, writes)
	return r, s.note(err)
}

// Watch forwards the backend's responses, counting failed ones (a
// compaction included: it forces a relist).
func (s countingStore) Watch(ctx context.Context, prefix string, after int64) <-chan kv.WatchResponse {
	in := s.Store.Watch(ctx, prefix, after)
	out := make(chan kv.WatchResponse)
	go func() {
		defer close(out)
		for r := range in {
			if r.Err != nil && ctx.Err() == nil {
				s.count()
			}
			select {
			case out <- r:
			case <-ctx.Done():
				// Drain so the backend's goroutine can finish.
				for range in {
				}
				return
			}
		}
	}()
	return out
}
