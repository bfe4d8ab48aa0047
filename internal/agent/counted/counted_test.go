package counted_test

import (
	"net"
	"net/netip"
	"testing"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/agent/counted"
	"github.com/onecalico/calico/internal/dataplane/route"
	"github.com/onecalico/calico/internal/dataplane/tunnel"
)

func rt(dst, gw string) route.Route {
	return route.Route{Dst: netip.MustParsePrefix(dst), Gw: netip.MustParseAddr(gw), LinkName: agent.VXLANDevice, OnLink: true, Protocol: agent.RouteProtocol}
}

func TestRoutesCountedAndDiffed(t *testing.T) {
	k := counted.New(counted.Host{Iface: "eth0", Addr: netip.MustParsePrefix("172.16.0.1/12")})
	a, b, c := rt("10.64.0.64/26", "10.64.0.64"), rt("10.64.0.128/26", "10.64.0.128"), rt("10.64.0.192/26", "10.64.0.192")
	if _, err := k.ApplyRoutes(agent.RouteOwner, []route.Route{a, b}); err != nil {
		t.Fatal(err)
	}
	b2 := b
	b2.Gw = netip.MustParseAddr("10.64.0.129")
	res, err := k.ApplyRouteChanges(agent.RouteOwner, []route.Route{a, b}, []route.Route{b2, c})
	if err != nil {
		t.Fatal(err)
	}
	if res != (route.Result{Added: 1, Replaced: 1, Deleted: 1}) {
		t.Errorf("result %+v, want one of each", res)
	}
	if got, _, ok := k.Route(b.Dst); !ok || got != b2 {
		t.Errorf("route to %s: %v %v, want %v", b.Dst, got, ok, b2)
	}
	if _, ok := k.RouteGone(a.Dst); !ok {
		t.Errorf("route to %s not recorded as gone", a.Dst)
	}
	// A full apply of the same set changes nothing.
	if res, _ := k.ApplyRoutes(agent.RouteOwner, []route.Route{b2, c}); res != (route.Result{}) {
		t.Errorf("second identical apply: %+v", res)
	}
	cn := k.Counts()
	if cn.RoutesAdded != 3 || cn.RoutesReplaced != 1 || cn.RoutesDeleted != 1 {
		t.Errorf("counts %+v", cn)
	}
	if _, err := k.ApplyRoutes(agent.RouteOwner, []route.Route{a, a}); err == nil {
		t.Error("duplicate destinations accepted")
	}
}

func TestVTEPsNeedTheDeviceAndGoWithIt(t *testing.T) {
	k := counted.New(counted.Host{Iface: "eth0", Addr: netip.MustParsePrefix("172.16.0.1/12")})
	v := tunnel.VTEP{TunnelIP: netip.MustParseAddr("10.64.0.64"), MAC: net.HardwareAddr{0x66, 1, 2, 3, 4, 5}, NodeIP: netip.MustParseAddr("172.16.0.2")}
	if err := k.SyncVTEPs(agent.VXLANDevice, []tunnel.VTEP{v}); err == nil {
		t.Fatal("VTEPs synced without the device")
	}
	if err := k.EnsureVXLAN(tunnel.VXLAN{Name: agent.VXLANDevice, VNI: 4096, MTU: 1410}); err != nil {
		t.Fatal(err)
	}
	if err := k.SyncVTEPs(agent.VXLANDevice, []tunnel.VTEP{v}); err != nil {
		t.Fatal(err)
	}
	if got, _, ok := k.VTEP(v.TunnelIP); !ok || got.NodeIP != v.NodeIP {
		t.Fatalf("VTEP %s: %+v %v", v.TunnelIP, got, ok)
	}
	if err := k.DeleteLink(agent.VXLANDevice); err != nil {
		t.Fatal(err)
	}
	if _, ok := k.VTEPGone(v.TunnelIP); !ok {
		t.Error("VTEP not gone with its device")
	}
	cn := k.Counts()
	if cn.LinksAdded != 1 || cn.LinksDeleted != 1 || cn.NeighSet != 1 || cn.FDBSet != 1 {
		t.Errorf("counts %+v", cn)
	}
}
