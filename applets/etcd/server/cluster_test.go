package server

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestClusterFlagsRefuseBadCombinations(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "a", "--initial-cluster", "b=http://127.0.0.1:2380"}, "does not list this member (--name a)"},
		{[]string{"--name", "a", "--initial-cluster", "a"}, `"a" is not name=peerURL`},
		{[]string{"--name", "a", "--initial-cluster", "a=127.0.0.1:2380"}, "--initial-cluster"},
		{[]string{"--initial-cluster-state", "joining"}, `--initial-cluster-state "joining": use new or existing`},
		{[]string{"--cert-file", "c.pem"}, "--cert-file and --key-file go together"},
		{[]string{"--peer-key-file", "k.pem"}, "--peer-cert-file and --peer-key-file go together"},
		{[]string{"--client-cert-auth"}, "--client-cert-auth needs --trusted-ca-file"},
		{[]string{"--initial-advertise-peer-urls", "nourl"}, "--initial-advertise-peer-urls"},
	} {
		var stderr bytes.Buffer
		err := run(context.Background(), &stderr, append(tc.args, "--data-dir", t.TempDir()))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

func TestClusterFlagsReachTheConfig(t *testing.T) {
	o := options{name: "m2", dataDir: t.TempDir(), listenClient: "https://127.0.0.1:2379", listenPeer: "https://127.0.0.1:2380",
		cluster: clusterOptions{
			initialCluster: "m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380", initialAdvertisePeer: "https://10.0.0.2:2380",
			initialState: "existing", initialToken: "tok",
			client: tlsOptions{certFile: "s.pem", keyFile: "s-key.pem", trustedCAFile: "ca.pem", clientCertAuth: true},
			peer:   tlsOptions{certFile: "p.pem", keyFile: "p-key.pem", trustedCAFile: "ca.pem", clientCertAuth: true},
		}}
	cfg, err := o.config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.InitialCluster != o.cluster.initialCluster || cfg.ClusterState != "existing" || cfg.InitialClusterToken != "tok" ||
		cfg.AdvertisePeerUrls[0].String() != "https://10.0.0.2:2380" {
		t.Errorf("cluster settings: %q %q %q %v", cfg.InitialCluster, cfg.ClusterState, cfg.InitialClusterToken, cfg.AdvertisePeerUrls)
	}
	if c := cfg.ClientTLSInfo; c.CertFile != "s.pem" || c.KeyFile != "s-key.pem" || c.TrustedCAFile != "ca.pem" || !c.ClientCertAuth {
		t.Errorf("client TLS: %+v", c)
	}
	if p := cfg.PeerTLSInfo; p.CertFile != "p.pem" || p.KeyFile != "p-key.pem" || !p.ClientCertAuth {
		t.Errorf("peer TLS: %+v", p)
	}
	// Without --initial-cluster the member is alone, as before.
	o.cluster = clusterOptions{initialState: "new"}
	if cfg, err = o.config(); err != nil || cfg.InitialCluster != "m2=https://127.0.0.1:2380" {
		t.Errorf("single member: %v %q", err, cfg.InitialCluster)
	}
}
