package route

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/dataplane/netns"
)

// del deletes routes (of table, matched by destination, protocol and
// metric as ApplyChanges's netlink.Route did) through the batch socket,
// in one write per chunk, and returns one error per failed route. A
// route already gone is not an error. It counts the deleted in *n.
func (b *Batcher) del(routes []Route, table int, n *int) []error {
	var errs []error
	for start := 0; start < len(routes); start += batchChunk {
		chunk := routes[start:min(start+batchChunk, len(routes))]
		res := b.s.SendEach(len(chunk), func(buf []byte, i int, seq uint32) []byte {
			return appendRouteDelRequest(buf, seq, chunk[i], table)
		})
		for i, err := range res {
			switch {
			case err == nil || errors.Is(err, unix.ESRCH):
				*n++
			default:
				errs = append(errs, fmt.Errorf("delete route %s: %w", chunk[i], err))
			}
		}
	}
	return errs
}

// appendRouteDelRequest appends RTM_DELROUTE (with ack) for r's
// destination in table, with r's protocol and, when set, its metric.
// Type and next hop are left open and the scope is universe, as the
// netlink library's RouteDel of such a route sends them.
func appendRouteDelRequest(buf []byte, seq uint32, r Route, table int) []byte {
	dst := r.Dst.Addr().AsSlice()
	payload := rtmsgLen + netns.AttrLen(len(dst))
	if table >= 256 {
		payload += netns.AttrLen(4)
	}
	if r.Metric != 0 {
		payload += netns.AttrLen(4)
	}
	buf = netns.AppendHeader(buf, unix.RTM_DELROUTE, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq, payload)
	family, tbl := byte(unix.AF_INET), byte(table)
	if r.Dst.Addr().Is6() {
		family = unix.AF_INET6
	}
	if table >= 256 {
		tbl = unix.RT_TABLE_UNSPEC
	}
	// struct rtmsg: family, dst_len, src_len, tos, table, protocol,
	// scope, type, flags.
	buf = append(buf, family, byte(r.Dst.Bits()), 0, 0, tbl, byte(r.proto()), unix.RT_SCOPE_UNIVERSE, unix.RTN_UNSPEC)
	buf = binary.NativeEndian.AppendUint32(buf, 0)
	buf = netns.AppendAttr(buf, unix.RTA_DST, dst)
	if table >= 256 {
		buf = netns.AppendAttrU32(buf, unix.RTA_TABLE, uint32(table))
	}
	if r.Metric != 0 {
		buf = netns.AppendAttrU32(buf, unix.RTA_PRIORITY, uint32(r.Metric))
	}
	return buf
}
