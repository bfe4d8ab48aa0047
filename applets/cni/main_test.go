package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	cniversion "github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/testutil"
)

// binDir holds calico and calico-ipam: $CALICO_BIN, or a build made once
// for this package.
var binDir string

// debianPlugins is where Debian's containernetworking-plugins live.
const debianPlugins = "/usr/lib/cni"

func TestMain(m *testing.M) { os.Exit(testutil.RunWithBinary(m, &binDir)) }

const (
	nodeName = "node1"
	netName  = "k8s-pod-network"
	nodeIP   = "10.250.0.2"
)

// env is one node: a "node" namespace with a default route through a
// gateway namespace (proxy ARP for 169.254.1.1 needs a route toward it)
// and ip_forward=1, an etcd with the Node and an IP pool, and a CNI
// runtime (libcni) that runs plugins inside the node namespace.
type env struct {
	t     testing.TB
	etcd  *testutil.Etcd
	store *etcd.Store
	c     *datastore.Client
	dir   string
	node  string // node netns path
	gw    string // gateway netns path
	rec   *recorder
	cni   *libcni.CNIConfig
}

func newEnv(t testing.TB) *env {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireCmd(t, "ip", "ping")
	e := &env{t: t, etcd: testutil.StartEtcd(t), dir: t.TempDir(), rec: &recorder{}}
	s, err := etcd.New(etcd.Config{Endpoints: []string{e.etcd.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e.store, e.c = s, datastore.NewClient(s)
	ctx := context.Background()
	if err := e.c.EnsureInitialized(ctx); err != nil {
		t.Fatal(err)
	}
	n := api.NewNode()
	n.Name = nodeName
	n.Spec.BGP = &api.NodeBGPSpec{IPv4Address: nodeIP + "/24"}
	if _, err := e.c.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	e.pool("pool1", "10.244.0.0/16", 26)

	e.node, e.gw = testutil.NewNetNS(t), testutil.NewNetNS(t)
	nh, gh := testutil.Handle(t, e.node), testutil.Handle(t, e.gw)
	gf, err := netns.Open(e.gw)
	if err != nil {
		t.Fatal(err)
	}
	defer gf.Close()
	if err := nh.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "gw0", PeerNamespace: netlink.NsFd(gf.Fd())}); err != nil {
		t.Fatal(err)
	}
	for _, side := range []struct {
		h    *netlink.Handle
		name string
		addr string
	}{{nh, "eth0", nodeIP + "/24"}, {gh, "gw0", "10.250.0.1/24"}} {
		l, err := side.h.LinkByName(side.name)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := netlink.ParseAddr(side.addr)
		if err := side.h.AddrAdd(l, a); err != nil {
			t.Fatal(err)
		}
		if err := side.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	eth0, _ := nh.LinkByName("eth0")
	if err := nh.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.ParseIP("10.250.0.1")}); err != nil {
		t.Fatal(err)
	}
	if err := netns.SetSysctl(e.node, "net/ipv4/ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	e.cni = libcni.NewCNIConfigWithCacheDir([]string{binDir, debianPlugins}, filepath.Join(e.dir, "cache"), e.rec)
	return e
}

func (e *env) pool(name, cidr string, blockSize int) {
	e.t.Helper()
	p := api.NewIPPool()
	p.Name, p.Spec.CIDR, p.Spec.BlockSize = name, cidr, blockSize
	if _, err := e.c.Create(context.Background(), p); err != nil {
		e.t.Fatal(err)
	}
}

// plugin is the calico plugin's netconf (without cniVersion and name when
// it goes into a conflist).
func (e *env) plugin(extra map[string]any) map[string]any {
	m := map[string]any{
		"type":           "calico",
		"etcd_endpoints": e.etcd.Endpoint,
		"nodename":       nodeName,
		"ipam_lock_file": filepath.Join(e.dir, "ipam.lock"),
		"mtu_file":       filepath.Join(e.dir, "mtu"),
		"ipam":           map[string]any{"type": "calico-ipam"},
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

// conf is a single-plugin netconf.
func (e *env) conf(version string, extra map[string]any) []byte {
	m := e.plugin(extra)
	m["cniVersion"] = version
	if _, ok := m["name"]; !ok {
		m["name"] = netName
	}
	return mustJSON(e.t, m)
}

// list is a conflist of the calico plugin and then others.
func (e *env) list(version string, others ...map[string]any) []byte {
	plugins := append([]any{e.plugin(nil)}, anySlice(others)...)
	return mustJSON(e.t, map[string]any{"cniVersion": version, "name": netName, "plugins": plugins})
}

func anySlice[T any](s []T) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pod is a container: its namespace and runtime configuration.
type pod struct {
	ns string
	rt *libcni.RuntimeConf
}

func (e *env) newPod(cid string, cniArgs ...[2]string) *pod {
	ns := testutil.NewNetNS(e.t)
	return &pod{ns: ns, rt: &libcni.RuntimeConf{ContainerID: cid, NetNS: ns, IfName: "eth0", Args: cniArgs}}
}

// inNode runs fn on a thread inside the node namespace: plugins exec'd by
// libcni from there inherit it, so host-side links land in the node, never
// in the root namespace.
func (e *env) inNode(fn func() error) error { return netns.Do(e.node, fn) }

func (e *env) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Minute)
}

// The runtime's operations on a single-plugin netconf and on a conflist.
func (e *env) add(conf []byte, p *pod) (types.Result, error) {
	var res types.Result
	err := e.inNode(func() error {
		c, err := libcni.ConfFromBytes(conf)
		if err != nil {
			return err
		}
		ctx, cancel := e.ctx()
		defer cancel()
		res, err = e.cni.AddNetwork(ctx, c, p.rt)
		return err
	})
	return res, err
}

func (e *env) check(conf []byte, p *pod) error {
	return e.inNode(func() error {
		c, err := libcni.ConfFromBytes(conf)
		if err != nil {
			return err
		}
		ctx, cancel := e.ctx()
		defer cancel()
		return e.cni.CheckNetwork(ctx, c, p.rt)
	})
}

func (e *env) del(conf []byte, p *pod) error {
	return e.inNode(func() error {
		c, err := libcni.ConfFromBytes(conf)
		if err != nil {
			return err
		}
		ctx, cancel := e.ctx()
		defer cancel()
		return e.cni.DelNetwork(ctx, c, p.rt)
	})
}

func (e *env) addList(list []byte, p *pod) (types.Result, error) {
	var res types.Result
	err := e.inNode(func() error {
		l, err := libcni.ConfListFromBytes(list)
		if err != nil {
			return err
		}
		ctx, cancel := e.ctx()
		defer cancel()
		res, err = e.cni.AddNetworkList(ctx, l, p.rt)
		return err
	})
	return res, err
}

func (e *env) checkList(list []byte, p *pod) error {
	return e.inNode(func() error {
		l, err := libcni.ConfListFromBytes(list)
		if err != nil {
			return err
		}
		ctx, cancel := e.ctx()
		defer cancel()
		return e.cni.CheckNetworkList(ctx, l, p.rt)
	})
}

func (e *env) delList(list []byte, p *pod) error {
	return e.inNode(func() error {
		l, err := libcni.ConfListFromBytes(list)
		if err != nil {
			return err
		}
		ctx, cancel := e.ctx()
		defer cancel()
		return e.cni.DelNetworkList(ctx, l, p.rt)
	})
}

// recorder is libcni's Exec: it runs plugins as libcni does and keeps
// what each one printed, so tests can compare the exact stdout.
type recorder struct {
	mu    sync.Mutex
	calls []call
}

type call struct {
	plugin, command string
	stdout, stderr  string
	err             error
}

func (r *recorder) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	var stderr bytes.Buffer
	out, err := (&invoke.RawExec{Stderr: &stderr}).ExecPlugin(ctx, pluginPath, stdin, environ)
	c := call{plugin: filepath.Base(pluginPath), stdout: string(out), stderr: stderr.String(), err: err}
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "CNI_COMMAND="); ok {
			c.command = v
		}
	}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	return out, err
}

func (r *recorder) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

func (r *recorder) Decode(b []byte) (cniversion.PluginInfo, error) {
	return (&cniversion.PluginDecoder{}).Decode(b)
}

// last returns the last call of plugin with command.
func (r *recorder) last(plugin, command string) call {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.calls) - 1; i >= 0; i-- {
		if c := r.calls[i]; c.plugin == plugin && c.command == command {
			return c
		}
	}
	return call{}
}

// outcome of a direct run of the plugin binary.
type outcome struct {
	stdout, stderr string
	rc             int
}

// run executes the calico plugin directly (inside the node namespace)
// with a CNI environment, for the cases a runtime would never produce.
func (e *env) run(command, cid, podNS, cniArgs string, conf []byte, extraEnv ...string) outcome {
	var o outcome
	err := e.inNode(func() error {
		cmd := exec.Command(filepath.Join(binDir, "calico"))
		cmd.Env = append([]string{
			"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + cid, "CNI_NETNS=" + podNS, "CNI_IFNAME=eth0",
			"CNI_ARGS=" + cniArgs, "CNI_PATH=" + binDir + ":" + debianPlugins, "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		}, extraEnv...)
		cmd.Stdin = bytes.NewReader(conf)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		o = outcome{stdout: out.String(), stderr: errb.String()}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			o.rc = ee.ExitCode()
			return nil
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return o
}

// cniError decodes the CNI error a failed run printed.
func cniError(t testing.TB, o outcome) *types.Error {
	t.Helper()
	var te types.Error
	if o.rc == 0 || json.Unmarshal([]byte(o.stdout), &te) != nil {
		t.Fatalf("want a CNI error, got rc %d stdout %q stderr %q", o.rc, o.stdout, o.stderr)
	}
	return &te
}

// asCNIError extracts the CNI error from a libcni error.
func asCNIError(t testing.TB, err error) *types.Error {
	t.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("want a CNI error, got %v", err)
	}
	return te
}

// result100 converts a result to the current version.
func result100(t testing.TB, r types.Result) *types100.Result {
	t.Helper()
	res, err := types100.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// podAddr is the pod's first address.
func podAddr(t testing.TB, r types.Result) netip.Addr {
	t.Helper()
	res := result100(t, r)
	if len(res.IPs) == 0 {
		t.Fatalf("result has no address: %v", r)
	}
	a, _ := netip.AddrFromSlice(res.IPs[0].Address.IP)
	return a.Unmap()
}

// ping sends one ping from ns to dst, retrying for a few seconds (a new
// veth may still be settling).
func ping(t testing.TB, ns string, dst string) {
	t.Helper()
	err := testutil.Poll(10*time.Second, func() error {
		_, err := testutil.RunInErr(ns, "ping", "-c", "1", "-W", "1", dst)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// wepKeys lists the stored workload endpoint keys.
func (e *env) wepKeys() []string {
	return e.keys(api.ResourcePrefix + "workloadendpoints/")
}

func (e *env) keys(prefix string) []string {
	e.t.Helper()
	items, _, err := e.store.List(context.Background(), prefix)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		out = append(out, it.Key)
	}
	return out
}

// getWEP reads a workload endpoint.
func (e *env) getWEP(ns, name string) *api.WorkloadEndpoint {
	e.t.Helper()
	r, err := e.c.Get(context.Background(), api.KindWorkloadEndpoint, ns, name)
	if err != nil {
		e.t.Fatalf("get workload endpoint %s/%s: %v", ns, name, err)
	}
	return r.(*api.WorkloadEndpoint)
}

// nodeState is what the node holds that a pod may leave behind: cali*
// links and routes into the pool.
func (e *env) nodeState() []string {
	e.t.Helper()
	h := testutil.Handle(e.t, e.node)
	links, err := h.LinkList()
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, "cali") {
			out = append(out, "link "+l.Attrs().Name)
		}
	}
	routes, err := h.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst != nil && (strings.HasPrefix(r.Dst.String(), "10.24") || strings.HasPrefix(r.Dst.String(), "fd00:")) {
			out = append(out, "route "+r.Dst.String())
		}
	}
	sort.Strings(out)
	return out
}

// allocated lists the addresses held in every block.
func (e *env) allocated() []string {
	e.t.Helper()
	items, _, err := e.store.List(context.Background(), api.IPAMBlockPrefix)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		var b api.Block
		if err := json.Unmarshal(it.Value, &b); err != nil {
			e.t.Fatal(err)
		}
		cidr := netip.MustParsePrefix(b.CIDR)
		for ord, a := range b.Allocations {
			if a != nil {
				addr := cidr.Addr()
				for range ord {
					addr = addr.Next()
				}
				out = append(out, addr.String())
			}
		}
	}
	return out
}

// requireClean fails unless no link, route, endpoint, handle or allocation
// of a pod is left.
func (e *env) requireClean(t testing.TB) {
	t.Helper()
	var left []string
	left = append(left, e.nodeState()...)
	left = append(left, e.wepKeys()...)
	left = append(left, e.keys(api.IPAMHandlePrefix)...)
	for _, a := range e.allocated() {
		left = append(left, "allocated "+a)
	}
	if len(left) > 0 {
		t.Fatalf("left behind:\n%s", strings.Join(left, "\n"))
	}
}

// prefixEnd is the end of the etcd key range of everything under prefix.
func prefixEnd(prefix string) string {
	return prefix[:len(prefix)-1] + string(prefix[len(prefix)-1]+1)
}

// restrictWEPWrites turns etcd authentication on with a user "cni" that
// may read everything and write IPAM data and profiles, but not workload
// endpoints; the test's own client reconnects as root. It returns the
// environment that makes the plugin connect as "cni".
func (e *env) restrictWEPWrites() []string {
	e.t.Helper()
	srv := e.etcd.Server().Server
	ctx := context.Background()
	must := func(_ any, err error) {
		e.t.Helper()
		if err != nil {
			e.t.Fatal(err)
		}
	}
	must(srv.RoleAdd(ctx, &pb.AuthRoleAddRequest{Name: "cni"}))
	grant := func(typ authpb.Permission_Type, prefix string) {
		must(srv.RoleGrantPermission(ctx, &pb.AuthRoleGrantPermissionRequest{Name: "cni",
			Perm: &authpb.Permission{PermType: typ, Key: []byte(prefix), RangeEnd: []byte(prefixEnd(prefix))}}))
	}
	grant(authpb.READ, "/calico/")
	grant(authpb.READWRITE, api.IPAMPrefix)
	grant(authpb.READWRITE, api.ResourcePrefix+"profiles/")
	for _, u := range [][2]string{{"cni", "cni-password"}, {"root", "root-password"}} {
		must(srv.UserAdd(ctx, &pb.AuthUserAddRequest{Name: u[0], Password: u[1]}))
		must(srv.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: u[0], Role: u[0]}))
	}
	must(srv.AuthEnable(ctx, &pb.AuthEnableRequest{}))
	s, err := etcd.New(etcd.Config{Endpoints: []string{e.etcd.Endpoint}, Username: "root", Password: "root-password"})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { s.Close() })
	e.store, e.c = s, datastore.NewClient(s)
	return []string{"ETCD_USERNAME=cni", "ETCD_PASSWORD=cni-password"}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
