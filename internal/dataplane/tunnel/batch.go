package tunnel

import (
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
	s *netns.BatchSocket
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

// neighRequest is NeighSet's request (create or replace, with ack) for n,
// which has an IP and a hardware address.
func neighRequest(n *netlink.Neigh) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(unix.RTM_NEWNEIGH, unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK)
	family := n.Family
	if family == 0 {
		family = nl.GetIPFamily(n.IP)
	}
	req.AddData(&netlink.Ndmsg{Family: uint8(family), Index: uint32(n.LinkIndex), State: uint16(n.State), Flags: uint8(n.Flags), Type: uint8(n.Type)})
	ip := n.IP.To4()
	if ip == nil {
		ip = n.IP.To16()
	}
	req.AddData(nl.NewRtAttr(unix.NDA_DST, ip))
	req.AddData(nl.NewRtAttr(unix.NDA_LLADDR, []byte(n.HardwareAddr)))
	return req
}

// set sets every entry of ns and returns the error of each that failed
// (index-aligned with ns; nil for success).
func (b *Batcher) set(ns []*netlink.Neigh) []error {
	errs := make([]error, len(ns))
	for start := 0; start < len(ns); start += batchChunk {
		end := min(start+batchChunk, len(ns))
		b.setChunk(ns[start:end], errs[start:end])
	}
	return errs
}

func (b *Batcher) setChunk(ns []*netlink.Neigh, errs []error) {
	reqs := make([]*nl.NetlinkRequest, len(ns))
	for i, n := range ns {
		reqs[i] = neighRequest(n)
	}
	copy(errs, b.s.Send(reqs))
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
