package etcd

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/onecalico/calico/internal/kv"
)

var _ kv.Pager = (*Store)(nil)

// ListPage implements kv.Pager: one range request from from to the end of
// prefix, at most limit keys, at revision rev (0: the current one).
func (s *Store) ListPage(ctx context.Context, prefix, from string, rev int64, limit int) ([]*kv.KV, int64, bool, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix)), clientv3.WithLimit(int64(limit))}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	resp, err := s.cli.Get(ctx, from, opts...)
	if err != nil {
		if errors.Is(rpctypes.Error(err), rpctypes.ErrCompacted) {
			return nil, 0, false, fmt.Errorf("list %s at revision %d: %w", prefix, rev, kv.ErrCompacted)
		}
		return nil, 0, false, wrapErr("list", prefix, err)
	}
	out := make([]*kv.KV, len(resp.Kvs))
	for i, item := range resp.Kvs {
		out[i] = &kv.KV{Key: string(item.Key), Value: item.Value, Revision: item.ModRevision}
	}
	return out, resp.Header.Revision, resp.More, nil
}
