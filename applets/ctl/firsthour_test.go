package ctl

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/testutil"
)

// First-hour friction (issue 8, item 8): what a new user tries first.

func TestVersionAndHelpOptions(t *testing.T) {
	c := &ctlEnv{t: t, env: []string{"PATH=" + os.Getenv("PATH")}}
	for _, args := range [][]string{{"--version"}, {"-v"}} {
		r := c.run(args...)
		if r.rc != 0 || !strings.HasPrefix(r.stdout, "Client Version:") || !strings.Contains(r.stdout, "Cluster Version:   unknown") {
			t.Errorf("calicoctl %v: %s", args, r)
		}
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		r := c.run(args...)
		if r.rc != 0 || !strings.Contains(r.stdout, "Usage:") || r.stderr != "" {
			t.Errorf("calicoctl %v: %s", args, r)
		}
	}
}

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestRefusedEndpointFailsAtOnceNamingIt(t *testing.T) {
	ep := "http://" + freePort(t)
	c := &ctlEnv{t: t}
	env := []string{"ETCD_ENDPOINTS=" + ep, "DATASTORE_TYPE=etcdv3", "PATH=" + os.Getenv("PATH")}
	for _, args := range [][]string{{"get", "ippool"}, {"ipam", "show"}, {"delete", "ippool", "x"}} {
		r := c.runEnv(env, "", args...)
		oneErrorLine(t, r, "etcd endpoint "+ep+" is not reachable", "connection refused")
	}
}

// A black-holed endpoint (packets dropped, no answer at all) fails after
// the dial bound with a message naming it, not after the request timeout
// with "context deadline exceeded".
func TestBlackHoledEndpointFailsNamingIt(t *testing.T) {
	testutil.RequireRoot(t)
	ns := testutil.NewNetNS(t)
	// Frames to 10.99.0.2 go out of a veth to a peer that drops them (their
	// MAC is not its own): no reply, no ICMP error.
	testutil.RunIn(t, ns, "ip", "link", "add", "bh0", "type", "veth", "peer", "name", "bh1")
	testutil.RunIn(t, ns, "ip", "addr", "add", "10.99.0.1/24", "dev", "bh0")
	testutil.RunIn(t, ns, "ip", "link", "set", "bh0", "up")
	testutil.RunIn(t, ns, "ip", "link", "set", "bh1", "up")
	testutil.RunIn(t, ns, "ip", "neigh", "add", "10.99.0.2", "lladdr", "02:00:00:00:00:02", "dev", "bh0", "nud", "permanent")
	ep := "http://10.99.0.2:2379"
	out, err := testutil.RunInErr(ns, "env", "ETCD_ENDPOINTS="+ep, "DATASTORE_TYPE=etcdv3", filepath.Join(binDir, "calicoctl"), "get", "ippool")
	if err == nil {
		t.Fatalf("get ippool against a black hole succeeded:\n%s", out)
	}
	if !strings.Contains(out, "etcd endpoint "+ep+" did not answer within 1.5s") || strings.Contains(out, "deadline exceeded") {
		t.Errorf("output does not name the endpoint and the dial bound:\n%s", out)
	}
}

// Templates as users write them work besides upstream's own shape, and
// get --help says what a template sees.
func TestGoTemplateShapes(t *testing.T) {
	c := newCtlEnv(t)
	c.mustRun("create", "-f", "testdata/resources/pools.json")
	file := filepath.Join(t.TempDir(), "t.tmpl")
	os.WriteFile(file, []byte(`{{range .Items}}{{.Metadata.Name}}/{{.Spec.BlockSize}};{{end}}`), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "ippool", "-o", `go-template={{range .}}{{range .Items}}{{.ObjectMeta.Name}} {{end}}{{end}}`}, "v6-pool vxlan-pool "},
		{[]string{"get", "ippool", "-o", `go-template={{range .Items}}{{.Metadata.Name}}={{.Spec.CIDR}} {{end}}`}, "v6-pool=fd00:10:244::/48 vxlan-pool=10.250.0.0/16 "},
		{[]string{"get", "ippool", "vxlan-pool", "-o", `go-template={{range .Items}}{{.Name}}{{end}}|{{range .}}{{.ObjectMeta.Name}}{{end}}`}, "vxlan-pool|vxlan-pool"},
		{[]string{"get", "ippool", "-o", "go-template-file=" + file}, "v6-pool/122;vxlan-pool/26;"},
		{[]string{"get", "ippool", "-o", `go-template={{range .}}{{.Kind}} {{.Metadata.ResourceVersion | printf "%.0s"}}{{len .Items}}{{end}}`}, "IPPoolList 2"},
	} {
		if r := c.run(tc.args...); r.rc != 0 || r.stdout != tc.want {
			t.Errorf("calicoctl %s: want stdout %q\n%s", strings.Join(tc.args, " "), tc.want, r)
		}
	}
	if r := c.run("get", "--help"); r.rc != 0 || !strings.Contains(r.stderr, "{{range .Items}}{{.Metadata.Name}}") {
		t.Errorf("get --help does not document templates:\n%s", r)
	}
}

// BGPFilter, KubeControllersConfiguration and IPAMConfiguration are stored
// under upstream's keys, read back, listed and validated.
func TestNewKindsStoredAsUpstream(t *testing.T) {
	c := newCtlEnv(t)
	in := `apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: no-private}
spec:
  exportV4:
  - {cidr: 10.0.0.0/8, matchOperator: In, action: Reject}
---
apiVersion: projectcalico.org/v3
kind: KubeControllersConfiguration
metadata: {name: default}
spec:
  healthChecks: Enabled
  controllers:
    node: {reconcilerPeriod: 5m}
---
apiVersion: projectcalico.org/v3
kind: IPAMConfiguration
metadata: {name: default}
spec: {strictAffinity: true, autoAllocateBlocks: true, maxBlocksPerHost: 3}
`
	if r := c.runIn(in, "apply", "-f", "-"); r.rc != 0 || r.stdout != "Successfully applied 3 resource(s)\n" {
		t.Fatalf("apply:\n%s", r)
	}
	for key, want := range map[string]string{
		resPrefix + "bgpfilters/no-private":                 `"spec":{"exportV4":[{"cidr":"10.0.0.0/8","matchOperator":"In","action":"Reject"}]}`,
		resPrefix + "kubecontrollersconfigurations/default": `"spec":{"healthChecks":"Enabled","controllers":{"node":{"reconcilerPeriod":"5m0s"}}},"status":{}`,
		resPrefix + "ipamconfigurations/default":            `"spec":{"strictAffinity":true,"maxBlocksPerHost":3,"autoAllocateBlocks":true}`,
	} {
		v := c.value(key)
		if !strings.Contains(v, want) || !strings.Contains(v, `"apiVersion":"projectcalico.org/v3"`) {
			t.Errorf("%s = %s\nwant it to contain %s", key, v, want)
		}
	}
	if got := c.mustRun("get", "ipamconfig", "-o", "wide").stdout; got != "NAME      STRICTAFFINITY   AUTOALLOCATEBLOCKS   MAXBLOCKSPERHOST   \ndefault   true             true                 3                  \n\n" {
		t.Errorf("get ipamconfig -o wide:\n%q", got)
	}
	for _, kind := range []string{"bgpfilters", "bgpf", "kcc", "kubecontrollersconfiguration", "ipamconfigurations"} {
		if r := c.run("get", kind); r.rc != 0 || !strings.HasPrefix(r.stdout, "NAME") {
			t.Errorf("get %s:\n%s", kind, r)
		}
	}
	before := c.snapshot().rev
	bad := "apiVersion: projectcalico.org/v3\nkind: IPAMConfiguration\nmetadata: {name: mine}\nspec: {strictAffinity: true}\n"
	oneErrorLine(t, c.runIn(bad, "apply", "-f", "-"), "metadata.name", `named "default"`)
	bad = "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {name: f}\nspec:\n  importV4: [{cidr: 10.0.0.0/8, action: Accept}]\n"
	oneErrorLine(t, c.runIn(bad, "apply", "-f", "-"), "spec.importV4[0]", "matchOperator")
	if after := c.snapshot().rev; after != before {
		t.Errorf("refused applies wrote: revision %d -> %d", before, after)
	}
}

func TestNodeCheckSystem(t *testing.T) {
	testutil.RequireRoot(t)
	c := &ctlEnv{t: t, env: []string{"PATH=" + os.Getenv("PATH")}}
	r := c.run("node", "checksystem")
	if r.rc != 0 || !strings.HasSuffix(r.stdout, "System meets minimum system requirements to run Calico!\n") {
		t.Fatalf("checksystem as root:\n%s", r)
	}
	for _, want := range []string{"Checking kernel version...\n", "\t\tveth ", "\t\tnftables ", "\t\tvxlan ", "\t\tipip ", "\t\twireguard "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("checksystem output lacks %q:\n%s", want, r.stdout)
		}
	}
	// Without root nothing can be probed: unknown, said so, exit 1.
	dir, err := os.MkdirTemp("", "checksystem")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	b, err := os.ReadFile(filepath.Join(binDir, "calico"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "calico"), b, 0o755)
	os.Symlink("calico", filepath.Join(dir, "calicoctl"))
	cmd := exec.Command(filepath.Join(dir, "calicoctl"), "node", "checksystem")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "not probed") || !strings.Contains(string(out), "run as root") {
		t.Errorf("checksystem unprivileged: %v\n%s", err, out)
	}
}

// calicoctl version shows the cluster version and type calico-node records.
func TestVersionShowsClusterInformation(t *testing.T) {
	c := newCtlEnv(t)
	r := c.mustRun("version")
	if !strings.Contains(r.stdout, "Cluster Version:   unknown\nCluster Type:      unknown\n") {
		t.Errorf("version on an empty datastore:\n%s", r)
	}
	if err := datastore.NewClient(c.store).RecordClusterVersion(context.Background(), "v3.32.1-test", "k8s,bgp"); err != nil {
		t.Fatal(err)
	}
	r = c.mustRun("version")
	if !strings.HasPrefix(r.stdout, "Client Version:    ") || !strings.HasSuffix(r.stdout, "Cluster Version:   v3.32.1-test\nCluster Type:      k8s,bgp\n") {
		t.Errorf("version with ClusterInformation:\n%s", r)
	}
}
