package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/testutil"
)

func TestValidate(t *testing.T) {
	good := Workload{ContainerNetNS: "/x", ContainerIf: "eth0", HostIf: "cali1234567890a",
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32"), netip.MustParsePrefix("fd00::5/128")}}
	if err := good.validate(); err != nil {
		t.Fatalf("valid workload rejected: %v", err)
	}
	cases := map[string]func(*Workload){
		"no netns":       func(w *Workload) { w.ContainerNetNS = "" },
		"long host if":   func(w *Workload) { w.HostIf = "cali1234567890ab" },
		"slash in if":    func(w *Workload) { w.ContainerIf = "a/b" },
		"not host addr":  func(w *Workload) { w.Addrs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")} },
		"tiny mtu":       func(w *Workload) { w.MTU = 10 },
		"empty host if":  func(w *Workload) { w.HostIf = "" },
		"invalid prefix": func(w *Workload) { w.Addrs = []netip.Prefix{{}} },
	}
	for name, mutate := range cases {
		w := good
		mutate(&w)
		if err := w.validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: validate() = %v, want ErrInvalid", name, err)
		}
	}
}

func TestSysctlKeysKeepDottedNames(t *testing.T) {
	var keys []string
	for _, s := range hostSysctls("vxlan.calico", true) {
		keys = append(keys, s.Key+"="+s.Value)
	}
	got := strings.Join(keys, " ")
	want := "net/ipv4/conf/vxlan.calico/route_localnet=1 net/ipv4/neigh/vxlan.calico/proxy_delay=0 " +
		"net/ipv4/conf/vxlan.calico/proxy_arp=1 net/ipv4/conf/vxlan.calico/forwarding=1 " +
		"net/ipv6/conf/vxlan.calico/accept_ra=0 net/ipv6/conf/vxlan.calico/disable_ipv6=0 " +
		"net/ipv6/conf/vxlan.calico/accept_dad=0 net/ipv6/conf/vxlan.calico/proxy_ndp=1 " +
		"net/ipv6/conf/vxlan.calico/forwarding=1"
	if got != want {
		t.Errorf("host sysctls\n got %s\nwant %s", got, want)
	}
	if s := containerSysctls("eth0", false, true); len(s) != 1 || s[0] != (netns.Sysctl{Key: "net/ipv4/ip_forward", Value: "1"}) {
		t.Errorf("container sysctls v4 forwarding = %v", s)
	}
}

// lab is a host namespace with pod namespaces plumbed into it.
type lab struct {
	host  string
	hostH *netlink.Handle
}

func newLab(t *testing.T) *lab {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireCmd(t, "ip", "ping")
	host := testutil.NewNetNS(t)
	if err := netns.SetSysctls(host,
		netns.Sysctl{Key: "net/ipv4/ip_forward", Value: "1"},
		netns.Sysctl{Key: "net/ipv6/conf/all/forwarding", Value: "1"},
	); err != nil {
		t.Fatal(err)
	}
	l := &lab{host: host, hostH: testutil.Handle(t, host)}
	// Proxy ARP answers for 169.254.1.1 only if the host has a route to it
	// through another interface, as every real host has: give this one an
	// uplink and a default route.
	up := addVeth(t, l.hostH, "uplink0", "uplink1")
	if err := l.hostH.LinkSetUp(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink1"}}); err != nil {
		t.Fatal(err)
	}
	if err := l.hostH.AddrAdd(up, &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix("192.0.2.1/24"))}); err != nil {
		t.Fatal(err)
	}
	if err := l.hostH.RouteAdd(&netlink.Route{LinkIndex: up.Attrs().Index, Gw: net.ParseIP("192.0.2.254")}); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *lab) pod(t *testing.T, hostIf string, addrs ...string) Workload {
	t.Helper()
	w := Workload{HostNetNS: l.host, ContainerNetNS: testutil.NewNetNS(t), ContainerIf: "eth0", HostIf: hostIf, MTU: 1450}
	for _, a := range addrs {
		w.Addrs = append(w.Addrs, netip.MustParsePrefix(a))
	}
	res, err := SetupWorkload(w)
	if err != nil {
		t.Fatalf("SetupWorkload(%s): %v", hostIf, err)
	}
	if res.HostIf != hostIf || res.HostMAC.String() != HostMACString || len(res.ContainerMAC) != 6 || res.ContainerIfIndex == 0 {
		t.Fatalf("SetupWorkload(%s) result = %+v", hostIf, res)
	}
	return w
}

func (l *lab) ping(t *testing.T, from string, to string) {
	t.Helper()
	err := testutil.Poll(10*time.Second, func() error {
		_, err := testutil.RunInErr(from, "ping", "-c", "1", "-W", "1", to)
		return err
	})
	if err != nil {
		for _, ns := range []string{from, l.host} {
			for _, cmd := range [][]string{{"ip", "-d", "link"}, {"ip", "addr"}, {"ip", "route"}, {"ip", "-6", "route"}, {"ip", "neigh"}} {
				out, _ := testutil.RunInErr(ns, cmd...)
				t.Logf("%s: %v:\n%s", ns, cmd, out)
			}
		}
		t.Fatal(err)
	}
}

func wantCheckError(t *testing.T, w Workload, want string) {
	t.Helper()
	err := CheckWorkload(w)
	if !errors.Is(err, ErrCheckFailed) || !strings.Contains(err.Error(), want) {
		t.Fatalf("CheckWorkload = %v, want an ErrCheckFailed saying %q", err, want)
	}
}

func TestPrivilegedWorkloadIPv4(t *testing.T) {
	l := newLab(t)
	p1 := l.pod(t, "calitest0001", "10.65.0.2/32")
	p2 := l.pod(t, "calitest0002", "10.65.0.3/32")

	// An address on the host's loopback, reachable from pods via the host.
	lo, err := l.hostH.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.hostH.AddrAdd(lo, &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix("10.99.0.1/32"))}); err != nil {
		t.Fatal(err)
	}
	l.ping(t, p1.ContainerNetNS, "10.65.0.3")
	l.ping(t, p2.ContainerNetNS, "10.65.0.2")
	l.ping(t, p1.ContainerNetNS, "10.99.0.1")

	for _, w := range []Workload{p1, p2} {
		if err := CheckWorkload(w); err != nil {
			t.Fatalf("CheckWorkload(%s) = %v", w.HostIf, err)
		}
	}

	// What the kernel shows matches upstream's plumbing.
	routes := testutil.RunIn(t, l.host, "ip", "-d", "route", "show", "10.65.0.2")
	if !strings.Contains(routes, "10.65.0.2 dev calitest0001 proto boot scope link") {
		t.Errorf("host route: %q", routes)
	}
	link := testutil.RunIn(t, l.host, "ip", "-d", "link", "show", "calitest0001")
	for _, want := range []string{"mtu 1450", "state UP", "link/ether ee:ee:ee:ee:ee:ee", "veth"} {
		if !strings.Contains(link, want) {
			t.Errorf("host link lacks %q:\n%s", want, link)
		}
	}
	if addrs := testutil.RunIn(t, l.host, "ip", "-4", "addr", "show", "calitest0001"); strings.Contains(addrs, "inet ") {
		t.Errorf("host veth has an IPv4 address:\n%s", addrs)
	}
	podRoutes := testutil.RunIn(t, p1.ContainerNetNS, "ip", "route")
	for _, want := range []string{"default via 169.254.1.1 dev eth0", "169.254.1.1 dev eth0 scope link"} {
		if !strings.Contains(podRoutes, want) {
			t.Errorf("pod routes lack %q:\n%s", want, podRoutes)
		}
	}
	for key, want := range map[string]string{
		"net/ipv4/conf/calitest0001/proxy_arp":      "1",
		"net/ipv4/conf/calitest0001/route_localnet": "1",
		"net/ipv4/conf/calitest0001/forwarding":     "1",
		"net/ipv4/neigh/calitest0001/proxy_delay":   "0",
		"net/ipv6/conf/calitest0001/accept_ra":      "0",
	} {
		if got, err := netns.GetSysctl(l.host, key); err != nil || got != want {
			t.Errorf("host %s = %q, %v; want %q", key, got, err, want)
		}
	}
	if got, _ := netns.GetSysctl(p1.ContainerNetNS, "net/ipv4/ip_forward"); got != "0" {
		t.Errorf("pod ip_forward = %q, want 0", got)
	}

	// Break things one at a time; CheckWorkload must say exactly what.
	l2 := testutil.Handle(t, p1.ContainerNetNS)
	hostLink, err := l.hostH.LinkByName("calitest0001")
	if err != nil {
		t.Fatal(err)
	}
	hostRoute := &netlink.Route{LinkIndex: hostLink.Attrs().Index, Dst: ipNet(netip.MustParsePrefix("10.65.0.2/32")), Scope: netlink.SCOPE_LINK}
	if err := l.hostH.RouteDel(hostRoute); err != nil {
		t.Fatal(err)
	}
	wantCheckError(t, p1, "host route 10.65.0.2/32 dev calitest0001 is missing")
	if err := l.hostH.RouteAdd(hostRoute); err != nil {
		t.Fatal(err)
	}
	if err := CheckWorkload(p1); err != nil {
		t.Fatalf("CheckWorkload after restoring the route = %v", err)
	}

	eth0, err := l2.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.AddrDel(eth0, &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix("10.65.0.2/32"))}); err != nil {
		t.Fatal(err)
	}
	wantCheckError(t, p1, "container interface eth0 is missing address 10.65.0.2/32")

	if err := l.hostH.LinkDel(hostLink); err != nil {
		t.Fatal(err)
	}
	wantCheckError(t, p1, "host interface calitest0001 is missing")
	wantCheckError(t, p1, "container interface eth0 is missing")

	// p2 is untouched by all that.
	if err := CheckWorkload(p2); err != nil {
		t.Fatalf("CheckWorkload(p2) = %v", err)
	}
	for i := range 2 {
		if err := TeardownWorkload(p2.ContainerNetNS, "eth0"); err != nil {
			t.Fatalf("TeardownWorkload #%d = %v", i+1, err)
		}
	}
	if _, err := l.hostH.LinkByName("calitest0002"); !isLinkNotFound(err) {
		t.Errorf("host link survived teardown: %v", err)
	}
	if out := testutil.RunIn(t, l.host, "ip", "route", "show", "10.65.0.3"); out != "" {
		t.Errorf("host route survived teardown: %q", out)
	}
}

func TestPrivilegedWorkloadIPv6(t *testing.T) {
	l := newLab(t)
	p1 := l.pod(t, "calitest6001", "fd00:65::2/128", "10.65.1.2/32")
	p2 := l.pod(t, "calitest6002", "fd00:65::3/128")
	l.ping(t, p1.ContainerNetNS, "fd00:65::3")
	l.ping(t, p2.ContainerNetNS, "fd00:65::2")
	for _, w := range []Workload{p1, p2} {
		if err := CheckWorkload(w); err != nil {
			t.Fatalf("CheckWorkload(%s) = %v", w.HostIf, err)
		}
	}
	if out := testutil.RunIn(t, p2.ContainerNetNS, "ip", "-6", "route", "show", "default"); !strings.Contains(out, "default via "+HostLinkLocal+" dev eth0") {
		t.Errorf("pod IPv6 default route: %q", out)
	}
	if out := testutil.RunIn(t, l.host, "ip", "-d", "-6", "route", "show", "fd00:65::2"); !strings.Contains(out, "fd00:65::2 dev calitest6001 proto boot") {
		t.Errorf("host IPv6 route: %q", out)
	}
	if got, _ := netns.GetSysctl(l.host, "net/ipv6/conf/calitest6001/proxy_ndp"); got != "1" {
		t.Errorf("proxy_ndp = %q", got)
	}
	h2 := testutil.Handle(t, p2.ContainerNetNS)
	if err := h2.RouteDel(&netlink.Route{Dst: ipNet(netip.MustParsePrefix("::/0")), Gw: net.ParseIP(HostLinkLocal), LinkIndex: mustIndex(t, h2, "eth0")}); err != nil {
		t.Fatal(err)
	}
	wantCheckError(t, p2, "container is missing IPv6 route default via a link-local gateway dev eth0")
}

func mustIndex(t *testing.T, h *netlink.Handle, name string) int {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Index
}

// addVeth makes a plain veth pair a/b inside one namespace.
func addVeth(t *testing.T, h *netlink.Handle, a, b string) netlink.Link {
	t.Helper()
	la := netlink.NewLinkAttrs()
	la.Name = a
	la.Flags = net.FlagUp
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: b}); err != nil {
		t.Fatal(err)
	}
	l, err := h.LinkByName(a)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestPrivilegedSetupRollsBackOnFailure(t *testing.T) {
	l := newLab(t)
	other := addVeth(t, l.hostH, "other0", "other1")
	// A route for the pod's address already points elsewhere: the last step
	// of Setup fails, after links, sysctls, addresses and pod routes exist.
	if err := l.hostH.RouteAdd(&netlink.Route{LinkIndex: other.Attrs().Index, Dst: ipNet(netip.MustParsePrefix("10.65.2.9/32")), Scope: netlink.SCOPE_LINK}); err != nil {
		t.Fatal(err)
	}
	w := Workload{HostNetNS: l.host, ContainerNetNS: testutil.NewNetNS(t), ContainerIf: "eth0", HostIf: "calitestfail1",
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.65.2.8/32"), netip.MustParsePrefix("10.65.2.9/32")}}
	_, err := SetupWorkload(w)
	if !errors.Is(err, ErrRouteConflict) || !strings.Contains(err.Error(), "route 10.65.2.9/32 already exists for interface other0") {
		t.Fatalf("SetupWorkload = %v, want a route conflict naming other0", err)
	}
	if _, err := l.hostH.LinkByName("calitestfail1"); !isLinkNotFound(err) {
		t.Errorf("host link left behind after failure: %v", err)
	}
	if out := testutil.RunIn(t, w.ContainerNetNS, "ip", "-o", "link", "show"); strings.Contains(out, "eth0") {
		t.Errorf("container link left behind after failure:\n%s", out)
	}
	out := testutil.RunIn(t, l.host, "ip", "-4", "route", "show")
	if strings.Contains(out, "10.65.2.8") || strings.Count(out, "10.65.2.9 dev other0") != 1 {
		t.Errorf("host routes after failure:\n%s", out)
	}

	// A container interface name that is already taken: creation fails and
	// the existing interface is left alone.
	ch := testutil.Handle(t, w.ContainerNetNS)
	addVeth(t, ch, "eth0", "spare0")
	w.Addrs = w.Addrs[:1]
	if _, err := SetupWorkload(w); err == nil || !strings.Contains(err.Error(), "create veth eth0") {
		t.Fatalf("SetupWorkload over an existing eth0 = %v", err)
	}
	if _, err := ch.LinkByName("eth0"); err != nil {
		t.Errorf("pre-existing container eth0 was removed: %v", err)
	}
	if _, err := l.hostH.LinkByName("calitestfail1"); !isLinkNotFound(err) {
		t.Errorf("host link left behind after failure: %v", err)
	}
}

// TestPrivilegedSetupReplacesStaleHostLink: a host link of the wanted name
// whose peer is this container's interface (a crashed earlier ADD of the
// same container) is replaced; one whose peer is anything else (another
// pod sharing the name) is left alone and the setup fails with
// ErrHostIfTaken.
func TestPrivilegedSetupReplacesStaleHostLink(t *testing.T) {
	l := newLab(t)
	w := l.pod(t, "calistale0001", "10.65.3.2/32")
	// The same container again (its old pair is still there): replaced.
	if _, err := SetupWorkload(w); err != nil {
		t.Fatalf("SetupWorkload over this container's own stale pair: %v", err)
	}
	if err := CheckWorkload(w); err != nil {
		t.Fatal(err)
	}
	// Another container wanting the same host name: refused, untouched.
	other := Workload{HostNetNS: l.host, ContainerNetNS: testutil.NewNetNS(t), ContainerIf: "eth0", HostIf: w.HostIf,
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.65.3.3/32")}}
	if _, err := SetupWorkload(other); !errors.Is(err, ErrHostIfTaken) {
		t.Fatalf("SetupWorkload over another container's host link = %v, want ErrHostIfTaken", err)
	}
	if err := CheckWorkload(w); err != nil {
		t.Errorf("the first container's plumbing changed: %v", err)
	}
	if _, err := testutil.Handle(t, other.ContainerNetNS).LinkByName("eth0"); !isLinkNotFound(err) {
		t.Errorf("the refused container got an interface: %v", err)
	}
	l.ping(t, w.ContainerNetNS, "10.65.3.2")
	// A veth pair of that name entirely in the host is not ours either.
	addVeth(t, l.hostH, "calistale0002", "stalepeer")
	other.HostIf = "calistale0002"
	if _, err := SetupWorkload(other); !errors.Is(err, ErrHostIfTaken) {
		t.Fatalf("SetupWorkload over an unrelated pair = %v, want ErrHostIfTaken", err)
	}
	if _, err := l.hostH.LinkByName("stalepeer"); err != nil {
		t.Errorf("unrelated pair deleted: %v", err)
	}
}

// TestPrivilegedRefuseOwnNetNS: a container namespace that is the host
// namespace, under any path, is refused before anything changes.
func TestPrivilegedRefuseOwnNetNS(t *testing.T) {
	l := newLab(t)
	// Links, IPv4 addresses and routes (link states and IPv6 DAD of the
	// fresh namespace may still be settling, so they are not compared).
	snapshot := func() string {
		links, err := l.hostH.LinkList()
		if err != nil {
			t.Fatal(err)
		}
		out := testutil.RunIn(t, l.host, "ip", "-o", "-4", "addr") + testutil.RunIn(t, l.host, "ip", "-4", "route")
		for _, x := range links {
			out += fmt.Sprintf("%s %s %d\n", x.Attrs().Name, x.Type(), x.Attrs().Index)
		}
		return out
	}
	before := snapshot()
	w := Workload{HostNetNS: l.host, ContainerNetNS: l.host, ContainerIf: "lo", HostIf: "caliownns0001",
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.65.9.2/32")}}
	if _, err := SetupWorkload(w); !errors.Is(err, ErrOwnNetNS) {
		t.Fatalf("SetupWorkload into the host namespace = %v, want ErrOwnNetNS", err)
	}
	if err := RemoveWorkload(Removal{HostNetNS: l.host, ContainerNetNS: l.host, ContainerIf: "lo"}); !errors.Is(err, ErrOwnNetNS) {
		t.Fatalf("RemoveWorkload in the host namespace = %v, want ErrOwnNetNS", err)
	}
	if after := snapshot(); after != before {
		t.Errorf("host namespace changed:\n%s\nwas\n%s", after, before)
	}
	same, err := SameNetNS("", "/proc/thread-self/ns/net")
	if err != nil || !same {
		t.Errorf("SameNetNS(\"\", /proc/thread-self/ns/net) = %v, %v", same, err)
	}
	if same, err := SameNetNS("", l.host); err != nil || same {
		t.Errorf("SameNetNS(\"\", a test namespace) = %v, %v", same, err)
	}
}

func TestPrivilegedTeardownMissing(t *testing.T) {
	l := newLab(t)
	w := l.pod(t, "calitestgone1", "10.65.4.2/32")
	testutil.DeleteNetNS(t, w.ContainerNetNS)
	if err := TeardownWorkload(w.ContainerNetNS, "eth0"); err != nil {
		t.Errorf("TeardownWorkload on a deleted netns = %v", err)
	}
	if err := TeardownWorkload("/var/run/netns/cdp-never-existed", "eth0"); err != nil {
		t.Errorf("TeardownWorkload on a never-existing netns = %v", err)
	}
	// Deleting the namespace destroys the pair; the host side goes too.
	testutil.Eventually(t, 10*time.Second, func() error {
		if _, err := l.hostH.LinkByName("calitestgone1"); !isLinkNotFound(err) {
			return errors.New("host link still present")
		}
		return nil
	})
}

func TestPrivilegedHostMTU(t *testing.T) {
	testutil.RequireRoot(t)
	ns := testutil.NewNetNS(t)
	h := testutil.Handle(t, ns)
	pattern := regexp.MustCompile(`^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)`)
	if mtu, err := HostMTU(h, pattern); err != nil || mtu != DefaultHostMTU {
		t.Fatalf("HostMTU with no match = %d, %v; want %d", mtu, err, DefaultHostMTU)
	}
	for _, p := range []struct {
		a, b string
		mtu  int
	}{{"eth0", "peer0", 1400}, {"eth1", "peer1", 9000}, {"other", "peer2", 1300}} {
		la := netlink.NewLinkAttrs()
		la.Name, la.MTU, la.Flags = p.a, p.mtu, net.FlagUp
		if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: p.b}); err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: p.b}}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		mtu, err := HostMTU(h, pattern)
		if err != nil || mtu != 1400 {
			return errors.New("HostMTU != 1400 yet")
		}
		return nil
	})
}

// BenchmarkSetupWorkload reports the CNI plumbing cost. "cycle" is
// Setup+Teardown of one pod (veth deletion waits for RCU grace periods in
// the kernel, and the next Setup often waits behind that clean-up);
// "setup-only" sets up one pod per iteration in a fresh pod namespace made
// outside the timer (the namespaces go away after the benchmark).
func BenchmarkSetupWorkload(b *testing.B) {
	testutil.RequireRoot(b)
	host := testutil.NewNetNS(b)
	pod := testutil.NewNetNS(b)
	b.Run("cycle", func(b *testing.B) {
		w := Workload{HostNetNS: host, ContainerNetNS: pod, ContainerIf: "eth0", HostIf: "calibench0001", MTU: 1450,
			Addrs: []netip.Prefix{netip.MustParsePrefix("10.65.9.2/32")}}
		var setup time.Duration
		for b.Loop() {
			start := time.Now()
			if _, err := SetupWorkload(w); err != nil {
				b.Fatal(err)
			}
			setup += time.Since(start)
			if err := TeardownWorkload(pod, "eth0"); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
		b.ReportMetric(float64(setup.Microseconds())/1000/float64(b.N), "setup-ms/op")
	})
	b.Run("setup-only", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			b.StopTimer()
			w := Workload{HostNetNS: host, ContainerNetNS: testutil.NewNetNS(b), ContainerIf: "eth0", HostIf: fmt.Sprintf("calib%d", i), MTU: 1450,
				Addrs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 66, byte(i / 250), byte(i%250 + 1)}), 32)}}
			b.StartTimer()
			if _, err := SetupWorkload(w); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
	})
}
