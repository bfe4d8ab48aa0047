package tunnel

import (
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
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

// entry is one permanent entry SyncVTEPs sets on link index: a
// neighbour (ip: the VTEP's tunnel address) or, with fdb, an FDB entry of
// the device itself (ip: the VTEP's node address).
type entry struct {
	index int
	fdb   bool
	ip    netip.Addr
	mac   net.HardwareAddr
}

func (e entry) neigh() *netlink.Neigh {
	n := &netlink.Neigh{LinkIndex: e.index, State: permanent, IP: e.ip.AsSlice(), HardwareAddr: e.mac}
	if e.fdb {
		n.Family, n.Flags = unix.AF_BRIDGE, netlink.NTF_SELF
	}
	return n
}

// appendNeighRequest appends NeighSet's request (create or replace) for
// e.
func appendNeighRequest(buf []byte, seq uint32, e entry) []byte {
	family, flags := byte(unix.AF_INET), byte(0)
	if e.ip.Is6() {
		family = unix.AF_INET6
	}
	if e.fdb {
		family, flags = unix.AF_BRIDGE, netlink.NTF_SELF
	}
	alen := e.ip.BitLen() / 8
	payload := ndmsgLen + netns.AttrLen(alen) + netns.AttrLen(len(e.mac))
	buf = netns.AppendHeader(buf, unix.RTM_NEWNEIGH, unix.NLM_F_REQUEST|unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK, seq, payload)
	// struct ndmsg: family, 3 bytes of padding, ifindex, state, flags, type.
	buf = append(buf, family, 0, 0, 0)
	buf = binary.NativeEndian.AppendUint32(buf, uint32(e.index))
	buf = binary.NativeEndian.AppendUint16(buf, permanent)
	buf = append(buf, flags, 0)
	a16 := e.ip.As16()
	buf = netns.AppendAttr(buf, unix.NDA_DST, a16[16-alen:])
	return netns.AppendAttr(buf, unix.NDA_LLADDR, e.mac)
}

// setEntries sets n entries (at(i) is the i-th), through b in batches
// when it is set and there are enough of them, else one NeighSet each;
// it returns the error of each that failed (index-aligned; nil for
// success). The entries are built as they are sent, never all at once.
func setEntries(h *netlink.Handle, b *Batcher, n int, at func(i int) entry) []error {
	if b == nil || n < minBatch {
		errs := make([]error, n)
		for i := range n {
			errs[i] = h.NeighSet(at(i).neigh())
		}
		return errs
	}
	errs := make([]error, 0, n)
	for start := 0; start < n; start += batchChunk {
		errs = append(errs, b.s.SendEach(min(batchChunk, n-start), func(buf []byte, i int, seq uint32) []byte {
			return appendNeighRequest(buf, seq, at(start+i))
		})...)
	}
	return errs
}
