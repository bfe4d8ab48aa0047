package datastore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/kv"
)

// RecordClusterVersion is what upstream's calico-node does at start-up
// after initialising the datastore: ClusterInformation "default" gets the
// running Calico version, keeps (or gets) a cluster GUID and datastoreReady,
// and its clusterType becomes the union of the stored types and clusterType
// (comma-separated, stored order first). calicoctl version shows both.
// Concurrent nodes are safe: the update is a compare-and-swap, retried.
func (c *Client) RecordClusterVersion(ctx context.Context, calicoVersion, clusterType string) error {
	if err := c.EnsureInitialized(ctx); err != nil {
		return err
	}
	var err error
	for range 5 {
		var ci *api.ClusterInformation
		if ci, err = GetOf[*api.ClusterInformation](ctx, c, api.KindClusterInformation, "", ClusterInfoName); err != nil {
			return fmt.Errorf("read cluster information: %w", err)
		}
		if !mergeClusterInfo(&ci.Spec, calicoVersion, clusterType) {
			return nil
		}
		if _, err = c.Update(ctx, ci); !errors.Is(err, kv.ErrConflict) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("update cluster information: %w", err)
	}
	return nil
}

// mergeClusterInfo applies the version, GUID, ready flag and cluster types
// to s and reports whether anything changed.
func mergeClusterInfo(s *api.ClusterInformationSpec, calicoVersion, clusterType string) bool {
	changed := false
	if calicoVersion != "" && s.CalicoVersion != calicoVersion {
		s.CalicoVersion, changed = calicoVersion, true
	}
	if s.ClusterGUID == "" {
		s.ClusterGUID, changed = newGUID(), true
	}
	if s.DatastoreReady == nil {
		ready := true
		s.DatastoreReady, changed = &ready, true
	}
	if clusterType == "" {
		return changed
	}
	types := []string{}
	if s.ClusterType != "" {
		types = strings.Split(s.ClusterType, ",")
	}
	for _, t := range strings.Split(strings.TrimSuffix(clusterType, ","), ",") {
		if t != "" && !slices.Contains(types, t) {
			types, changed = append(types, t), true
		}
	}
	s.ClusterType = strings.Join(types, ",")
	return changed
}
