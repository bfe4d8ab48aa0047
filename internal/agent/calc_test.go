package agent

import (
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/kv"
)

// Fixtures: n1 (this node) and n2 on 10.99.0.0/24, n3 on 10.98.0.0/24.
func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

func testFelix() FelixConfig {
	fc, err := resolveFelix(api.FelixConfigurationSpec{})
	if err != nil {
		panic(err)
	}
	return fc
}

func testNodes() map[string]Node {
	return map[string]Node{
		"n1": {Name: "n1", IPv4: pfx("10.99.0.11/24"), VXLANTunnelAddr: ip("10.244.1.0")},
		"n2": {Name: "n2", IPv4: pfx("10.99.0.12/24"), VXLANTunnelAddr: ip("10.244.2.0")},
		"n3": {Name: "n3", IPv4: pfx("10.98.0.13/24"), VXLANTunnelAddr: ip("10.244.3.0"), VXLANMAC: net.HardwareAddr{0x66, 0, 0, 0, 0, 3}},
	}
}

func testBlocks() map[netip.Prefix]Block {
	return map[netip.Prefix]Block{
		pfx("10.244.1.0/26"): {CIDR: pfx("10.244.1.0/26"), Affinity: "n1"},
		pfx("10.244.2.0/26"): {CIDR: pfx("10.244.2.0/26"), Affinity: "n2"},
		pfx("10.244.3.0/26"): {CIDR: pfx("10.244.3.0/26"), Affinity: "n3"},
	}
}

func model(pool Pool) *Model {
	return &Model{
		NodeName: "n1",
		Nodes:    testNodes(),
		Pools:    map[string]Pool{pool.Name: pool},
		Blocks:   testBlocks(),
		WEPs:     map[string]WEP{},
		Felix:    testFelix(),
		Host:     HostFacts{ParentIf: "eth0", ParentIndex: 2, HostMTU: 1500},
	}
}

func vxlanPool(mode api.VXLANMode) Pool {
	return Pool{Name: "p", CIDR: pfx("10.244.0.0/16"), VXLANMode: mode, IPIPMode: api.IPIPModeNever, NATOutgoing: true, Tunnel: true}
}

func ipipPool(mode api.IPIPMode) Pool {
	return Pool{Name: "p", CIDR: pfx("10.244.0.0/16"), VXLANMode: api.VXLANModeNever, IPIPMode: mode, NATOutgoing: true, Tunnel: true}
}

func plainPool() Pool {
	return Pool{Name: "p", CIDR: pfx("10.244.0.0/16"), VXLANMode: api.VXLANModeNever, IPIPMode: api.IPIPModeNever, NATOutgoing: true, Tunnel: true}
}

func lines(d Desired, prefix string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(d.String()), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

func wantLines(t *testing.T, d Desired, prefix string, want ...string) {
	t.Helper()
	got := lines(d, prefix)
	if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("%s lines:\n got  %q\n want %q\nfull desired:\n%s", prefix, got, want, d)
	}
}

var n1MAC = VTEPMAC("n1").String()

func TestVTEPMACMatchesUpstream(t *testing.T) {
	// Values observed from upstream Felix (felix-observed.md §2).
	for name, want := range map[string]string{"fx-n1": "66:1b:fd:6b:73:71", "fx-n2": "66:a8:da:b8:8b:c7"} {
		if got := VTEPMAC(name).String(); got != want {
			t.Errorf("VTEPMAC(%s) = %s, want %s", name, got, want)
		}
	}
}

func TestCalcVXLANAlways(t *testing.T) {
	d := Calc(model(vxlanPool(api.VXLANModeAlways)))
	wantLines(t, d, "sysctl", "sysctl net/ipv4/ip_forward=1")
	wantLines(t, d, "vxlan", "vxlan vxlan.calico vni 4096 port 4789 mac "+n1MAC+" local 10.99.0.11 parent 2 mtu 1450 addr 10.244.1.0/32")
	wantLines(t, d, "vtep",
		"vtep 10.244.2.0 mac "+VTEPMAC("n2").String()+" node 10.99.0.12",
		"vtep 10.244.3.0 mac 66:00:00:00:00:03 node 10.98.0.13")
	wantLines(t, d, "route",
		"route blackhole 10.244.1.0/26 proto 80",
		"route 10.244.2.0/26 via 10.244.2.0 dev vxlan.calico onlink proto 80",
		"route 10.244.3.0/26 via 10.244.3.0 dev vxlan.calico onlink proto 80")
	wantLines(t, d, "nat", "nat masq [10.244.0.0/16] all [10.244.0.0/16]")
	wantLines(t, d, "mtu", "mtu 1450")
	wantLines(t, d, "degraded")
	if d.IPIPState != DeviceAbsent {
		t.Errorf("IPIP state %v, want absent", d.IPIPState)
	}
}

func TestCalcVXLANCrossSubnet(t *testing.T) {
	m := model(vxlanPool(api.VXLANModeCrossSubnet))
	d := Calc(m)
	wantLines(t, d, "route",
		"route blackhole 10.244.1.0/26 proto 80",
		"route 10.244.2.0/26 via 10.99.0.12 dev eth0 proto 80",
		"route 10.244.3.0/26 via 10.244.3.0 dev vxlan.calico onlink proto 80")
	// The device is still needed for the other subnet.
	if d.VXLANState != DevicePresent {
		t.Errorf("VXLAN state %v, want present", d.VXLANState)
	}

	// The other side: from n3 (10.98.0.0/24) both n1 and n2 are remote.
	m.NodeName = "n3"
	m.Host = HostFacts{ParentIf: "ens3", ParentIndex: 7, HostMTU: 9000}
	d = Calc(m)
	wantLines(t, d, "route",
		"route 10.244.1.0/26 via 10.244.1.0 dev vxlan.calico onlink proto 80",
		"route 10.244.2.0/26 via 10.244.2.0 dev vxlan.calico onlink proto 80",
		"route blackhole 10.244.3.0/26 proto 80")
	wantLines(t, d, "vxlan", "vxlan vxlan.calico vni 4096 port 4789 mac 66:00:00:00:00:03 local 10.98.0.13 parent 7 mtu 8950 addr 10.244.3.0/32")
	wantLines(t, d, "mtu", "mtu 8950")
}

func TestCalcIPIP(t *testing.T) {
	m := model(ipipPool(api.IPIPModeAlways))
	m.Nodes["n1"] = Node{Name: "n1", IPv4: pfx("10.99.0.11/24"), IPIPTunnelAddr: ip("10.244.1.1")}
	d := Calc(m)
	wantLines(t, d, "ipip", "ipip tunl0 mtu 1480 addr 10.244.1.1/32")
	wantLines(t, d, "route",
		"route blackhole 10.244.1.0/26 proto 80",
		"route 10.244.2.0/26 via 10.99.0.12 dev tunl0 onlink proto 80",
		"route 10.244.3.0/26 via 10.98.0.13 dev tunl0 onlink proto 80")
	wantLines(t, d, "mtu", "mtu 1480")
	if d.VXLANState != DeviceAbsent {
		t.Errorf("VXLAN state %v, want absent (no VXLAN pool)", d.VXLANState)
	}

	m.Pools["p"] = ipipPool(api.IPIPModeCrossSubnet)
	d = Calc(m)
	wantLines(t, d, "route",
		"route blackhole 10.244.1.0/26 proto 80",
		"route 10.244.2.0/26 via 10.99.0.12 dev eth0 proto 80",
		"route 10.244.3.0/26 via 10.98.0.13 dev tunl0 onlink proto 80")

	// On a kernel without IPIP: no tunl0 routes, one clear degradation,
	// same-subnet routes still programmed.
	m.Host.IPIPUnsupported = true
	d = Calc(m)
	wantLines(t, d, "route",
		"route blackhole 10.244.1.0/26 proto 80",
		"route 10.244.2.0/26 via 10.99.0.12 dev eth0 proto 80")
	wantLines(t, d, "degraded", "degraded ipip: IPIP is not supported by this kernel: routes for IPIP pools p are not programmed; use vxlanMode")
	if d.IPIPState != DeviceAbsent {
		t.Errorf("IPIP state %v, want absent", d.IPIPState)
	}
}

func TestCalcNoEncap(t *testing.T) {
	d := Calc(model(plainPool()))
	wantLines(t, d, "route",
		"route blackhole 10.244.1.0/26 proto 80",
		"route 10.244.2.0/26 via 10.99.0.12 dev eth0 proto 80")
	wantLines(t, d, "degraded", "degraded routes: pool p has no encapsulation and the node is not on this node's subnet (needs BGP): 10.244.3.0/26 (node n3)")
	wantLines(t, d, "mtu", "mtu 1500")
	if d.VXLANState != DeviceAbsent {
		t.Errorf("VXLAN state %v, want absent", d.VXLANState)
	}
}

func TestCalcBorrowedAddresses(t *testing.T) {
	m := model(vxlanPool(api.VXLANModeAlways))
	// n3 holds 10.244.2.5 from n2's block (from the block's attributes),
	// and a workload on n2 holds 10.244.3.9 from n3's block.
	b := m.Blocks[pfx("10.244.2.0/26")]
	b.Borrowed = map[netip.Addr]string{ip("10.244.2.5"): "n3", ip("10.244.2.6"): "n1"}
	m.Blocks[b.CIDR] = b
	m.WEPs["w-n2"] = WEP{Node: "n2", Interface: "caliA", IPs: []netip.Prefix{pfx("10.244.3.9/32")}}
	m.WEPs["w-n2-own"] = WEP{Node: "n2", Interface: "caliB", IPs: []netip.Prefix{pfx("10.244.2.7/32")}}
	// A local workload borrowed 10.244.2.8: its /32 is the CNI plugin's.
	m.WEPs["w-n1"] = WEP{Node: "n1", Interface: "caliC", IPs: []netip.Prefix{pfx("10.244.2.8/32")}}
	d := Calc(m)
	wantLines(t, d, "route",
		"route blackhole 10.244.1.0/26 proto 80",
		"route 10.244.2.0/26 via 10.244.2.0 dev vxlan.calico onlink proto 80",
		"route 10.244.2.5/32 via 10.244.3.0 dev vxlan.calico onlink proto 80",
		"route 10.244.3.0/26 via 10.244.3.0 dev vxlan.calico onlink proto 80",
		"route 10.244.3.9/32 via 10.244.2.0 dev vxlan.calico onlink proto 80")
	wantLines(t, d, "workload", "workload caliC")
	if d.LocalWorkloads != 1 {
		t.Errorf("LocalWorkloads = %d, want 1", d.LocalWorkloads)
	}
}

func TestCalcDisabledPool(t *testing.T) {
	p := vxlanPool(api.VXLANModeAlways)
	p.Disabled = true
	m := model(p)
	m.Pools["q"] = Pool{Name: "q", CIDR: pfx("10.50.0.0/16"), VXLANMode: api.VXLANModeNever, IPIPMode: api.IPIPModeNever, NATOutgoing: true}
	d := Calc(m)
	// Existing blocks of a disabled pool keep their routes; the pool stops
	// masquerading but stays in the "all pools" set.
	wantLines(t, d, "route",
		"route blackhole 10.244.1.0/26 proto 80",
		"route 10.244.2.0/26 via 10.244.2.0 dev vxlan.calico onlink proto 80",
		"route 10.244.3.0/26 via 10.244.3.0 dev vxlan.calico onlink proto 80")
	wantLines(t, d, "nat", "nat masq [10.50.0.0/16] all [10.50.0.0/16 10.244.0.0/16]")
}

func TestCalcNodeWithoutIP(t *testing.T) {
	m := model(vxlanPool(api.VXLANModeAlways))
	m.Nodes["n2"] = Node{Name: "n2", VXLANTunnelAddr: ip("10.244.2.0")}
	d := Calc(m)
	wantLines(t, d, "route",
		"route blackhole 10.244.1.0/26 proto 80",
		"route 10.244.3.0/26 via 10.244.3.0 dev vxlan.calico onlink proto 80")
	wantLines(t, d, "vtep", "vtep 10.244.3.0 mac 66:00:00:00:00:03 node 10.98.0.13")
	wantLines(t, d, "degraded", "degraded routes: remote node has no IPv4 address: 10.244.2.0/26 (node n2)")
}

func TestCalcNodeRemovedAndPoolRemoved(t *testing.T) {
	m := model(vxlanPool(api.VXLANModeAlways))
	delete(m.Nodes, "n3")
	d := Calc(m)
	wantLines(t, d, "route",
		"route blackhole 10.244.1.0/26 proto 80",
		"route 10.244.2.0/26 via 10.244.2.0 dev vxlan.calico onlink proto 80")
	wantLines(t, d, "vtep", "vtep 10.244.2.0 mac "+VTEPMAC("n2").String()+" node 10.99.0.12")
	// n3's block without its Node (not registered yet, or deleted) is
	// skipped without a degradation.
	wantLines(t, d, "degraded")

	m.Pools = map[string]Pool{}
	d = Calc(m)
	wantLines(t, d, "route")
	wantLines(t, d, "vtep")
	wantLines(t, d, "nat", "nat masq [] all []")
	wantLines(t, d, "mtu", "mtu 1500")
	if d.VXLANState != DeviceAbsent {
		t.Errorf("VXLAN state %v after the last VXLAN pool went, want absent", d.VXLANState)
	}
}

func TestCalcOwnTunnelAddress(t *testing.T) {
	m := model(vxlanPool(api.VXLANModeAlways))
	n1 := m.Nodes["n1"]
	n1.VXLANTunnelAddr = netip.Addr{}
	m.Nodes["n1"] = n1
	d := Calc(m)
	if d.VXLANState != DeviceKeep {
		t.Fatalf("VXLAN state %v without a tunnel address, want keep", d.VXLANState)
	}
	wantLines(t, d, "route", "route blackhole 10.244.1.0/26 proto 80")
	if !strings.Contains(strings.Join(d.Degraded, "\n"), "lacks a VXLAN tunnel address") {
		t.Errorf("degraded = %q, want the missing tunnel address named", d.Degraded)
	}

	n1.VXLANTunnelAddr = ip("10.244.1.1")
	n1.VXLANMAC = net.HardwareAddr{0x66, 1, 2, 3, 4, 5}
	m.Nodes["n1"] = n1
	d = Calc(m)
	wantLines(t, d, "vxlan", "vxlan vxlan.calico vni 4096 port 4789 mac 66:01:02:03:04:05 local 10.99.0.11 parent 2 mtu 1450 addr 10.244.1.1/32")

	// The node's own address changes: the device follows.
	n1.IPv4 = pfx("10.99.0.21/24")
	m.Nodes["n1"] = n1
	m.Host.ParentIndex = 3
	d = Calc(m)
	wantLines(t, d, "vxlan", "vxlan vxlan.calico vni 4096 port 4789 mac 66:01:02:03:04:05 local 10.99.0.21 parent 3 mtu 1450 addr 10.244.1.1/32")
}

func TestCalcFelixSettings(t *testing.T) {
	m := model(vxlanPool(api.VXLANModeAlways))
	vni, port, mtu := 5000, 8472, 1400
	fc, err := resolveFelix(api.FelixConfigurationSpec{VXLANVNI: &vni, VXLANPort: &port, VXLANMTU: &mtu, IPForwarding: "Disabled"})
	if err != nil {
		t.Fatal(err)
	}
	m.Felix = fc
	d := Calc(m)
	wantLines(t, d, "vxlan", "vxlan vxlan.calico vni 5000 port 8472 mac "+n1MAC+" local 10.99.0.11 parent 2 mtu 1400 addr 10.244.1.0/32")
	wantLines(t, d, "sysctl")
	wantLines(t, d, "mtu", "mtu 1400")

	off := false
	m.Felix.VXLANEnabled = &off
	d = Calc(m)
	if d.VXLANState != DeviceAbsent {
		t.Errorf("VXLAN state %v with vxlanEnabled false, want absent", d.VXLANState)
	}
	wantLines(t, d, "route", "route blackhole 10.244.1.0/26 proto 80")
}

func TestCalcMTU(t *testing.T) {
	for _, tc := range []struct {
		name      string
		pools     []Pool
		host, mtu int
	}{
		{"none", []Pool{plainPool()}, 1500, 1500},
		{"vxlan", []Pool{vxlanPool(api.VXLANModeAlways)}, 1500, 1450},
		{"ipip", []Pool{ipipPool(api.IPIPModeAlways)}, 1500, 1480},
		{"both", []Pool{ipipPool(api.IPIPModeAlways), {Name: "v", CIDR: pfx("10.50.0.0/16"), VXLANMode: api.VXLANModeCrossSubnet}}, 9000, 8950},
		{"unknown host", []Pool{vxlanPool(api.VXLANModeAlways)}, 0, 1410},
	} {
		m := model(plainPool())
		m.Pools = map[string]Pool{}
		for _, p := range tc.pools {
			m.Pools[p.Name] = p
		}
		m.Host.HostMTU = tc.host
		if got := Calc(m).MTU; got != tc.mtu {
			t.Errorf("%s: MTU %d, want %d", tc.name, got, tc.mtu)
		}
	}
}

func TestCalcIsPureAndDeterministic(t *testing.T) {
	m := model(vxlanPool(api.VXLANModeCrossSubnet))
	m.WEPs["a"] = WEP{Node: "n1", Interface: "caliB", IPs: []netip.Prefix{pfx("10.244.1.2/32")}}
	m.WEPs["b"] = WEP{Node: "n1", Interface: "caliA", IPs: []netip.Prefix{pfx("10.244.1.3/32")}}
	before := m.clone()
	first := Calc(m)
	for range 20 {
		if d := Calc(m); !reflect.DeepEqual(d, first) {
			t.Fatalf("Calc is not deterministic:\n%s\nvs\n%s", d, first)
		}
	}
	if !reflect.DeepEqual(before.Nodes, m.Nodes) || !reflect.DeepEqual(before.Blocks, m.Blocks) || !reflect.DeepEqual(before.WEPs, m.WEPs) {
		t.Fatal("Calc changed its model")
	}
	wantLines(t, first, "workload", "workload caliA", "workload caliB")
}

func TestCalcDuplicateVTEPs(t *testing.T) {
	m := model(vxlanPool(api.VXLANModeAlways))
	n3 := m.Nodes["n3"]
	n3.VXLANTunnelAddr = ip("10.244.2.0") // same as n2
	m.Nodes["n3"] = n3
	d := Calc(m)
	wantLines(t, d, "vtep", "vtep 10.244.2.0 mac "+VTEPMAC("n2").String()+" node 10.99.0.12")
	if !strings.Contains(strings.Join(d.Degraded, "\n"), "nodes n2 and n3 both claim VXLAN tunnel address 10.244.2.0") {
		t.Errorf("degraded = %q", d.Degraded)
	}
}

func TestBlockFromJSON(t *testing.T) {
	v := `{"cidr":"10.244.2.0/26","affinity":"host:n2","allocations":[0,null,1,null,null,2],"unallocated":[1,3,4],` +
		`"attributes":[{"handle_id":"vxlan-tunnel-addr-n2","secondary":{"node":"n2","type":"vxlanTunnelAddress"}},` +
		`{"handle_id":"x","secondary":{"node":"n3"}},{"handle_id":"y"}],"sequenceNumber":1,"sequenceNumberForAllocation":{},"deleted":false}`
	b, err := blockFromJSON(api.BlockKey(pfx("10.244.2.0/26")), []byte(v))
	if err != nil {
		t.Fatal(err)
	}
	want := Block{CIDR: pfx("10.244.2.0/26"), Affinity: "n2", Borrowed: map[netip.Addr]string{ip("10.244.2.2"): "n3"}}
	if !reflect.DeepEqual(b, want) {
		t.Errorf("blockFromJSON = %+v, want %+v", b, want)
	}
	if _, err := blockFromJSON(api.BlockKey(pfx("10.244.2.0/26")), []byte("{")); err == nil {
		t.Error("bad JSON: want an error")
	}
}

func TestFelixLayersAndEnv(t *testing.T) {
	global, err := decodeFelix("default", &kv.KV{Key: felixKey("default"), Value: []byte(`{"kind":"FelixConfiguration","spec":{"vxlanVNI":5000,"logSeverityScreen":"Info","natPortRange":"32768:65535","routeRefreshInterval":"30s","somethingElse":true}}`)})
	if err != nil {
		t.Fatal(err)
	}
	node, err := decodeFelix("node.n1", &kv.KV{Key: felixKey("node.n1"), Value: []byte(`{"spec":{"vxlanVNI":6000,"healthPort":9199,"natPortRange":1024}}`)})
	if err != nil {
		t.Fatal(err)
	}
	env, unknown, err := felixEnvLayer(map[string]string{"vxlanvni": "7000", "IPINIPMTU": "1400", "notafelixsetting": "false"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(unknown, []string{"notafelixsetting"}) {
		t.Errorf("unknown = %q, want [notafelixsetting]", unknown)
	}
	fc, err := resolveFelix(overlayFelix(overlayFelix(global, node), env))
	if err != nil {
		t.Fatal(err)
	}
	if fc.VXLANVNI != 7000 || fc.HealthPort != 9199 || fc.IPIPMTU != 1400 || fc.RouteRefreshInterval != 30*time.Second || fc.NATPortRange != "1024" {
		t.Errorf("resolved %+v", fc)
	}
	// Without the env layer, the node layer wins over the global one.
	fc, _ = resolveFelix(overlayFelix(global, node))
	if fc.VXLANVNI != 6000 {
		t.Errorf("vxlanVNI = %d, want 6000 from node.n1", fc.VXLANVNI)
	}
	// Defaults.
	fc = testFelix()
	if fc.VXLANVNI != 4096 || fc.VXLANPort != 4789 || fc.HealthPort != 9099 || fc.MetricsPort != 9091 || !fc.IPForwarding ||
		fc.RouteRefreshInterval != 90*time.Second || fc.MTUIfacePattern.String() != DefaultMTUIfacePattern || fc.HealthHost != "localhost" ||
		fc.MetricsEnabled || fc.MetricsHost != "" {
		t.Errorf("defaults %+v (metrics must be off by default, as upstream)", fc)
	}
}

func TestFelixBadValues(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"VXLANVNI": "lots"}, `FELIX_VXLANVNI="lots": want an integer`},
		{map[string]string{"vxlanenabled": "maybe"}, `FELIX_VXLANENABLED="maybe": want true or false`},
		{map[string]string{"routeRefreshInterval": "soon"}, `FELIX_ROUTEREFRESHINTERVAL="soon": want a duration such as 90s`},
		{map[string]string{"natportrange": "1:2:3"}, `FELIX_NATPORTRANGE="1:2:3": invalid port range "1:2:3": want min:max with min <= max`},
		{map[string]string{"ipipmtu": "1400", "ipinipmtu": "1300"}, `FELIX_IPINIPMTU="1300" and FELIX_IPIPMTU="1400" set the same field differently`},
	} {
		_, _, err := felixEnvLayer(tc.env)
		if err == nil || err.Error() != tc.want {
			t.Errorf("felixEnvLayer(%v) = %v, want %q", tc.env, err, tc.want)
		}
	}
	for _, tc := range []struct {
		spec api.FelixConfigurationSpec
		want string
	}{
		{api.FelixConfigurationSpec{VXLANVNI: intp(0)}, "vxlanVNI 0 is out of range 1-16777215"},
		{api.FelixConfigurationSpec{MTUIfacePattern: "("}, `mtuIfacePattern "(" is not a valid regular expression`},
		{api.FelixConfigurationSpec{IPForwarding: "Yes"}, `ipForwarding "Yes": want Enabled or Disabled`},
		{api.FelixConfigurationSpec{RouteRefreshInterval: api.Dur(-time.Second)}, `routeRefreshInterval "-1s": want a duration such as 90s`},
		{api.FelixConfigurationSpec{NATOutgoingAddress: "fe80::1"}, `natOutgoingAddress "fe80::1" is not an IPv4 address`},
		{api.FelixConfigurationSpec{LogSeverityScreen: "Loud"}, `logSeverityScreen "Loud"`},
		{api.FelixConfigurationSpec{NATPortRange: &api.Port{PortName: "http"}}, `natPortRange "http": want min:max within 1-65535`},
	} {
		_, err := resolveFelix(tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("resolveFelix: %v, want it to contain %q", err, tc.want)
		}
	}
	if _, err := decodeFelix("default", &kv.KV{Key: felixKey("default"), Value: []byte(`{"spec":{"vxlanVNI":"many"}}`)}); err == nil ||
		!strings.Contains(err.Error(), "FelixConfiguration default: spec.vxlanVNI") {
		t.Errorf("decode wrong type: %v", err)
	}
}

func strp(s string) *string { return &s }
func intp(n int) *int       { return &n }
