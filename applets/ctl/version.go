package ctl

import (
	"context"
	"fmt"
	"time"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/version"
)

// runVersion prints upstream's four lines. The cluster lines say "unknown"
// when the datastore has no ClusterInformation or cannot be reached.
func runVersion(ctx context.Context, e *Env, args []string) error {
	fs := e.newFlagSet("version", "calicoctl version [--config=<CONFIG>] [--poll=<POLL>]")
	fs.String("poll", "", "accepted for compatibility")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "Client Version:    %s\n", version.Version)
	fmt.Fprintf(e.Stdout, "Git commit:        %s\n", version.Commit)
	clusterVersion, clusterType := "unknown", "unknown"
	if c, err := e.Client(); err == nil {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		ci, err := datastore.GetOf[*api.ClusterInformation](cctx, c, api.KindClusterInformation, "", datastore.ClusterInfoName)
		cancel()
		if err == nil {
			if ci.Spec.CalicoVersion != "" {
				clusterVersion = ci.Spec.CalicoVersion
			}
			if ci.Spec.ClusterType != "" {
				clusterType = ci.Spec.ClusterType
			}
		}
	}
	fmt.Fprintf(e.Stdout, "Cluster Version:   %s\n", clusterVersion)
	fmt.Fprintf(e.Stdout, "Cluster Type:      %s\n", clusterType)
	return nil
}
