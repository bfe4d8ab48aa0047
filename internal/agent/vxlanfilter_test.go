package agent

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/onecalico/calico/internal/dataplane/tunnel"
)

func TestVXLANFilterPeersBothFamilies(t *testing.T) {
	v4 := tunnel.VTEP{NodeIP: netip.MustParseAddr("10.0.0.2")}
	v6 := tunnel.VTEP{NodeIP: netip.MustParseAddr("fd00::2")}
	for _, tc := range []struct {
		name   string
		s4, s6 DeviceState
		state  DeviceState
		peers  []netip.Addr
	}{
		{"v4 only", DevicePresent, DeviceAbsent, DevicePresent, []netip.Addr{v4.NodeIP}},
		{"v6 only", DeviceAbsent, DevicePresent, DevicePresent, []netip.Addr{v6.NodeIP}},
		{"both", DevicePresent, DevicePresent, DevicePresent, []netip.Addr{v4.NodeIP, v6.NodeIP}},
		{"none", DeviceAbsent, DeviceAbsent, DeviceAbsent, []netip.Addr{}},
		{"v4 kept", DeviceKeep, DeviceAbsent, DeviceKeep, []netip.Addr{}},
	} {
		d := Desired{VXLANState: tc.s4, VXLANV6State: tc.s6, VTEPs: []tunnel.VTEP{v4}, VTEPsV6: []tunnel.VTEP{v6}}
		if got := vxlanFilterState(d); got != tc.state {
			t.Errorf("%s: state %v, want %v", tc.name, got, tc.state)
		}
		if got := vxlanPeers(d); !slices.Equal(got, tc.peers) {
			t.Errorf("%s: peers %v, want %v", tc.name, got, tc.peers)
		}
	}
}
