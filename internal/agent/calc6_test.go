package agent

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/api"
)

// dualStack is model(vxlanPool(Always)) plus an IPv6 VXLAN pool, IPv6
// node addresses (n1, n2 on fd00:99::/64; n3 on fd00:98::/64), IPv6
// tunnel addresses and one /122 block per node.
func dualStack(mode6 api.VXLANMode) *Model {
	m := model(vxlanPool(api.VXLANModeAlways))
	m.Pools["p6"] = Pool{Name: "p6", CIDR: pfx("fd00:244::/64"), VXLANMode: mode6, IPIPMode: api.IPIPModeNever, NATOutgoing: true, Tunnel: true}
	six := map[string][2]string{
		"n1": {"fd00:99::11/64", "fd00:244::1:0"},
		"n2": {"fd00:99::12/64", "fd00:244::2:0"},
		"n3": {"fd00:98::13/64", "fd00:244::3:0"},
	}
	for name, v := range six {
		n := m.Nodes[name]
		n.IPv6, n.VXLANTunnelAddrV6 = pfx(v[0]), ip(v[1])
		m.Nodes[name] = n
		b := pfx(v[1] + "/122")
		m.Blocks[b] = Block{CIDR: b, Affinity: name}
	}
	m.Host.ParentIfV6, m.Host.ParentIndexV6 = "eth0", 2
	return m
}

func TestVTEPMACV6(t *testing.T) {
	// 0x66 then sha1("n1-v6")[0:5]; differs from the IPv4 MAC.
	got := VTEPMACV6("n1")
	if got[0] != 0x66 || got.String() == VTEPMAC("n1").String() {
		t.Errorf("VTEPMACV6(n1) = %s (IPv4 MAC %s)", got, VTEPMAC("n1"))
	}
	n := Node{Name: "n1", VXLANMACV6: net.HardwareAddr{0x66, 1, 2, 3, 4, 5}}
	if n.macV6().String() != "66:01:02:03:04:05" {
		t.Errorf("macV6 ignores the resource's vxlanTunnelMACAddrV6: %s", n.macV6())
	}
}

func TestCalcDualStackVXLAN(t *testing.T) {
	d := Calc(dualStack(api.VXLANModeAlways))
	wantLines(t, d, "sysctl", "sysctl net/ipv4/ip_forward=1", "sysctl net/ipv6/conf/all/forwarding=1")
	wantLines(t, d, "vxlan ", "vxlan vxlan.calico vni 4096 port 4789 mac "+n1MAC+" local 10.99.0.11 parent 2 mtu 1450 addr 10.244.1.0/32")
	wantLines(t, d, "vxlan6", "vxlan6 vxlan-v6.calico vni 4096 port 4789 mac "+VTEPMACV6("n1").String()+" local fd00:99::11 parent 2 mtu 1430 addr fd00:244::1:0/128")
	wantLines(t, d, "vtep6",
		"vtep6 fd00:244::2:0 mac "+VTEPMACV6("n2").String()+" node fd00:99::12",
		"vtep6 fd00:244::3:0 mac "+VTEPMACV6("n3").String()+" node fd00:98::13")
	wantLines(t, d, "route",
		"route blackhole 10.244.1.0/26 proto 80",
		"route 10.244.2.0/26 via 10.244.2.0 dev vxlan.calico onlink proto 80",
		"route 10.244.3.0/26 via 10.244.3.0 dev vxlan.calico onlink proto 80",
		"route blackhole fd00:244::1:0/122 proto 80",
		"route fd00:244::2:0/122 via fd00:244::2:0 dev vxlan-v6.calico onlink proto 80",
		"route fd00:244::3:0/122 via fd00:244::3:0 dev vxlan-v6.calico onlink proto 80")
	wantLines(t, d, "nat", "nat masq [10.244.0.0/16 fd00:244::/64] all [10.244.0.0/16 fd00:244::/64]")
	// VXLAN over IPv6 costs 70 bytes: the pod MTU is the smaller.
	wantLines(t, d, "mtu", "mtu 1430")
	wantLines(t, d, "degraded")
	if !d.WorkloadV6 {
		t.Error("WorkloadV6 is off in a dual-stack cluster")
	}
}

func TestCalcIPv6CrossSubnetAndNoEncap(t *testing.T) {
	d := Calc(dualStack(api.VXLANModeCrossSubnet))
	wantLines(t, d, "route fd00",
		"route fd00:244::2:0/122 via fd00:99::12 dev eth0 proto 80",
		"route fd00:244::3:0/122 via fd00:244::3:0 dev vxlan-v6.calico onlink proto 80")

	// No encapsulation: same subnet direct, the other subnet needs BGP.
	d = Calc(dualStack(api.VXLANModeNever))
	wantLines(t, d, "route fd00", "route fd00:244::2:0/122 via fd00:99::12 dev eth0 proto 80")
	wantLines(t, d, "vxlan6")
	if d.VXLANV6State != DeviceAbsent {
		t.Errorf("vxlan-v6 state %v without an IPv6 VXLAN pool", d.VXLANV6State)
	}
	if !strings.Contains(strings.Join(d.Degraded, "\n"), "fd00:244::3:0/122 (node n3)") {
		t.Errorf("the unroutable IPv6 block is not reported: %q", d.Degraded)
	}
}

func TestCalcIPv6Incomplete(t *testing.T) {
	m := dualStack(api.VXLANModeAlways)
	me := m.Nodes["n1"]
	me.VXLANTunnelAddrV6 = netip.Addr{}
	m.Nodes["n1"] = me
	d := Calc(m)
	if d.VXLANV6State != DeviceKeep {
		t.Errorf("vxlan-v6 state %v without our tunnel address, want keep", d.VXLANV6State)
	}
	wantLines(t, d, "degraded",
		"degraded routes: no local vxlan-v6.calico device: fd00:244::2:0/122 (node n2), fd00:244::3:0/122 (node n3)",
		"degraded vxlan-v6: device vxlan-v6.calico is not programmed: node n1 lacks an IPv6 VXLAN tunnel address (spec.ipv6VXLANTunnelAddr)")
	// The local blackhole does not depend on the device.
	wantLines(t, d, "route blackhole fd00", "route blackhole fd00:244::1:0/122 proto 80")

	// A remote node without an IPv6 address gets no IPv6 VTEP or route.
	m = dualStack(api.VXLANModeAlways)
	n3 := m.Nodes["n3"]
	n3.IPv6 = netip.Prefix{}
	m.Nodes["n3"] = n3
	d = Calc(m)
	wantLines(t, d, "vtep6", "vtep6 fd00:244::2:0 mac "+VTEPMACV6("n2").String()+" node fd00:99::12")
	wantLines(t, d, "degraded", "degraded routes: remote node has no IPv6 address: fd00:244::3:0/122 (node n3)")
}

func TestCalcIPv6Off(t *testing.T) {
	// ipv6Support=false: no IPv6 device, settings, routes or blackholes.
	m := dualStack(api.VXLANModeAlways)
	m.Felix.IPv6Support = false
	d := Calc(m)
	wantLines(t, d, "vxlan6")
	wantLines(t, d, "vtep6")
	wantLines(t, d, "route fd00")
	wantLines(t, d, "route blackhole fd00")
	wantLines(t, d, "sysctl", "sysctl net/ipv4/ip_forward=1")
	if d.WorkloadV6 {
		t.Error("WorkloadV6 with ipv6Support off")
	}
	// An IPv4-only cluster gets nothing of IPv6 either.
	d = Calc(model(vxlanPool(api.VXLANModeAlways)))
	if d.WorkloadV6 || d.VXLANV6State != DeviceAbsent || len(d.Sysctls) != 1 {
		t.Errorf("IPv4-only cluster got IPv6 state:\n%s", d)
	}
}

func TestCalcIPv6BorrowedAndLocalWorkloads(t *testing.T) {
	m := dualStack(api.VXLANModeAlways)
	// n2 holds an address of n3's block; n1 has a local pod in its own.
	m.WEPs["w2"] = WEP{Node: "n2", Interface: "cali2", IPs: []netip.Prefix{pfx("fd00:244::3:5/128")}}
	m.WEPs["w1"] = WEP{Node: "n1", Interface: "cali1", IPs: []netip.Prefix{pfx("fd00:244::1:7/128")}}
	d := Calc(m)
	wantLines(t, d, "route fd00:244::3:5", "route fd00:244::3:5/128 via fd00:244::2:0 dev vxlan-v6.calico onlink proto 80")
	wantLines(t, d, "route fd00:244::1:7")
	wantLines(t, d, "workload", "workload cali1")
}

func TestWorkloadSysctlsV6(t *testing.T) {
	var got []string
	for _, s := range WorkloadSysctlsV6("cali1") {
		got = append(got, s.Key+"="+s.Value)
	}
	want := "net/ipv6/conf/cali1/proxy_ndp=1 net/ipv6/conf/cali1/forwarding=1"
	if strings.Join(got, " ") != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
