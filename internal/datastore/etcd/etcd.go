// Package etcd is the etcd v3 kv.Store of the datastore: creates are
// transactions on Version==0, updates and deletes compare-and-swap on
// ModRevision, watches resume from a revision and report compaction as
// kv.ErrCompacted. It speaks to an external etcd cluster (TLS client
// certificates, username/password) or to `calico etcd`.
package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/onecalico/calico/internal/kv"
)

// Config is how to reach etcd. Endpoints are URLs (http://, https://, unix://).
type Config struct {
	Endpoints   []string
	CACertFile  string
	CertFile    string
	KeyFile     string
	Username    string
	Password    string
	DialTimeout time.Duration // 0 = 5s
	// RequestTimeout bounds every single request; 0 = 10s.
	RequestTimeout time.Duration
}

// DefaultEndpoint is where `calico etcd` listens by default.
const DefaultEndpoint = "http://127.0.0.1:2379"

// ConfigFromEnv builds a Config from upstream's environment variables
// (ETCD_ENDPOINTS, ETCD_CA_CERT_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE,
// ETCD_USERNAME, ETCD_PASSWORD). getenv is os.Getenv in a Main; taking it as
// an argument keeps the environment read in Main only.
func ConfigFromEnv(getenv func(string) string) Config {
	return Config{
		Endpoints:  SplitEndpoints(getenv("ETCD_ENDPOINTS")),
		CACertFile: getenv("ETCD_CA_CERT_FILE"),
		CertFile:   getenv("ETCD_CERT_FILE"),
		KeyFile:    getenv("ETCD_KEY_FILE"),
		Username:   getenv("ETCD_USERNAME"),
		Password:   getenv("ETCD_PASSWORD"),
	}
}

// SplitEndpoints splits a comma-separated endpoint list, dropping blanks.
func SplitEndpoints(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// Validate checks the config is usable.
func (c Config) Validate() error {
	if len(c.Endpoints) == 0 {
		return errors.New("no etcd endpoints: set ETCD_ENDPOINTS (e.g. " + DefaultEndpoint + ")")
	}
	for _, e := range c.Endpoints {
		if !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") &&
			!strings.HasPrefix(e, "unix://") && !strings.HasPrefix(e, "unixs://") {
			return fmt.Errorf("etcd endpoint %q: want a URL such as http://127.0.0.1:2379", e)
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("etcd TLS: set both ETCD_CERT_FILE and ETCD_KEY_FILE, or neither")
	}
	return nil
}

// Store is a kv.Store over an etcd v3 client.
type Store struct {
	cli     *clientv3.Client
	timeout time.Duration
}

var (
	_ kv.Store     = (*Store)(nil)
	_ kv.KeyLister = (*Store)(nil)
)

// New connects to etcd. The connection itself is made lazily by the first request.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var tlsCfg *tls.Config
	if cfg.CACertFile != "" || cfg.CertFile != "" {
		info := transport.TLSInfo{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, TrustedCAFile: cfg.CACertFile}
		var err error
		if tlsCfg, err = info.ClientConfig(); err != nil {
			return nil, fmt.Errorf("etcd TLS config: %w", err)
		}
	}
	dial := cfg.DialTimeout
	if dial == 0 {
		dial = 5 * time.Second
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: dial,
		TLS:         tlsCfg,
		Username:    cfg.Username,
		Password:    cfg.Password,
		Logger:      zap.NewNop(),
		// See conn.go: notice a dead connection, reconnect promptly.
		DialKeepAliveTime:    keepAliveTime,
		DialKeepAliveTimeout: keepAliveTimeout,
		DialOptions:          dialOptions(),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	rt := cfg.RequestTimeout
	if rt == 0 {
		rt = 10 * time.Second
	}
	return &Store{cli: cli, timeout: rt}, nil
}

// Client exposes the underlying etcd client (for leases and status checks).
func (s *Store) Client() *clientv3.Client { return s.cli }

// Close closes the client.
func (s *Store) Close() error { return s.cli.Close() }

// ctx bounds one request by the store's request timeout (or the caller's
// deadline, if that is sooner).
func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

func wrapErr(op, key string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s %s: etcd did not answer: %w", op, key, err)
	}
	return fmt.Errorf("%s %s: %w", op, key, rpctypes.Error(err))
}

// Get implements kv.Store.
func (s *Store) Get(ctx context.Context, key string) (*kv.KV, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return nil, wrapErr("get", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, &kv.KeyError{Op: "get", Key: key, Err: kv.ErrNotFound}
	}
	item := resp.Kvs[0]
	return &kv.KV{Key: string(item.Key), Value: item.Value, Revision: item.ModRevision}, nil
}

// List implements kv.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]*kv.KV, int64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, wrapErr("list", prefix, err)
	}
	out := make([]*kv.KV, len(resp.Kvs))
	for i, item := range resp.Kvs {
		out[i] = &kv.KV{Key: string(item.Key), Value: item.Value, Revision: item.ModRevision}
	}
	return out, resp.Header.Revision, nil
}

// ListKeys implements kv.KeyLister: the keys under prefix, no values.
func (s *Store) ListKeys(ctx context.Context, prefix string) ([]*kv.KV, int64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, 0, wrapErr("list keys", prefix, err)
	}
	out := make([]*kv.KV, len(resp.Kvs))
	for i, item := range resp.Kvs {
		out[i] = &kv.KV{Key: string(item.Key), Revision: item.ModRevision}
	}
	return out, resp.Header.Revision, nil
}

// Create implements kv.Store.
func (s *Store) Create(ctx context.Context, key string, value []byte) (int64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Version(key), "=", 0)).
		Then(clientv3.OpPut(key, string(value))).
		Commit()
	if err != nil {
		return 0, wrapErr("create", key, err)
	}
	if !resp.Succeeded {
		return 0, &kv.KeyError{Op: "create", Key: key, Err: kv.ErrExists}
	}
	return resp.Header.Revision, nil
}

// Update implements kv.Store.
func (s *Store) Update(ctx context.Context, key string, value []byte, rev int64) (int64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(key, string(value))).
		Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return 0, wrapErr("update", key, err)
	}
	if !resp.Succeeded {
		return 0, &kv.KeyError{Op: "update", Key: key, Err: missingOrConflict(resp)}
	}
	return resp.Header.Revision, nil
}

// Put implements kv.Store.
func (s *Store) Put(ctx context.Context, key string, value []byte) (int64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Put(ctx, key, string(value))
	if err != nil {
		return 0, wrapErr("put", key, err)
	}
	return resp.Header.Revision, nil
}

// Delete implements kv.Store.
func (s *Store) Delete(ctx context.Context, key string, rev int64) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	txn := s.cli.Txn(ctx)
	if rev != 0 {
		txn = txn.If(clientv3.Compare(clientv3.ModRevision(key), "=", rev))
	} else {
		txn = txn.If(clientv3.Compare(clientv3.Version(key), ">", 0))
	}
	resp, err := txn.Then(clientv3.OpDelete(key)).Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return wrapErr("delete", key, err)
	}
	if !resp.Succeeded {
		return &kv.KeyError{Op: "delete", Key: key, Err: missingOrConflict(resp)}
	}
	return nil
}

// Read implements kv.Store: one transaction of range reads, so the result is
// a single consistent snapshot fetched in one round trip.
func (s *Store) Read(ctx context.Context, keys, prefixes []string) (*kv.ReadResult, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	ops := make([]clientv3.Op, 0, len(keys)+len(prefixes))
	for _, k := range keys {
		ops = append(ops, clientv3.OpGet(k))
	}
	for _, p := range prefixes {
		ops = append(ops, clientv3.OpGet(p, clientv3.WithPrefix()))
	}
	var resp *clientv3.TxnResponse
	err := retryElection(ctx, func() (err error) {
		resp, err = s.cli.Txn(ctx).Then(ops...).Commit()
		return err
	})
	if err != nil {
		return nil, wrapErr("read", strings.Join(append(append([]string(nil), keys...), prefixes...), ","), err)
	}
	res := &kv.ReadResult{Keys: make([]*kv.KV, len(keys)), Prefixes: make([][]*kv.KV, len(prefixes)), Revision: resp.Header.Revision}
	for i, r := range resp.Responses {
		rr := r.GetResponseRange()
		items := make([]*kv.KV, len(rr.Kvs))
		for j, item := range rr.Kvs {
			items[j] = &kv.KV{Key: string(item.Key), Value: item.Value, Revision: item.ModRevision}
		}
		if i < len(keys) {
			if len(items) > 0 {
				res.Keys[i] = items[0]
			}
		} else {
			res.Prefixes[i-len(keys)] = items
		}
	}
	return res, nil
}

// Commit implements kv.Store as one etcd transaction. When a condition
// fails, the Else branch reads every conditioned key so the error can name
// the first one that no longer matches.
func (s *Store) Commit(ctx context.Context, writes []kv.Write) (int64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var cmps []clientv3.Cmp
	var ops, reads []clientv3.Op
	var conditioned []kv.Write
	for _, w := range writes {
		switch {
		case w.Rev == 0:
			cmps = append(cmps, clientv3.Compare(clientv3.Version(w.Key), "=", 0))
		case w.Rev > 0:
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(w.Key), "=", w.Rev))
		}
		if w.Rev != kv.Unconditional {
			conditioned = append(conditioned, w)
			reads = append(reads, clientv3.OpGet(w.Key, clientv3.WithKeysOnly()))
		}
		if w.Delete {
			ops = append(ops, clientv3.OpDelete(w.Key))
		} else {
			ops = append(ops, clientv3.OpPut(w.Key, string(w.Value)))
		}
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(reads...).Commit()
	if err != nil {
		return 0, wrapErr("commit", writes[0].Key, err)
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	for i, w := range conditioned {
		rr := resp.Responses[i].GetResponseRange()
		exists := len(rr.Kvs) > 0
		switch {
		case w.Rev == 0 && exists:
			return 0, &kv.KeyError{Op: "commit", Key: w.Key, Err: kv.ErrExists}
		case w.Rev > 0 && !exists:
			return 0, &kv.KeyError{Op: "commit", Key: w.Key, Err: kv.ErrNotFound}
		case w.Rev > 0 && rr.Kvs[0].ModRevision != w.Rev:
			return 0, &kv.KeyError{Op: "commit", Key: w.Key, Err: kv.ErrConflict}
		}
	}
	return 0, &kv.KeyError{Op: "commit", Key: writes[0].Key, Err: kv.ErrConflict}
}

// missingOrConflict reads the Else branch of a failed CAS: no key means it
// was deleted, otherwise someone else wrote it.
func missingOrConflict(resp *clientv3.TxnResponse) error {
	if len(resp.Responses) > 0 {
		if r := resp.Responses[0].GetResponseRange(); r != nil && len(r.Kvs) > 0 {
			return kv.ErrConflict
		}
	}
	return kv.ErrNotFound
}

// Watch implements kv.Store.
func (s *Store) Watch(ctx context.Context, prefix string, after int64) <-chan kv.WatchResponse {
	out := make(chan kv.WatchResponse, 16)
	go func() {
		defer close(out)
		wctx := clientv3.WithRequireLeader(ctx)
		// No WithPrevKV: with it etcd reads the previous revision of every
		// updated or deleted key once per watcher, which at cold start
		// (every node watching every node's writes) is N² reads.
		wch := s.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(after+1))
		for wr := range wch {
			var resp kv.WatchResponse
			switch {
			case wr.CompactRevision != 0:
				resp.Err = fmt.Errorf("watch %s from revision %d: %w (now at %d)", prefix, after+1, kv.ErrCompacted, wr.CompactRevision)
			case wr.Err() != nil:
				resp.Err = fmt.Errorf("watch %s: %w", prefix, wr.Err())
			default:
				resp.Events = make([]kv.Event, 0, len(wr.Events))
				for _, ev := range wr.Events {
					e := kv.Event{Key: string(ev.Kv.Key), Revision: ev.Kv.ModRevision}
					if ev.Type == mvccpb.DELETE {
						e.Type = kv.EventDelete
					} else {
						e.Type, e.Value = kv.EventPut, ev.Kv.Value
					}
					resp.Events = append(resp.Events, e)
				}
			}
			select {
			case out <- resp:
			case <-ctx.Done():
				return
			}
			if resp.Err != nil {
				return
			}
		}
	}()
	return out
}
