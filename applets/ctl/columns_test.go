package ctl

import (
	"bytes"
	"testing"
)

// cells renders one JSON resource with a kind's columns.
func cells(t *testing.T, kind, doc string, headings ...string) []string {
	t.Helper()
	v, err := decodeJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	spec := tableSpecFor(kind)
	pc := &printCtx{} // no client: the default AS number is 64512
	var out []string
	for _, h := range headings {
		f, ok := spec.cols[h]
		if !ok {
			t.Fatalf("%s has no column %s", kind, h)
		}
		out = append(out, f(pc, v.(map[string]any)))
	}
	return out
}

func TestColumnsPrintLikeUpstreamTemplates(t *testing.T) {
	cases := []struct {
		kind, doc string
		headings  []string
		want      []string
	}{
		{"IPPool", `{"metadata":{"name":"p"},"spec":{"cidr":"10.0.0.0/16"}}`,
			[]string{"NAME", "NAT", "IPIPMODE", "VXLANMODE", "DISABLED", "ASSIGNMENTMODE"},
			[]string{"p", "false", "Never", "Never", "false", "<nil>"}},
		{"IPPool", `{"metadata":{"name":"p"},"spec":{"cidr":"10.0.0.0/16","natOutgoing":true,"vxlanMode":"CrossSubnet","assignmentMode":"Manual"}}`,
			[]string{"NAT", "VXLANMODE", "ASSIGNMENTMODE"}, []string{"true", "CrossSubnet", "Manual"}},
		{"Tier", `{"metadata":{"name":"t"},"spec":{"order":1000000}}`, []string{"ORDER"}, []string{"1e+06"}},
		{"Tier", `{"metadata":{"name":"t"},"spec":{"order":100.5}}`, []string{"ORDER"}, []string{"100.5"}},
		{"Tier", `{"metadata":{"name":"t"},"spec":{}}`, []string{"ORDER"}, []string{"<nil>"}},
		{"Node", `{"metadata":{"name":"n"},"spec":{}}`, []string{"ASN", "IPV4"}, []string{"", ""}},
		{"Node", `{"metadata":{"name":"n"},"spec":{"bgp":{"ipv4Address":"10.0.0.1/24"}}}`, []string{"ASN"}, []string{"(64512)"}},
		{"Node", `{"metadata":{"name":"n"},"spec":{"bgp":{"asNumber":4200000000}}}`, []string{"ASN"}, []string{"4200000000"}},
		{"BGPPeer", `{"metadata":{"name":"b"},"spec":{"peerIP":"192.0.2.1"}}`, []string{"NODE", "ASN"}, []string{"(global)", "0"}},
		{"BGPPeer", `{"metadata":{"name":"b"},"spec":{"nodeSelector":"rack == 'a'","asNumber":64513}}`, []string{"NODE", "ASN"}, []string{"rack == 'a'", "64513"}},
		{"BGPPeer", `{"metadata":{"name":"b"},"spec":{"node":"node1","nodeSelector":"all()"}}`, []string{"NODE"}, []string{"node1"}},
		{"BGPConfiguration", `{"metadata":{"name":"default"},"spec":{"logSeverityScreen":"Info","nodeToNodeMeshEnabled":false}}`,
			[]string{"LOGSEVERITY", "MESHENABLED", "ASNUMBER"}, []string{"Info", "false", "-"}},
		{"ClusterInformation", `{"metadata":{"name":"default"},"spec":{"clusterGUID":"g"}}`, []string{"DATASTOREREADY"}, []string{"<nil>"}},
		{"WorkloadEndpoint", `{"metadata":{"name":"w","namespace":"ns"},"spec":{"pod":"web-1","ipNetworks":["10.0.0.1/32","fd00::1/128"],"ipNATs":[{"internalIP":"10.0.0.1","externalIP":"192.0.2.9"}]}}`,
			[]string{"NAMESPACE", "WORKLOAD", "NETWORKS", "NATS"}, []string{"ns", "web-1", "10.0.0.1/32,fd00::1/128", "{10.0.0.1 192.0.2.9}"}},
		{"Profile", `{"metadata":{"name":"p"},"spec":{"labelsToApply":{"b":"2","a":"1"}}}`, []string{"LABELS"}, []string{"a=1,b=2"}},
		{"GlobalNetworkSet", `{"metadata":{"name":"s"},"spec":{"nets":["10.0.0.0/24","10.0.1.0/24","10.0.2.0/24","10.0.3.0/24","10.0.4.0/24","10.0.5.0/24","10.0.6.0/24"]}}`,
			[]string{"NETS"}, []string{"10.0.0.0/24,10.0.1.0/24,10.0.2.0/24,10.0.3.0/24,10.0.4.0/24,10.0.5.0/24,10.0...."}},
		{"SomeFutureKind", `{"metadata":{"name":"x"}}`, []string{"NAME"}, []string{"x"}},
	}
	for _, c := range cases {
		got := cells(t, c.kind, c.doc, c.headings...)
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s %s of %s = %q, want %q", c.kind, c.headings[i], c.doc, got[i], c.want[i])
			}
		}
	}
}

// TestTableLayout checks the tabwriter settings: each cell padded to its
// column plus three spaces, minimum width five, trailing spaces kept, a blank
// line after the table.
func TestTableLayout(t *testing.T) {
	list := &resourceList{}
	list.itemKind.Kind = "Tier"
	var buf bytes.Buffer
	if err := (tablePrinter{}).print(&buf, &printCtx{}, []any{list}); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "NAME   ORDER   \n\n"; got != want {
		t.Errorf("empty table %q, want %q", got, want)
	}
}
