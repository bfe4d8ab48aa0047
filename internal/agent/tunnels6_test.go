package agent

import (
	"io"
	"log/slog"
	"testing"

	"github.com/onecalico/calico/internal/api"
)

func TestRecordVXLANV6(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n := api.NewNode()
	n.Name = "n1"
	if !recordVXLANV6(n, "fd00:244::1", false, log) || n.Spec.IPv6VXLANTunnelAddr != "fd00:244::1" ||
		n.Spec.VXLANTunnelMACAddrV6 != VTEPMACV6("n1").String() {
		t.Fatalf("first record: %+v", n.Spec)
	}
	if recordVXLANV6(n, "fd00:244::1", true, log) {
		t.Error("recording the same address again changed the node")
	}
	// A MAC set by hand is kept when the address changes.
	n.Spec.VXLANTunnelMACAddrV6 = "66:00:00:00:00:01"
	if !recordVXLANV6(n, "fd00:244::2", true, log) || n.Spec.VXLANTunnelMACAddrV6 != "66:00:00:00:00:01" {
		t.Errorf("new address: %+v", n.Spec)
	}
	// Clearing the address clears the MAC with it.
	if !recordVXLANV6(n, "", true, log) || n.Spec.IPv6VXLANTunnelAddr != "" || n.Spec.VXLANTunnelMACAddrV6 != "" {
		t.Errorf("cleared: %+v", n.Spec)
	}
	// IPv4 fields are never touched.
	n.Spec.IPv4VXLANTunnelAddr, n.Spec.VXLANTunnelMACAddr = "10.244.1.0", "66:00:00:00:00:02"
	recordVXLANV6(n, "fd00:244::3", false, log)
	if n.Spec.IPv4VXLANTunnelAddr != "10.244.1.0" || n.Spec.VXLANTunnelMACAddr != "66:00:00:00:00:02" {
		t.Errorf("IPv4 fields changed: %+v", n.Spec)
	}
}

func TestTunnelPoolsV6(t *testing.T) {
	m := dualStack(api.VXLANModeAlways)
	me := m.Nodes["n1"]
	if got := tunnelPools(m, me, TunnelVXLANV6); len(got) != 1 || got[0] != "fd00:244::/64" {
		t.Errorf("IPv6 VXLAN tunnel pools %q", got)
	}
	if got := tunnelPools(m, me, TunnelVXLAN); len(got) != 1 || got[0] != "10.244.0.0/16" {
		t.Errorf("IPv4 VXLAN tunnel pools %q", got)
	}
	p := m.Pools["p6"]
	p.Disabled = true
	m.Pools["p6"] = p
	if got := tunnelPools(m, me, TunnelVXLANV6); len(got) != 0 {
		t.Errorf("disabled IPv6 pool still offers tunnel addresses: %q", got)
	}
}
