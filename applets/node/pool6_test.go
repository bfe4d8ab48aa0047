package node

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// TestIPv6ConfigErrors: bad IP6 and CALICO_IPV6POOL_* settings are one
// usage error naming the variable, before the datastore is touched.
func TestIPv6ConfigErrors(t *testing.T) {
	base := []string{"NODENAME=n1", "ETCD_ENDPOINTS=http://127.0.0.1:1"}
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"IP6=10.0.0.1"}, `IP6="10.0.0.1"`},
		{[]string{"IP6=autodetect", "CALICO_IPV6POOL_CIDR=10.0.0.0/8"}, `CALICO_IPV6POOL_CIDR="10.0.0.0/8"`},
		{[]string{"CALICO_IPV6POOL_CIDR=fd00::/64", "CALICO_IPV6POOL_BLOCK_SIZE=big"}, `CALICO_IPV6POOL_BLOCK_SIZE="big"`},
		{[]string{"CALICO_IPV6POOL_CIDR=fd00::/64", "CALICO_IPV6POOL_BLOCK_SIZE=100"}, "CALICO_IPV6POOL_BLOCK_SIZE=100: want 116-128"},
		{[]string{"CALICO_IPV6POOL_CIDR=fd00::/64", "CALICO_IPV6POOL_VXLAN=maybe"}, `CALICO_IPV6POOL_VXLAN="maybe"`},
		{[]string{"CALICO_IPV6POOL_CIDR=fd00::/64", "CALICO_IPV6POOL_NAT_OUTGOING=perhaps"}, `CALICO_IPV6POOL_NAT_OUTGOING="perhaps"`},
		{[]string{"IP6_AUTODETECTION_METHOD=bogus"}, "IP6_AUTODETECTION_METHOD"},
	} {
		var out, errb bytes.Buffer
		getenv, environ := fakeEnv(append(base, tc.env...)...)
		err := run(context.Background(), &out, &errb, getenv, environ, nil)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %v: %v, want a usage error containing %q", tc.env, err, tc.want)
		}
	}
}
