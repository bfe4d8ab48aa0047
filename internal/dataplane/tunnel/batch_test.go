package tunnel

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/testutil"
)

// TestPrivilegedSyncVTEPsBatches: 600 VTEPs (three batches of each kind,
// a third with IPv6 tunnel addresses)
// are set through the Batcher, read back by its dumps, left alone by a
// second call, and moved (every FDB destination changes) in place.
func TestPrivilegedSyncVTEPsBatches(t *testing.T) {
	n1, _ := twoNodes(t)
	b, err := NewBatcher(n1.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const n = 600
	vteps := func(node byte) []VTEP {
		out := make([]VTEP, n)
		for i := range out {
			out[i] = VTEP{TunnelIP: netip.AddrFrom4([4]byte{10, 128, byte(i >> 2), byte(i&3) << 6}),
				MAC: net.HardwareAddr{0x66, 0xcc, 0, 0, byte(i >> 8), byte(i)}, NodeIP: netip.AddrFrom4([4]byte{10, node, byte(i >> 8), byte(i)})}
			if i%3 == 0 { // some IPv6 tunnel addresses (the device's underlay is IPv4)
				out[i].TunnelIP = netip.AddrFrom16([16]byte{0xfd, 0, 2, 0x44, 14: byte(i >> 8), 15: byte(i)})
			}
		}
		return out
	}
	for _, s := range []struct {
		name  string
		node  byte
		stats syncStats
	}{{"set", 200, syncStats{setNeigh: n, setFDB: n}}, {"moved", 201, syncStats{setFDB: n}}} {
		if st, err := syncVTEPs(n1.h, b, "vxlan.calico", vteps(s.node)); err != nil || st != s.stats {
			t.Fatalf("%s: syncVTEPs = %+v, %v; want %+v", s.name, st, err, s.stats)
		}
		if st, err := syncVTEPs(n1.h, b, "vxlan.calico", vteps(s.node)); err != nil || !st.zero() {
			t.Fatalf("%s: second syncVTEPs = %+v, %v; want no changes", s.name, st, err)
		}
		fdb := testutil.RunIn(t, n1.ns, "bridge", "fdb", "show", "dev", "vxlan.calico")
		if got := strings.Count(fdb, fmt.Sprintf("dst 10.%d.", s.node)); got != n {
			t.Fatalf("%s: %d FDB entries to 10.%d.x.x, want %d", s.name, got, s.node, n)
		}
		neigh := testutil.RunIn(t, n1.ns, "ip", "neigh", "show", "dev", "vxlan.calico", "nud", "permanent")
		if got := strings.Count(neigh, "lladdr 66:cc"); got != n || !strings.Contains(neigh, "fd00:244::3 lladdr 66:cc:00:00:00:03") {
			t.Fatalf("%s: %d permanent neighbours, want %d with fd00:244::3:\n%s", s.name, got, n, neigh)
		}
	}
}
