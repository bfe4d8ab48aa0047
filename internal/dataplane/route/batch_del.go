package route

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
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
	return appendRouteMsg(buf, seq, r, table, routeMsg{typ: unix.RTM_DELROUTE, flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK,
		scope: unix.RT_SCOPE_UNIVERSE, rtType: unix.RTN_UNSPEC})
}
