package ctl

import (
	"bytes"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/agent"
)

// TestNodeStatusIPv6Rows: a dual-stack daemon's status shows its IPv6
// address, how many of its routes are IPv6 and its IPv6 VXLAN peers; an
// IPv4-only one shows none of these rows.
func TestNodeStatusIPv6Rows(t *testing.T) {
	var out bytes.Buffer
	printNodeStatus(&out, agent.Status{NodeName: "n1", IPv4Address: "10.99.0.11/24", IPv6Address: "fd00:99::11/64",
		Routes: 6, VTEPs: 2, RoutesV6: 3, VTEPsV6: 2, Version: "v1"})
	want := "IPv4 address:     10.99.0.11/24\nIPv6 address:     fd00:99::11/64\n"
	if !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
	want = "Routes:           6\nVXLAN peers:      2\nIPv6 routes:      3 (of the 6)\nIPv6 VXLAN peers: 2\n"
	if !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
	out.Reset()
	printNodeStatus(&out, agent.Status{NodeName: "n1", IPv4Address: "10.99.0.11/24", Routes: 3, VTEPs: 2})
	if strings.Contains(out.String(), "IPv6") {
		t.Errorf("IPv4-only status has IPv6 rows:\n%s", out.String())
	}
}
