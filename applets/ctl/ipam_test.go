package ctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/ipam"
	"github.com/onecalico/calico/internal/testutil"
)

// ipamEnv is a real etcd with a calicoctl Env pointed at it.
type ipamEnv struct {
	t     *testing.T
	ep    string
	store *etcd.Store
	c     *datastore.Client
}

func newIPAMEnv(t *testing.T) *ipamEnv {
	t.Helper()
	e := testutil.StartEtcd(t)
	s, err := etcd.New(etcd.Config{Endpoints: []string{e.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &ipamEnv{t: t, ep: e.Endpoint, store: s, c: datastore.NewClient(s)}
}

// ctl runs calicoctl in-process and returns stdout, stderr and the exit code.
func (x *ipamEnv) ctl(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	env := map[string]string{"ETCD_ENDPOINTS": x.ep, "DATASTORE_TYPE": "etcdv3"}
	e := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}
	defer e.Close()
	rc := run(context.Background(), e, args)
	return out.String(), errb.String(), rc
}

// load stores an upstream dump file's keys as they are.
func (x *ipamEnv) load(file string) {
	x.t.Helper()
	f, err := os.Open(filepath.Join("testdata", file))
	if err != nil {
		x.t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	key := ""
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "#") || l == "":
		case key == "":
			key = l
		default:
			if _, err := x.store.Put(context.Background(), key, []byte(l)); err != nil {
				x.t.Fatal(err)
			}
			key = ""
		}
	}
}

func TestIPAMShowMatchesUpstream(t *testing.T) {
	x := newIPAMEnv(t)
	x.load("upstream-section2.txt") // upstream's state after one ADD
	for _, tc := range []struct {
		args   []string
		golden string
	}{
		{[]string{"ipam", "show"}, "ipam-show"},
		{[]string{"ipam", "show", "--show-blocks"}, "ipam-show-blocks"},
		{[]string{"ipam", "show", "--show-borrowed"}, "ipam-show-borrowed"},
		{[]string{"ipam", "show", "--ip=10.244.166.128"}, "ipam-show-ip"},
		{[]string{"ipam", "show", "--ip=10.244.166.129"}, "ipam-show-ip-free"},
		{[]string{"ipam", "show", "--show-configuration"}, "ipam-show-configuration"},
	} {
		out, errs, rc := x.ctl(tc.args...)
		if rc != 0 {
			t.Fatalf("%v: rc %d: %s", tc.args, rc, errs)
		}
		golden(t, tc.golden, out)
	}
	// Upstream's state after 100 ADDs: two blocks, the first full.
	y := newIPAMEnv(t)
	y.load("upstream-section1.txt")
	y.load("upstream-section5.txt")
	out, _, _ := y.ctl("ipam", "show", "--show-blocks")
	golden(t, "ipam-show-blocks-100", out)

	// Usage errors.
	if _, errs, rc := x.ctl("ipam", "show", "--ip=nope"); rc != exitUsage || !strings.Contains(errs, "invalid IP address") {
		t.Errorf("bad --ip: rc %d %q", rc, errs)
	}
	if _, _, rc := x.ctl("ipam", "frob"); rc != exitUsage {
		t.Errorf("unknown subcommand: rc %d", rc)
	}
}

func TestIPAMShowBorrowedAndOrphans(t *testing.T) {
	x := newIPAMEnv(t)
	ctx := context.Background()
	for _, n := range []string{"n1", "n2"} {
		node := api.NewNode()
		node.Name = n
		if _, err := x.c.Create(ctx, node); err != nil {
			t.Fatal(err)
		}
	}
	p := api.NewIPPool()
	p.Name, p.Spec.CIDR, p.Spec.BlockSize = "p", "10.5.0.0/30", 30
	if _, err := x.c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	a := ipam.New(x.store, ipam.Options{})
	for i := range 3 {
		if _, _, err := a.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, HandleID: fmt.Sprintf("h%d", i), Hostname: "n1", Attrs: map[string]string{"node": "n1"}}); err != nil {
			t.Fatal(err)
		}
	}
	// n2 has no block to claim: it borrows the last address of n1's block.
	if _, _, err := a.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, HandleID: "b", Hostname: "n2", Attrs: map[string]string{"node": "n2", "pod": "web", "namespace": "ns"}}); err != nil {
		t.Fatal(err)
	}
	out, _, rc := x.ctl("ipam", "show", "--show-borrowed")
	want := `+----------+----------------+-------------+-------------+------+--------------+
|    IP    | BORROWING-NODE |    BLOCK    | BLOCK OWNER | TYPE | ALLOCATED-TO |
+----------+----------------+-------------+-------------+------+--------------+
| 10.5.0.3 | n2             | 10.5.0.0/30 | n1          | pod  | ns/web       |
+----------+----------------+-------------+-------------+------+--------------+
`
	if rc != 0 || out != want {
		t.Errorf("borrowed:\n%s\nwant\n%s", out, want)
	}
	// A block outside every pool shows only with --show-blocks, under no pool row.
	if _, err := x.c.Delete(ctx, "IPPool", "", "p", ""); err != nil {
		t.Fatal(err)
	}
	out, _, _ = x.ctl("ipam", "show", "--show-blocks")
	if !strings.Contains(out, "| Block    | 10.5.0.0/30 |         4 | 4 (100%)   | 0 (0%)   |") || strings.Contains(out, "IP Pool") {
		t.Errorf("orphan block:\n%s", out)
	}
}

func TestIPAMConfigure(t *testing.T) {
	x := newIPAMEnv(t)
	out, _, rc := x.ctl("ipam", "configure", "--strictaffinity=true", "--max-blocks-per-host=4")
	if rc != 0 || out != "Successfully set StrictAffinity to: true\nSuccessfully set MaxBlocksPerHost to: 4\n" {
		t.Fatalf("configure: rc %d %q", rc, out)
	}
	item, err := x.store.Get(context.Background(), api.IPAMConfigKey)
	if err != nil || string(item.Value) != `{"strict_affinity":true,"auto_allocate_blocks":true,"maxBlocksPerHost":4,"kubeVirtVMAddressPersistence":"Enabled"}` {
		t.Fatalf("stored config %s %v", item.Value, err)
	}
	// Upstream's rule: a block limit needs strict affinity.
	_, errs, rc := x.ctl("ipam", "configure", "--strictaffinity=false")
	if rc != exitError || !strings.Contains(errs, "requires strictAffinity") {
		t.Fatalf("strict off with a limit: rc %d %q", rc, errs)
	}
	if _, errs, rc := x.ctl("ipam", "configure", "--strictaffinity=maybe"); rc != exitUsage || !strings.Contains(errs, "Use true or false") {
		t.Fatalf("bad bool: rc %d %q", rc, errs)
	}
	if _, _, rc := x.ctl("ipam", "configure"); rc != exitUsage {
		t.Fatalf("no option: rc %d", rc)
	}
}

// TestIPAMCheckAndReleaseFromReport makes leaks of every kind, checks that
// the report finds them, then releases from the report, leaving alone an
// address that was re-allocated after the report was written.
func TestIPAMCheckAndReleaseFromReport(t *testing.T) {
	x := newIPAMEnv(t)
	ctx := context.Background()
	node := api.NewNode()
	node.Name = "n1"
	node.Spec.IPv4VXLANTunnelAddr = "10.6.0.63"
	if _, err := x.c.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	p := api.NewIPPool()
	p.Name, p.Spec.CIDR = "p", "10.6.0.0/24"
	if _, err := x.c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	a := ipam.New(x.store, ipam.Options{})
	var addrs []netip.Addr
	for i := range 4 {
		v4, _, err := a.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, HandleID: fmt.Sprintf("net.c%d", i), Hostname: "n1", Attrs: map[string]string{"node": "n1"}})
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, v4[0].Addr())
	}
	// c0 and c1 have workload endpoints; c2 and c3 leaked.
	for i := range 2 {
		w := api.NewWorkloadEndpoint()
		w.Name = fmt.Sprintf("n1-cni-c%d-eth0", i)
		w.Spec.Node, w.Spec.Orchestrator, w.Spec.Endpoint = "n1", "cni", "eth0"
		w.Spec.IPNetworks = []string{addrs[i].String() + "/32"}
		if _, err := x.c.Create(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	// A handle nobody uses, and a workload address nobody allocated.
	if _, err := x.store.Create(ctx, api.HandleKey("net.orphan"), []byte(`{"block":{"10.6.0.0/26":1},"deleted":false}`)); err != nil {
		t.Fatal(err)
	}
	w := api.NewWorkloadEndpoint()
	w.Name = "n1-cni-stray-eth0"
	w.Spec.Node, w.Spec.Orchestrator, w.Spec.Endpoint = "n1", "cni", "eth0"
	w.Spec.IPNetworks = []string{"10.6.0.200/32", "192.0.2.9/32"}
	if _, err := x.c.Create(ctx, w); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "report.json")
	out, errs, rc := x.ctl("ipam", "check", "--show-problem-ips", "-o", report)
	if rc != 0 {
		t.Fatalf("check: rc %d %s", rc, errs)
	}
	for _, want := range []string{
		"Found 1 IPAM blocks.\n",
		"IPAM blocks record 4 allocations.\n",
		"Found 1 node tunnel IPs.\n",
		"Found 4 workload IPs.\n",
		"  n1 has 4 allocations\n",
		fmt.Sprintf("  %s leaked; attrs Main:net.c2 Extra:node=n1\n", addrs[2]),
		"Found 2 IPs that are allocated in IPAM but not actually in use.\n",
		"  10.6.0.63 in use by Node(n1) and in active IPAM pool but has no IPAM allocation\n",
		"  192.0.2.9 in use by Workload(default/n1-cni-stray-eth0) is not in any active IP pool\n",
		"Found 1 in-use IPs that are not in active IP pools.\n",
		"Found 2 in-use IPs that are in active IP pools but have no corresponding IPAM allocation.\n",
		"Found 1 handles with no matching IPs (and 4 handles with matches).\n",
		"Check complete; found 6 problems.\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "clusterGUID", "datastoreLocked", "clusterInformationRevision", "clusterType", "allocations", "leakedHandles"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("report lacks upstream field %q", k)
		}
	}
	if !strings.Contains(string(b), `"ID": "net.orphan"`) || !strings.Contains(string(b), `"inUse": false`) || !strings.Contains(string(b), `"sequenceNumber": `) {
		t.Errorf("report:\n%s", b)
	}

	// c3's address is released and handed out again after the report.
	if err := a.ReleaseByHandle(ctx, "net.c3"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AssignIP(ctx, ipam.AssignIPArgs{IP: addrs[3], HandleID: "net.c9", Hostname: "n1"}); err != nil {
		t.Fatal(err)
	}
	// Not locked and no --force: refused, nothing released.
	if _, errs, rc := x.ctl("ipam", "release", "--from-report="+report); rc != exitError || !strings.Contains(errs, "data store is not locked") {
		t.Fatalf("unlocked release: rc %d %q", rc, errs)
	}
	out, errs, rc = x.ctl("ipam", "release", "--from-report="+report, "--force")
	if rc != 0 {
		t.Fatalf("release: rc %d %s", rc, errs)
	}
	for _, want := range []string{"Releasing 2 old IPs...", "Released 1 IPs successfully", "1 addresses marked as leaked in the report were re-allocated since", "Released 1 handles; 0 skipped", "You may now unlock the data store."} {
		if !strings.Contains(out, want) {
			t.Errorf("release output lacks %q:\n%s", want, out)
		}
	}
	for i, want := range []string{"net.c0", "net.c1", "", "net.c9"} {
		info, err := a.Lookup(ctx, addrs[i])
		switch {
		case want == "" && err == nil:
			t.Errorf("%s (leaked) still allocated", addrs[i])
		case want != "" && (err != nil || *info.HandleID != want):
			t.Errorf("%s: %v %v, want handle %s", addrs[i], info, err, want)
		}
	}
	// Single address release.
	out, _, rc = x.ctl("ipam", "release", "--ip="+addrs[3].String())
	if rc != 0 || out != fmt.Sprintf("Successfully released IP address %s\n", addrs[3]) {
		t.Fatalf("release --ip: rc %d %q", rc, out)
	}
	if _, errs, rc := x.ctl("ipam", "release", "--ip="+addrs[3].String()); rc != exitError || !strings.Contains(errs, "is not assigned") {
		t.Fatalf("release --ip again: rc %d %q", rc, errs)
	}
	// Consistent afterwards: only the deliberate in-use-without-allocation remain.
	r, err := a.Check(ctx, ipam.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Problems == nil || len(r.LeakedHandles) != 0 || len(r.Problems.AllocatedNotInUse) != 0 || len(r.Problems.HandleCounts) != 0 || len(r.Problems.Affinities) != 0 {
		t.Fatalf("after release: %+v %+v", r.Problems, r.LeakedHandles)
	}
}
