package tunnel

import (
	"encoding/binary"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/dataplane/netns"
)

// Batcher sets many neighbour and FDB entries with few system calls: it
// writes a chunk of RTM_NEWNEIGH requests at once and then reads their
// acknowledgements, instead of one round trip per entry (a cold start with
// thousands of remote VTEPs). Not safe for concurrent use.
type Batcher struct {
	s     *netns.BatchSocket
	vteps *vtepIndex // the last SyncVTEPs' index (vtep.go)
}

// batchChunk is how many requests go in one write (about 50 bytes each).
const batchChunk = 256

// minBatch is the smallest number of entries worth a batch.
const minBatch = 16

// NewBatcher opens a route socket in the namespace at nsPath ("" for the
// process's own).
func NewBatcher(nsPath string) (*Batcher, error) {
	s, err := netns.NewBatchSocket(nsPath)
	if err != nil {
		return nil, err
	}
	return &Batcher{s: s}, nil
}

// Close closes the socket.
func (b *Batcher) Close() { b.s.Close() }

// appendNeighRequest appends NeighSet's request (create or replace,
// with ack) for n, which has an IP and a hardware address.
func appendNeighRequest(buf []byte, seq uint32, n *netlink.Neigh) []byte {
	family := n.Family
	if family == 0 {
		family = nl.GetIPFamily(n.IP)
	}
	ip := n.IP.To4()
	if ip == nil {
		ip = n.IP.To16()
	}
	payload := ndmsgLen + netns.AttrLen(len(ip)) + netns.AttrLen(len(n.HardwareAddr))
	buf = netns.AppendHeader(buf, unix.RTM_NEWNEIGH, unix.NLM_F_REQUEST|unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK, seq, payload)
	// struct ndmsg: family, 3 bytes of padding, ifindex, state, flags, type.
	buf = append(buf, byte(family), 0, 0, 0)
	buf = binary.NativeEndian.AppendUint32(buf, uint32(n.LinkIndex))
	buf = binary.NativeEndian.AppendUint16(buf, uint16(n.State))
	buf = append(buf, byte(n.Flags), byte(n.Type))
	buf = netns.AppendAttr(buf, unix.NDA_DST, ip)
	return netns.AppendAttr(buf, unix.NDA_LLADDR, n.HardwareAddr)
}

// set sets every entry of ns and returns the error of each that failed
// (index-aligned with ns; nil for success).
func (b *Batcher) set(ns []*netlink.Neigh) []error {
	errs := make([]error, 0, len(ns))
	for start := 0; start < len(ns); start += batchChunk {
		chunk := ns[start:min(start+batchChunk, len(ns))]
		errs = append(errs, b.s.SendEach(len(chunk), func(buf []byte, i int, seq uint32) []byte {
			return appendNeighRequest(buf, seq, chunk[i])
		})...)
	}
	return errs
}

// setNeighs sets the entries of ns, through b when it is set and there
// are enough of them, else one NeighSet each; it returns the error of each
// that failed (index-aligned; nil for success).
func setNeighs(h *netlink.Handle, b *Batcher, ns []*netlink.Neigh) []error {
	if b != nil && len(ns) >= minBatch {
		return b.set(ns)
	}
	errs := make([]error, len(ns))
	for i, n := range ns {
		errs[i] = h.NeighSet(n)
	}
	return errs
}
