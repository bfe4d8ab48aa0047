package ipam

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/onecalico/calico/internal/kv"
)

// Store is what the allocator needs of the datastore: kv.Store's reads,
// its atomic conditional Commit, and single-key writes. *etcd.Store and
// *memory.Store satisfy it.
type Store interface {
	Get(ctx context.Context, key string) (*kv.KV, error)
	List(ctx context.Context, prefix string) ([]*kv.KV, int64, error)
	Read(ctx context.Context, keys, prefixes []string) (*kv.ReadResult, error)
	Commit(ctx context.Context, writes []kv.Write) (int64, error)
	Create(ctx context.Context, key string, value []byte) (int64, error)
	Update(ctx context.Context, key string, value []byte, rev int64) (int64, error)
	Delete(ctx context.Context, key string, rev int64) error
}

// Options tune an Allocator. The zero value is usable.
type Options struct {
	// Logger receives debug and warning lines; nil discards them.
	Logger *slog.Logger
	// Now is the clock (block creation, claim times); nil = time.Now.
	Now func() time.Time
	// MaxRetries bounds the re-read-and-retry loops after a
	// compare-and-swap conflict; 0 = 100, as upstream.
	MaxRetries int
}

// DefaultMaxBlocksPerHost is the block limit when neither the request nor
// the IPAM config sets one (upstream's safeguard).
const DefaultMaxBlocksPerHost = 20

// Allocator hands out and releases addresses. It keeps no state between
// calls: everything lives in the datastore, so any number of allocators in
// any number of processes may work on the same data.
type Allocator struct {
	store      Store
	log        *slog.Logger
	now        func() time.Time
	maxRetries int
}

// New returns an Allocator over store.
func New(store Store, opts Options) *Allocator {
	a := &Allocator{store: store, log: opts.Logger, now: opts.Now, maxRetries: opts.MaxRetries}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.maxRetries <= 0 {
		a.maxRetries = 100
	}
	return a
}

// Sentinel errors, for errors.Is. The returned errors wrap them with the
// reason and what to do about it.
var (
	// ErrNoPool: no enabled pool of the right family selects this node and
	// allows the intended use, or a requested pool does not exist.
	ErrNoPool = errors.New("no usable IP pool")
	// ErrPoolExhausted: the usable pools have no free address left.
	ErrPoolExhausted = errors.New("no free addresses left in the usable IP pools")
	// ErrBlockLimit: the host needs a new block but owns the maximum.
	ErrBlockLimit = errors.New("cannot allocate new block due to per host block limit")
	// ErrStrictAffinity: the host's blocks are full, no block can be
	// claimed, and strict affinity forbids borrowing from other hosts.
	ErrStrictAffinity = errors.New("no free address in this host's blocks and strict affinity forbids borrowing")
	// ErrAlreadyAllocated: AssignIP of an address someone holds.
	ErrAlreadyAllocated = errors.New("address is already allocated")
	// ErrHandleNotFound: no such handle.
	ErrHandleNotFound = errors.New("IPAM handle does not exist")
	// ErrNodeNotFound: allocation for a host that has no Node resource.
	ErrNodeNotFound = errors.New("node does not exist in the datastore")
	// ErrNotAllocated: Lookup of an address nobody holds.
	ErrNotAllocated = errors.New("address is not assigned")
	// ErrReleaseMismatch: ReleaseIPs skipped addresses whose handle or
	// sequence number no longer matched the request (re-allocated since).
	ErrReleaseMismatch = errors.New("address was re-allocated since it was read; not released")
	// ErrTooManyConflicts: MaxRetries compare-and-swap conflicts in a row.
	ErrTooManyConflicts = errors.New("too many concurrent IPAM updates (compare-and-swap retries exhausted)")
)

// errClaimConflict: another host claimed the block first.
var errClaimConflict = errors.New("block claimed by another host")

// errBlockGone: the block was deleted or stopped being ours mid-operation.
var errBlockGone = errors.New("block is gone or no longer affine to this host")

// errBlockNotEmpty: an affinity release that required an empty block.
var errBlockNotEmpty = errors.New("block is not empty")

// isCASFailure reports whether err is a failed condition (someone else
// wrote first): the caller should re-read and retry.
func isCASFailure(err error) bool {
	return errors.Is(err, kv.ErrConflict) || errors.Is(err, kv.ErrExists) || errors.Is(err, kv.ErrNotFound)
}

func (a *Allocator) tooMany(op string) error {
	return fmt.Errorf("%s: %w (%d attempts)", op, ErrTooManyConflicts, a.maxRetries)
}
