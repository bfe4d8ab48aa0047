package ctl

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/onecalico/calico/internal/api"
)

// Upstream v3.32.1's stored values (calico-etcd-dump.txt, sections 1 and 2),
// with uid, creationTimestamp and clusterGUID blanked.
var upstreamValues = map[string]string{
	"clusterinformations/default": `{"kind":"ClusterInformation","apiVersion":"projectcalico.org/v3","metadata":{"name":"default","uid":"UID","creationTimestamp":"TS"},"spec":{"clusterGUID":"GUID","datastoreReady":true}}`,
	"ippools/pool1":               `{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"pool1","uid":"UID","creationTimestamp":"TS"},"spec":{"cidr":"10.244.0.0/16","vxlanMode":"Never","ipipMode":"Never","natOutgoing":true,"blockSize":26,"nodeSelector":"all()","allowedUses":["Workload","Tunnel"],"assignmentMode":"Automatic"}}`,
	"nodes/node1":                 `{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{"name":"node1","uid":"UID","creationTimestamp":"TS"},"spec":{"bgp":{"ipv4Address":"192.0.2.10/24"}},"status":{}}`,
	"tiers/default":               `{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"default","uid":"UID","creationTimestamp":"TS"},"spec":{"order":1000000,"defaultAction":"Deny"},"status":{}}`,
	"tiers/kube-admin":            `{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"kube-admin","uid":"UID","creationTimestamp":"TS"},"spec":{"order":1000,"defaultAction":"Pass"},"status":{}}`,
	"tiers/kube-baseline":         `{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"kube-baseline","uid":"UID","creationTimestamp":"TS"},"spec":{"order":10000000,"defaultAction":"Pass"},"status":{}}`,
	"profiles/k8s-pod-network":    `{"kind":"Profile","apiVersion":"projectcalico.org/v3","metadata":{"name":"k8s-pod-network","uid":"UID","creationTimestamp":"TS"},"spec":{"ingress":[{"action":"Allow","source":{"selector":"has(k8s-pod-network)"},"destination":{}}],"egress":[{"action":"Allow","source":{},"destination":{}}],"labelsToApply":{"k8s-pod-network":""}}}`,
	"workloadendpoints/default/node1-cni-anchorp1-eth0": `{"kind":"WorkloadEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"node1-cni-anchorp1-eth0","namespace":"default","uid":"UID","creationTimestamp":"TS","labels":{"projectcalico.org/namespace":"default","projectcalico.org/orchestrator":"cni"}},"spec":{"orchestrator":"cni","node":"node1","containerID":"anchorp1","endpoint":"eth0","ipNetworks":["10.244.166.128/32"],"profiles":["k8s-pod-network"],"interfaceName":"calianchorp1","mac":"be:c4:27:a2:07:ce"}}`,
}

// TestApplyMultiDocumentStoresUpstreamKeysAndJSON applies one file of four
// kinds and reads etcd back: exactly upstream's keys and values, the
// ClusterInformation and built-in tiers written first, the success line as
// upstream prints it for mixed kinds.
func TestApplyMultiDocumentStoresUpstreamKeysAndJSON(t *testing.T) {
	c := newCtlEnv(t)
	r := c.mustRun("apply", "-f", "testdata/resources/cluster.yaml")
	if r.stdout != "Successfully applied 4 resource(s)\n" || r.stderr != "" {
		t.Fatalf("unexpected output:\n%s", r)
	}
	s := c.snapshot()
	wantKeys := []string{
		"clusterinformations/default", "ippools/pool1", "nodes/node1", "profiles/k8s-pod-network",
		"tiers/default", "tiers/kube-admin", "tiers/kube-baseline", "tiers/security",
	}
	for i := range wantKeys {
		wantKeys[i] = resPrefix + wantKeys[i]
	}
	if strings.Join(s.keys, "\n") != strings.Join(wantKeys, "\n") {
		t.Fatalf("keys:\n%s\nwant:\n%s", strings.Join(s.keys, "\n"), strings.Join(wantKeys, "\n"))
	}
	for k, want := range upstreamValues {
		if v, ok := s.kvs[resPrefix+k]; ok && normalize(v) != want {
			t.Errorf("%s:\n got %s\nwant %s", k, normalize(v), want)
		}
	}
	if got, want := normalize(s.kvs[resPrefix+"tiers/security"]),
		`{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"security","uid":"UID","creationTimestamp":"TS"},"spec":{"order":100,"defaultAction":"Deny"},"status":{}}`; got != want {
		t.Errorf("tiers/security:\n got %s\nwant %s", got, want)
	}
	// Upstream initialises the datastore before its first write.
	ci, pool := c.modRev(resPrefix+"clusterinformations/default"), c.modRev(resPrefix+"ippools/pool1")
	if !(ci < pool) {
		t.Errorf("ClusterInformation written at revision %d, after the pool (%d)", ci, pool)
	}
	// Applying the same file again updates in place: same uids, new revisions.
	r = c.mustRun("apply", "-f", "testdata/resources/cluster.yaml")
	s2 := c.snapshot()
	for _, k := range wantKeys {
		if normalize(s2.kvs[k]) != normalize(s.kvs[k]) || uidOf(t, s2.kvs[k]) != uidOf(t, s.kvs[k]) {
			t.Errorf("%s changed on re-apply:\n%s\n%s", k, s.kvs[k], s2.kvs[k])
		}
	}

	t.Run("BGPPeer", func(t *testing.T) {
		if _, ok := api.LookupKind("BGPPeer"); !ok {
			t.Skip("the BGPPeer kind is not in internal/api yet")
		}
		r := c.mustRun("apply", "-f", "testdata/resources/newkinds/bgppeer.yaml")
		if r.stdout != "Successfully applied 1 'BGPPeer' resource(s)\n" {
			t.Errorf("stdout %q", r.stdout)
		}
		if c.value(resPrefix+"bgppeers/rack1-tor") == "" {
			t.Errorf("no bgppeers/rack1-tor key")
		}
		want := "NAME        PEERIP      NODE       ASN     \nrack1-tor   192.0.2.1   (global)   64513   \n\n"
		if got := c.mustRun("get", "bgppeers").stdout; got != want {
			t.Errorf("get bgppeers:\n%q\nwant\n%q", got, want)
		}
	})
	t.Run("GlobalNetworkPolicy", func(t *testing.T) {
		if _, ok := api.LookupKind("GlobalNetworkPolicy"); !ok {
			t.Skip("the GlobalNetworkPolicy kind is not in internal/api yet")
		}
		c.mustRun("apply", "-f", "testdata/resources/newkinds/globalnetworkpolicy.yaml")
		if c.value(resPrefix+"globalnetworkpolicies/default.allow-dns") == "" && c.value(resPrefix+"globalnetworkpolicies/allow-dns") == "" {
			t.Errorf("no globalnetworkpolicies key for allow-dns: %v", c.snapshot().keys)
		}
		if got := c.mustRun("get", "gnp", "-o", "wide").stdout; !strings.Contains(got, "allow-dns") || !strings.Contains(got, "100") {
			t.Errorf("get gnp -o wide:\n%s", got)
		}
	})
}

func (c *ctlEnv) modRev(key string) int64 {
	c.t.Helper()
	it, err := c.store.Get(context.Background(), key)
	if err != nil {
		c.t.Fatalf("get %s: %v", key, err)
	}
	return it.Revision
}

func uidOf(t *testing.T, v string) string {
	var o struct {
		Metadata struct{ UID string } `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(v), &o); err != nil {
		t.Fatalf("decode %s: %v", v, err)
	}
	return o.Metadata.UID
}

// TestUpstreamRunOutputs repeats upstream's recorded run (create node1.yaml,
// then pool.yaml, then the endpoint and profile its CNI plugin wrote) and
// compares the values in etcd and every `get` table with upstream's, byte
// for byte including trailing spaces.
func TestUpstreamRunOutputs(t *testing.T) {
	c := newCtlEnv(t)
	dir := "testdata/resources/upstream-observed/"
	if r := c.mustRun("create", "-f", dir+"node1.yaml"); r.stdout != "Successfully created 1 'Node' resource(s)\n" {
		t.Errorf("create node: %q", r.stdout)
	}
	if r := c.mustRun("create", "-f", dir+"pool.yaml"); r.stdout != "Successfully created 1 'IPPool' resource(s)\n" {
		t.Errorf("create pool: %q", r.stdout)
	}
	// Upstream: ClusterInformation and tiers at revisions 2-5, the node at 6, the pool at 7.
	for key, rev := range map[string]int64{"clusterinformations/default": 2, "tiers/default": 3, "tiers/kube-admin": 4, "tiers/kube-baseline": 5, "nodes/node1": 6, "ippools/pool1": 7} {
		if got := c.modRev(resPrefix + key); got != rev {
			t.Errorf("%s written at revision %d, upstream %d", key, got, rev)
		}
	}
	golden(t, "get-ippool", c.mustRun("get", "ippool").stdout)
	golden(t, "get-ippool-wide", c.mustRun("get", "ippool", "-o", "wide").stdout)
	golden(t, "get-nodes-wide", c.mustRun("get", "nodes", "-o", "wide").stdout)
	golden(t, "get-tiers", c.mustRun("get", "tiers").stdout)

	c.mustRun("create", "-f", dir+"workloadendpoint.yaml")
	c.mustRun("create", "-f", dir+"profile.yaml")
	s := c.snapshot()
	for k, want := range upstreamValues {
		if got := normalize(s.kvs[resPrefix+k]); got != want {
			t.Errorf("%s:\n got %s\nwant %s", k, got, want)
		}
	}
	golden(t, "get-workloadendpoints", c.mustRun("get", "workloadendpoints").stdout)
	golden(t, "get-workloadendpoints-wide", c.mustRun("get", "workloadendpoints", "-o", "wide").stdout)
	golden(t, "get-profiles-wide", c.mustRun("get", "profiles", "-o", "wide").stdout)
}

// TestBadInputIsRefusedAndWritesNothing feeds each broken file to create and
// apply: one line on stderr naming the file, the document and the field, a
// non-zero exit, and not a single key or revision changed in etcd.
func TestBadInputIsRefusedAndWritesNothing(t *testing.T) {
	c := newCtlEnv(t)
	inv := "testdata/resources/invalid/"

	// On a fresh datastore a refused file must not even initialise it.
	r := c.run("apply", "-f", inv+"blocksize-19.yaml")
	oneErrorLine(t, r, "document 3", "spec.blockSize")
	if s := c.snapshot(); len(s.keys) != 0 {
		t.Fatalf("a refused apply wrote %v", s.keys)
	}

	c.mustRun("apply", "-f", "testdata/resources/upstream-observed/pool.yaml")
	cases := []struct {
		file string
		want []string
	}{
		{"bad-cidr.yaml", []string{`error in testdata/resources/invalid/bad-cidr.yaml, document 1 (IPPool "bad-cidr"): spec.cidr = "10.300.0.0/16": not a valid CIDR`}},
		{"blocksize-19.yaml", []string{`error in testdata/resources/invalid/blocksize-19.yaml, document 3 (IPPool "bad"): spec.blockSize = 19: must be between 20 and 32 for an IPv4 pool`}},
		{"ipip-and-vxlan.yaml", []string{`document 1 (IPPool "both-encaps"): spec: ipipMode and vxlanMode cannot both be enabled`}},
		{"unknown-kind.yaml", []string{`error in testdata/resources/invalid/unknown-kind.yaml, document 2 (IPPol "typo"): unknown resource kind "IPPol"`}},
		{"unknown-field.yaml", []string{`document 1 (IPPool "typo-field"): spec.ipipmode: field is not recognized`, `did you mean "ipipMode"`}},
		{"malformed.yaml", []string{`error in testdata/resources/invalid/malformed.yaml, document 2: invalid YAML: line 9:`}},
		{"overlap-in-file.yaml", []string{`document 2 (IPPool "narrow"): spec.cidr = "10.70.8.0/24": overlaps IPPool "wide" (10.70.0.0/16) in testdata/resources/invalid/overlap-in-file.yaml, document 1`}},
		{"overlap-existing.yaml", []string{`document 1 (IPPool "inside-pool1"): spec.cidr = "10.244.128.0/20": overlaps IPPool "pool1" (10.244.0.0/16)`}},
		{"duplicate.yaml", []string{`document 2 (Node "node5"): Node(node5) is also in testdata/resources/invalid/duplicate.yaml, document 1`}},
	}
	for _, tc := range cases {
		for _, verb := range []string{"create", "apply"} {
			t.Run(verb+"/"+tc.file, func(t *testing.T) {
				before := c.snapshot()
				r := c.run(verb, "-f", inv+tc.file)
				oneErrorLine(t, r, tc.want...)
				after := c.snapshot()
				if after.rev != before.rev || strings.Join(after.keys, ",") != strings.Join(before.keys, ",") {
					t.Errorf("etcd changed: revision %d -> %d, keys %v -> %v", before.rev, after.rev, before.keys, after.keys)
				}
			})
		}
	}
	// The same files through stdin name "stdin".
	b, err := os.ReadFile(filepath.Join("..", "..", inv, "blocksize-19.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	oneErrorLine(t, c.runIn(string(b), "create", "-f", "-"), "error in stdin, document 3 (IPPool \"bad\"): spec.blockSize = 19")
	for _, k := range []string{"ippools/good", "nodes/node2", "ippools/bad"} {
		if c.value(resPrefix+k) != "" {
			t.Errorf("%s was written although document 3 was refused", k)
		}
	}
}

// TestCreateExistingAndSkipExists: create refuses an existing resource and
// writes none of the file; --skip-exists counts it as done and creates the rest.
func TestCreateExistingAndSkipExists(t *testing.T) {
	c := newCtlEnv(t)
	c.mustRun("create", "-f", "testdata/resources/upstream-observed/pool.yaml")
	poolRev := c.modRev(resPrefix + "ippools/pool1")
	before := c.snapshot()
	r := c.run("create", "-f", "testdata/resources/cluster.yaml")
	if r.rc != 1 || !strings.Contains(r.stderr, "Failed to create any resources: error in testdata/resources/cluster.yaml, document 1 (IPPool \"pool1\"): resource already exists: IPPool(pool1)") {
		t.Fatalf("create of an existing pool:\n%s", r)
	}
	if after := c.snapshot(); after.rev != before.rev {
		t.Fatalf("refused create wrote something: %v", after.keys)
	}
	r = c.mustRun("create", "-f", "testdata/resources/cluster.yaml", "--skip-exists")
	if r.stdout != "Successfully created 4 resource(s)\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	if c.value(resPrefix+"nodes/node1") == "" || c.value(resPrefix+"tiers/security") == "" {
		t.Errorf("--skip-exists did not create the other resources")
	}
	if c.modRev(resPrefix+"ippools/pool1") != poolRev || normalize(c.value(resPrefix+"ippools/pool1")) != upstreamValues["ippools/pool1"] {
		t.Errorf("--skip-exists rewrote the existing pool")
	}
}

// TestDelete deletes by file and by kind and name; a missing name fails
// the command unless --skip-not-exists (TestDeleteSomeMissing: the others
// are still deleted); an IPPool is disabled before it is deleted.
func TestDelete(t *testing.T) {
	c := newCtlEnv(t)
	c.mustRun("apply", "-f", "testdata/resources/cluster.yaml")
	c.mustRun("apply", "-f", "testdata/resources/pools.json")

	before := c.snapshot()
	r := c.run("delete", "ippool", "nope")
	if r.rc != 1 || r.stderr != "Failed to delete 'IPPool' resource: resource does not exist: IPPool(nope) with error: <nil>\n" {
		t.Fatalf("delete of a missing name:\n%s", r)
	}
	r = c.run("delete", "ippool", "nope", "nope2")
	if r.rc != 1 || r.stderr != "Failed to delete any 'IPPool' resources: resource does not exist: IPPool(nope) with error: <nil>\n"+
		"Failed to delete any 'IPPool' resources: resource does not exist: IPPool(nope2) with error: <nil>\n" {
		t.Fatalf("delete of two missing names:\n%s", r)
	}
	if c.snapshot().rev != before.rev {
		t.Fatalf("a refused delete deleted something")
	}
	r = c.mustRun("delete", "ippool", "vxlan-pool", "nope", "--skip-not-exists")
	if r.stdout != "Successfully deleted 2 'IPPool' resource(s)\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	// The pool was written with disabled: true just before it was deleted.
	s := c.snapshot()
	if _, ok := s.kvs[resPrefix+"ippools/vxlan-pool"]; ok {
		t.Fatalf("vxlan-pool still stored")
	}
	resp, err := c.store.Client().Get(context.Background(), resPrefix+"ippools/vxlan-pool", clientv3.WithRev(s.rev-1))
	if err != nil || len(resp.Kvs) != 1 || !strings.Contains(string(resp.Kvs[0].Value), `"disabled":true`) {
		t.Errorf("the revision before the delete should hold the pool disabled: %v %v", resp, err)
	}

	r = c.mustRun("delete", "-f", "testdata/resources/cluster.yaml")
	if r.stdout != "Successfully deleted 4 resource(s)\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	for _, k := range []string{"ippools/pool1", "nodes/node1", "profiles/k8s-pod-network", "tiers/security"} {
		if c.value(resPrefix+k) != "" {
			t.Errorf("%s not deleted", k)
		}
	}
	r = c.run("delete", "clusterinformation", "default")
	if r.rc != 1 || !strings.Contains(r.stderr, "operation delete is not supported on ClusterInformation") {
		t.Errorf("delete clusterinformation:\n%s", r)
	}
}

// TestReplaceWithStaleResourceVersion: replace with the resourceVersion of a
// `get -o yaml` taken before someone else's change is a conflict and writes
// nothing; with a fresh one it succeeds.
func TestReplaceWithStaleResourceVersion(t *testing.T) {
	c := newCtlEnv(t)
	c.mustRun("create", "-f", "testdata/resources/upstream-observed/pool.yaml")
	old := c.mustRun("get", "ippool", "pool1", "-o", "yaml").stdout
	c.mustRun("patch", "ippool", "pool1", "-p", `{"spec":{"natOutgoing":false}}`)
	before := c.snapshot()
	stale := strings.Replace(old, "natOutgoing: true", "natOutgoing: true\n  disableBGPExport: true", 1)
	r := c.runIn(stale, "replace", "-f", "-")
	oneErrorLine(t, r, "Failed to replace 'IPPool' resource: error in stdin, document 1 (IPPool \"pool1\"): update conflict: IPPool(pool1): resource version '6' is out of date (latest: 7)")
	if c.snapshot().rev != before.rev {
		t.Fatalf("a conflicting replace wrote something")
	}
	fresh := c.mustRun("get", "ippool", "pool1", "-o", "yaml").stdout
	fresh = strings.Replace(fresh, "nodeSelector: all()", "nodeSelector: all()\n  disableBGPExport: true", 1)
	if r := c.runIn(fresh, "replace", "-f", "-"); r.rc != 0 || r.stdout != "Successfully replaced 1 'IPPool' resource(s)\n" {
		t.Fatalf("replace with a fresh resourceVersion:\n%s", r)
	}
	if v := c.value(resPrefix + "ippools/pool1"); !strings.Contains(v, `"disableBGPExport":true`) || uidOf(t, v) == "" {
		t.Errorf("replace did not store the change (or lost the uid): %s", v)
	}
	r = c.run("replace", "-f", "testdata/resources/upstream-observed/node1.yaml")
	if r.rc != 1 || !strings.Contains(r.stderr, "resource does not exist: Node(node1) with error: <nil>") {
		t.Errorf("replace of a missing node:\n%s", r)
	}
}

// TestPatch applies merge and JSON patches; a patch that makes the resource
// invalid or names an unknown field is refused with the field and writes nothing.
func TestPatch(t *testing.T) {
	c := newCtlEnv(t)
	c.mustRun("create", "-f", "testdata/resources/upstream-observed/node1.yaml")
	r := c.mustRun("patch", "node", "node1", "-p", `{"spec":{"bgp":{"routeReflectorClusterID":"224.0.0.1"}}}`)
	if r.stdout != "Successfully patched 1 'Node' resource\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	c.mustRun("patch", "node", "node1", "--type", "json", "-p", `[{"op":"add","path":"/spec/bgp/asNumber","value":64600},{"op":"remove","path":"/spec/bgp/routeReflectorClusterID"}]`)
	c.mustRun("patch", "node", "node1", "--type", "merge", "-p", `{"metadata":{"labels":{"rack":"r1"}}}`)
	v := normalize(c.value(resPrefix + "nodes/node1"))
	want := `{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{"name":"node1","uid":"UID","creationTimestamp":"TS","labels":{"rack":"r1"}},"spec":{"bgp":{"asNumber":64600,"ipv4Address":"192.0.2.10/24"}},"status":{}}`
	if v != want {
		t.Errorf("after patches:\n got %s\nwant %s", v, want)
	}
	golden := "NAME    ASN     IPV4            IPV6   \nnode1   64600   192.0.2.10/24          \n\n"
	if got := c.mustRun("get", "node", "-o", "wide").stdout; got != golden {
		t.Errorf("get node -o wide:\n%q\nwant\n%q", got, golden)
	}
	before := c.snapshot()
	oneErrorLine(t, c.run("patch", "node", "node1", "-p", `{"spec":{"bgp":{"ipv4Address":"not-an-ip"}}}`),
		"Hit error: the patched Node(node1) is invalid: spec.bgp.ipv4Address")
	oneErrorLine(t, c.run("patch", "node", "node1", "-p", `{"spec":{"bgp":{"ipv4address":"10.0.0.1/24"}}}`),
		"spec.bgp.ipv4address: field is not recognized")
	oneErrorLine(t, c.run("patch", "node", "nope", "-p", `{}`), "Hit error: resource does not exist: Node(nope) with error: <nil>")
	if c.snapshot().rev != before.rev {
		t.Errorf("a refused patch wrote something")
	}
}

// TestLabel adds, refuses to overwrite, overwrites and removes a label.
func TestLabel(t *testing.T) {
	c := newCtlEnv(t)
	c.mustRun("create", "-f", "testdata/resources/upstream-observed/node1.yaml")
	steps := []struct {
		args   []string
		rc     int
		stdout string
		stderr string
	}{
		{[]string{"nodes", "node1", "rack=r1"}, 0, "Successfully set label rack on nodes node1\n", ""},
		{[]string{"nodes", "node1", "rack=r2"}, 1, "", "failed to update label of nodes node1, key rack is already present. please use '--overwrite' to set a new value.\n"},
		{[]string{"nodes", "node1", "rack=r2", "--overwrite"}, 0, "Successfully updated label rack on nodes node1\n", ""},
		{[]string{"node", "node1", "zone=a"}, 0, "Successfully set label zone on node node1\n", ""},
		{[]string{"node", "node1", "zone", "--remove"}, 0, "Successfully removed label zone from node node1\n", ""},
		{[]string{"node", "node1", "zone", "--remove"}, 1, "", "cannot remove label of node node1, key zone does not exist\n"},
		{[]string{"node", "node1", "rack-"}, 0, "Successfully removed label rack from node node1\n", ""},
		{[]string{"node", "nope", "a=b"}, 1, "", "node nope not found\n"},
		{[]string{"node", "node1", "a=b=c"}, 1, "", "invalid label a=b=c\n"},
	}
	for _, s := range steps {
		r := c.run(append([]string{"label"}, s.args...)...)
		if r.rc != s.rc || r.stdout != s.stdout || r.stderr != s.stderr {
			t.Errorf("label %v:\n%s\nwant rc=%d stdout=%q stderr=%q", s.args, r, s.rc, s.stdout, s.stderr)
		}
	}
	if v := c.value(resPrefix + "nodes/node1"); strings.Contains(v, "labels") {
		t.Errorf("labels left behind: %s", v)
	}
}

// TestGetOutputFormats covers yaml, json, custom-columns, go-template,
// several names, a missing name and an unknown kind.
func TestGetOutputFormats(t *testing.T) {
	c := newCtlEnv(t)
	c.mustRun("create", "-f", "testdata/resources/upstream-observed/pool.yaml")
	c.mustRun("create", "-f", "testdata/resources/pools.json")
	rev := strconv.FormatInt(c.modRev(resPrefix+"ippools/pool1"), 10)
	uid := uidOf(t, c.value(resPrefix+"ippools/pool1"))
	var ts struct {
		Metadata struct{ CreationTimestamp string } `json:"metadata"`
	}
	json.Unmarshal([]byte(c.value(resPrefix+"ippools/pool1")), &ts)

	wantYAML := `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  creationTimestamp: "` + ts.Metadata.CreationTimestamp + `"
  name: pool1
  resourceVersion: "` + rev + `"
  uid: ` + uid + `
spec:
  allowedUses:
  - Workload
  - Tunnel
  assignmentMode: Automatic
  blockSize: 26
  cidr: 10.244.0.0/16
  ipipMode: Never
  natOutgoing: true
  nodeSelector: all()
  vxlanMode: Never
`
	if got := c.mustRun("get", "ippool", "pool1", "-o", "yaml").stdout; got != wantYAML {
		t.Errorf("get -o yaml:\n%s\nwant:\n%s", got, wantYAML)
	}
	// A list prints as IPPoolList with the store revision; it reads back as input.
	list := c.mustRun("get", "ippools", "-o", "yaml").stdout
	if !strings.HasPrefix(list, "apiVersion: projectcalico.org/v3\nitems:\n- apiVersion: projectcalico.org/v3\n  kind: IPPool\n") ||
		!strings.Contains(list, "kind: IPPoolList\nmetadata:\n  resourceVersion: \"") {
		t.Errorf("get -o yaml list:\n%s", list)
	}
	if r := c.runIn(list, "apply", "-f", "-"); r.rc != 0 || r.stdout != "Successfully applied 3 'IPPool' resource(s)\n" {
		t.Errorf("re-apply of get -o yaml:\n%s", r)
	}
	var js map[string]any
	out := c.mustRun("get", "ippool", "-o", "json").stdout
	if err := json.Unmarshal([]byte(out), &js); err != nil || js["kind"] != "IPPoolList" || len(js["items"].([]any)) != 3 {
		t.Errorf("get -o json: %v\n%s", err, out)
	}
	if !strings.HasPrefix(out, "{\n  \"kind\": \"IPPoolList\",\n  \"apiVersion\": \"projectcalico.org/v3\",\n  \"metadata\": {\n") {
		t.Errorf("get -o json field order or indent:\n%s", out)
	}
	two := c.mustRun("get", "ippool", "pool1", "v6-pool", "-o", "json").stdout
	var arr []map[string]any
	if err := json.Unmarshal([]byte(two), &arr); err != nil || len(arr) != 2 {
		t.Errorf("get two names -o json is not an array of 2: %v\n%s", err, two)
	}

	cc := c.mustRun("get", "ippool", "-o", "custom-columns=NAME,CIDR,DISABLED").stdout
	wantCC := "NAME         CIDR               DISABLED   \npool1        10.244.0.0/16      false      \nv6-pool      fd00:10:244::/48   true       \nvxlan-pool   10.250.0.0/16      false      \n\n"
	if cc != wantCC {
		t.Errorf("custom-columns:\n%q\nwant\n%q", cc, wantCC)
	}
	r := c.run("get", "ippool", "-o", "custom-columns=NAME,COLOUR")
	if r.rc != 1 || !strings.HasPrefix(r.stderr, "Unknown heading COLOUR, valid values are: ASSIGNMENTMODE, CIDR,") {
		t.Errorf("unknown custom column:\n%s", r)
	}
	tmpl := c.mustRun("get", "ippool", "-o", `go-template={{range .}}{{range .Items}}{{.ObjectMeta.Name}}={{.Spec.CIDR}} {{end}}{{end}}`).stdout
	if tmpl != "pool1=10.244.0.0/16 v6-pool=fd00:10:244::/48 vxlan-pool=10.250.0.0/16 " {
		t.Errorf("go-template: %q", tmpl)
	}

	// Each named resource is its own table; a missing one is an error line and exit 1.
	r = c.run("get", "ippool", "pool1", "nope", "vxlan-pool")
	wantTables := "NAME    CIDR            SELECTOR   \npool1   10.244.0.0/16   all()      \n\nNAME         CIDR            SELECTOR   \nvxlan-pool   10.250.0.0/16   all()      \n\n"
	if r.rc != 1 || r.stdout != wantTables || r.stderr != "resource does not exist: IPPool(nope) with error: <nil>\n" {
		t.Errorf("get with a missing name:\n%s", r)
	}
	r = c.run("get", "ipppool")
	if r.rc != 1 || r.stderr != "Failed to get resources: resource type 'ipppool' is not supported\n" {
		t.Errorf("unknown kind:\n%s", r)
	}
	if r := c.run("get", "ippool", "-A"); r.rc != 1 || r.stderr != "Failed to get resources: IPPool is not namespaced\n" {
		t.Errorf("-A on a global kind:\n%s", r)
	}
}

// TestWorkloadEndpointNamespaces covers -n and -A for a namespaced kind.
func TestWorkloadEndpointNamespaces(t *testing.T) {
	c := newCtlEnv(t)
	c.mustRun("apply", "-f", "testdata/resources/workloadendpoints.yaml")
	if c.value(resPrefix+"workloadendpoints/prod/node1-cni-db1-eth0") == "" {
		t.Fatalf("no WEP in namespace prod: %v", c.snapshot().keys)
	}
	checks := []struct {
		args []string
		want string
	}{
		{[]string{"get", "wep"}, "WORKLOAD   NODE    NETWORKS            INTERFACE   \n           node1   10.244.166.128/32   caliweb1    \n\n"},
		{[]string{"get", "wep", "-n", "prod"}, "NAMESPACE   WORKLOAD   NODE    NETWORKS            INTERFACE   \nprod                   node1   10.244.166.129/32   calidb1     \n\n"},
		{[]string{"get", "workloadendpoints", "-A"}, "NAMESPACE   WORKLOAD   NODE    NETWORKS            INTERFACE   \ndefault                node1   10.244.166.128/32   caliweb1    \nprod                   node1   10.244.166.129/32   calidb1     \n\n"},
		{[]string{"get", "wep", "-a", "-o", "custom-columns=NAMESPACE,NAME"}, "NAMESPACE   NAME                  \ndefault     node1-cni-web1-eth0   \nprod        node1-cni-db1-eth0    \n\n"},
		{[]string{"get", "wep", "node1-cni-db1-eth0", "-n", "prod", "-o", "custom-columns=NAME,ORCHESTRATOR"}, "NAME                 ORCHESTRATOR   \nnode1-cni-db1-eth0   cni            \n\n"},
	}
	for _, ch := range checks {
		if got := c.mustRun(ch.args...).stdout; got != ch.want {
			t.Errorf("%v:\n%q\nwant\n%q", ch.args, got, ch.want)
		}
	}
	if r := c.run("get", "wep", "node1-cni-db1-eth0"); r.rc != 1 || r.stderr != "resource does not exist: WorkloadEndpoint(default/node1-cni-db1-eth0) with error: <nil>\n" {
		t.Errorf("WEP of another namespace without -n:\n%s", r)
	}
	if r := c.run("get", "wep", "x", "-A"); r.rc != 1 || !strings.Contains(r.stderr, "cannot use --all-namespace flag for getting a single resource") {
		t.Errorf("-A with a name:\n%s", r)
	}
	if r := c.run("get", "wep", "-A", "-n", "prod"); r.rc != 1 || !strings.Contains(r.stderr, "cannot use both --namespace and --all-namespaces flags at the same time") {
		t.Errorf("-A with -n:\n%s", r)
	}
	r := c.mustRun("delete", "wep", "node1-cni-db1-eth0", "-n", "prod")
	if r.stdout != "Successfully deleted 1 'WorkloadEndpoint' resource(s)\n" || c.value(resPrefix+"workloadendpoints/prod/node1-cni-db1-eth0") != "" {
		t.Errorf("delete -n prod:\n%s", r)
	}
	// A file without namespaces takes -n; a mismatch with the file is an error.
	doc := "apiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata:\n  name: office\nspec:\n  nets: [192.0.2.0/24]\n"
	if r := c.runIn(doc, "apply", "-f", "-", "-n", "dev"); r.rc != 0 || c.value(resPrefix+"networksets/dev/office") == "" {
		t.Errorf("apply -n dev:\n%s\n%v", r, c.snapshot().keys)
	}
	withNS := strings.Replace(doc, "name: office", "name: office\n  namespace: qa", 1)
	if r := c.runIn(withNS, "apply", "-f", "-", "-n", "dev"); r.rc != 1 || !strings.Contains(r.stderr, "resource namespace does not match client namespace. qa != dev") {
		t.Errorf("namespace mismatch:\n%s", r)
	}
}

// TestConfigFileAndValidate: -c names the datastore instead of the
// environment; validate checks fields without a datastore, and the
// datastore's checks when there is one, and never writes.
func TestConfigFileAndValidate(t *testing.T) {
	c := newCtlEnv(t)
	cfg := filepath.Join(t.TempDir(), "calicoctl.cfg")
	os.WriteFile(cfg, []byte("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata:\nspec:\n  datastoreType: etcdv3\n  etcdEndpoints: "+c.etcd.Endpoint+"\n"), 0o644)
	noEnv := []string{"PATH=" + os.Getenv("PATH")}
	r := c.runEnv(noEnv, "", "apply", "-f", "testdata/resources/upstream-observed/pool.yaml", "-c", cfg)
	if r.rc != 0 || r.stdout != "Successfully applied 1 'IPPool' resource(s)\n" {
		t.Fatalf("apply -c:\n%s", r)
	}
	if r := c.runEnv(noEnv, "", "get", "pool", "--config="+cfg); r.rc != 0 || !strings.Contains(r.stdout, "pool1   10.244.0.0/16") {
		t.Errorf("get --config:\n%s", r)
	}
	if r := c.runEnv(noEnv, "", "get", "pool"); r.rc != 1 || !strings.Contains(r.stderr, "Failed to create Calico API client: no datastore configured") {
		t.Errorf("get with no datastore:\n%s", r)
	}

	before := c.snapshot()
	// Without a datastore: fields only, so the overlap with pool1 passes.
	r = c.runEnv(noEnv, "", "validate", "-f", "testdata/resources/invalid/overlap-existing.yaml")
	if r.rc != 0 || r.stdout != "Successfully validated 1 'IPPool' resource(s)\n" || r.stderr != "" {
		t.Errorf("validate without datastore:\n%s", r)
	}
	r = c.runEnv(noEnv, "", "validate", "-f", "testdata/resources/invalid/blocksize-19.yaml")
	oneErrorLine(t, r, "failed to validate any resources: error in testdata/resources/invalid/blocksize-19.yaml, document 3 (IPPool \"bad\"): spec.blockSize = 19")
	// With one: the overlap is found.
	oneErrorLine(t, c.run("validate", "-f", "testdata/resources/invalid/overlap-existing.yaml"), `overlaps IPPool "pool1"`)
	if r := c.run("validate", "-f", "testdata/resources", "-R"); r.rc != 1 || strings.Count(r.stderr, "\n") < 3 {
		t.Errorf("validate -R of a directory with bad files:\n%s", r)
	}
	if r := c.run("validate", "-f", "testdata/resources"); r.rc != 0 || r.stdout != "Successfully validated 8 resource(s)\n" {
		t.Errorf("validate of the good fixtures:\n%s", r)
	}
	if c.snapshot().rev != before.rev {
		t.Errorf("validate wrote to etcd")
	}
}

// TestEmptyInput: a file with no resources is an error unless --skip-empty.
func TestEmptyInput(t *testing.T) {
	c := newCtlEnv(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.yaml")
	os.WriteFile(empty, []byte("# nothing here\n---\n"), 0o644)
	if r := c.run("apply", "-f", empty); r.rc != 1 || r.stderr != "No resources specified in file "+empty+"\n" {
		t.Errorf("empty file:\n%s", r)
	}
	if r := c.run("apply", "-f", empty, "--skip-empty"); r.rc != 0 || r.stdout != "No resources specified\n" {
		t.Errorf("empty file with --skip-empty:\n%s", r)
	}
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	if r := c.run("apply", "-f", sub); r.rc != 1 || r.stderr != "No resources specified in directory "+sub+"\n" {
		t.Errorf("empty directory:\n%s", r)
	}
	if r := c.run("apply", "-f", filepath.Join(dir, "missing.yaml")); r.rc != 1 || r.stderr != "Failed to execute command: open "+filepath.Join(dir, "missing.yaml")+": no such file or directory\n" {
		t.Errorf("missing file:\n%s", r)
	}
	if s := c.snapshot(); len(s.keys) != 0 {
		t.Errorf("wrote %v", s.keys)
	}
}
