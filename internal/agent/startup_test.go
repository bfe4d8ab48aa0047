package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/kv"
	"github.com/onecalico/calico/internal/testutil"
)

// startupAgent is an Agent over a real etcd whose kernel work happens in a
// fresh namespace holding eth0 10.99.0.11/24.
func startupAgent(t *testing.T, mut func(*Config)) (*Agent, *datastore.Client) {
	t.Helper()
	ns := testutil.NewNetNS(t)
	testutil.RunIn(t, ns, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
	testutil.RunIn(t, ns, "ip", "addr", "add", "10.99.0.11/24", "dev", "eth0")
	e := testutil.StartEtcd(t)
	st, err := etcd.New(etcd.Config{Endpoints: []string{e.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	dir := t.TempDir()
	cfg := Config{Store: st, NodeName: "n1", NetNS: ns, NodenameFile: filepath.Join(dir, "nodename"),
		MTUFile: filepath.Join(dir, "mtu"), RunDir: filepath.Join(dir, "run")}
	if mut != nil {
		mut(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a, datastore.NewClient(st)
}

func TestStartupRegistersNode(t *testing.T) {
	a, c := startupAgent(t, func(c *Config) { c.AS = "64513"; c.Backend = BackendVXLAN })
	ctx := context.Background()
	// Another component already wrote fields on our Node.
	n := api.NewNode()
	n.Name = "n1"
	n.Labels = map[string]string{"zone": "z1"}
	n.Spec.IPv4VXLANTunnelAddr = "10.244.1.0"
	n.Spec.OrchRefs = []api.OrchRef{{NodeName: "n1", Orchestrator: "k8s"}}
	if _, err := c.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := a.startup(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := datastore.GetOf[*api.Node](ctx, c, api.KindNode, "", "n1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.BGP == nil || got.Spec.BGP.IPv4Address != "10.99.0.11/24" || got.Spec.BGP.ASNumber == nil || *got.Spec.BGP.ASNumber != 64513 ||
		got.Labels["zone"] != "z1" || got.Spec.IPv4VXLANTunnelAddr != "10.244.1.0" || len(got.Spec.OrchRefs) != 1 {
		b, _ := json.Marshal(got)
		t.Errorf("node after startup: %s", b)
	}
	rev := got.ResourceVersion
	// A second startup with nothing new writes nothing.
	if err := a.startup(ctx); err != nil {
		t.Fatal(err)
	}
	again, _ := datastore.GetOf[*api.Node](ctx, c, api.KindNode, "", "n1")
	if again.ResourceVersion != rev {
		t.Errorf("idempotent startup rewrote the node (%s -> %s)", rev, again.ResourceVersion)
	}
	if _, err := c.Get(ctx, api.KindClusterInformation, "", "default"); err != nil {
		t.Errorf("ClusterInformation: %v", err)
	}
	pool, err := datastore.GetOf[*api.IPPool](ctx, c, api.KindIPPool, "", "default-ipv4-ippool")
	if err != nil || pool.Spec.CIDR != "192.168.0.0/16" || pool.Spec.VXLANMode != api.VXLANModeAlways || pool.Spec.IPIPMode != api.IPIPModeNever ||
		!pool.Spec.NATOutgoing || pool.Spec.BlockSize != 26 {
		t.Errorf("default pool: %+v %v", pool, err)
	}
	for name, want := range map[string]string{
		"default": `"logSeverityScreen":"Info"`,
		"node.n1": `"defaultEndpointToHostAction":"Return"`,
	} {
		item, err := a.store.Get(ctx, felixKey(name))
		if err != nil || !strings.Contains(string(item.Value), want) || !strings.HasPrefix(string(item.Value), `{"kind":"FelixConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"`+name+`","uid":"`) {
			t.Errorf("FelixConfiguration %s: %v %s", name, err, item.Value)
		}
	}
	if item, _ := a.store.Get(ctx, felixKey("default")); !strings.Contains(string(item.Value), `"reportingInterval":"0s"`) {
		t.Errorf("default FelixConfiguration lacks reportingInterval: %s", item.Value)
	}
}

func TestStartupKeepsExistingConfig(t *testing.T) {
	a, c := startupAgent(t, nil)
	ctx := context.Background()
	// An existing pool means no default pool; existing FelixConfiguration
	// fields stay and only missing ones are filled in.
	p := api.NewIPPool()
	p.Name = "mine"
	p.Spec.CIDR = "10.50.0.0/16"
	if _, err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.Create(ctx, felixKey("default"), []byte(`{"kind":"FelixConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{"logSeverityScreen":"Debug","bpfEnabled":false}}`)); err != nil {
		t.Fatal(err)
	}
	if err := a.startup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, api.KindIPPool, "", "default-ipv4-ippool"); !errors.Is(err, kv.ErrNotFound) {
		t.Errorf("default pool created although a pool exists: %v", err)
	}
	item, _ := a.store.Get(ctx, felixKey("default"))
	var f struct {
		Spec map[string]any `json:"spec"`
	}
	_ = json.Unmarshal(item.Value, &f)
	if f.Spec["logSeverityScreen"] != "Debug" || f.Spec["bpfEnabled"] != false || f.Spec["reportingInterval"] != "0s" {
		t.Errorf("FelixConfiguration default: %s", item.Value)
	}
	if a.model.Felix.LogSeverityScreen != "Debug" {
		t.Errorf("loaded logSeverityScreen %q", a.model.Felix.LogSeverityScreen)
	}
}

func TestStartupRefusesAnotherNodesAddress(t *testing.T) {
	a, c := startupAgent(t, func(c *Config) { c.NoDefaultPools = true })
	ctx := context.Background()
	n := api.NewNode()
	n.Name = "other"
	n.Spec.BGP = &api.NodeBGPSpec{IPv4Address: "10.99.0.11/24"}
	if _, err := c.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	err := a.startup(ctx)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "IPv4 address 10.99.0.11 is already used by node other") {
		t.Errorf("startup: %v", err)
	}
	if _, err := c.Get(ctx, api.KindNode, "", "n1"); !errors.Is(err, kv.ErrNotFound) {
		t.Errorf("node n1 written despite the conflict: %v", err)
	}
}

func TestStartupAutodetectFails(t *testing.T) {
	a, _ := startupAgent(t, func(c *Config) { c.IPAutodetect = "interface=nothing.*" })
	err := a.startup(context.Background())
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "no IPv4 address found") {
		t.Errorf("startup: %v", err)
	}
}

// fakeTunnels is an in-memory TunnelAddresser.
type fakeTunnels struct {
	mu       sync.Mutex
	next     map[TunnelKind]netip.Addr
	held     map[TunnelKind]netip.Addr
	released []TunnelKind
	pools    [][]string
}

func (f *fakeTunnels) EnsureTunnelAddress(_ context.Context, host string, kind TunnelKind, pools []string) (netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pools = append(f.pools, pools)
	if a, ok := f.held[kind]; ok {
		return a, nil
	}
	f.held[kind] = f.next[kind]
	return f.next[kind], nil
}

func (f *fakeTunnels) ReleaseTunnelAddress(_ context.Context, host string, kind TunnelKind) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.held, kind)
	f.released = append(f.released, kind)
	return nil
}

func TestTunnelAddresses(t *testing.T) {
	ft := &fakeTunnels{next: map[TunnelKind]netip.Addr{TunnelVXLAN: ip("10.244.7.0"), TunnelIPIP: ip("10.250.7.0")}, held: map[TunnelKind]netip.Addr{}}
	a, c := startupAgent(t, func(c *Config) { c.Tunnels = ft; c.NoDefaultPools = true })
	ctx := context.Background()
	if err := a.startup(ctx); err != nil {
		t.Fatal(err)
	}
	mk := func(name, cidr string, v api.VXLANMode, i api.IPIPMode, sel string) {
		p := api.NewIPPool()
		p.Name, p.Spec.CIDR, p.Spec.VXLANMode, p.Spec.IPIPMode, p.Spec.NodeSelector = name, cidr, v, i, sel
		if _, err := c.Apply(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	mk("vx", "10.244.0.0/16", api.VXLANModeCrossSubnet, api.IPIPModeNever, "")
	mk("ip", "10.250.0.0/16", api.VXLANModeNever, api.IPIPModeAlways, "")
	mk("elsewhere", "10.251.0.0/16", api.VXLANModeAlways, api.IPIPModeNever, "rack == 'b'")
	if err := a.syncTunnelsOnce(ctx); err != nil {
		t.Fatal(err)
	}
	n, _ := datastore.GetOf[*api.Node](ctx, c, api.KindNode, "", "n1")
	if n.Spec.IPv4VXLANTunnelAddr != "10.244.7.0" || n.Spec.VXLANTunnelMACAddr != VTEPMAC("n1").String() ||
		n.Spec.BGP == nil || n.Spec.BGP.IPv4IPIPTunnelAddr != "10.250.7.0" || n.Spec.BGP.IPv4Address != "10.99.0.11/24" {
		b, _ := json.Marshal(n)
		t.Errorf("node: %s", b)
	}
	if len(ft.pools) != 2 || strings.Join(ft.pools[0], ",") != "10.244.0.0/16" {
		t.Errorf("pools asked for: %q (the pool selecting other nodes must not be offered)", ft.pools)
	}
	// Pools go: addresses are released and the fields cleared.
	for _, name := range []string{"vx", "ip", "elsewhere"} {
		if _, err := c.Delete(ctx, api.KindIPPool, "", name, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.syncTunnelsOnce(ctx); err != nil {
		t.Fatal(err)
	}
	n, _ = datastore.GetOf[*api.Node](ctx, c, api.KindNode, "", "n1")
	if n.Spec.IPv4VXLANTunnelAddr != "" || n.Spec.VXLANTunnelMACAddr != "" || n.Spec.BGP.IPv4IPIPTunnelAddr != "" || n.Spec.BGP.IPv4Address != "10.99.0.11/24" {
		b, _ := json.Marshal(n)
		t.Errorf("node after the pools went: %s", b)
	}
	if len(ft.released) != 2 {
		t.Errorf("released %v, want vxlan and ipip", ft.released)
	}
}
