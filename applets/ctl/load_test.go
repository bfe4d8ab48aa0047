package ctl

import (
	"strconv"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/api"
)

func TestSplitDocuments(t *testing.T) {
	in := "# leading comment\n---\na: 1\n---\n# only a comment\n---   \nb: 2\n...\n--- {c: 3}\n"
	docs := splitDocuments([]byte(in))
	var got []string
	for _, d := range docs {
		got = append(got, strings.TrimSpace(string(d.data))+"@"+strconv.Itoa(d.line))
	}
	want := []string{"a: 1@3", "b: 2@7", "{c: 3}@9"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("documents %q, want %q", got, want)
	}
}

// TestDecodeFile checks the accepted input shapes and that each refusal is
// one line naming the document and the field.
func TestDecodeFile(t *testing.T) {
	pool := func(name, spec string) string {
		return "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: " + name + "\nspec:\n" + spec
	}
	ok := []struct {
		name, in string
		n        int
	}{
		{"yaml stream", pool("a", "  cidr: 10.0.0.0/16\n") + "---\n" + pool("b", "  cidr: 10.1.0.0/16\n"), 2},
		{"json", `{"apiVersion":"projectcalico.org/v3","kind":"Node","metadata":{"name":"n1"}}`, 1},
		{"json list", `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"projectcalico.org/v3","kind":"Node","metadata":{"name":"n1"}},{"apiVersion":"projectcalico.org/v3","kind":"Node","metadata":{"name":"n2"}}]}`, 2},
		{"get -o yaml list", "apiVersion: projectcalico.org/v3\nkind: NodeList\nmetadata:\n  resourceVersion: \"9\"\nitems:\n- apiVersion: projectcalico.org/v3\n  kind: Node\n  metadata:\n    name: n1\n    resourceVersion: \"4\"\n    uid: x\n    creationTimestamp: \"2026-01-01T00:00:00Z\"\n  spec: {}\n  status: {}\n", 1},
		{"sequence", "- apiVersion: projectcalico.org/v3\n  kind: Node\n  metadata:\n    name: n1\n", 1},
		{"as number strings", pool("a", "  cidr: 10.0.0.0/16\n  blockSize: 24\n"), 1},
		{"empty", "# nothing\n---\n", 0},
	}
	for _, c := range ok {
		out, errs := decodeFile("f.yaml", []byte(c.in))
		if len(errs) != 0 || len(out) != c.n {
			t.Errorf("%s: %d resources, errors %v; want %d and none", c.name, len(out), errs, c.n)
		}
	}
	bad := []struct{ name, in, want string }{
		{"unknown kind", "apiVersion: projectcalico.org/v3\nkind: IPPol\nmetadata:\n  name: x\n", `error in f.yaml, document 1 (IPPol "x"): unknown resource kind "IPPol"`},
		{"kind case", "apiVersion: projectcalico.org/v3\nkind: ippool\nmetadata:\n  name: x\n", `unknown resource kind "ippool" (kinds are case-sensitive: did you mean "IPPool"?)`},
		{"no kind", "apiVersion: projectcalico.org/v3\nmetadata:\n  name: x\n", `error in f.yaml, document 1: kind: a kind is required`},
		{"api version", "apiVersion: projectcalico.org/v2\nkind: Node\nmetadata:\n  name: x\n", `(Node "x"): apiVersion = "projectcalico.org/v2": must be projectcalico.org/v3`},
		{"unknown field", pool("a", "  cidr: 10.0.0.0/16\n  colour: blue\n"), `(IPPool "a"): spec.colour: field is not recognized or is in the wrong location`},
		{"field case", pool("a", "  CIDR: 10.0.0.0/16\n"), `spec.CIDR: field is not recognized or is in the wrong location (field names are case-sensitive: did you mean "cidr"?)`},
		{"string for int", pool("a", "  cidr: 10.0.0.0/16\n  blockSize: \"26\"\n"), `spec.blockSize = "26": must be an integer, not a string`},
		{"float for int", pool("a", "  cidr: 10.0.0.0/16\n  blockSize: 26.5\n"), `spec.blockSize = 26.5: must be an integer that fits in 64 bits, not a number`},
		{"bool", pool("a", "  cidr: 10.0.0.0/16\n  natOutgoing: 3\n"), `spec.natOutgoing = 3: must be true or false, not a number`},
		{"list for string", pool("a", "  cidr: [10.0.0.0/16]\n"), `spec.cidr: must be a string, not a list`},
		{"nested list item", "apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata:\n  name: p\nspec:\n  ingress:\n  - action: Allow\n    source:\n      netz: [10.0.0.0/8]\n", `spec.ingress[0].source.netz: field is not recognized`},
		{"as number", "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: n1\nspec:\n  bgp:\n    asNumber: sixty\n", `spec.bgp.asNumber = "sixty": invalid AS number "sixty"`},
		{"label value type", "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: n\n  labels:\n    k8s.io/rack: 7\n", `metadata.labels["k8s.io/rack"] = 7: must be a string, not a number`},
		{"list item", `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"projectcalico.org/v3","kind":"Node","metadata":{"name":"n1"}},{"apiVersion":"projectcalico.org/v3","kind":"Nod","metadata":{"name":"n2"}}]}`, `error in f.yaml, document 1, item 2 (Nod "n2"): unknown resource kind "Nod"`},
		{"list field", `{"apiVersion":"v1","kind":"List","itemz":[]}`, `error in f.yaml, document 1: itemz: field is not recognized`},
		{"yaml", "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: n1\n---\nkind: Node\n  name: x\n", `error in f.yaml, document 2: invalid YAML: line 7: mapping values are not allowed in this context`},
		{"duplicate key", "apiVersion: projectcalico.org/v3\nkind: Node\nkind: Node\n", `error in f.yaml, document 1: invalid YAML: unmarshal errors:; line 3: key "kind" already set in map`},
		{"yaml 1.1 boolean", "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: n\n", `metadata.name = false: must be a string, not a boolean (YAML reads unquoted yes, no, on, off, y and n as booleans: quote the value)`},
		{"scalar", "just a string\n", `error in f.yaml, document 1: not a resource`},
	}
	for _, c := range bad {
		_, errs := decodeFile("f.yaml", []byte(c.in))
		if len(errs) != 1 {
			t.Errorf("%s: %d errors %v, want 1", c.name, len(errs), errs)
			continue
		}
		msg := errs[0].Error()
		if !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
			t.Errorf("%s:\n got %s\nwant %s", c.name, msg, c.want)
		}
	}
}

// TestDecodedResourceIsTyped checks a decoded resource carries its values.
func TestDecodedResourceIsTyped(t *testing.T) {
	out, errs := decodeFile("f.yaml", []byte("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: a\nspec:\n  cidr: 10.0.0.0/16\n  natOutgoing: true\n  blockSize: 24\n"))
	if len(errs) != 0 || len(out) != 1 {
		t.Fatalf("decode: %v", errs)
	}
	p, ok := out[0].res.(*api.IPPool)
	if !ok || p.Name != "a" || p.Spec.CIDR != "10.0.0.0/16" || !p.Spec.NATOutgoing || p.Spec.BlockSize != 24 || p.Kind != "IPPool" {
		t.Errorf("decoded %#v", out[0].res)
	}
	if out[0].src.String() != "f.yaml, document 1" || out[0].label() != `IPPool "a"` {
		t.Errorf("source %s, label %s", out[0].src, out[0].label())
	}
}

func TestResolveNamespace(t *testing.T) {
	wep, _ := api.LookupKind("WorkloadEndpoint")
	pool, _ := api.LookupKind("IPPool")
	cases := []struct {
		k         api.KindInfo
		res, cli  string
		all       bool
		want, err string
	}{
		{wep, "", "", false, "default", ""},
		{wep, "", "prod", false, "prod", ""},
		{wep, "prod", "", false, "prod", ""},
		{wep, "prod", "prod", false, "prod", ""},
		{wep, "qa", "prod", false, "", "resource namespace does not match client namespace. qa != prod"},
		{wep, "qa", "", true, "", ""},
		{wep, "", "prod", true, "", "cannot use both --namespace and --all-namespaces flags at the same time"},
		{pool, "", "", false, "", ""},
		{pool, "", "x", false, "", "IPPool is not namespaced"},
		{pool, "", "", true, "", "IPPool is not namespaced"},
		{pool, "x", "", false, "", "namespace should not be specified for a non-namespaced resource. IPPool is not a namespaced resource"},
	}
	for _, c := range cases {
		got, err := resolveNamespace(c.k, c.res, c.cli, c.all)
		if (err == nil) != (c.err == "") || (err != nil && err.Error() != c.err) || got != c.want {
			t.Errorf("resolveNamespace(%s, %q, %q, %v) = %q, %v; want %q, %q", c.k.Kind, c.res, c.cli, c.all, got, err, c.want, c.err)
		}
	}
}
