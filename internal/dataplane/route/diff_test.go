package route

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
)

var owner = Owner{Protocols: []int{80}, LinkPrefixes: []string{"cali", "vxlan.calico"}}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func inst(r Route, prio int) current {
	return current{Route: r, Owned: owner.owns(r), Priority: prio}
}

func strs[T interface{ String() string }](xs []T) []string {
	var out []string
	for _, x := range xs {
		out = append(out, x.String())
	}
	return out
}

func delStrs(cs []current) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Route.String())
	}
	return out
}

func TestDiff(t *testing.T) {
	bh := Route{Dst: pfx("10.244.1.0/26"), Type: Blackhole, Protocol: 80}
	remote := Route{Dst: pfx("10.244.2.0/26"), Gw: addr("10.99.0.12"), LinkName: "eth0", Protocol: 80}
	vx := Route{Dst: pfx("10.244.3.0/26"), Gw: addr("10.244.3.0"), LinkName: "vxlan.calico", OnLink: true}
	wl := Route{Dst: pfx("10.244.1.2/32"), LinkName: "cali1", Scope: netlink.SCOPE_LINK}
	bootWl := wl
	bootWl.Protocol = ProtoBoot
	v6bh := Route{Dst: pfx("fd00:1::/122"), Type: Blackhole, Protocol: 80}
	foreign := Route{Dst: pfx("192.0.2.0/24"), Gw: addr("10.99.0.1"), LinkName: "eth0", Protocol: 4}
	kernel := Route{Dst: pfx("10.99.0.0/24"), LinkName: "eth0", Protocol: 2, Scope: netlink.SCOPE_LINK, Src: addr("10.99.0.11")}
	caliLL := Route{Dst: pfx("fe80::/64"), LinkName: "cali1", Protocol: 2}
	staleOnCali := Route{Dst: pfx("10.244.1.99/32"), LinkName: "cali1", Protocol: 4, Scope: netlink.SCOPE_LINK}
	movedRemote := remote
	movedRemote.Gw = addr("10.99.0.13")

	cases := []struct {
		name               string
		installed          []current
		desired            []Route
		add, replace, dels []string
	}{
		{
			name:    "empty to A",
			desired: []Route{bh, remote, vx, wl, v6bh},
			add:     strs([]Route{bh, remote, vx, wl, v6bh}),
		},
		{
			name:      "A installed is a no-op, proto 0 equals boot",
			installed: []current{inst(bh, 0), inst(remote, 0), inst(vx, 0), inst(bootWl, 0), inst(v6bh, 1024), inst(foreign, 0), inst(kernel, 0), inst(caliLL, 256)},
			desired:   []Route{bh, remote, vx, wl, v6bh},
		},
		{
			name:      "changed gateway is replaced, ours removed, foreign kept",
			installed: []current{inst(bh, 0), inst(remote, 0), inst(vx, 0), inst(foreign, 0), inst(kernel, 0), inst(caliLL, 256), inst(staleOnCali, 0)},
			desired:   []Route{bh, movedRemote},
			replace:   strs([]Route{movedRemote}),
			dels:      strs([]Route{vx, staleOnCali}),
		},
		{
			name:      "owned duplicate at another metric is removed",
			installed: []current{inst(remote, 0), inst(remote, 100)},
			desired:   []Route{remote},
			dels:      strs([]Route{remote}),
		},
		{
			name:      "foreign route at our destination is replaced, not deleted",
			installed: []current{inst(Route{Dst: remote.Dst, Gw: addr("10.99.0.1"), LinkName: "eth0", Protocol: 4}, 0)},
			desired:   []Route{remote},
			replace:   strs([]Route{remote}),
		},
		{
			name:      "to empty",
			installed: []current{inst(bh, 0), inst(remote, 0), inst(vx, 0), inst(bootWl, 0), inst(v6bh, 1024), inst(foreign, 0), inst(kernel, 0), inst(caliLL, 256)},
			dels:      strs([]Route{bh, remote, vx, bootWl, v6bh}),
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := diff(c.installed, c.desired)
			if got := strs(p.add); !slices.Equal(got, c.add) {
				t.Errorf("add = %q, want %q", got, c.add)
			}
			if got := strs(p.replace); !slices.Equal(got, c.replace) {
				t.Errorf("replace = %q, want %q", got, c.replace)
			}
			if got := delStrs(p.del); !slices.Equal(got, c.dels) {
				t.Errorf("delete = %q, want %q", got, c.dels)
			}
		})
	}
}

func TestOwns(t *testing.T) {
	for _, c := range []struct {
		r    Route
		want bool
	}{
		{Route{Dst: pfx("10.0.0.0/26"), Type: Blackhole, Protocol: 80}, true},
		{Route{Dst: pfx("10.0.0.0/26"), Type: Blackhole, Protocol: 12}, false},
		{Route{Dst: pfx("10.0.0.5/32"), LinkName: "cali123", Protocol: 4}, true},
		{Route{Dst: pfx("10.0.0.5/32"), LinkName: "cali123"}, true},
		{Route{Dst: pfx("10.0.0.0/24"), LinkName: "vxlan.calico", Protocol: 3}, true},
		{Route{Dst: pfx("10.0.0.0/24"), LinkName: "cali1", Protocol: 2}, false},
		{Route{Dst: pfx("fe80::/64"), LinkName: "cali1", Protocol: 3}, false},
		{Route{Dst: pfx("10.0.0.0/24"), LinkName: "eth0", Protocol: 4}, false},
	} {
		if got := owner.owns(c.r); got != c.want {
			t.Errorf("owns(%s) = %v, want %v", c.r, got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, r := range []Route{
		{},
		{Dst: pfx("10.0.0.1/24"), LinkName: "eth0"},
		{Dst: pfx("10.0.0.0/24")},
		{Dst: pfx("10.0.0.0/24"), Type: Blackhole, LinkName: "eth0"},
		{Dst: pfx("10.0.0.0/24"), Gw: addr("fd00::1")},
		{Dst: pfx("10.0.0.0/24"), Gw: addr("10.0.0.1"), OnLink: true},
		{Dst: pfx("10.0.0.0/24"), LinkName: "eth0", Protocol: 256},
		{Dst: pfx("10.0.0.0/24"), LinkName: "eth0", Type: Other},
	} {
		if err := r.validate(); !errors.Is(err, ErrInvalidRoute) {
			t.Errorf("validate(%+v) = %v, want ErrInvalidRoute", r, err)
		}
	}
	if _, err := Apply(nil, owner, []Route{{Dst: pfx("10.0.0.0/24"), LinkName: "a"}, {Dst: pfx("10.0.0.0/24"), LinkName: "b"}}); !errors.Is(err, ErrInvalidRoute) {
		t.Errorf("Apply with duplicate destinations = %v, want ErrInvalidRoute", err)
	}
}

func TestString(t *testing.T) {
	for r, want := range map[*Route]string{
		{Dst: pfx("10.244.3.0/26"), Gw: addr("10.244.3.0"), LinkName: "vxlan.calico", OnLink: true, MTU: 1450}: "10.244.3.0/26 via 10.244.3.0 dev vxlan.calico onlink proto 3 mtu 1450",
		{Dst: pfx("10.244.1.0/26"), Type: Blackhole, Protocol: 80}:                                             "blackhole 10.244.1.0/26 proto 80",
		{Dst: pfx("10.244.1.2/32"), LinkName: "cali1", Scope: netlink.SCOPE_LINK, Src: addr("10.0.0.1")}:       "10.244.1.2/32 dev cali1 proto 3 scope link src 10.0.0.1",
	} {
		if got := r.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}
