package route

import (
	"encoding/binary"
	"fmt"
	"net/netip"

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
	// want indexes the last ApplyWith's destinations, wantDsts (a copy).
	want     *desired
	wantDsts []netip.Prefix
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
	sent := make([]Route, 0, len(routes))
	oifs := make([]int, 0, len(routes))
	for _, r := range routes {
		oif := 0
		if r.LinkName != "" {
			idx, ok := ls.byName[r.LinkName]
			if !ok {
				errs = append(errs, fmt.Errorf("replace route %s: link %s not found", r, r.LinkName))
				continue
			}
			oif = idx
		}
		sent, oifs = append(sent, r), append(oifs, oif)
	}
	res := b.s.SendEach(len(sent), func(buf []byte, i int, seq uint32) []byte {
		return appendRouteRequest(buf, seq, sent[i], table, oifs[i])
	})
	for i, err := range res {
		if err != nil {
			errs = append(errs, fmt.Errorf("replace route %s: %w", sent[i], err))
		}
	}
	return errs
}

// appendRouteRequest appends RTM_NEWROUTE with create, replace and ack
// for a batchable route through link oif (0: none).
func appendRouteRequest(buf []byte, seq uint32, r Route, table, oif int) []byte {
	m := routeMsg{typ: unix.RTM_NEWROUTE, flags: unix.NLM_F_REQUEST | unix.NLM_F_CREATE | unix.NLM_F_REPLACE | unix.NLM_F_ACK,
		scope: byte(r.Scope), rtType: unix.RTN_UNICAST, oif: oif}
	if r.Gw.IsValid() {
		m.gw = r.Gw.AsSlice()
	}
	if r.OnLink {
		m.rtFlags = unix.RTNH_F_ONLINK
	}
	return appendRouteMsg(buf, seq, r, table, m)
}

// routeMsg is what differs between the RTM_NEWROUTE and RTM_DELROUTE
// requests appendRouteMsg builds for a route.
type routeMsg struct {
	typ, flags    uint16
	scope, rtType byte
	rtFlags       uint32
	gw            []byte // RTA_GATEWAY, when set
	oif           int    // RTA_OIF, when not 0
}

// appendRouteMsg appends one route request: r's destination, protocol
// and metric in table, with m's type, flags, scope, next hop and device.
func appendRouteMsg(buf []byte, seq uint32, r Route, table int, m routeMsg) []byte {
	dst := r.Dst.Addr().AsSlice()
	payload := rtmsgLen + netns.AttrLen(len(dst))
	if table >= 256 {
		payload += netns.AttrLen(4)
	}
	if m.gw != nil {
		payload += netns.AttrLen(len(m.gw))
	}
	if r.Metric != 0 {
		payload += netns.AttrLen(4)
	}
	if m.oif != 0 {
		payload += netns.AttrLen(4)
	}
	buf = netns.AppendHeader(buf, m.typ, m.flags, seq, payload)
	family, tbl := byte(unix.AF_INET), byte(table)
	if r.Dst.Addr().Is6() {
		family = unix.AF_INET6
	}
	if table >= 256 {
		tbl = unix.RT_TABLE_UNSPEC
	}
	// struct rtmsg: family, dst_len, src_len, tos, table, protocol,
	// scope, type, flags.
	buf = append(buf, family, byte(r.Dst.Bits()), 0, 0, tbl, byte(r.proto()), m.scope, m.rtType)
	buf = binary.NativeEndian.AppendUint32(buf, m.rtFlags)
	buf = netns.AppendAttr(buf, unix.RTA_DST, dst)
	if table >= 256 {
		buf = netns.AppendAttrU32(buf, unix.RTA_TABLE, uint32(table))
	}
	if m.gw != nil {
		buf = netns.AppendAttr(buf, unix.RTA_GATEWAY, m.gw)
	}
	if r.Metric != 0 {
		buf = netns.AppendAttrU32(buf, unix.RTA_PRIORITY, uint32(r.Metric))
	}
	if m.oif != 0 {
		buf = netns.AppendAttrU32(buf, unix.RTA_OIF, uint32(m.oif))
	}
	return buf
}
