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
	server   *embed.Etcd
}

// StartEtcd starts an embedded etcd whose client and peer listeners are unix
// sockets in a temporary directory: nothing listens on the network, and
// processes in any network namespace on this host can reach it. It stops in
// t.Cleanup.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	// Unix socket paths are limited to 108 bytes: keep the directory short.
	dir, err := os.MkdirTemp("", "cet")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	e, err := startEtcd(dir)
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

func startEtcd(dir string) (*Etcd, error) {
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
	return &Etcd{Endpoint: "unix://" + filepath.Join(dir, "client.sock:0"), Dir: dir, server: s}, nil
}
