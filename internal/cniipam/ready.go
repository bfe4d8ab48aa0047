package cniipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/kv"
)

// NotReady is upstream's message when ClusterInformation says
// datastoreReady=false (e.g. during a datastore migration).
const NotReady = "Calico is currently not ready to process requests"

// CheckReady fails with code 11 (try again later) when the datastore's
// ClusterInformation says datastoreReady=false, as the calico plugin does:
// calicoctl's "datastore migrate lock" stops address changes. A missing
// ClusterInformation is not an error here (an IPAM-only datastore has none).
func (s *Session) CheckReady(ctx context.Context) error {
	k, _ := api.LookupKind(api.KindClusterInformation)
	item, err := s.Store.Get(ctx, k.Key("", "default"))
	switch {
	case errors.Is(err, kv.ErrNotFound):
		return nil
	case err != nil:
		return CNIError(fmt.Errorf("read ClusterInformation: %w", err))
	}
	var ci api.ClusterInformation
	if err := json.Unmarshal(item.Value, &ci); err != nil {
		return fmt.Errorf("decode ClusterInformation %s: %w", item.Key, err)
	}
	if !ci.Ready() {
		return types.NewError(types.ErrTryAgainLater, NotReady, "")
	}
	return nil
}
