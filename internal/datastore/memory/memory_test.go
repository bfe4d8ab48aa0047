package memory_test

import (
	"testing"

	"github.com/onecalico/calico/internal/datastore/memory"
	"github.com/onecalico/calico/internal/kv"
	"github.com/onecalico/calico/internal/testutil"
)

var _ kv.Store = (*memory.Store)(nil)

// The in-memory store used by unit tests must keep the same contract as etcd.
func TestStoreConformance(t *testing.T) {
	testutil.RunKVSuite(t, func(t *testing.T) (kv.Store, func(int64)) {
		s := memory.New()
		return s, s.Compact
	})
}
