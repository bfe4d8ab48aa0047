package route

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/dataplane/netns"
)

// Batcher installs many routes with few system calls: it writes a chunk
// of RTM_NEWROUTE requests at once and then reads their acknowledgements,
// instead of one request and one reply per route (which bounds a bulk
// change at one round trip per route). It is used for large incremental
// changes, such as thousands of routes learned from a BGP peer at once.
// Not safe for concurrent use.
type Batcher struct {
	s     *netns.BatchSocket
	links map[string]int // link name -> index cache of ApplyChanges
}

// batchChunk is how many requests go in one write (about 60 bytes each).
const batchChunk = 256

// NewBatcher opens a route socket in the namespace at nsPath ("" for the
// process's own).
func NewBatcher(nsPath string) (*Batcher, error) {
	s, err := netns.NewBatchSocket(nsPath)
	if err != nil {
		return nil, err
	}
	return &Batcher{s: s}, nil
}

// Forget drops the cached link indexes (after links may have been
// recreated).
func (b *Batcher) Forget() { b.links = nil }

// Close closes the socket.
func (b *Batcher) Close() { b.s.Close() }

// batchable reports whether r can go in a batch: a unicast route with no
// MTU or preferred source (those go through netlink.Handle).
func batchable(r Route) bool {
	return r.Type == Unicast && r.MTU == 0 && !r.Src.IsValid()
}

// replace installs routes (all batchable, links resolved in ls) and
// returns one error per failed route.
func (b *Batcher) replace(routes []Route, table int, ls links) []error {
	var errs []error
	for start := 0; start < len(routes); start += batchChunk {
		chunk := routes[start:min(start+batchChunk, len(routes))]
		errs = append(errs, b.replaceChunk(chunk, table, ls)...)
	}
	return errs
}

func (b *Batcher) replaceChunk(routes []Route, table int, ls links) []error {
	var errs []error
	reqs := make([]*nl.NetlinkRequest, 0, len(routes))
	sent := make([]Route, 0, len(routes))
	for _, r := range routes {
		req, err := newRouteRequest(r, table, ls)
		if err != nil {
			errs = append(errs, fmt.Errorf("replace route %s: %w", r, err))
			continue
		}
		reqs, sent = append(reqs, req), append(sent, r)
	}
	for i, err := range b.s.Send(reqs) {
		if err != nil {
			errs = append(errs, fmt.Errorf("replace route %s: %w", sent[i], err))
		}
	}
	return errs
}

// newRouteRequest builds RTM_NEWROUTE with create, replace and ack for a
// batchable route.
func newRouteRequest(r Route, table int, ls links) (*nl.NetlinkRequest, error) {
	req := nl.NewNetlinkRequest(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK)
	msg := nl.NewRtMsg()
	msg.Family = unix.AF_INET
	if r.Dst.Addr().Is6() {
		msg.Family = unix.AF_INET6
	}
	msg.Dst_len = uint8(r.Dst.Bits())
	msg.Protocol = uint8(r.proto())
	msg.Scope = uint8(r.Scope)
	if table < 256 {
		msg.Table = uint8(table)
	} else {
		msg.Table = unix.RT_TABLE_UNSPEC
	}
	if r.OnLink {
		msg.Flags |= unix.RTNH_F_ONLINK
	}
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.RTA_DST, r.Dst.Addr().AsSlice()))
	if table >= 256 {
		req.AddData(nl.NewRtAttr(unix.RTA_TABLE, nl.Uint32Attr(uint32(table))))
	}
	if r.Gw.IsValid() {
		req.AddData(nl.NewRtAttr(unix.RTA_GATEWAY, r.Gw.AsSlice()))
	}
	if r.LinkName != "" {
		idx, ok := ls.byName[r.LinkName]
		if !ok {
			return nil, errors.New("link " + r.LinkName + " not found")
		}
		req.AddData(nl.NewRtAttr(unix.RTA_OIF, nl.Uint32Attr(uint32(idx))))
	}
	return req, nil
}
