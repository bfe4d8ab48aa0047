//go:build !nogobgp

package bgp

import (
	"slices"
	"testing"

	gobgpapi "github.com/osrg/gobgp/v3/api"

	"github.com/onecalico/calico/internal/api"
)

func prependOp(as ...api.ASNumber) api.BGPFilterOperation {
	return api.BGPFilterOperation{PrependASPath: &api.BGPFilterPrependASPath{Prefix: as}}
}

// TestFilterPrependMixed: prependASPath with different AS numbers. Two
// operations stack (the later one's numbers first) and become a chain of
// statements (GoBGP prepends one number per statement) tied by a private
// mark. For an eBGP peer the list is the same: GoBGP, like BIRD 1.6, has
// put this node's AS in front before the rules run.
func TestFilterPrependMixed(t *testing.T) {
	rule := api.BGPFilterRule{ASPathPrefix: []api.ASNumber{65001}, Action: api.BGPFilterAccept, Operations: []api.BGPFilterOperation{
		prependOp(65020, 65020), prependOp(65010), {AddCommunity: &api.BGPFilterAddCommunity{Value: "65000:7"}},
	}}
	c := &calc{in: &Input{Filters: map[string]*api.BGPFilterSpec{"f": {ExportV4: []api.BGPFilterRule{rule}}}}}
	_, exp := c.filterRules([]string{"f"}, "BGPPeer p", 64512, 64512)
	if len(exp) != 1 || !slices.Equal(exp[0].Prepend, []uint32{65010, 65020, 65020}) {
		t.Fatalf("iBGP rule %+v", exp)
	}
	req := policies([]Peer{{Export: exp}}, nil)
	sts := req.Policies[1].Statements[:2]
	first, last := sts[0], sts[1]
	if first.Conditions.AsPathSet == nil || first.Actions.RouteAction != gobgpapi.RouteAction_NONE ||
		first.Actions.AsPrepend.Asn != 65020 || first.Actions.AsPrepend.Repeat != 2 || first.Actions.ExtCommunity.Type != gobgpapi.CommunityAction_ADD {
		t.Errorf("first statement %v", first)
	}
	if last.Conditions.AsPathSet != nil || last.Conditions.ExtCommunitySet == nil || last.Actions.RouteAction != gobgpapi.RouteAction_ACCEPT ||
		last.Actions.AsPrepend.Asn != 65010 || last.Actions.AsPrepend.Repeat != 1 || last.Actions.ExtCommunity.Type != gobgpapi.CommunityAction_REMOVE ||
		last.Actions.Community.Communities[0] != "65000:7" {
		t.Errorf("last statement %v", last)
	}
	if len(c.d.Problems) != 0 {
		t.Errorf("problems %q", c.d.Problems)
	}

	c = &calc{in: &Input{Filters: map[string]*api.BGPFilterSpec{"f": {ExportV4: []api.BGPFilterRule{rule}}}}}
	_, exp = c.filterRules([]string{"f"}, "BGPPeer p", 65001, 64512)
	if len(exp) != 1 || !slices.Equal(exp[0].Prepend, []uint32{65010, 65020, 65020}) || !slices.Equal(exp[0].ASPath, []uint32{65001}) || len(c.d.Problems) != 0 {
		t.Errorf("eBGP rule %+v problems %q", exp, c.d.Problems)
	}
}

// TestFilterPriority: on export a priority match holds for this node's
// own routes when it is the normal route priority (1024, or the
// BGPConfiguration's), never otherwise; on import it never matches.
// setPriority becomes LOCAL_PREF 2^31-1-priority.
func TestFilterPriority(t *testing.T) {
	prio := func(p int) api.BGPFilterRule { return api.BGPFilterRule{Priority: &p, Action: api.BGPFilterReject} }
	set := api.BGPFilterRule{Action: api.BGPFilterAccept, Operations: []api.BGPFilterOperation{{SetPriority: &api.BGPFilterSetPriority{Value: 200}}}}
	c := &calc{in: &Input{Filters: map[string]*api.BGPFilterSpec{"f": {
		ExportV4: []api.BGPFilterRule{prio(1024), prio(512), set}, ImportV4: []api.BGPFilterRule{prio(1024), set},
		ExportV6: []api.BGPFilterRule{prio(1024)},
	}}, Global: &api.BGPConfigurationSpec{IPv6NormalRoutePriority: ptr(2000)}}}
	imp, exp := c.filterRules([]string{"f"}, "BGPPeer p", 64512, 64512)
	if len(exp) != 2 || !exp[0].LocalOnly || exp[1].SetPriority != 200 || len(imp) != 1 || imp[0].SetPriority != 200 {
		t.Fatalf("import %+v export %+v", imp, exp)
	}
	req := policies([]Peer{{Import: imp, Export: exp}}, nil)
	if st := req.Policies[1].Statements[0]; st.Conditions.RouteType != gobgpapi.Conditions_ROUTE_TYPE_LOCAL {
		t.Errorf("export priority statement %v", st)
	}
	if st := req.Policies[0].Statements[0]; st.Actions.LocalPref.Value != MaxLocalPref-200 {
		t.Errorf("import setPriority statement %v", st)
	}
	for lp, want := range map[uint32]uint32{100: 0, MaxLocalPref - 1024: 1024, MaxLocalPref: 0, MaxLocalPref - MaxCarriedPriority: MaxCarriedPriority} {
		if got := PriorityOf(lp); got != want {
			t.Errorf("PriorityOf(%d) = %d, want %d", lp, got, want)
		}
	}
}
