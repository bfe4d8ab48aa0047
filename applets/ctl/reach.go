package ctl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/onecalico/calico/internal/kv"
)

// reachTimeout bounds the connect to each etcd endpoint before calicoctl
// uses the datastore: a refused connection fails at once, a black-holed
// address after this long, and either way the message names the endpoint
// (the etcd client alone waits for its request timeout and names neither).
const reachTimeout = 1500 * time.Millisecond

// checkReachable returns nil when at least one endpoint accepts a
// connection, else one error naming every endpoint and why it failed.
func checkReachable(ctx context.Context, endpoints []string) error {
	ctx, cancel := context.WithTimeout(ctx, reachTimeout)
	defer cancel()
	errs := make(chan error, len(endpoints))
	for _, ep := range endpoints {
		go func() { errs <- dialEndpoint(ctx, ep) }()
	}
	var fails []string
	for range endpoints {
		err := <-errs
		if err == nil {
			return nil
		}
		fails = append(fails, err.Error())
	}
	return errors.New(strings.Join(fails, "; "))
}

// dialEndpoint opens and closes one connection to an endpoint URL
// (scheme://host:port, host:port, or unix[s]://path). A unix socket is
// dialled too: with its server gone the etcd client would retry it until
// its request deadline (10 s) and name no endpoint.
func dialEndpoint(ctx context.Context, ep string) error {
	network, addr := "tcp", ep
	if u, err := url.Parse(ep); err == nil && strings.Contains(ep, "://") {
		if u.Scheme == "unix" || u.Scheme == "unixs" {
			network, addr = "unix", u.Host+u.Path
		} else {
			addr = u.Host
		}
	}
	if _, _, err := net.SplitHostPort(addr); err != nil && network == "tcp" {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), "2379")
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) {
			return fmt.Errorf("etcd endpoint %s did not answer within %v", ep, reachTimeout)
		}
		return fmt.Errorf("etcd endpoint %s is not reachable: %v", ep, unwrapOp(err))
	}
	c.Close()
	return nil
}

// unwrapOp drops net.OpError's "dial tcp a:b:" prefix: the endpoint is
// already named.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// firstReadTimeout bounds calicoctl's first datastore read. A member that
// accepts connections but never answers (stopped, or wedged) would
// otherwise hold every command for the store's request timeout (10 s).
const firstReadTimeout = 2 * time.Second

// reader is the part of the store firstRead needs.
type reader interface {
	Get(ctx context.Context, key string) (*kv.KV, error)
}

// firstRead reads one small key within firstReadTimeout. Only a read that
// got no answer in time is an error here (naming the endpoints); any other
// outcome, a missing key or a refused permission, is left to the command.
func firstRead(ctx context.Context, s reader, endpoints []string) error {
	ctx, cancel := context.WithTimeout(ctx, firstReadTimeout)
	defer cancel()
	_, err := s.Get(ctx, "/calico/resources/v3/projectcalico.org/clusterinformations/default")
	if err != nil && (errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil) {
		return fmt.Errorf("etcd at %s did not answer a read within %v (is the server stopped or overloaded?)",
			strings.Join(endpoints, ","), firstReadTimeout)
	}
	return nil
}
