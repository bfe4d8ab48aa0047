package ipam

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/onecalico/calico/internal/api"
)

// TestTunnelAddressBeforeTheNode: a node daemon registering its Node may
// get its tunnel address first, with the labels the Node will have; a
// stored Node's labels win; everyone else still needs the Node.
func TestTunnelAddressBeforeTheNode(t *testing.T) {
	s := etcdStore(t)
	ctx := context.Background()
	a := New(s, Options{})
	putPool(t, s, "rack-b", "10.61.0.0/24", func(p *api.IPPool) { p.Spec.NodeSelector = "rack == 'b'" })
	if _, err := a.EnsureTunnelAddress(ctx, "n1", TunnelVXLAN, nil); !errors.Is(err, ErrNodeNotFound) {
		t.Fatalf("tunnel address for a host without a Node: %v, want ErrNodeNotFound", err)
	}
	expectUnchanged(t, s, func() {
		if _, err := a.EnsureTunnelAddressRegistering(ctx, "n1", map[string]string{"rack": "a"}, TunnelVXLAN, nil); !errors.Is(err, ErrNoPool) {
			t.Fatalf("registering with labels no pool selects: %v, want ErrNoPool", err)
		}
	})
	got, err := a.EnsureTunnelAddressRegistering(ctx, "n1", map[string]string{"rack": "b"}, TunnelVXLAN, nil)
	if err != nil || !netip.MustParsePrefix("10.61.0.0/24").Contains(got) {
		t.Fatalf("registering in rack b: %v %v", got, err)
	}
	info, err := a.Lookup(ctx, got)
	if err != nil || *info.HandleID != "vxlan-tunnel-addr-n1" || info.Attrs["node"] != "n1" || info.Attrs["type"] != "vxlanTunnelAddress" {
		t.Fatalf("allocation %+v %v", info, err)
	}
	// The Node is created as registered; the ordinary call keeps the address.
	putNode(t, s, "n1", map[string]string{"rack": "b"})
	if again, err := a.EnsureTunnelAddress(ctx, "n1", TunnelVXLAN, nil); err != nil || again != got {
		t.Fatalf("after registering: %v %v, want %v", again, err, got)
	}
	// A stored Node's labels decide, not the caller's.
	putNode(t, s, "n2", map[string]string{"rack": "a"})
	if _, err := a.EnsureTunnelAddressRegistering(ctx, "n2", map[string]string{"rack": "b"}, TunnelVXLAN, nil); !errors.Is(err, ErrNoPool) {
		t.Fatalf("registering over a stored Node of rack a: %v, want ErrNoPool", err)
	}
	if bad := invariants(t, s); len(bad) > 0 {
		t.Fatal(bad)
	}
}
