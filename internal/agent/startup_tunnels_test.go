package agent

import (
	"context"
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
)

// fakeRegistrar is a fakeTunnels that can allocate before the Node exists.
type fakeRegistrar struct {
	*fakeTunnels
	labels []map[string]string
}

func (f *fakeRegistrar) EnsureTunnelAddressRegistering(ctx context.Context, host string, labels map[string]string, kind TunnelKind, pools []string) (netip.Addr, error) {
	f.mu.Lock()
	f.labels = append(f.labels, labels)
	f.mu.Unlock()
	return f.EnsureTunnelAddress(ctx, host, kind, pools)
}

// TestStartupRegistersWithTunnelAddress: on its first start, with a VXLAN
// pool in place, the daemon creates its Node with the tunnel address and
// MAC already in it (one write, not a create and an update), and the
// tunnel manager then finds nothing to write.
func TestStartupRegistersWithTunnelAddress(t *testing.T) {
	ft := &fakeRegistrar{fakeTunnels: &fakeTunnels{next: map[TunnelKind]netip.Addr{TunnelVXLAN: ip("10.244.7.0")}, held: map[TunnelKind]netip.Addr{}}}
	a, c := startupAgent(t, func(c *Config) { c.Tunnels = ft; c.NoDefaultPools = true; c.Backend = BackendVXLAN })
	ctx := context.Background()
	p := api.NewIPPool()
	p.Name, p.Spec.CIDR, p.Spec.VXLANMode = "vx", "10.244.0.0/16", api.VXLANModeAlways
	if _, err := c.Apply(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := a.startup(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := datastore.GetOf[*api.Node](ctx, c, api.KindNode, "", "n1")
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.IPv4VXLANTunnelAddr != "10.244.7.0" || n.Spec.VXLANTunnelMACAddr != VTEPMAC("n1").String() ||
		n.Spec.BGP == nil || n.Spec.BGP.IPv4Address != "10.99.0.11/24" {
		b, _ := json.Marshal(n)
		t.Fatalf("node as registered: %s", b)
	}
	if len(ft.labels) != 1 || len(ft.pools) != 1 || len(ft.pools[0]) != 1 || ft.pools[0][0] != "10.244.0.0/16" {
		t.Errorf("registration asked for labels %v, pools %q; want one VXLAN request in the vx pool", ft.labels, ft.pools)
	}
	rev := n.ResourceVersion
	if err := a.syncTunnelsOnce(ctx); err != nil {
		t.Fatal(err)
	}
	n, _ = datastore.GetOf[*api.Node](ctx, c, api.KindNode, "", "n1")
	if n.ResourceVersion != rev || n.Spec.IPv4VXLANTunnelAddr != "10.244.7.0" {
		t.Errorf("the tunnel manager rewrote the Node (revision %s -> %s, address %s)", rev, n.ResourceVersion, n.Spec.IPv4VXLANTunnelAddr)
	}
	// A restart keeps the Node as it is: no second allocation.
	if err := a.startup(ctx); err != nil {
		t.Fatal(err)
	}
	if len(ft.labels) != 1 {
		t.Errorf("a restart allocated before registering again (%d calls)", len(ft.labels))
	}
}
