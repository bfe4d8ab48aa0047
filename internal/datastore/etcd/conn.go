package etcd

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// How the client notices a lost etcd and how fast it reconnects.
//
// Without keepalive a partitioned etcd (or one stopped with SIGSTOP) is
// invisible: the TCP connection stays open and the watch simply goes
// quiet. gRPC keepalive pings close such a connection (gRPC raises any
// interval under 10 s to 10 s, and etcd's server refuses pings more
// often than every 5 s, so 10 s is the floor). Callers that must know
// sooner (calico-node) probe with short request deadlines.
//
// gRPC's default reconnect back-off grows to 120 s: after a 45 s outage
// the next connection attempt came up to 27 s after etcd was back, and
// every watch waited for it. Capping the back-off at reconnectMaxDelay
// bounds that wait; an attempt to a dead local endpoint costs little.
const (
	keepAliveTime      = 10 * time.Second
	keepAliveTimeout   = 3 * time.Second
	reconnectBaseDelay = 100 * time.Millisecond
	reconnectMaxDelay  = 500 * time.Millisecond
	// connectTimeout bounds one connection attempt (gRPC's default is 20 s,
	// which a half-open connection to a stopped etcd would use in full).
	connectTimeout = 3 * time.Second
)

// dialOptions are the gRPC options every client gets.
func dialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		Backoff: backoff.Config{
			BaseDelay:  reconnectBaseDelay,
			Multiplier: 1.6,
			Jitter:     0.2,
			MaxDelay:   reconnectMaxDelay,
		},
		MinConnectTimeout: connectTimeout,
	})}
}
