package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/kv"
)

// DefaultConfigPath is where calicoctl looks for its config file.
const DefaultConfigPath = "/etc/calico/calicoctl.cfg"

// probeTimeout bounds the check that a configured datastore answers, for
// commands that can do without one (validate).
const probeTimeout = 3 * time.Second

// errNoDatastore is returned when neither a config file nor the environment
// names a datastore.
var errNoDatastore = errors.New("no datastore configured: set ETCD_ENDPOINTS (and DATASTORE_TYPE=etcdv3), or write " + DefaultConfigPath)

// Env is what a verb works with: its streams, the environment, and the
// datastore, connected on first use.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string

	configPath string
	backend    kv.Store
	client     *datastore.Client
}

// Close releases the datastore connection, if one was made.
func (e *Env) Close() {
	if e.backend != nil {
		e.backend.Close()
	}
}

// apiConfig is the CalicoAPIConfig file format.
type apiConfig struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name,omitempty"`
	} `json:"metadata"`
	Spec struct {
		DatastoreType  string `json:"datastoreType"`
		EtcdEndpoints  string `json:"etcdEndpoints"`
		EtcdUsername   string `json:"etcdUsername"`
		EtcdPassword   string `json:"etcdPassword"`
		EtcdKeyFile    string `json:"etcdKeyFile"`
		EtcdCertFile   string `json:"etcdCertFile"`
		EtcdCACertFile string `json:"etcdCACertFile"`
		// Inline PEM forms are accepted and must be absent: we read files only.
		EtcdKey    string `json:"etcdKey"`
		EtcdCert   string `json:"etcdCert"`
		EtcdCACert string `json:"etcdCACert"`
		Kubeconfig string `json:"kubeconfig"`
	} `json:"spec"`
}

// datastoreConfig reads the config file if there is one (an explicitly named
// file must exist), then lets the environment override it, as upstream does.
func (e *Env) datastoreConfig() (etcd.Config, error) {
	var cfg etcd.Config
	dsType := ""
	path := e.configPath
	if path == "" {
		path = DefaultConfigPath
	}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		var c apiConfig
		if err := yaml.UnmarshalStrict(b, &c); err != nil {
			return cfg, fmt.Errorf("config file %s: %v", path, err)
		}
		if c.Kind != "CalicoAPIConfig" {
			return cfg, fmt.Errorf("config file %s: kind must be CalicoAPIConfig, not %q", path, c.Kind)
		}
		dsType = c.Spec.DatastoreType
		cfg.Endpoints = etcd.SplitEndpoints(c.Spec.EtcdEndpoints)
		cfg.Username, cfg.Password = c.Spec.EtcdUsername, c.Spec.EtcdPassword
		cfg.KeyFile, cfg.CertFile, cfg.CACertFile = c.Spec.EtcdKeyFile, c.Spec.EtcdCertFile, c.Spec.EtcdCACertFile
		if c.Spec.EtcdKey != "" || c.Spec.EtcdCert != "" || c.Spec.EtcdCACert != "" {
			return cfg, fmt.Errorf("config file %s: inline etcdKey/etcdCert/etcdCACert are not supported; use etcdKeyFile/etcdCertFile/etcdCACertFile", path)
		}
	case errors.Is(err, os.ErrNotExist) && e.configPath == DefaultConfigPath:
		// No default file: the environment alone configures the datastore.
	default:
		return cfg, fmt.Errorf("config file: %v", err)
	}
	env := etcd.ConfigFromEnv(e.Getenv)
	if v := e.Getenv("DATASTORE_TYPE"); v != "" {
		dsType = v
	}
	if len(env.Endpoints) > 0 {
		cfg.Endpoints = env.Endpoints
	}
	for _, o := range []struct {
		dst *string
		v   string
	}{
		{&cfg.CACertFile, env.CACertFile}, {&cfg.CertFile, env.CertFile}, {&cfg.KeyFile, env.KeyFile},
		{&cfg.Username, env.Username}, {&cfg.Password, env.Password},
	} {
		if o.v != "" {
			*o.dst = o.v
		}
	}
	switch strings.ToLower(dsType) {
	case "etcdv3", "":
	case "kubernetes":
		return cfg, errors.New("datastore type kubernetes is not supported: set DATASTORE_TYPE=etcdv3 and ETCD_ENDPOINTS")
	default:
		return cfg, fmt.Errorf("unknown datastore type %q: use etcdv3", dsType)
	}
	if len(cfg.Endpoints) == 0 {
		return cfg, errNoDatastore
	}
	cfg.DialTimeout = 5 * time.Second
	return cfg, nil
}

// Client returns the datastore client, connecting on first use.
func (e *Env) Client() (*datastore.Client, error) {
	if e.client != nil {
		return e.client, nil
	}
	cfg, err := e.datastoreConfig()
	if err != nil {
		return nil, err
	}
	if err := checkReachable(context.Background(), cfg.Endpoints); err != nil {
		return nil, err
	}
	be, err := etcd.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := firstRead(context.Background(), be, cfg.Endpoints); err != nil {
		be.Close()
		return nil, err
	}
	e.backend, e.client = be, datastore.NewClient(be)
	return e.client, nil
}

// KV returns the raw key-value store (for IPAM), connecting on first use.
func (e *Env) KV() (kv.Store, error) {
	if _, err := e.Client(); err != nil {
		return nil, err
	}
	return e.backend, nil
}
