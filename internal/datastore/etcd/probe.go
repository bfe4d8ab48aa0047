package etcd

import (
	"context"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Probe implements kv.Store: a serializable, count-only Range of key on
// the member the client talks to, with the require-leader flag.
//
// Why that is enough to know the datastore works, and what it saves (read
// in etcd v3.6.5, client/v3 and server/v3):
//
//   - A plain Get is linearizable: before the member reads, its read loop
//     asks the leader for a read index (etcdserver linearizableReadLoop,
//     requestCurrentIndex), which the leader confirms with a heartbeat
//     round to a quorum. The daemon's readiness probe made one such read
//     a second per node: at 1,000 nodes, a stream of ReadIndex rounds
//     through the leader for nothing but liveness.
//   - Serializable, the member reads its own store. Count-only, the
//     store answers from its in-memory index (mvcc rangeKeys, ro.Count)
//     without reading the value from bolt or sending it.
//   - The require-leader metadata makes the member refuse the request
//     with "no leader" while its raft has none (v3rpc
//     newUnaryInterceptor). A follower cut off from the others has none
//     once it misses heartbeats for its election timeout (it becomes a
//     pre-candidate, which clears the leader); a leader cut off from the
//     quorum steps down after an election timeout (CheckQuorum is always
//     on). So a member in a minority fails the probe one to two election
//     timeouts after the cut, and a stopped or silent member fails it at
//     the deadline, as before.
//   - clientv3's Get retries "no leader" (codes.Unavailable, a repeatable
//     read) until the deadline, so a probe on a minority member would
//     fail only at its deadline: 1-2 s (losing the leader) + up to 1 s
//     (the next probe) + 2 s, later than the linearizable read (up to
//     1 s + 2 s: it hangs from the cut on). The probe calls the KV
//     service on the client's connection directly instead: the client's
//     interceptor then treats it as non-repeatable and returns "no
//     leader" at once (retry_interceptor.go, isSafeRetryMutableRPC). The
//     probe retries that itself for probeElectionGrace only, so that an
//     ordinary election (a few round trips once a member has noticed the
//     leader gone) does not read as an outage, and a minority is noticed
//     about 1.5-3.5 s after the cut (2-2.5 s in
//     TestPrivilegedProbeMinority, like the linearizable read). The
//     connection still balances over every endpoint: like any read, the
//     probe passes while the member it reaches can serve it.
//
// Rejected: a progress request on the watch stream (Watcher.RequestProgress)
// costs no new RPC, but the member answers only once every watcher of the
// stream is synced (mvcc progressIfSync: a watcher catching up under load
// would read as an outage), answers from its own store with no leader
// check, and the require-leader watches notice a lost leader only after
// three election timeouts without one (v3rpc monitorLeader,
// maxNoLeaderCnt), 4-6 s at etcd's defaults. Skipping the probe while
// watch responses arrive saves nothing when idle: an idle watch gets
// nothing (progress notifications come every 10 minutes by default).
// probeElectionGrace is how long a probe waits for a member that has no
// leader to get one.
const probeElectionGrace = 500 * time.Millisecond

func (s *Store) Probe(ctx context.Context, key string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	req := &pb.RangeRequest{Key: []byte(key), Serializable: true, CountOnly: true}
	kvc := pb.NewKVClient(s.cli.ActiveConnection())
	grace, cancelGrace := context.WithTimeout(ctx, probeElectionGrace)
	defer cancelGrace()
	err := retryElection(grace, func() error {
		_, err := kvc.Range(clientv3.WithRequireLeader(ctx), req, grpc.WaitForReady(true))
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			// The gRPC status alone reads "rpc error: code =
			// DeadlineExceeded desc = ..."; say it as the other requests do.
			err = fmt.Errorf("%w (%s)", ctx.Err(), status.Convert(err).Message())
		}
		return wrapErr("probe", key, err)
	}
	return nil
}
