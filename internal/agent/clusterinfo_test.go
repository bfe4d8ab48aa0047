package agent

import (
	"context"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/version"
)

// Start-up records the running version and the cluster type in
// ClusterInformation, as upstream's calico-node does (calicoctl version
// shows them).
func TestStartupRecordsClusterVersion(t *testing.T) {
	a, c := startupAgent(t, func(c *Config) { c.ClusterType = "k8s,bgp"; c.Backend = BackendVXLAN })
	ctx := context.Background()
	if err := a.startup(ctx); err != nil {
		t.Fatal(err)
	}
	ci, err := datastore.GetOf[*api.ClusterInformation](ctx, c, api.KindClusterInformation, "", "default")
	if err != nil {
		t.Fatal(err)
	}
	if ci.Spec.CalicoVersion != version.Version || ci.Spec.ClusterType != "k8s,bgp" || !ci.Ready() || len(ci.Spec.ClusterGUID) != 32 {
		t.Errorf("ClusterInformation after startup: %+v (version %s)", ci.Spec, version.Version)
	}
}
