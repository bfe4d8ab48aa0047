package agent

import (
	"testing"

	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/testutil"
)

// etcdStore starts a real etcd for the test and connects to it; the
// connection closes when the test ends.
func etcdStore(t testing.TB) *etcd.Store {
	t.Helper()
	e := testutil.StartEtcd(t)
	st, err := etcd.New(etcd.Config{Endpoints: []string{e.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// EtcdStore is etcdStore for the external tests (package agent_test).
var EtcdStore = etcdStore
