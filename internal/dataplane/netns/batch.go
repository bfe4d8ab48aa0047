package netns

import (
	"encoding/binary"
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// BatchSocket is a NETLINK_ROUTE socket in one namespace that sends many
// requests in one write and then reads their acknowledgements, instead of
// one round trip per request (the netlink library's way), which bounds a
// bulk change such as thousands of routes or VTEP entries. The route and
// tunnel packages build their requests and send them through it. Not safe
// for concurrent use.
type BatchSocket struct {
	s   *nl.NetlinkSocket
	buf []byte // the receive buffer of Dump and SendEach
	out []byte // SendEach's send buffer
	seq uint32 // SendEach's last sequence number
}

// NewBatchSocket opens a route socket in the namespace at nsPath ("" for
// the process's own).
func NewBatchSocket(nsPath string) (*BatchSocket, error) {
	ns := vnetns.None()
	if nsPath != "" {
		h, err := vnetns.GetFromPath(nsPath)
		if err != nil {
			return nil, fmt.Errorf("open netns %s: %w", nsPath, err)
		}
		defer h.Close()
		ns = h
	}
	s, err := nl.GetNetlinkSocketAt(ns, vnetns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open route socket: %w", err)
	}
	return &BatchSocket{s: s}, nil
}

// Close closes the socket.
func (b *BatchSocket) Close() { b.s.Close() }

// Send writes reqs (each with NLM_F_ACK) in one write and waits for every
// acknowledgement. errs[i] is the error of reqs[i], nil for success.
func (b *BatchSocket) Send(reqs []*nl.NetlinkRequest) []error {
	errs := make([]error, len(reqs))
	if len(reqs) == 0 {
		return errs
	}
	pending := make(map[uint32]int, len(reqs))
	buf := make([]byte, 0, 64*len(reqs)) // a route or neighbour request is about 50-60 bytes
	for i, req := range reqs {
		pending[req.Seq] = i
		buf = append(buf, req.Serialize()...)
	}
	if err := unix.Sendto(b.s.GetFd(), buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		for _, i := range pending {
			errs[i] = err
		}
		return errs
	}
	for len(pending) > 0 {
		msgs, _, err := b.s.Receive()
		if err != nil {
			for _, i := range pending {
				errs[i] = fmt.Errorf("read ack: %w", err)
			}
			return errs
		}
		for _, m := range msgs {
			i, ok := pending[m.Header.Seq]
			if !ok || m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4 {
				continue
			}
			delete(pending, m.Header.Seq)
			if code := int32(binary.NativeEndian.Uint32(m.Data[:4])); code != 0 {
				errs[i] = syscall.Errno(-code)
			}
		}
	}
	return errs
}

// Socket is the underlying socket, for a request/dump exchange of the
// caller's own (such as a neighbour dump).
func (b *BatchSocket) Socket() *nl.NetlinkSocket { return b.s }
