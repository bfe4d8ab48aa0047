package policy

import (
	"encoding/json"
	"testing"

	"github.com/onecalico/calico/internal/api"
)

// Test fixtures are written as upstream's JSON, decoded and defaulted as
// the datastore does.

func decode[T api.Resource](t testing.TB, r T, js string) T {
	t.Helper()
	if err := json.Unmarshal([]byte(js), r); err != nil {
		t.Fatalf("decode %s: %v", js, err)
	}
	api.Default(r)
	return r
}

func wep(t testing.TB, js string) *api.WorkloadEndpoint {
	return decode(t, api.NewWorkloadEndpoint(), js)
}
func gnp(t testing.TB, js string) *api.GlobalNetworkPolicy {
	return decode(t, api.NewGlobalNetworkPolicy(), js)
}
func np(t testing.TB, js string) *api.NetworkPolicy { return decode(t, api.NewNetworkPolicy(), js) }
func prof(t testing.TB, js string) *api.Profile      { return decode(t, api.NewProfile(), js) }
func tier(t testing.TB, js string) *api.Tier         { return decode(t, api.NewTier(), js) }
func hep(t testing.TB, js string) *api.HostEndpoint  { return decode(t, api.NewHostEndpoint(), js) }
func netset(t testing.TB, js string) *api.NetworkSet { return decode(t, api.NewNetworkSet(), js) }
func gnetset(t testing.TB, js string) *api.GlobalNetworkSet {
	return decode(t, api.NewGlobalNetworkSet(), js)
}
