package testutil

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Etcd is a real single-member etcd server running inside the test process.
type Etcd struct {
	// Endpoint is the client URL (a unix socket, so no network port is used).
	Endpoint string
	Dir      string
	// With TLS: the CA that signed the server, and a client certificate.
	CACertFile, CertFile, KeyFile string
	// With auth: the root user's password (user "root").
	RootPassword string
	server       *embed.Etcd
}

// EtcdOptions choose TLS (client certificates required) and password auth.
type EtcdOptions struct {
	TLS  bool
	Auth bool
}

// Server exposes the embedded server (e.g. to compact its history).
func (e *Etcd) Server() *embed.Etcd { return e.server }

// StartEtcd starts an embedded etcd whose client and peer listeners are unix
// sockets in a temporary directory: nothing listens on the network, and
// processes in any network namespace on this host can reach it. It stops in
// t.Cleanup.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	return StartEtcdWith(t, EtcdOptions{})
}

// StartEtcdWith is StartEtcd with TLS and/or password authentication.
func StartEtcdWith(t testing.TB, opts EtcdOptions) *Etcd {
	t.Helper()
	// Unix socket paths are limited to 108 bytes: keep the directory short.
	dir, err := os.MkdirTemp("", "cet")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	e, err := startEtcd(dir, opts)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("start embedded etcd: %v", err)
	}
	t.Cleanup(func() {
		e.server.Close()
		os.RemoveAll(dir)
	})
	return e
}

// chdirMu serialises the brief working-directory change in startEtcd.
var chdirMu sync.Mutex

func startEtcd(dir string, opts EtcdOptions) (*Etcd, error) {
	// etcd wants unix socket URLs in host:port form, which cannot carry an
	// absolute path. So the sockets are bound with relative names while the
	// process's working directory is briefly dir; clients then dial the
	// absolute path (unix:///dir/client.sock:0), which the etcd client accepts.
	chdirMu.Lock()
	defer chdirMu.Unlock()
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	if err := os.Chdir(dir); err != nil {
		return nil, err
	}
	defer os.Chdir(wd)
	cfg := embed.NewConfig()
	cfg.Name = "test"
	cfg.Dir = filepath.Join(dir, "data")
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.LogLevel = "error"
	client := url.URL{Scheme: "unix", Host: "client.sock:0"}
	peer := url.URL{Scheme: "unix", Host: "peer.sock:0"}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	cfg.ListenMetricsUrls = nil
	out := &Etcd{Dir: dir}
	if opts.TLS {
		certs, err := writeTestCerts(dir)
		if err != nil {
			return nil, err
		}
		client.Scheme = "unixs"
		cfg.ListenClientUrls = []url.URL{client}
		cfg.AdvertiseClientUrls = []url.URL{client}
		cfg.ClientTLSInfo.CertFile = certs.serverCert
		cfg.ClientTLSInfo.KeyFile = certs.serverKey
		cfg.ClientTLSInfo.TrustedCAFile = certs.ca
		cfg.ClientTLSInfo.ClientCertAuth = true
		out.CACertFile, out.CertFile, out.KeyFile = certs.ca, certs.clientCert, certs.clientKey
	}
	s, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-s.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		s.Close()
		return nil, fmt.Errorf("etcd not ready after 30s")
	}
	out.server = s
	out.Endpoint = client.Scheme + "://" + filepath.Join(dir, "client.sock:0")
	if opts.Auth {
		out.RootPassword = "test-root-password"
		if err := enableAuth(s, out.RootPassword); err != nil {
			s.Close()
			return nil, err
		}
	}
	return out, nil
}
