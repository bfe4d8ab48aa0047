//go:build !nogobgp

package bgp

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	gobgpapi "github.com/osrg/gobgp/v3/api"

	"github.com/onecalico/calico/internal/api"
)

func i32(v int32) *int32 { return &v }

func TestFilterRules(t *testing.T) {
	c := &calc{in: &Input{Filters: map[string]*api.BGPFilterSpec{
		"f": {
			ImportV4: []api.BGPFilterRule{
				{CIDR: "10.0.0.0/8", MatchOperator: api.BGPFilterIn, PrefixLength: &api.BGPFilterPrefixLength{Min: i32(16), Max: i32(24)}, Action: api.BGPFilterAccept},
				{CIDR: "10.1.0.0/16", MatchOperator: api.BGPFilterNotEqual, Action: api.BGPFilterReject},
				{Source: "RemotePeers", Action: api.BGPFilterReject},
			},
			ExportV4: []api.BGPFilterRule{{Action: api.BGPFilterReject}},
		},
	}}}
	imp, exp := c.filterRules([]string{"f", "missing"}, "BGPPeer p", 64512, 64512)
	wantImp := []FilterRule{
		{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Op: api.BGPFilterIn, Min: 16, Max: 24, Accept: true},
		{Prefix: netip.MustParsePrefix("10.1.0.0/16"), Op: api.BGPFilterNotEqual, Min: 16, Max: 16},
		{}, // source RemotePeers: every imported route comes from a peer
	}
	if !slicesEqual(imp, wantImp) || !slicesEqual(exp, []FilterRule{{}}) {
		t.Errorf("import %+v export %+v", imp, exp)
	}
	if len(c.d.Problems) != 1 || !strings.Contains(strings.Join(c.d.Problems, "\n"), "missing does not exist") {
		t.Errorf("problems %q", c.d.Problems)
	}

	req := policies([]Peer{{Addr: netip.MustParseAddr("10.99.0.1")}, {Addr: netip.MustParseAddr("10.99.0.2"), Import: imp, Export: exp}}, nil)
	if len(req.Policies) != 2 || len(req.Policies[0].Statements) != 3 || len(req.Policies[1].Statements) != 1+4 {
		t.Fatalf("policies %v", req.Policies)
	}
	st := req.Policies[0].Statements[1]
	if st.Conditions.PrefixSet.Type != gobgpapi.MatchSet_INVERT || st.Actions.RouteAction != gobgpapi.RouteAction_REJECT || st.Conditions.NeighborSet.Name != "peer1" {
		t.Errorf("NotEqual reject statement %v", st)
	}
	if hashOf(req) != hashOf(policies([]Peer{{Addr: netip.MustParseAddr("10.99.0.1")}, {Addr: netip.MustParseAddr("10.99.0.2"), Import: imp, Export: exp}}, nil)) {
		t.Error("the same rules give different policies")
	}
}

func slicesEqual(a, b []FilterRule) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}
