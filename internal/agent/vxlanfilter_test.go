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
		if !sameVXLANPeers(d, tc.peers) {
			t.Errorf("%s: sameVXLANPeers(%v) = false", tc.name, tc.peers)
		}
		others := [][]netip.Addr{append(slices.Clone(tc.peers), v4.NodeIP)}
		if n := len(tc.peers); n > 0 {
			others = append(others, tc.peers[:n-1])
		}
		if n := len(tc.peers); n > 1 {
			others = append(others, []netip.Addr{tc.peers[1], tc.peers[0]})
		}
		for _, o := range others {
			if sameVXLANPeers(d, o) {
				t.Errorf("%s: sameVXLANPeers(%v) = true", tc.name, o)
			}
		}
	}
}
