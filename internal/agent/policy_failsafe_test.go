package agent

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/nft"
)

// TestFailsafePortsKeepTheNet: FelixConfiguration's failsafe entries keep
// their protocol (TCP by default) and their net (an address is a /32 or
// /128, a CIDR is masked); an entry whose net does not parse is left out,
// not opened to every address.
func TestFailsafePortsKeepTheNet(t *testing.T) {
	got := FailsafePorts([]api.ProtoPort{
		{Port: 22},
		{Protocol: "UDP", Port: 68},
		{Protocol: "TCP", Port: 10250, Net: "10.1.2.3/8"},
		{Protocol: "tcp", Port: 443, Net: "fd00::1"},
		{Protocol: "TCP", Port: 1, Net: "not-a-net"},
	})
	want := []nft.ProtoPort{
		{Protocol: 6, Port: 22},
		{Protocol: 17, Port: 68},
		{Protocol: 6, Port: 10250, Net: netip.MustParsePrefix("10.0.0.0/8")},
		{Protocol: 6, Port: 443, Net: netip.MustParsePrefix("fd00::1/128")},
	}
	if !slices.Equal(got, want) {
		t.Errorf("failsafePorts = %v, want %v", got, want)
	}
}
