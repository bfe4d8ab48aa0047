package route

import (
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/onecalico/calico/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the kernel's output")

// node builds a node-like namespace: eth0 (10.99.0.11/24, fd00:99::11/64),
// veths named cali1 and vxlan.calico, and foreign routes that Apply must
// leave alone, plus one stale route on cali1 that it must remove.
func node(t testing.TB) (string, *netlink.Handle) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireCmd(t, "ip")
	ns := testutil.NewNetNS(t)
	h := testutil.Handle(t, ns)
	for _, pair := range [][2]string{{"eth0", "peer0"}, {"cali1", "peer1"}, {"vxlan.calico", "peer2"}} {
		la := netlink.NewLinkAttrs()
		la.Name = pair[0]
		la.Flags = net.FlagUp
		if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: pair[1]}); err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: pair[1]}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, cmd := range [][]string{
		{"ip", "addr", "add", "10.99.0.11/24", "dev", "eth0"},
		{"ip", "addr", "add", "fd00:99::11/64", "dev", "eth0", "nodad"},
		{"ip", "route", "add", "192.0.2.0/24", "via", "10.99.0.1", "dev", "eth0", "proto", "static"},
		{"ip", "-6", "route", "add", "2001:db8::/64", "via", "fd00:99::1", "dev", "eth0", "proto", "static"},
		{"ip", "route", "add", "10.244.1.99/32", "dev", "cali1", "proto", "static", "scope", "link"},
	} {
		testutil.RunIn(t, ns, cmd...)
	}
	return ns, h
}

// kernelRoutes renders one table as `ip -d route` lines, trailing blanks
// trimmed and sorted (the kernel orders equal prefixes, such as every
// link's fe80::/64, by event timing).
func kernelRoutes(t *testing.T, ns string, table string) string {
	t.Helper()
	out := testutil.RunIn(t, ns, "ip", "-d", "-4", "route", "show", "table", table) +
		testutil.RunIn(t, ns, "ip", "-d", "-6", "route", "show", "table", table)
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}

func checkGolden(t *testing.T, got string) {
	t.Helper()
	path := filepath.Join("testdata", t.Name()+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if got != string(want) {
		t.Errorf("kernel state differs from %s:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func normalized(rs []Route) []string {
	out := slices.Clone(rs)
	for i := range out {
		out[i].Protocol = out[i].proto()
	}
	Sort(out)
	return strs(out)
}

func TestPrivilegedApplySteps(t *testing.T) {
	ns, h := node(t)
	bh := Route{Dst: pfx("10.244.1.0/26"), Type: Blackhole, Protocol: 80}
	remote := Route{Dst: pfx("10.244.2.0/26"), Gw: addr("10.99.0.12"), LinkName: "eth0", Protocol: 80}
	vx := Route{Dst: pfx("10.244.3.0/26"), Gw: addr("10.244.3.0"), LinkName: "vxlan.calico", OnLink: true, MTU: 1450}
	wl := Route{Dst: pfx("10.244.1.2/32"), LinkName: "cali1", Scope: netlink.SCOPE_LINK}
	v6bh := Route{Dst: pfx("fd00:244:1::/122"), Type: Blackhole, Protocol: 80}
	v6remote := Route{Dst: pfx("fd00:244:2::/122"), Gw: addr("fd00:99::12"), LinkName: "eth0", Protocol: 80}
	moved := remote
	moved.Gw = addr("10.99.0.13")
	withSrc := Route{Dst: pfx("10.244.4.0/26"), Gw: addr("10.99.0.14"), LinkName: "eth0", Protocol: 80, Src: addr("10.99.0.11")}

	steps := []struct {
		name    string
		desired []Route
		want    Result
	}{
		{"A", []Route{bh, remote, vx, wl, v6bh, v6remote}, Result{Added: 6, Deleted: 1}},
		{"B", []Route{bh, moved, wl, v6bh, withSrc}, Result{Added: 1, Replaced: 1, Deleted: 2}},
		{"empty", nil, Result{Deleted: 5}},
	}
	var golden strings.Builder
	for _, s := range steps {
		got, err := Apply(h, owner, s.desired)
		if err != nil || got != s.want {
			t.Fatalf("step %s: Apply = %+v, %v; want %+v", s.name, got, err, s.want)
		}
		if again, err := Apply(h, owner, s.desired); err != nil || again != (Result{}) {
			t.Fatalf("step %s: second Apply = %+v, %v; want no changes", s.name, again, err)
		}
		listed, err := List(h, owner)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strs(listed), normalized(s.desired); !slices.Equal(got, want) {
			t.Errorf("step %s: List =\n%q\nwant\n%q", s.name, got, want)
		}
		fmt.Fprintf(&golden, "== %s ==\n%s", s.name, kernelRoutes(t, ns, "main"))
	}
	checkGolden(t, golden.String())
}

func TestPrivilegedApplyContinuesPastErrors(t *testing.T) {
	_, h := node(t)
	good := Route{Dst: pfx("10.244.2.0/26"), Gw: addr("10.99.0.12"), LinkName: "eth0", Protocol: 80}
	missing := Route{Dst: pfx("10.244.5.0/26"), Gw: addr("10.99.0.15"), LinkName: "nosuchlink", Protocol: 80}
	unreachable := Route{Dst: pfx("10.244.6.0/26"), Gw: addr("172.16.0.1"), LinkName: "eth0", Protocol: 80}
	res, err := Apply(h, owner, []Route{good, missing, unreachable})
	if err == nil || !strings.Contains(err.Error(), "link nosuchlink not found") || !strings.Contains(err.Error(), "replace route 10.244.6.0/26") {
		t.Fatalf("Apply error = %v, want both failures named", err)
	}
	if res != (Result{Added: 1, Deleted: 1}) {
		t.Errorf("Apply result = %+v", res)
	}
	listed, _ := List(h, owner)
	if got := strs(listed); !slices.Equal(got, strs([]Route{good})) {
		t.Errorf("List = %q", got)
	}
}

func TestPrivilegedApplyOwnTable(t *testing.T) {
	ns, h := node(t)
	own := Owner{Protocols: []int{80}, Table: 100}
	mainBefore := kernelRoutes(t, ns, "main")
	want := []Route{{Dst: pfx("0.0.0.0/0"), Gw: addr("10.99.0.1"), LinkName: "eth0", Protocol: 80}, {Dst: pfx("fd00:244::/48"), Type: Blackhole, Protocol: 80}}
	if res, err := Apply(h, own, want); err != nil || res != (Result{Added: 2}) {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	if got := kernelRoutes(t, ns, "100"); !strings.Contains(got, "default via 10.99.0.1 dev eth0 proto 80") || !strings.Contains(got, "blackhole fd00:244::/48") {
		t.Errorf("table 100:\n%s", got)
	}
	if res, err := Apply(h, own, nil); err != nil || res != (Result{Deleted: 2}) {
		t.Fatalf("Apply(nil) = %+v, %v", res, err)
	}
	if got := kernelRoutes(t, ns, "main"); got != mainBefore {
		t.Errorf("main table changed:\n%s\nwas\n%s", got, mainBefore)
	}
}

func benchRoutes(n int) []Route {
	rs := make([]Route, n)
	for i := range rs {
		rs[i] = Route{Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i), 0}), 26),
			Gw: addr(fmt.Sprintf("10.99.0.%d", 12+i%200)), LinkName: "eth0", Protocol: 80}
	}
	return rs
}

func BenchmarkRouteApply(b *testing.B) {
	_, h := node(b)
	desired := benchRoutes(250)
	if _, err := Apply(h, owner, desired); err != nil {
		b.Fatal(err)
	}
	b.Run("noop-250", func(b *testing.B) {
		for b.Loop() {
			if res, err := Apply(h, owner, desired); err != nil || res != (Result{}) {
				b.Fatal(res, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
	})
	b.Run("one-change-250", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			desired[7].Gw = netip.AddrFrom4([4]byte{10, 99, 0, byte(2 + i%2)})
			if res, err := Apply(h, owner, desired); err != nil || res != (Result{Replaced: 1}) {
				b.Fatal(res, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
	})
}
