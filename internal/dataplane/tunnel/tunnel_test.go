package tunnel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/onecalico/calico/internal/dataplane/link"
	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/dataplane/route"
	"github.com/onecalico/calico/internal/testutil"
)

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

type node struct {
	ns    string
	h     *netlink.Handle
	ip    netip.Addr
	vx    VXLAN
	vtep  VTEP
	podNS string
}

// twoNodes wires node namespaces n1 and n2 with a veth "eth0" in each
// (10.99.0.11/24 and .12/24), each with a pod (10.244.N.2) plumbed by the
// link package and a vxlan.calico device (VNI 4096, port 4789).
func twoNodes(t *testing.T) (*node, *node) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireCmd(t, "ip", "bridge", "ping")
	var nodes []*node
	for i := 1; i <= 2; i++ {
		ns := testutil.NewNetNS(t)
		if err := netns.SetSysctl(ns, "net/ipv4/ip_forward", "1"); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, &node{ns: ns, h: testutil.Handle(t, ns), ip: netip.AddrFrom4([4]byte{10, 99, 0, byte(10 + i)})})
	}
	peer, err := netns.Open(nodes[1].ns)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	la := netlink.NewLinkAttrs()
	la.Name = "eth0"
	la.Flags = net.FlagUp
	if err := nodes[0].h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(peer.Fd())}); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		N := i + 1
		eth0, err := n.h.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		if err := n.h.LinkSetUp(eth0); err != nil {
			t.Fatal(err)
		}
		if err := n.h.AddrAdd(eth0, &netlink.Addr{IPNet: &net.IPNet{IP: n.ip.AsSlice(), Mask: net.CIDRMask(24, 32)}}); err != nil {
			t.Fatal(err)
		}
		// A default route, as real nodes have: proxy ARP for 169.254.1.1
		// needs a route to it through another interface.
		if err := n.h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.IPv4(10, 99, 0, 1)}); err != nil {
			t.Fatal(err)
		}
		tunnelIP := netip.AddrFrom4([4]byte{10, 244, byte(N), 0})
		n.vx = VXLAN{Name: "vxlan.calico", VNI: 4096, Port: 4789, MAC: mac(fmt.Sprintf("66:cc:00:00:00:0%d", N)),
			LocalIP: n.ip, ParentIndex: eth0.Attrs().Index, MTU: 1450, Addr: netip.PrefixFrom(tunnelIP, 32)}
		n.vtep = VTEP{TunnelIP: tunnelIP, MAC: n.vx.MAC, NodeIP: n.ip}
		n.podNS = testutil.NewNetNS(t)
		if _, err := link.SetupWorkload(link.Workload{HostNetNS: n.ns, ContainerNetNS: n.podNS, ContainerIf: "eth0",
			HostIf: fmt.Sprintf("calipod%d", N), MTU: 1450,
			Addrs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(N), 2}), 32)}}); err != nil {
			t.Fatal(err)
		}
		if err := EnsureVXLAN(n.h, n.vx); err != nil {
			t.Fatal(err)
		}
	}
	return nodes[0], nodes[1]
}

func TestPrivilegedVXLANPing(t *testing.T) {
	n1, n2 := twoNodes(t)
	own := route.Owner{Protocols: []int{80}, LinkPrefixes: []string{"vxlan.calico"}}
	for _, p := range [][2]*node{{n1, n2}, {n2, n1}} {
		local, remote := p[0], p[1]
		if err := SyncVTEPs(local.h, "vxlan.calico", []VTEP{remote.vtep}); err != nil {
			t.Fatal(err)
		}
		block := netip.PrefixFrom(remote.vtep.TunnelIP, 26)
		if _, err := route.Apply(local.h, own, []route.Route{{Dst: block, Gw: remote.vtep.TunnelIP, LinkName: "vxlan.calico", OnLink: true}}); err != nil {
			t.Fatal(err)
		}
	}
	err := testutil.Poll(10*time.Second, func() error {
		_, err := testutil.RunInErr(n1.podNS, "ping", "-c", "1", "-W", "1", "10.244.2.2")
		return err
	})
	if err != nil {
		for _, n := range []*node{n1, n2} {
			for _, c := range [][]string{{"ip", "-d", "link"}, {"ip", "route"}, {"ip", "neigh"}, {"bridge", "fdb", "show", "dev", "vxlan.calico"}} {
				out, _ := testutil.RunInErr(n.ns, c...)
				t.Logf("%s %v:\n%s", n.ns, c, out)
			}
		}
		t.Fatalf("pod 10.244.1.2 -> 10.244.2.2 over VXLAN: %v", err)
	}
	// The packets really crossed the tunnel.
	for _, n := range []*node{n1, n2} {
		l, err := n.h.LinkByName("vxlan.calico")
		if err != nil {
			t.Fatal(err)
		}
		if s := l.Attrs().Statistics; s == nil || s.TxPackets == 0 || s.RxPackets == 0 {
			t.Errorf("%s vxlan.calico counters %+v, want traffic both ways", n.ns, s)
		}
	}
	dev := testutil.RunIn(t, n1.ns, "ip", "-d", "link", "show", "vxlan.calico")
	for _, want := range []string{"mtu 1450", "link/ether 66:cc:00:00:00:01", "vxlan id 4096 local 10.99.0.11 dev eth0", "dstport 4789", "nolearning", "state UNKNOWN"} {
		if !strings.Contains(dev, want) {
			t.Errorf("vxlan.calico lacks %q:\n%s", want, dev)
		}
	}
	if out := testutil.RunIn(t, n1.ns, "ip", "addr", "show", "vxlan.calico"); !strings.Contains(out, "inet 10.244.1.0/32") {
		t.Errorf("vxlan.calico address:\n%s", out)
	}
	if out := testutil.RunIn(t, n1.ns, "ip", "neigh", "show", "dev", "vxlan.calico"); !strings.Contains(out, "10.244.2.0 lladdr 66:cc:00:00:00:02 PERMANENT") {
		t.Errorf("neighbours:\n%s", out)
	}
	if out := testutil.RunIn(t, n1.ns, "bridge", "fdb", "show", "dev", "vxlan.calico"); !strings.Contains(out, "66:cc:00:00:00:02 dst 10.99.0.12 self permanent") {
		t.Errorf("fdb:\n%s", out)
	}
}

func TestPrivilegedSyncVTEPs(t *testing.T) {
	t.Run("one request each", func(t *testing.T) { testSyncVTEPs(t, false) })
	t.Run("batched", func(t *testing.T) { testSyncVTEPs(t, true) })
}

// testSyncVTEPs runs the SyncVTEPs steps with or without a Batcher (which
// then also does the dumps).
func testSyncVTEPs(t *testing.T, batched bool) {
	n1, n2 := twoNodes(t)
	var b *Batcher
	if batched {
		var err error
		if b, err = NewBatcher(n1.ns); err != nil {
			t.Fatal(err)
		}
		defer b.Close()
	}
	third := VTEP{TunnelIP: netip.MustParseAddr("10.244.3.0"), MAC: mac("66:cc:00:00:00:03"), NodeIP: netip.MustParseAddr("10.99.0.13")}
	v6 := VTEP{TunnelIP: netip.MustParseAddr("fd00:244:4::"), MAC: mac("66:cc:00:00:00:04"), NodeIP: netip.MustParseAddr("10.99.0.14")}
	moved := n2.vtep
	moved.NodeIP = netip.MustParseAddr("10.99.0.99")

	show := func() string {
		return testutil.RunIn(t, n1.ns, "ip", "neigh", "show", "dev", "vxlan.calico", "nud", "permanent") +
			testutil.RunIn(t, n1.ns, "bridge", "fdb", "show", "dev", "vxlan.calico")
	}
	steps := []struct {
		name      string
		vteps     []VTEP
		stats     syncStats
		want, not []string
	}{
		{"two", []VTEP{n2.vtep, third}, syncStats{setNeigh: 2, setFDB: 2},
			[]string{"10.244.2.0 lladdr 66:cc:00:00:00:02 PERMANENT", "10.244.3.0 lladdr 66:cc:00:00:00:03 PERMANENT",
				"66:cc:00:00:00:02 dst 10.99.0.12 self permanent", "66:cc:00:00:00:03 dst 10.99.0.13 self permanent"}, nil},
		{"stale third removed, v6 tunnel added", []VTEP{n2.vtep, v6}, syncStats{setNeigh: 1, delNeigh: 1, setFDB: 1, delFDB: 1},
			[]string{"fd00:244:4:: lladdr 66:cc:00:00:00:04 PERMANENT", "66:cc:00:00:00:04 dst 10.99.0.14 self permanent"},
			[]string{"10.244.3.0", "66:cc:00:00:00:03"}},
		{"node moved", []VTEP{moved, v6}, syncStats{setFDB: 1},
			[]string{"66:cc:00:00:00:02 dst 10.99.0.99 self permanent"}, []string{"dst 10.99.0.12"}},
		{"empty", nil, syncStats{delNeigh: 2, delFDB: 2}, nil, []string{"66:cc", "lladdr"}},
	}
	for _, s := range steps {
		st, err := syncVTEPs(n1.h, b, "vxlan.calico", s.vteps)
		if err != nil || st != s.stats {
			t.Fatalf("%s: syncVTEPs = %+v, %v; want %+v", s.name, st, err, s.stats)
		}
		if st, err := syncVTEPs(n1.h, b, "vxlan.calico", s.vteps); err != nil || !st.zero() {
			t.Fatalf("%s: second syncVTEPs = %+v, %v; want no changes", s.name, st, err)
		}
		out := show()
		for _, w := range s.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: missing %q in:\n%s", s.name, w, out)
			}
		}
		for _, w := range s.not {
			if strings.Contains(out, w) {
				t.Errorf("%s: unexpected %q in:\n%s", s.name, w, out)
			}
		}
	}
	// Enough entries for batches (minBatch) one way, then none.
	var many []VTEP
	for i := range 40 {
		many = append(many, VTEP{TunnelIP: netip.AddrFrom4([4]byte{10, 245, byte(i), 0}),
			MAC: mac(fmt.Sprintf("66:cd:00:00:00:%02x", i)), NodeIP: netip.AddrFrom4([4]byte{10, 98, 0, byte(i + 1)})})
	}
	for _, s := range []struct {
		vteps []VTEP
		stats syncStats
		count string
	}{{many, syncStats{setNeigh: 40, setFDB: 40}, "40"}, {nil, syncStats{delNeigh: 40, delFDB: 40}, "0"}} {
		if st, err := syncVTEPs(n1.h, b, "vxlan.calico", s.vteps); err != nil || st != s.stats {
			t.Fatalf("%d VTEPs: syncVTEPs = %+v, %v; want %+v", len(s.vteps), st, err, s.stats)
		}
		if st, err := syncVTEPs(n1.h, b, "vxlan.calico", s.vteps); err != nil || !st.zero() {
			t.Fatalf("%d VTEPs: second syncVTEPs = %+v, %v; want no changes", len(s.vteps), st, err)
		}
		n := strings.Count(testutil.RunIn(t, n1.ns, "ip", "neigh", "show", "dev", "vxlan.calico", "nud", "permanent"), "PERMANENT")
		f := strings.Count(testutil.RunIn(t, n1.ns, "bridge", "fdb", "show", "dev", "vxlan.calico"), "66:cd:")
		if fmt.Sprint(n) != s.count || fmt.Sprint(f) != s.count {
			t.Errorf("%d VTEPs: kernel has %d neighbours and %d FDB entries", len(s.vteps), n, f)
		}
	}
	if err := SyncVTEPs(n1.h, "vxlan.calico", []VTEP{n2.vtep, n2.vtep}); !errors.Is(err, ErrInvalid) {
		t.Errorf("duplicate VTEP: %v, want ErrInvalid", err)
	}
}

func TestPrivilegedEnsureVXLANInPlace(t *testing.T) {
	n1, _ := twoNodes(t)
	index := func() int {
		l, err := n1.h.LinkByName("vxlan.calico")
		if err != nil {
			t.Fatal(err)
		}
		return l.Attrs().Index
	}
	idx := index()
	v := n1.vx
	step := func(name string, v VXLAN, wantChanges []string, recreated bool) {
		t.Helper()
		changes, err := ensureVXLAN(n1.h, v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(changes, wantChanges) {
			t.Errorf("%s: changes %q, want %q", name, changes, wantChanges)
		}
		if again, err := ensureVXLAN(n1.h, v); err != nil || len(again) != 0 {
			t.Errorf("%s: second ensure made changes %q (%v)", name, again, err)
		}
		if got := index(); (got != idx) != recreated {
			t.Errorf("%s: ifindex %d -> %d, recreated want %v", name, idx, got, recreated)
		}
		idx = index()
	}
	step("unchanged", v, nil, false)
	v.MTU = 1400
	step("mtu", v, []string{"mtu 1400"}, false)
	v.MAC = mac("66:cc:00:00:00:aa")
	step("mac", v, []string{"mac 66:cc:00:00:00:aa"}, false)
	v.Addr = netip.MustParsePrefix("10.244.1.64/32")
	step("address", v, []string{"del addr 10.244.1.0/32", "add addr 10.244.1.64/32"}, false)
	if err := n1.h.LinkSetDown(&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Index: idx}}); err != nil {
		t.Fatal(err)
	}
	step("down", v, []string{"up"}, false)
	v.VNI = 4097
	step("vni", v, []string{"delete: vni 4096, want 4097", "create", "add addr 10.244.1.64/32"}, true)
	v.Port = 0
	step("default port (0 = 4789)", v, nil, false)
	if out := testutil.RunIn(t, n1.ns, "ip", "-d", "link", "show", "vxlan.calico"); !strings.Contains(out, "mtu 1400") || !strings.Contains(out, "vxlan id 4097") {
		t.Errorf("after changes:\n%s", out)
	}

	// A foreign link with our name is replaced.
	la := netlink.NewLinkAttrs()
	la.Name = "vxlan.test"
	if err := n1.h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "vxlan.peer"}); err != nil {
		t.Fatal(err)
	}
	other := v
	other.Name, other.VNI, other.Addr = "vxlan.test", 5000, netip.Prefix{}
	if changes, err := ensureVXLAN(n1.h, other); err != nil || len(changes) < 2 || changes[0] != "delete: link is a veth" {
		t.Errorf("replace veth: %q, %v", changes, err)
	}
	for range 2 {
		if err := DeleteLink(n1.h, "vxlan.test"); err != nil {
			t.Errorf("DeleteLink: %v", err)
		}
	}
	if err := EnsureVXLAN(n1.h, VXLAN{Name: "x", VNI: 0}); !errors.Is(err, ErrInvalid) {
		t.Errorf("VNI 0: %v, want ErrInvalid", err)
	}
}

func TestPrivilegedEnsureIPIP(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCmd(t, "ip")
	ns := testutil.NewNetNS(t)
	h := testutil.Handle(t, ns)
	err := EnsureIPIP(h, IPIP{Name: "tunl0", MTU: 1480, Addr: netip.MustParsePrefix("10.244.1.1/32")})
	_, probe := testutil.RunInErr(ns, "ip", "link", "add", "probe0", "type", "ipip")
	kernelHasIPIP := probe == nil
	switch {
	case !kernelHasIPIP:
		if !errors.Is(err, ErrNotSupported) {
			t.Fatalf("EnsureIPIP on a kernel without ipip = %v, want ErrNotSupported", err)
		}
		if _, lerr := h.LinkByName("tunl0"); !isNotFound(lerr) {
			t.Errorf("tunl0 exists after failure: %v", lerr)
		}
	case err != nil:
		t.Fatalf("EnsureIPIP = %v", err)
	default:
		out := testutil.RunIn(t, ns, "ip", "-d", "addr", "show", "tunl0")
		if !strings.Contains(out, "mtu 1480") || !strings.Contains(out, "inet 10.244.1.1/32") {
			t.Errorf("tunl0:\n%s", out)
		}
	}
}
