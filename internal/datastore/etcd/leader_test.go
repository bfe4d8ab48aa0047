package etcd

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

func TestRetryElectionRetriesOnlyElectionErrors(t *testing.T) {
	calls := 0
	err := retryElection(context.Background(), func() error {
		calls++
		switch calls {
		case 1:
			return rpctypes.ErrGRPCLeaderChanged // as it comes off the wire
		case 2:
			return rpctypes.ErrGRPCNoLeader
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("election errors: %v after %d calls, want success after 3", err, calls)
	}
	calls = 0
	other := errors.New("permission denied")
	if err := retryElection(context.Background(), func() error { calls++; return other }); err != other || calls != 1 {
		t.Errorf("other error: %v after %d calls, want it at once", err, calls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = retryElection(ctx, func() error { return rpctypes.ErrGRPCLeaderChanged })
	if !duringElection(err) || ctx.Err() == nil {
		t.Errorf("endless election: %v (ctx %v), want the election error once the deadline passed", err, ctx.Err())
	}
}
