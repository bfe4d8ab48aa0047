package ipam

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/testutil"
)

// binDir holds calico-ipam and calicoctl: $CALICO_BIN, or a build made
// once for this package.
var binDir string

func TestMain(m *testing.M) { os.Exit(testutil.RunWithBinary(m, &binDir)) }

// env is a test datastore with the helpers to drive the plugin.
type env struct {
	t     testing.TB
	etcd  *testutil.Etcd
	store *etcd.Store
	c     *datastore.Client
	dir   string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := testutil.StartEtcd(t)
	s, err := etcd.New(etcd.Config{Endpoints: []string{e.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &env{t: t, etcd: e, store: s, c: datastore.NewClient(s), dir: t.TempDir()}
}

func (e *env) pool(name, cidr string, mod func(*api.IPPool)) {
	e.t.Helper()
	p := api.NewIPPool()
	p.Name, p.Spec.CIDR = name, cidr
	if mod != nil {
		mod(p)
	}
	if _, err := e.c.Apply(context.Background(), p); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) node(name string) {
	e.t.Helper()
	n := api.NewNode()
	n.Name = name
	if _, err := e.c.Apply(context.Background(), n); err != nil {
		e.t.Fatal(err)
	}
}

// netconf renders a calico-ipam netconf for node.
func (e *env) netconf(version, node string, extra map[string]any) []byte {
	conf := map[string]any{
		"cniVersion":     version,
		"name":           "net1",
		"type":           "calico",
		"etcd_endpoints": e.etcd.Endpoint,
		"nodename":       node,
		"ipam_lock_file": filepath.Join(e.dir, node+".lock"),
		"ipam":           map[string]any{"type": "calico-ipam"},
	}
	for k, v := range extra {
		conf[k] = v
	}
	b, err := json.Marshal(conf)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// result of one plugin run.
type result struct {
	stdout, stderr string
	rc             int
}

// cniCmd prepares calico-ipam for one CNI command.
func cniCmd(command, containerID, cniArgs string, netconf []byte) *exec.Cmd {
	cmd := exec.Command(filepath.Join(binDir, "calico-ipam"))
	cmd.Env = []string{
		"CNI_COMMAND=" + command,
		"CNI_CONTAINERID=" + containerID,
		"CNI_NETNS=/var/run/netns/calico-ipam-test-none",
		"CNI_IFNAME=eth0",
		"CNI_PATH=/opt/cni/bin",
		"CNI_ARGS=" + cniArgs,
		"PATH=/usr/bin:/bin",
	}
	cmd.Stdin = bytes.NewReader(netconf)
	return cmd
}

func run(cmd *exec.Cmd) result {
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	rc := 0
	if ee, ok := err.(*exec.ExitError); ok {
		rc = ee.ExitCode()
	} else if err != nil {
		rc = -1
		errb.WriteString(err.Error())
	}
	return result{out.String(), errb.String(), rc}
}

func (e *env) plugin(command, containerID, cniArgs string, netconf []byte) result {
	return run(cniCmd(command, containerID, cniArgs, netconf))
}

// ctl runs calicoctl against the test datastore.
func (e *env) ctl(args ...string) result {
	cmd := exec.Command(filepath.Join(binDir, "calicoctl"), args...)
	cmd.Env = []string{"ETCD_ENDPOINTS=" + e.etcd.Endpoint, "DATASTORE_TYPE=etcdv3", "PATH=/usr/bin:/bin"}
	cmd.Dir = e.dir
	return run(cmd)
}

// cniErr decodes a CNI error printed on stdout.
func cniErr(t testing.TB, r result) (code int, msg string) {
	t.Helper()
	var e struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil {
		t.Fatalf("stdout is not a CNI error: %q (stderr %q)", r.stdout, r.stderr)
	}
	return e.Code, e.Msg
}

// addrOf extracts the first address of an ADD result.
func addrOf(t testing.TB, r result) string {
	t.Helper()
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || len(res.IPs) == 0 {
		t.Fatalf("not an ADD result: %q (rc %d, stderr %q)", r.stdout, r.rc, r.stderr)
	}
	return res.IPs[0].Address
}

func dumpIPAM(t testing.TB, s *etcd.Store) string {
	t.Helper()
	items, _, err := s.List(context.Background(), api.IPAMPrefix)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, it := range items {
		fmt.Fprintf(&b, "%s=%s\n", it.Key, it.Value)
	}
	return b.String()
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
