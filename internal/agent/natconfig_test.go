package agent

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/api"
)

// TestCalcNATOutgoingAddressAndPorts: FelixConfiguration natOutgoingAddress
// and natPortRange reach the desired NAT table (SNAT address, port range)
// and are no longer reported as degraded.
func TestCalcNATOutgoingAddressAndPorts(t *testing.T) {
	m := model(vxlanPool(api.VXLANModeAlways))
	fc, err := resolveFelix(api.FelixConfigurationSpec{NATOutgoingAddress: "192.0.2.7", NATPortRange: &api.Port{MinPort: 20000, MaxPort: 29999}})
	if err != nil {
		t.Fatal(err)
	}
	m.Felix = fc
	d := Calc(m)
	if d.NAT.NAT.SNATAddress != netip.MustParseAddr("192.0.2.7") || d.NAT.NAT.PortMin != 20000 || d.NAT.NAT.PortMax != 29999 {
		t.Errorf("desired NAT %+v, want SNAT to 192.0.2.7 ports 20000-29999", d.NAT.NAT)
	}
	if i := slices.IndexFunc(d.Degraded, func(s string) bool { return strings.Contains(s, "nat") }); i >= 0 {
		t.Errorf("still degraded: %q", d.Degraded[i])
	}
	// Unset: masquerade with the kernel's ports.
	m.Felix, _ = resolveFelix(api.FelixConfigurationSpec{})
	if n := Calc(m).NAT.NAT; n.SNATAddress.IsValid() || n.PortMin != 0 {
		t.Errorf("desired NAT %+v without the settings", n)
	}
}
