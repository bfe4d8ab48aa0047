//go:build !nogobgp

package bgp

import (
	"net/netip"
	"strings"

	gobgpapi "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/encoding/protowire"
)

// decodePath reads an IPv4 or IPv6 unicast path's prefix, next hop and
// source. It runs once per learned path (10,000 paths from one peer are
// 10,000 calls), so it reads the protobuf wire form of the prefix and the
// next-hop attributes directly: no Any unmarshalling (reflection and an
// allocated message each) and no other attribute touched.
func decodePath(p *gobgpapi.Path) (netip.Prefix, Learned, bool) {
	if p.Family == nil || p.Family.Safi != gobgpapi.Family_SAFI_UNICAST || p.Nlri == nil {
		return netip.Prefix{}, Learned{}, false
	}
	v6 := p.Family.Afi == gobgpapi.Family_AFI_IP6
	if !v6 && p.Family.Afi != gobgpapi.Family_AFI_IP {
		return netip.Prefix{}, Learned{}, false
	}
	pfx, ok := decodePrefix(p.Nlri.TypeUrl, p.Nlri.Value)
	if !ok || pfx.Addr().Is6() != v6 {
		return netip.Prefix{}, Learned{}, false
	}
	var l Learned
	l.Peer, _ = netip.ParseAddr(p.NeighborIp)
	if p.IsWithdraw {
		return pfx, l, true
	}
	for _, attr := range p.Pattrs {
		switch {
		case anyIs(attr.TypeUrl, "apipb.NextHopAttribute"):
			// message NextHopAttribute { string next_hop = 1; }
			if b, ok := firstBytes(attr.Value, 1); ok {
				l.NextHop, _ = netip.ParseAddr(string(b))
			}
		case anyIs(attr.TypeUrl, "apipb.LocalPrefAttribute"):
			// message LocalPrefAttribute { uint32 local_pref = 1; }
			if v, ok := firstVarint(attr.Value, 1); ok {
				l.Priority = PriorityOf(uint32(v))
			}
		case anyIs(attr.TypeUrl, "apipb.MpReachNLRIAttribute") && !l.NextHop.IsValid():
			// message MpReachNLRIAttribute { ...; repeated string next_hops = 2; ... }
			if b, ok := firstBytes(attr.Value, 2); ok {
				l.NextHop, _ = netip.ParseAddr(string(b))
			}
		}
	}
	if !v6 {
		l.NextHop = l.NextHop.Unmap()
	}
	return pfx, l, l.NextHop.IsValid() && l.NextHop.Is6() == v6 && l.NextHop.Zone() == ""
}

// decodePrefix reads an apipb.IPAddressPrefix
// { uint32 prefix_len = 1; string prefix = 2; } in the wire form.
func decodePrefix(url string, b []byte) (netip.Prefix, bool) {
	if !anyIs(url, "apipb.IPAddressPrefix") {
		return netip.Prefix{}, false
	}
	var bits uint64
	var addr []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return netip.Prefix{}, false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			bits, n = protowire.ConsumeVarint(b)
		case num == 2 && typ == protowire.BytesType:
			addr, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return netip.Prefix{}, false
		}
		b = b[n:]
	}
	a, err := netip.ParseAddr(string(addr))
	if err != nil || a.Zone() != "" || bits > uint64(a.BitLen()) {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, int(bits)).Masked(), true
}

// firstBytes returns the first occurrence of the bytes (or string) field
// num of a message in the wire form.
func firstBytes(b []byte, num protowire.Number) ([]byte, bool) {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return nil, false
		}
		b = b[l:]
		if n == num && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(b)
			return v, l >= 0
		}
		if l = protowire.ConsumeFieldValue(n, typ, b); l < 0 {
			return nil, false
		}
		b = b[l:]
	}
	return nil, false
}

// firstVarint returns the first occurrence of the varint field num of a
// message in the wire form (absent: a zero value is not encoded).
func firstVarint(b []byte, num protowire.Number) (uint64, bool) {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return 0, false
		}
		b = b[l:]
		if n == num && typ == protowire.VarintType {
			v, l := protowire.ConsumeVarint(b)
			return v, l >= 0
		}
		if l = protowire.ConsumeFieldValue(n, typ, b); l < 0 {
			return 0, false
		}
		b = b[l:]
	}
	return 0, false
}

// anyIs reports whether an Any's type URL names the message name (its
// full protobuf name), as anypb's MessageIs does without reflection.
func anyIs(url, name string) bool {
	return strings.HasSuffix(url, name) && (len(url) == len(name) || url[len(url)-len(name)-1] == '/')
}
