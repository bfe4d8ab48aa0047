// Package kv is the vocabulary of the datastore: a revisioned key-value
// Store with etcd v3 semantics (create-if-absent, compare-and-swap on mod
// revision, watch from a revision), the sentinel errors callers branch on
// with errors.Is, and Sync, which lists then watches and relists after
// compaction.
//
// It imports nothing from the project, so every layer can speak it: the
// backends (datastore/etcd, datastore/memory) implement Store, and consumers
// such as ipam declare the subset they need with these types.
package kv

import (
	"context"
	"errors"
	"fmt"
)

// Sentinel errors; every Store wraps them in *KeyError.
var (
	ErrNotFound  = errors.New("does not exist")
	ErrExists    = errors.New("already exists")
	ErrConflict  = errors.New("was modified by someone else (revision conflict)")
	ErrCompacted = errors.New("watch revision has been compacted")
)

// KeyError says which operation on which key failed, wrapping a sentinel.
type KeyError struct {
	Op  string // "create", "update", "delete", "get"
	Key string
	Err error
}

func (e *KeyError) Error() string { return fmt.Sprintf("%s %s: %v", e.Op, e.Key, e.Err) }

// Unwrap lets errors.Is see the sentinel.
func (e *KeyError) Unwrap() error { return e.Err }

// KV is one stored value and the mod revision it was written at.
type KV struct {
	Key      string
	Value    []byte
	Revision int64
}

// EventType is what happened to a key.
type EventType int

// Event types.
const (
	EventPut EventType = iota + 1
	EventDelete
)

// Event is one change seen by a watch. For a delete, Value is the value the
// key had before when the backend knows it at no cost (the memory store);
// the etcd store leaves it empty, since asking etcd for it costs the server
// a read of the old revision per watcher and per event. Revision is the
// delete's.
type Event struct {
	Type     EventType
	Key      string
	Value    []byte
	Revision int64
}

// WatchResponse is one batch of events, in revision order, or an error after
// which the channel is closed (ErrCompacted when the start revision is gone).
type WatchResponse struct {
	Events []Event
	Err    error
}

// Store is a revisioned key-value store.
type Store interface {
	// Get returns the value of key, or ErrNotFound.
	Get(ctx context.Context, key string) (*KV, error)
	// Probe returns nil when the backend is serving as part of a working
	// cluster, an error otherwise (unreachable, no answer within ctx, no
	// leader). It reads key as cheaply as the backend can and says
	// nothing about it (absent is fine): a liveness check.
	Probe(ctx context.Context, key string) error
	// List returns every key under prefix in key order, and the store
	// revision the list is consistent at.
	List(ctx context.Context, prefix string) ([]*KV, int64, error)
	// Create writes key only if it does not exist (ErrExists otherwise).
	Create(ctx context.Context, key string, value []byte) (int64, error)
	// Update writes key only if its mod revision is still rev
	// (ErrConflict if it changed, ErrNotFound if it is gone).
	Update(ctx context.Context, key string, value []byte, rev int64) (int64, error)
	// Put writes key unconditionally.
	Put(ctx context.Context, key string, value []byte) (int64, error)
	// Delete removes key; with rev != 0 only if its mod revision is still rev.
	Delete(ctx context.Context, key string, rev int64) error
	// Read returns, from one consistent snapshot and in one round trip, the
	// value of each key (nil where absent) and everything under each prefix.
	Read(ctx context.Context, keys, prefixes []string) (*ReadResult, error)
	// Commit applies every write atomically or none of them. Each write
	// carries its own condition (see Write). On a failed condition it returns
	// a *KeyError naming the first write whose condition failed, wrapping
	// ErrExists, ErrConflict or ErrNotFound.
	Commit(ctx context.Context, writes []Write) (int64, error)
	// Watch streams changes under prefix with revisions greater than after.
	// The channel is closed when ctx ends or after a response with Err.
	Watch(ctx context.Context, prefix string, after int64) <-chan WatchResponse
	// Close releases the backend's resources.
	Close() error
}

// ReadResult is what Store.Read returns: Keys[i] is the value of keys[i]
// (nil if absent), Prefixes[j] the sorted contents of prefixes[j].
type ReadResult struct {
	Keys     []*KV
	Prefixes [][]*KV
	Revision int64
}

// Write is one operation of an atomic Commit.
//
//	Rev == 0:  the key must not exist (create)
//	Rev > 0:   the key's mod revision must still be Rev (compare-and-swap)
//	Rev == -1: no condition (put, or delete if present)
//
// Delete removes the key instead of writing Value.
type Write struct {
	Key    string
	Value  []byte
	Rev    int64
	Delete bool
}

// Unconditional is the Write.Rev that means "no condition".
const Unconditional = -1
