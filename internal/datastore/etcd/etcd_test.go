package etcd_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/kv"
	"github.com/onecalico/calico/internal/testutil"
)

var _ kv.Store = (*etcd.Store)(nil)

// newStore connects to e with its own client, under a per-test key prefix is
// not needed: every subtest gets a fresh server.
func newStore(t *testing.T, e *testutil.Etcd, cfg etcd.Config) *etcd.Store {
	t.Helper()
	cfg.Endpoints = []string{e.Endpoint}
	s, err := etcd.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreConformance(t *testing.T) {
	testutil.RunKVSuite(t, func(t *testing.T) (kv.Store, func(int64)) {
		e := testutil.StartEtcd(t)
		s := newStore(t, e, etcd.Config{})
		return s, func(rev int64) {
			if _, err := s.Client().Compact(context.Background(), rev); err != nil {
				t.Fatalf("compact: %v", err)
			}
		}
	})
}

func TestTLSClientCertificates(t *testing.T) {
	e := testutil.StartEtcdWith(t, testutil.EtcdOptions{TLS: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	good := newStore(t, e, etcd.Config{CACertFile: e.CACertFile, CertFile: e.CertFile, KeyFile: e.KeyFile})
	if _, err := good.Put(ctx, "/tls", []byte("ok")); err != nil {
		t.Fatalf("put with a client certificate: %v", err)
	}

	// Without a client certificate the server refuses the connection.
	noCert := newStore(t, e, etcd.Config{CACertFile: e.CACertFile, RequestTimeout: 2 * time.Second})
	if _, err := noCert.Get(ctx, "/tls"); err == nil {
		t.Fatal("get without a client certificate succeeded")
	}

	// A missing key file is a clear configuration error.
	_, err := etcd.New(etcd.Config{Endpoints: []string{e.Endpoint}, CertFile: e.CertFile})
	if err == nil || !strings.Contains(err.Error(), "ETCD_KEY_FILE") {
		t.Fatalf("cert without key: got %v", err)
	}
}

func TestUsernamePassword(t *testing.T) {
	e := testutil.StartEtcdWith(t, testutil.EtcdOptions{Auth: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newStore(t, e, etcd.Config{Username: "root", Password: e.RootPassword})
	if _, err := s.Put(ctx, "/auth", []byte("ok")); err != nil {
		t.Fatalf("put as root: %v", err)
	}
	_, err := etcd.New(etcd.Config{Endpoints: []string{e.Endpoint}, Username: "root", Password: "wrong", DialTimeout: 3 * time.Second})
	if err == nil {
		t.Fatal("connect with a wrong password succeeded")
	}
	anon := newStore(t, e, etcd.Config{RequestTimeout: 3 * time.Second})
	if _, err := anon.Get(ctx, "/auth"); err == nil || errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("anonymous get on an auth-enabled etcd: got %v, want a permission error", err)
	}
}

func TestConfigFromEnvAndValidate(t *testing.T) {
	env := map[string]string{
		"ETCD_ENDPOINTS": " http://10.0.0.1:2379, https://10.0.0.2:2379 ,",
		"ETCD_USERNAME":  "u", "ETCD_PASSWORD": "p",
		"ETCD_CA_CERT_FILE": "/ca", "ETCD_CERT_FILE": "/c", "ETCD_KEY_FILE": "/k",
	}
	cfg := etcd.ConfigFromEnv(func(k string) string { return env[k] })
	if strings.Join(cfg.Endpoints, "|") != "http://10.0.0.1:2379|https://10.0.0.2:2379" || cfg.Username != "u" || cfg.KeyFile != "/k" {
		t.Fatalf("config = %+v", cfg)
	}
	for _, tc := range []struct {
		cfg  etcd.Config
		want string
	}{
		{etcd.Config{}, "no etcd endpoints"},
		{etcd.Config{Endpoints: []string{"10.0.0.1:2379"}}, "want a URL"},
		{etcd.Config{Endpoints: []string{"http://x:1"}, KeyFile: "/k"}, "ETCD_CERT_FILE"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
