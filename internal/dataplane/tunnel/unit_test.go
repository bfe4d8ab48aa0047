package tunnel

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestVXLANMismatch(t *testing.T) {
	want := VXLAN{Name: "vxlan.calico", VNI: 4096, LocalIP: netip.MustParseAddr("10.0.0.1"), ParentIndex: 2}
	base := func() *netlink.Vxlan {
		return &netlink.Vxlan{VxlanId: 4096, Port: 4789, SrcAddr: net.ParseIP("10.0.0.1"), VtepDevIndex: 2}
	}
	if why := vxlanMismatch(base(), want); why != "" {
		t.Errorf("matching device: %q", why)
	}
	for wantWhy, mutate := range map[string]func(*netlink.Vxlan){
		"vni 1, want 4096":                func(v *netlink.Vxlan) { v.VxlanId = 1 },
		"port 8472, want 4789":            func(v *netlink.Vxlan) { v.Port = 8472 },
		"local 10.0.0.9, want 10.0.0.1":   func(v *netlink.Vxlan) { v.SrcAddr = net.ParseIP("10.0.0.9") },
		"local invalid IP, want 10.0.0.1": func(v *netlink.Vxlan) { v.SrcAddr = nil },
		"parent index 3, want 2":          func(v *netlink.Vxlan) { v.VtepDevIndex = 3 },
		"learning is on":                  func(v *netlink.Vxlan) { v.Learning = true },
	} {
		v := base()
		mutate(v)
		if why := vxlanMismatch(v, want); why != wantWhy {
			t.Errorf("vxlanMismatch = %q, want %q", why, wantWhy)
		}
	}
	if why := vxlanMismatch(&netlink.Veth{}, want); why != "link is a veth" {
		t.Errorf("veth: %q", why)
	}
}

func TestInvalidInput(t *testing.T) {
	for _, v := range []VXLAN{{}, {Name: "vxlan.calico", VNI: 1 << 24}, {Name: "vxlan.calico", VNI: 1, Port: 70000},
		{Name: "vxlan.calico", VNI: 1, MAC: net.HardwareAddr{1}}, {Name: "waytoolongname0123", VNI: 1}} {
		if err := EnsureVXLAN(nil, v); !errors.Is(err, ErrInvalid) {
			t.Errorf("EnsureVXLAN(%+v) = %v, want ErrInvalid", v, err)
		}
	}
	good := VTEP{TunnelIP: netip.MustParseAddr("10.0.0.1"), MAC: net.HardwareAddr{0x66, 0, 0, 0, 0, 1}, NodeIP: netip.MustParseAddr("192.0.2.1")}
	sameMAC := good
	sameMAC.TunnelIP, sameMAC.NodeIP = netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("192.0.2.2")
	for _, vs := range [][]VTEP{{{}}, {good, good}, {good, sameMAC}} {
		if err := SyncVTEPs(nil, "vxlan.calico", vs); !errors.Is(err, ErrInvalid) {
			t.Errorf("SyncVTEPs(%v) = %v, want ErrInvalid", vs, err)
		}
	}
	if err := EnsureIPIP(nil, IPIP{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("EnsureIPIP(empty) = %v", err)
	}
}
