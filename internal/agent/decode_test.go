package agent

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/kv"
)

// TestNodeFromJSONMatchesTheResource: the lean Node decoding gives the
// model the same Node as decoding the whole resource, for every field the
// daemon reads and with the fields it skips present.
func TestNodeFromJSONMatchesTheResource(t *testing.T) {
	values := []string{
		benchNodeJSON,
		`{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{"name":"node1","uid":"291ad957-c340-4d2a-b453-f511c3427bc0","creationTimestamp":"2026-11-21T13:02:53Z"},"spec":{"bgp":{"ipv4Address":"192.0.2.10/24"}},"status":{}}`,
		`{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{"name":"n2","labels":{"rack":"b","zone":"z1"},"annotations":{"a":"b"},"ownerReferences":[{"x":1}]},` +
			`"spec":{"bgp":{"asNumber":"64512","ipv4Address":"10.0.0.2/24","ipv6Address":"fd00::2/64","ipv4IPIPTunnelAddr":"10.250.1.0","routeReflectorClusterID":"224.0.0.1"},` +
			`"ipv4VXLANTunnelAddr":"10.244.1.0","vxlanTunnelMACAddr":"66:00:00:00:00:02","ipv6VXLANTunnelAddr":"fd10::1","vxlanTunnelMACAddrV6":"66:00:00:00:00:03",` +
			`"orchRefs":[{"nodeName":"n2","orchestrator":"k8s"}],"wireguard":{"interfaceIPv4Address":"10.9.0.1"},"addresses":[{"address":"10.0.0.2"}],"interfaces":[{"name":"eth0","addresses":["10.0.0.2"]}]},` +
			`"status":{"wireguardPublicKey":"k","podCIDRs":["10.1.0.0/24"]}}`,
		`{"kind":"Node","metadata":{"name":"n3"},"spec":{"bgp":{"asNumber":64513,"ipv4Address":"not an address"},"ipv4VXLANTunnelAddr":"fd00::1","vxlanTunnelMACAddr":"bad"}}`,
		`{"kind":"Node","metadata":{"name":"n4"},"spec":{}}`,
	}
	for _, v := range values {
		key := prefixNodes + "nX"
		got, err := nodeFromJSON(key, []byte(v))
		if err != nil {
			t.Fatalf("nodeFromJSON(%s): %v", v, err)
		}
		r, err := datastore.Decode(mustKind(api.KindNode), &kv.KV{Key: key, Value: []byte(v), Revision: 7})
		if err != nil {
			t.Fatal(err)
		}
		want := nodeFromAPI(r.(*api.Node))
		want.Name = "nX"
		if !reflect.DeepEqual(got, want) {
			t.Errorf("value %s:\n got  %+v\n want %+v", v, got, want)
		}
	}
	for _, bad := range []string{`{`, `{"spec":{"bgp":{"ipv4Address":5}}}`, `{"metadata":{"labels":[1]}}`} {
		if _, err := nodeFromJSON(prefixNodes+"n", []byte(bad)); err == nil {
			t.Errorf("nodeFromJSON(%s) took a value the resource decoding refuses", bad)
		}
	}
}

// TestAllocListMatchesEncodingJSON: the block's allocations parse as
// encoding/json reads them into []*int (null: -1 here).
func TestAllocListMatchesEncodingJSON(t *testing.T) {
	for _, v := range []string{`[]`, `[0,null,1]`, ` [ null , 12 ,null ] `, "[\n0,\t3]", `[2147483647]`, `null`, `[null]`} {
		var l allocList
		if err := json.Unmarshal([]byte(v), &l); err != nil {
			t.Errorf("%s: %v", v, err)
			continue
		}
		var ref []*int
		if err := json.Unmarshal([]byte(v), &ref); err != nil {
			t.Fatal(err)
		}
		if len(l) != len(ref) {
			t.Errorf("%s: %v, want %d entries", v, l, len(ref))
			continue
		}
		for i, p := range ref {
			if want := int32(-1); (p == nil && l[i] != want) || (p != nil && int(l[i]) != *p) {
				t.Errorf("%s: entry %d is %d", v, i, l[i])
			}
		}
	}
	for _, bad := range []string{`[1,]`, `[x]`, `["1"]`, `{}`, `[1 2]`, `[2147483648]`, `[1`} {
		var l allocList
		if err := json.Unmarshal([]byte(`{"a":`+bad+`}`), &struct {
			A *allocList `json:"a"`
		}{&l}); err == nil {
			t.Errorf("%s parsed as %v", bad, l)
		}
	}
}
