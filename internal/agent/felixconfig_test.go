package agent

import (
	"context"
	"encoding/json"
	"reflect"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/kv"
)

func boolp(b bool) *bool { return &b }

// TestFelixLayerPrecedence checks global < node.<name> < FELIX_* on the api
// types: a set field (non-nil pointer, non-empty string, slice or map)
// replaces the lower layer's, an unset one leaves it.
func TestFelixLayerPrecedence(t *testing.T) {
	global := api.FelixConfigurationSpec{
		VXLANVNI:                 intp(5000),
		VXLANPort:                intp(4790),
		HealthEnabled:            boolp(true),
		LogSeverityScreen:        "Warning",
		InterfacePrefix:          "tap",
		PrometheusMetricsHost:    "10.0.0.1",
		RouteRefreshInterval:     api.Dur(30 * time.Second),
		NATPortRange:             &api.Port{MinPort: 1000, MaxPort: 2000},
		HealthTimeoutOverrides:   []api.HealthTimeoutOverride{{Name: "a", Timeout: api.Duration{Duration: time.Second}}},
		BPFLogFilters:            &map[string]string{"all": "tcp"},
		PrometheusMetricsEnabled: boolp(true),
	}
	node := api.FelixConfigurationSpec{
		VXLANVNI:               intp(6000),
		HealthEnabled:          boolp(false), // an explicit false overrides true
		LogSeverityScreen:      "Debug",
		InterfacePrefix:        "", // unset: the global value stays
		HealthTimeoutOverrides: []api.HealthTimeoutOverride{},
		NATPortRange:           &api.Port{MinPort: 3000, MaxPort: 4000},
	}
	env, unknown, err := felixEnvLayer(map[string]string{
		"vxlanvni": "7000", "LOGSEVERITYSCREEN": "Error", "RouteRefreshInterval": "5", "ipinipmtu": "1400",
		"etcdendpoints": "http://x:2379", // a Felix bootstrap parameter: not a field
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(unknown, []string{"etcdendpoints"}) {
		t.Errorf("unknown = %q, want [etcdendpoints]", unknown)
	}
	if env.VXLANVNI == nil || *env.VXLANVNI != 7000 || env.IPIPMTU == nil || *env.IPIPMTU != 1400 ||
		env.RouteRefreshInterval == nil || env.RouteRefreshInterval.Duration != 5*time.Second || env.LogSeverityScreen != "Error" {
		t.Errorf("env layer %+v", env)
	}

	gn := overlayFelix(global, node)
	if *gn.VXLANVNI != 6000 || *gn.VXLANPort != 4790 || *gn.HealthEnabled || gn.LogSeverityScreen != "Debug" ||
		gn.InterfacePrefix != "tap" || gn.PrometheusMetricsHost != "10.0.0.1" || len(gn.HealthTimeoutOverrides) != 1 ||
		(*gn.BPFLogFilters)["all"] != "tcp" || gn.NATPortRange.MinPort != 3000 {
		t.Errorf("global+node = %+v", gn)
	}
	if *global.VXLANVNI != 5000 || global.NATPortRange.MinPort != 1000 {
		t.Error("overlay changed the lower layer")
	}
	fc, err := resolveFelix(overlayFelix(gn, env))
	if err != nil {
		t.Fatal(err)
	}
	want := FelixConfig{
		VXLANVNI: 7000, VXLANPort: 4790, IPIPMTU: 1400, NATPortRange: "3000:4000", NATPortMin: 3000, NATPortMax: 4000, IPForwarding: true,
		InterfacePrefix: "tap", RouteRefreshInterval: 5 * time.Second, HealthEnabled: false, HealthHost: "localhost", IPv6Support: true,
		HealthPort: 9099, MetricsEnabled: true, MetricsHost: "10.0.0.1", MetricsPort: 9091, LogSeverityScreen: "Error",
		MTUIfacePattern: regexp.MustCompile(DefaultMTUIfacePattern),
	}
	if !equalFelix(fc, want) {
		t.Errorf("resolved\n %+v\nwant\n %+v", fc, want)
	}

	// The agent layers the same way: New takes the env layer, the
	// datastore handlers the other two.
	a, err := New(Config{Store: nopStore{}, NodeName: "n1", FelixOverrides: map[string]string{"vxlanvni": "7000"}})
	if err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	a.felix = felixLayers{global: global, node: node}
	a.resolveFelixLocked()
	got := a.model.Felix
	a.mu.Unlock()
	if got.VXLANVNI != 7000 || got.VXLANPort != 4790 || got.HealthEnabled || got.LogSeverityScreen != "Debug" {
		t.Errorf("agent resolved %+v", got)
	}
}

// nopStore is a kv.Store New accepts; the tests using it do no I/O.
type nopStore struct{ kv.Store }

// racingStore writes a concurrent change to key right after the first Get
// of it has been answered, so the caller's compare-and-swap must fail once.
type racingStore struct {
	kv.Store
	key   string
	value []byte
	once  sync.Once
}

func (s *racingStore) Get(ctx context.Context, key string) (*kv.KV, error) {
	item, err := s.Store.Get(ctx, key)
	if key == s.key && err == nil {
		s.once.Do(func() {
			if _, perr := s.Store.Put(ctx, key, s.value); perr != nil {
				panic(perr)
			}
		})
	}
	return item, err
}

// fullFelixSpec sets many fields of every type (durations, ports, maps,
// failsafe ports, structs, masks), in upstream's canonical JSON.
const fullFelixSpec = `{"ipv6Support":false,"routeRefreshInterval":"1m30s","iptablesLockProbeInterval":"50ms",` +
	`"featureDetectOverride":"SNATFullyRandom=true,MASQFullyRandom=false","iptablesBackend":"Auto","chainInsertMode":"Insert",` +
	`"logSeverityScreen":"Info","ipipEnabled":false,"ipipMTU":1480,"vxlanEnabled":true,"vxlanMTU":1450,"vxlanPort":4789,` +
	`"vxlanVNI":4096,"reportingInterval":"30s","iptablesMarkMask":4294901760,"healthEnabled":true,"healthPort":9099,` +
	`"healthTimeoutOverrides":[{"name":"InternalDataplaneMainLoop","timeout":"1m30s"}],"prometheusMetricsEnabled":true,` +
	`"prometheusMetricsPort":9091,"failsafeInboundHostPorts":[{"protocol":"tcp","port":22},{"protocol":"udp","port":68},` +
	`{"protocol":"tcp","port":179,"net":"10.0.0.0/8"}],"failsafeOutboundHostPorts":[],"kubeNodePortRanges":["30000:32767",32800],` +
	`"natPortRange":"32768:65535","natOutgoingExclusions":"IPPoolsAndHostIPs","deviceRouteProtocol":80,"removeExternalRoutes":true,` +
	`"programClusterRoutes":"Disabled","ipForwarding":"Enabled","externalNodesList":["192.0.2.0/24"],"nftablesMode":"Enabled",` +
	`"nftablesMarkMask":4294901760,"bpfEnabled":false,"bpfLogLevel":"Off","bpfConntrackTimeouts":{"tcpEstablished":"1h","udpTimeout":"Auto"},` +
	`"bpfLogFilters":{"all":"tcp port 80"},"bpfPSNATPorts":"20000:29999","istioDSCPMark":23,"routeTableRanges":[{"min":1,"max":250}],` +
	`"wireguardEnabled":false,"wireguardKeepAlive":"25s","awsSrcDstCheck":"DoNothing","floatingIPs":"Disabled","goGCThreshold":40}`

func specOf(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var f struct {
		Spec map[string]any `json:"spec"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("stored value %s: %v", b, err)
	}
	return f.Spec
}

func metaOf(t *testing.T, b []byte) api.ObjectMeta {
	t.Helper()
	var f struct {
		Metadata api.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("stored value %s: %v", b, err)
	}
	return f.Metadata
}

// TestEnsureFelixThroughClient runs ensureFelixConfigs against a real etcd:
// "default" is created with a uid and a creationTimestamp; an existing
// node.<name> with many fields gets only the missing field, through a
// compare-and-swap that is retried when someone else writes in between,
// and every other field survives; a second run writes nothing.
func TestEnsureFelixThroughClient(t *testing.T) {
	ctx := context.Background()
	st := etcdStore(t)

	nodeKey := felixKey("node.n1")
	orig := `{"kind":"FelixConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"node.n1","uid":"0d9a3c4e-5f61-4b2a-9c1e-7a8b9c0d1e2f","creationTimestamp":"2026-11-21T13:10:00Z"},"spec":` + fullFelixSpec + `}`
	if _, err := st.Create(ctx, nodeKey, []byte(orig)); err != nil {
		t.Fatal(err)
	}
	// The racing writer adds a field the daemon does not know of.
	var racing map[string]any
	_ = json.Unmarshal([]byte(orig), &racing)
	racing["spec"].(map[string]any)["logSeverityFile"] = "Debug"
	racingValue, _ := json.Marshal(racing)
	rs := &racingStore{Store: st, key: nodeKey, value: racingValue}

	a, err := New(Config{Store: rs, NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.ensureFelixConfigs(ctx); err != nil {
		t.Fatal(err)
	}

	// default: created through the Client.
	item, err := st.Get(ctx, felixKey("default"))
	if err != nil {
		t.Fatal(err)
	}
	m := metaOf(t, item.Value)
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(m.UID) {
		t.Errorf("default uid %q is not a v4 UUID", m.UID)
	}
	if ts, err := time.Parse(time.RFC3339, m.CreationTimestamp); err != nil || time.Since(ts) > time.Hour || m.ResourceVersion != "" {
		t.Errorf("default metadata %+v", m)
	}
	if got, want := specOf(t, item.Value), map[string]any{"reportingInterval": "0s", "logSeverityScreen": "Info", "bpfLogLevel": ""}; !reflect.DeepEqual(got, want) {
		t.Errorf("default spec = %v, want %v", got, want)
	}
	defaultRev := item.Revision

	// node.n1: every field kept, the racing writer's too, plus the default.
	item, err = st.Get(ctx, nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	want := specOf(t, []byte(orig))
	want["logSeverityFile"] = "Debug"
	want["defaultEndpointToHostAction"] = "Return"
	if got := specOf(t, item.Value); !reflect.DeepEqual(got, want) {
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(want)
		t.Errorf("node.n1 spec after ensure:\n got %s\nwant %s", gb, wb)
	}
	if m := metaOf(t, item.Value); m.UID != "0d9a3c4e-5f61-4b2a-9c1e-7a8b9c0d1e2f" || m.CreationTimestamp != "2026-11-21T13:10:00Z" {
		t.Errorf("node.n1 metadata changed: %+v", m)
	}
	nodeRev := item.Revision

	// Nothing missing: nothing written.
	if err := a.ensureFelixConfigs(ctx); err != nil {
		t.Fatal(err)
	}
	if d, _ := st.Get(ctx, felixKey("default")); d.Revision != defaultRev {
		t.Errorf("default rewritten: revision %d -> %d", defaultRev, d.Revision)
	}
	if n, _ := st.Get(ctx, nodeKey); n.Revision != nodeRev {
		t.Errorf("node.n1 rewritten: revision %d -> %d", nodeRev, n.Revision)
	}
}

// TestEnsureFelixLeavesBadObjects checks that an existing object that does
// not decode, or does not validate, is left as it is rather than failing
// startup or being rewritten.
func TestEnsureFelixLeavesBadObjects(t *testing.T) {
	ctx := context.Background()
	st := etcdStore(t)
	bad := map[string]string{
		"default": `{"kind":"FelixConfiguration","metadata":{"name":"default"},"spec":{"vxlanVNI":"many"}}`,
		"node.n1": `{"kind":"FelixConfiguration","metadata":{"name":"node.n1"},"spec":{"logSeverityFile":"Loud"}}`,
	}
	for n, v := range bad {
		if _, err := st.Create(ctx, felixKey(n), []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	a, err := New(Config{Store: st, NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.ensureFelixConfigs(ctx); err != nil {
		t.Fatalf("ensureFelixConfigs: %v", err)
	}
	for n, v := range bad {
		if item, err := st.Get(ctx, felixKey(n)); err != nil || string(item.Value) != v {
			t.Errorf("%s: %v %s, want it untouched", n, err, item.Value)
		}
	}
}
