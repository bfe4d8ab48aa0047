//go:build !nogobgp

package bgp

import (
	"net/netip"
	"slices"
	"testing"

	gobgpapi "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestDecodePath(t *testing.T) {
	o := Origin{Prefix: netip.MustParsePrefix("10.244.3.0/26"), Communities: []uint32{65000<<16 | 100}}
	p, err := originPath(o, netip.MustParseAddr("10.99.0.12"), false)
	if err != nil {
		t.Fatal(err)
	}
	p.Family = familyV4
	p.NeighborIp = "10.99.0.1"
	pfx, l, ok := decodePath(p)
	if !ok || pfx != o.Prefix || l.NextHop != netip.MustParseAddr("10.99.0.12") || l.Peer != netip.MustParseAddr("10.99.0.1") {
		t.Errorf("decoded %v %+v %v", pfx, l, ok)
	}
	w, err := originPath(o, netip.MustParseAddr("10.99.0.12"), true)
	if err != nil {
		t.Fatal(err)
	}
	w.Family = familyV4
	w.Pattrs = nil // withdrawals carry no next hop
	if pfx, _, ok := decodePath(w); !ok || pfx != o.Prefix {
		t.Errorf("withdrawal decoded %v %v", pfx, ok)
	}
	p.Family = &gobgpapi.Family{Afi: gobgpapi.Family_AFI_IP6, Safi: gobgpapi.Family_SAFI_UNICAST}
	if _, _, ok := decodePath(p); ok {
		t.Error("an IPv6 family decoded as IPv4 unicast")
	}
	p.Family, p.Pattrs = familyV4, nil
	if _, _, ok := decodePath(p); ok {
		t.Error("a path without a next hop decoded")
	}
}

// BenchmarkDecodePath is the per-UPDATE cost of reading a learned path
// (GoBGP's callback, on the UPDATE → kernel path).
func BenchmarkDecodePath(b *testing.B) {
	p, err := originPath(Origin{Prefix: netip.MustParsePrefix("10.244.3.0/26")}, netip.MustParseAddr("10.99.0.12"), false)
	if err != nil {
		b.Fatal(err)
	}
	p.Family, p.NeighborIp = familyV4, "10.99.0.1"
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := decodePath(p); !ok {
			b.Fatal("not decoded")
		}
	}
}

func TestDecodePathIPv6AndMalformed(t *testing.T) {
	o := Origin{Prefix: netip.MustParsePrefix("fd00:10:244::/122")}
	p, err := originPath(o, netip.MustParseAddr("fd00:99::12"), false)
	if err != nil {
		t.Fatal(err)
	}
	p.Family = familyV6
	p.NeighborIp = "fd00:99::1"
	pfx, l, ok := decodePath(p)
	if !ok || pfx != o.Prefix || l.NextHop != netip.MustParseAddr("fd00:99::12") || l.Peer != netip.MustParseAddr("fd00:99::1") {
		t.Errorf("decoded %v %+v %v", pfx, l, ok)
	}
	p.Nlri.Value = p.Nlri.Value[:len(p.Nlri.Value)-3] // cut inside the prefix string
	if _, _, ok := decodePath(p); ok {
		t.Error("a truncated NLRI decoded")
	}
}

// TestDecodePathLocalPref: a LOCAL_PREF that carries a priority
// (setPriority on the sender) is read from the wire form; an ordinary
// one is not a priority.
func TestDecodePathLocalPref(t *testing.T) {
	p, err := originPath(Origin{Prefix: netip.MustParsePrefix("10.244.3.0/26")}, netip.MustParseAddr("10.99.0.12"), false)
	if err != nil {
		t.Fatal(err)
	}
	p.Family, p.NeighborIp = familyV4, "10.99.0.1"
	base := p.Pattrs
	for _, tc := range []struct {
		localPref, want uint32
	}{{MaxLocalPref - 300, 300}, {100, 0}} {
		lp, err := anypb.New(&gobgpapi.LocalPrefAttribute{LocalPref: tc.localPref})
		if err != nil {
			t.Fatal(err)
		}
		p.Pattrs = append(slices.Clone(base), lp)
		if _, l, ok := decodePath(p); !ok || l.Priority != tc.want {
			t.Errorf("LOCAL_PREF %d: priority %d (ok %v), want %d", tc.localPref, l.Priority, ok, tc.want)
		}
	}
}
