package datastore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
)

// RecordClusterVersion creates or completes ClusterInformation as
// upstream's node start-up does: version set, types merged, lock kept.
func TestRecordClusterVersion(t *testing.T) {
	c, s := newClient(t)
	ctx := context.Background()
	key := api.ResourcePrefix + "clusterinformations/default"
	if err := c.RecordClusterVersion(ctx, "v1.2.3", "k8s,bgp"); err != nil {
		t.Fatal(err)
	}
	v := stored(t, s, key)
	for _, want := range []string{`"clusterType":"k8s,bgp"`, `"calicoVersion":"v1.2.3"`, `"datastoreReady":true`, `"clusterGUID":"`} {
		if !strings.Contains(v, want) {
			t.Errorf("first record: %s lacks %s", v, want)
		}
	}
	guid := v[strings.Index(v, `"clusterGUID":"`):][:48]
	// A second node of another type and version: types merged, version
	// replaced, GUID kept; a locked datastore stays locked.
	ci, err := datastore.GetOf[*api.ClusterInformation](ctx, c, api.KindClusterInformation, "", "default")
	if err != nil {
		t.Fatal(err)
	}
	locked := false
	ci.Spec.DatastoreReady = &locked
	if _, err := c.Update(ctx, ci); err != nil {
		t.Fatal(err)
	}
	if err := c.RecordClusterVersion(ctx, "v1.2.4", "bgp,kubeadm,"); err != nil {
		t.Fatal(err)
	}
	v = stored(t, s, key)
	for _, want := range []string{`"clusterType":"k8s,bgp,kubeadm"`, `"calicoVersion":"v1.2.4"`, `"datastoreReady":false`, guid} {
		if !strings.Contains(v, want) {
			t.Errorf("second record: %s lacks %s", v, want)
		}
	}
	// Nothing new: nothing written.
	before, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RecordClusterVersion(ctx, "v1.2.4", "k8s"); err != nil {
		t.Fatal(err)
	}
	if after, err := s.Get(ctx, key); err != nil || after.Revision != before.Revision {
		t.Errorf("a no-op record wrote: revision %d -> %v (%v)", before.Revision, after, err)
	}
}
