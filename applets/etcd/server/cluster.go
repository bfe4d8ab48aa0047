package server

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"
)

// clusterOptions are the flags that make the server one member of a static
// cluster and give it TLS. Names and meanings are etcd's, so an operator's
// etcd command line or unit carries over.
type clusterOptions struct {
	initialCluster, initialAdvertisePeer string
	initialState, initialToken           string
	client, peer                         tlsOptions
}

// tlsOptions are one listener's certificates (client or peer side).
type tlsOptions struct {
	certFile, keyFile, trustedCAFile string
	clientCertAuth                   bool
}

func (c *clusterOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.initialCluster, "initial-cluster", "", "name=peerURL,... of every member when bootstrapping a cluster (default: this member alone)")
	fs.StringVar(&c.initialAdvertisePeer, "initial-advertise-peer-urls", "", "this member's peer URLs as the others reach them (default: the listen peer URLs)")
	fs.StringVar(&c.initialState, "initial-cluster-state", "new", "new (bootstrapping) or existing (joining a running cluster)")
	fs.StringVar(&c.initialToken, "initial-cluster-token", "etcd-cluster", "a token unique to this cluster, the same on every member")
	c.client.addFlags(fs, "", "client")
	c.peer.addFlags(fs, "peer-", "peer")
}

func (t *tlsOptions) addFlags(fs *pflag.FlagSet, prefix, who string) {
	fs.StringVar(&t.certFile, prefix+"cert-file", "", "TLS certificate for the "+who+" listener (its URLs then use https:// or unixs://)")
	fs.StringVar(&t.keyFile, prefix+"key-file", "", "TLS key for the "+who+" listener")
	fs.StringVar(&t.trustedCAFile, prefix+"trusted-ca-file", "", "CA that signs the "+who+" certificates this server accepts")
	fs.BoolVar(&t.clientCertAuth, prefix+"client-cert-auth", false, "require a "+who+" certificate signed by --"+prefix+"trusted-ca-file")
}

// apply sets the cluster and TLS parts of cfg, whose name and URLs are set.
func (c *clusterOptions) apply(cfg *embed.Config) error {
	var err error
	if c.initialAdvertisePeer != "" {
		if cfg.AdvertisePeerUrls, err = parseURLs("initial-advertise-peer-urls", c.initialAdvertisePeer); err != nil {
			return err
		}
	}
	if c.initialCluster != "" {
		if err := checkInitialCluster(cfg.Name, c.initialCluster); err != nil {
			return err
		}
		cfg.InitialCluster = c.initialCluster
	} else {
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	}
	switch c.initialState {
	case embed.ClusterStateFlagNew, embed.ClusterStateFlagExisting:
		cfg.ClusterState = c.initialState
	default:
		return fmt.Errorf("--initial-cluster-state %q: use new or existing", c.initialState)
	}
	cfg.InitialClusterToken = c.initialToken
	if err := c.client.apply("", &cfg.ClientTLSInfo.CertFile, &cfg.ClientTLSInfo.KeyFile, &cfg.ClientTLSInfo.TrustedCAFile, &cfg.ClientTLSInfo.ClientCertAuth); err != nil {
		return err
	}
	return c.peer.apply("peer-", &cfg.PeerTLSInfo.CertFile, &cfg.PeerTLSInfo.KeyFile, &cfg.PeerTLSInfo.TrustedCAFile, &cfg.PeerTLSInfo.ClientCertAuth)
}

func (t *tlsOptions) apply(prefix string, cert, key, ca *string, auth *bool) error {
	if (t.certFile == "") != (t.keyFile == "") {
		return fmt.Errorf("--%scert-file and --%skey-file go together", prefix, prefix)
	}
	if t.clientCertAuth && t.trustedCAFile == "" {
		return fmt.Errorf("--%sclient-cert-auth needs --%strusted-ca-file", prefix, prefix)
	}
	*cert, *key, *ca, *auth = t.certFile, t.keyFile, t.trustedCAFile, t.clientCertAuth
	return nil
}

// checkInitialCluster checks the name=URL list names this member, so a
// typo fails here with the flag's name rather than deep inside etcd.
func checkInitialCluster(name, s string) error {
	found := false
	for _, m := range strings.Split(s, ",") {
		n, u, ok := strings.Cut(strings.TrimSpace(m), "=")
		if !ok || n == "" {
			return fmt.Errorf("--initial-cluster: %q is not name=peerURL", m)
		}
		if _, err := parseURLs("initial-cluster", u); err != nil {
			return err
		}
		found = found || n == name
	}
	if !found {
		return fmt.Errorf("--initial-cluster does not list this member (--name %s)", name)
	}
	return nil
}
