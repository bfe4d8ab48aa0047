package etcd

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// A cluster that loses its leader answers requests with "leader changed"
// or "no leader" until it has elected another, within about an election
// timeout (a second by default). The etcd client retries plain reads by
// itself, but not transactions, and Read is a transaction of reads: right
// after a leader was killed a CNI ADD failed on it. Reads change nothing,
// so Read retries them while the cluster elects, within its deadline.
// Writes are not retried here: their outcome is unknown after such an
// error, and the callers' compare-and-swap loops decide.

// duringElection reports whether err says the cluster had no working
// leader when the request came.
func duringElection(err error) bool {
	err = rpctypes.Error(err)
	return errors.Is(err, rpctypes.ErrLeaderChanged) || errors.Is(err, rpctypes.ErrNoLeader) ||
		errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail)
}

// retryElection runs a read-only request, again while the cluster is
// electing a leader, until it succeeds, fails otherwise, or ctx ends.
func retryElection(ctx context.Context, read func() error) error {
	delay := 20 * time.Millisecond
	for {
		err := read()
		if err == nil || !duringElection(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}
