package route

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/dataplane/netns"
)

// kernelKey is what identifies an installed route to the kernel when it
// is deleted, besides its Route fields.
type kernelKey struct {
	table    int
	tos      uint8
	rtType   uint8
	oif      int
	priority int
}

// delRoute is the RTM_DELROUTE request for installed route c: the
// destination, table, TOS, metric, protocol, type, scope and next hop select
// exactly that route.
func delRoute(c current) *netlink.Route {
	r := c.Route
	nr := &netlink.Route{
		Dst:       &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), r.Dst.Addr().BitLen())},
		Table:     c.key.table,
		Tos:       int(c.key.tos),
		Type:      int(c.key.rtType),
		Priority:  c.Priority,
		Protocol:  netlink.RouteProtocol(r.proto()),
		LinkIndex: c.key.oif,
		Scope:     r.Scope,
	}
	if r.Gw.IsValid() {
		nr.Gw = r.Gw.AsSlice()
	}
	return nr
}

// readRaw is read through b's socket: the dump's messages are parsed
// in place (parseRoute) instead of into netlink.Route values and handed
// to d one by one, so reading thousands of routes allocates nothing per
// route.
func (b *Batcher) readRaw(owner Owner, ls links, d *differ) error {
	req := nl.NewNetlinkRequest(unix.RTM_GETROUTE, unix.NLM_F_DUMP)
	req.AddData(&nl.RtMsg{RtMsg: unix.RtMsg{Family: unix.AF_UNSPEC}})
	table := owner.table()
	return b.s.Dump(req, func(typ uint16, data []byte) bool {
		if typ != unix.RTM_NEWROUTE {
			return true
		}
		if c, ok := parseRoute(data, table, ls); ok {
			c.Owned = owner.owns(c.Route)
			d.see(c)
		}
		return true
	})
}

// rtmsgLen is sizeof(struct rtmsg).
const rtmsgLen = 12

// parseRoute decodes one RTM_NEWROUTE payload as fromNetlink would the
// netlink library's Route; ok is false for routes of other tables, other
// families, cached clones and malformed messages.
func parseRoute(m []byte, table int, ls links) (current, bool) {
	if len(m) < rtmsgLen {
		return current{}, false
	}
	family := int(m[0])
	if family != unix.AF_INET && family != unix.AF_INET6 {
		return current{}, false
	}
	if binary.NativeEndian.Uint32(m[8:12])&unix.RTM_F_CLONED != 0 {
		return current{}, false
	}
	var c current
	c.key = kernelKey{table: int(m[4]), tos: m[3], rtType: m[7]}
	c.Protocol = int(m[5])
	c.Scope = netlink.Scope(m[6])
	c.OnLink = binary.NativeEndian.Uint32(m[8:12])&unix.RTNH_F_ONLINK != 0
	var dst netip.Addr
	attrs := netns.Attrs(m[rtmsgLen:])
	for {
		at, ok, bad := attrs.Next()
		if bad {
			return current{}, false
		}
		if !ok {
			break
		}
		v := at.Value
		switch at.Type {
		case unix.RTA_DST:
			dst = addrFrom(v)
		case unix.RTA_GATEWAY:
			c.Gw = addrFrom(v)
		case unix.RTA_PREFSRC:
			c.Src = addrFrom(v)
		case unix.RTA_OIF:
			c.key.oif = u32(v)
		case unix.RTA_PRIORITY:
			c.Priority = u32(v)
		case unix.RTA_TABLE:
			c.key.table = u32(v)
		case unix.RTA_METRICS:
			c.MTU = metricMTU(v)
		}
	}
	if c.key.table != table {
		return current{}, false
	}
	if !dst.IsValid() {
		dst = netip.IPv4Unspecified()
		if family == unix.AF_INET6 {
			dst = netip.IPv6Unspecified()
		}
	}
	var err error
	if c.Dst, err = dst.Prefix(int(m[1])); err != nil {
		return current{}, false
	}
	c.Type = typeOf(int(c.key.rtType))
	if c.Type != Blackhole {
		c.LinkName = ls.byIndex[c.key.oif]
	}
	return c, true
}

// addrFrom is the address in v (4 or 16 bytes); zero if v is not one.
func addrFrom(v []byte) netip.Addr {
	a, _ := netip.AddrFromSlice(v)
	return a
}

func u32(v []byte) int {
	if len(v) < 4 {
		return 0
	}
	return int(binary.NativeEndian.Uint32(v))
}

// metricMTU is RTAX_MTU of a nested RTA_METRICS attribute (0 if none).
func metricMTU(b []byte) int {
	attrs := netns.Attrs(b)
	for at, ok, _ := attrs.Next(); ok; at, ok, _ = attrs.Next() {
		if at.Type == unix.RTAX_MTU {
			return u32(at.Value)
		}
	}
	return 0
}

// readLib is read through the netlink library, for callers without a
// Batcher.
func readLib(h *netlink.Handle, owner Owner, ls links, d *differ) error {
	return h.RouteListFilteredIter(netlink.FAMILY_ALL, &netlink.Route{Table: owner.table()}, netlink.RT_FILTER_TABLE, func(nr netlink.Route) bool {
		r, ok := fromNetlink(nr, ls)
		if !ok || (nr.Family != unix.AF_INET && nr.Family != unix.AF_INET6) {
			return true
		}
		d.see(current{Route: r, Owned: owner.owns(r), Priority: nr.Priority,
			key: kernelKey{table: nr.Table, tos: uint8(nr.Tos), rtType: uint8(nr.Type), oif: nr.LinkIndex}})
		return true
	})
}

// read feeds the routes of owner's table to d (through b's socket when b
// is set).
func read(h *netlink.Handle, b *Batcher, owner Owner, ls links, d *differ) error {
	var err error
	for range dumpRetries {
		d.reset()
		if b != nil {
			err = b.readRaw(owner, ls, d)
		} else {
			err = readLib(h, owner, ls, d)
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("list routes in table %d: %w", owner.table(), err)
	}
	return nil
}

// desiredIndex validates routes and indexes their destinations. With a
// Batcher the index is kept for the next call with the same destinations
// in the same order (a resync of thousands would otherwise build the
// same map every time).
func (b *Batcher) desiredIndex(routes []Route) (*desired, error) {
	for _, r := range routes {
		if err := r.validate(); err != nil {
			return nil, err
		}
	}
	if b != nil && b.want != nil && len(b.wantDsts) == len(routes) {
		same := true
		for i, r := range routes {
			if b.wantDsts[i] != r.Dst {
				same = false
				break
			}
		}
		if same {
			return &desired{routes: routes, at: b.want.at}, nil
		}
	}
	ix := desiredIndex(routes)
	if ix.dup.IsValid() {
		return nil, fmt.Errorf("route %s: duplicate destination: %w", ix.dup, ErrInvalidRoute)
	}
	if b != nil {
		b.want = ix
		b.wantDsts = make([]netip.Prefix, len(routes))
		for i, r := range routes {
			b.wantDsts[i] = r.Dst
		}
	}
	return ix, nil
}
