package node

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func fakeEnv(kv ...string) (func(string) string, func() []string) {
	m := map[string]string{}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		m[k] = v
	}
	return func(k string) string { return m[k] }, func() []string { return kv }
}

func TestHelpListsEnvAndFlags(t *testing.T) {
	var out, errb bytes.Buffer
	getenv, environ := fakeEnv()
	err := run(context.Background(), &out, &errb, getenv, environ, []string{"--help"})
	if !errors.Is(err, pflag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{
		"--nodename", "NODENAME", "--ip ", "env IP)", "--ip6", "IP_AUTODETECTION_METHOD", "--as", "CALICO_NETWORKING_BACKEND",
		"CALICO_IPV4POOL_CIDR", "CALICO_IPV4POOL_BLOCK_SIZE", "CALICO_IPV4POOL_IPIP", "CALICO_IPV4POOL_VXLAN",
		"CALICO_IPV4POOL_NAT_OUTGOING", "NO_DEFAULT_POOLS", "ETCD_ENDPOINTS", "--nodename-file", "/var/lib/calico/nodename",
		"--mtu-file", "/var/lib/calico/mtu", "--run-dir", "/var/run/calico", "--health-port", "--metrics-port", "FELIX_",
	} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"NODENAME=n1"}, nil, "no etcd endpoints: set ETCD_ENDPOINTS"},
		{[]string{"NODENAME=n1", "ETCD_ENDPOINTS=http://127.0.0.1:1", "IP=300.1.1.1"}, nil, `IP="300.1.1.1"`},
		{[]string{"NODENAME=n1", "ETCD_ENDPOINTS=http://127.0.0.1:1", "NO_DEFAULT_POOLS=perhaps"}, nil, `NO_DEFAULT_POOLS="perhaps": want true or false`},
		{[]string{"NODENAME=n1", "ETCD_ENDPOINTS=http://127.0.0.1:1", "FELIX_VXLANVNI=big"}, nil, `FELIX_VXLANVNI="big": want an integer`},
		{[]string{"NODENAME=n1", "ETCD_ENDPOINTS=http://127.0.0.1:1"}, []string{"--health-port", "x"}, `FELIX_HEALTHPORT="x"`},
		{[]string{"NODENAME=n1", "ETCD_ENDPOINTS=http://127.0.0.1:1", "DATASTORE_TYPE=kubernetes"}, nil, "DATASTORE_TYPE=kubernetes is not supported"},
		{[]string{"NODENAME=n1", "ETCD_ENDPOINTS=http://127.0.0.1:1", "CALICO_IPV4POOL_VXLAN=Always", "CALICO_IPV4POOL_IPIP=Always"}, nil, "at most one encapsulation"},
		{[]string{"NODENAME=n1", "ETCD_ENDPOINTS=http://127.0.0.1:1"}, []string{"--log-format", "xml"}, `--log-format "xml"`},
		{[]string{"NODENAME=n1", "ETCD_ENDPOINTS=http://127.0.0.1:1"}, []string{"extra"}, `unexpected argument "extra"`},
	} {
		var out, errb bytes.Buffer
		getenv, environ := fakeEnv(tc.env...)
		err := run(context.Background(), &out, &errb, getenv, environ, tc.args)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %v args %v: %v, want a usage error containing %q", tc.env, tc.args, err, tc.want)
		}
	}
}

func TestNodeName(t *testing.T) {
	getenv, _ := fakeEnv("HOSTNAME= Host-A ")
	if n := nodeName("", getenv); n != "host-a" {
		t.Errorf("nodeName from HOSTNAME = %q", n)
	}
	if n := nodeName("Explicit", getenv); n != "explicit" {
		t.Errorf("nodeName from NODENAME = %q", n)
	}
}

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	getenv, environ := fakeEnv()
	if err := run(context.Background(), &out, &errb, getenv, environ, []string{"-v"}); err != nil || out.Len() == 0 {
		t.Errorf("-v: %v %q", err, out.String())
	}
}
