package agent_test

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/ipam"
)

// TestPrivilegedStartupAllocatesTunnelAddressFromIPAM runs the real
// `calico-node -startup` with a VXLAN pool and no tunnel address on the Node:
// the daemon allocates one through IPAM under upstream's handle
// vxlan-tunnel-addr-<node> with attributes {node, type}, records it on the
// Node, and a second run keeps the same address.
func TestPrivilegedStartupAllocatesTunnelAddressFromIPAM(t *testing.T) {
	lab := newLab(t)
	bin := labtest.Binary(t)
	n1 := lab.AddNode("n1", 99, 11)
	lab.Pool("pool1", "10.244.0.0/16", api.VXLANModeAlways, api.IPIPModeNever, true)
	ctx := context.Background()
	startup := func() netip.Addr {
		t.Helper()
		if out, err := runCmd(t, "ip", append(n1.Env(), "LANG=C"), "netns", "exec", filepath.Base(n1.NS), bin, "-startup"); err != nil {
			t.Fatalf("calico-node -startup: %v %s", err, out)
		}
		node, err := datastore.GetOf[*api.Node](ctx, lab.Client, api.KindNode, "", "n1")
		if err != nil || node.Spec.IPv4VXLANTunnelAddr == "" {
			t.Fatalf("node after -startup has no VXLAN tunnel address: %+v %v", node, err)
		}
		return netip.MustParseAddr(node.Spec.IPv4VXLANTunnelAddr)
	}
	first := startup()
	ips, err := ipam.New(lab.Store, ipam.Options{}).IPsByHandle(ctx, "vxlan-tunnel-addr-n1")
	if err != nil || len(ips) != 1 || ips[0] != first {
		t.Fatalf("IPAM handle vxlan-tunnel-addr-n1 holds %v (%v), want [%s]", ips, err, first)
	}
	if !netip.MustParsePrefix("10.244.0.0/16").Contains(first) {
		t.Fatalf("tunnel address %s is outside the VXLAN pool", first)
	}
	if again := startup(); again != first {
		t.Fatalf("second startup changed the tunnel address %s -> %s", first, again)
	}
}
