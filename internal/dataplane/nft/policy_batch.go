package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"syscall"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// BatchSocket sends a PolicyApplier's batches with one kernel
// acknowledgement per batch instead of one per message.
//
// google/nftables asks for an acknowledgement on every message of a batch
// and reads them one by one (two receive calls and a page-sized buffer
// each): for a full policy table, tens of thousands of messages, that
// reading was most of the write's CPU time and most of its garbage. With
// a BatchSocket the applier queues its messages on a Conn that only
// builds them; the batch then goes to the kernel over the real socket
// with NLM_F_ACK on its last message only. The kernel reports every
// failing message anyway, processes the whole batch before it replies,
// and either commits all of it or nothing, so one acknowledgement still
// says whether the batch is in.
//
// Use: give Grab to nftables.WithSockOptions when opening the lasting
// Conn (it also applies BigBuffers), then PolicyApplier.SendThrough. The
// socket is shared with that Conn: do not run queries on it during Apply.
type BatchSocket struct {
	nl *netlink.Conn

	once    sync.Once
	builder *nftables.Conn
	berr    error
	sendErr error
	buf     []byte
	seq     uint32 // the sequence number of the last message sent
}

// Grab is a socket option for nftables.WithSockOptions (with AsLasting):
// it keeps the socket for batches and gives it big buffers.
func (b *BatchSocket) Grab(c *netlink.Conn) error {
	b.nl = c
	return BigBuffers(c)
}

// conn is the message-building Conn: its Flush hands the batch to send
// and answers each message's acknowledgement itself.
func (b *BatchSocket) conn() (*nftables.Conn, error) {
	b.once.Do(func() { b.builder, b.berr = nftables.New(nftables.WithTestDial(b.dial)) })
	return b.builder, b.berr
}

// flush sends the batch queued on c and returns the kernel's verdict.
func (b *BatchSocket) flush(c *nftables.Conn) error {
	b.sendErr = nil
	if err := c.Flush(); err != nil {
		return err
	}
	return b.sendErr
}

// dial is the builder's netlink "socket": a request is the whole batch,
// sent for real; an empty request is a read of one acknowledgement.
func (b *BatchSocket) dial(req []netlink.Message) ([]netlink.Message, error) {
	if req == nil {
		return []netlink.Message{{Header: netlink.Header{Type: netlink.Error}, Data: make([]byte, 4)}}, nil
	}
	b.sendErr = b.send(req)
	return nil, nil
}

// send writes req (BATCH_BEGIN, messages, BATCH_END) in one datagram
// with an acknowledgement asked of the last message only, then reads
// replies up to that acknowledgement, or to an error reported on the
// batch as a whole (the kernel then sends nothing else).
func (b *BatchSocket) send(req []netlink.Message) error {
	if b.nl == nil {
		return errors.New("batch socket not opened (BatchSocket.Grab was not a socket option)")
	}
	last := len(req) - 2
	if last < 1 {
		return nil
	}
	size := 0
	for _, m := range req {
		size += nlmsgAlign(nlmsgHeaderLen + len(m.Data))
	}
	buf := make([]byte, 0, size)
	begin := b.seq + 1
	for i, m := range req {
		b.seq++
		flags := m.Header.Flags &^ netlink.Acknowledge
		if i == last {
			flags |= netlink.Acknowledge
		}
		buf = appendMsg(buf, uint16(m.Header.Type), uint16(flags), b.seq, m.Data)
	}
	raw, err := b.nl.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	if err := raw.Write(func(fd uintptr) bool {
		werr = unix.Sendto(int(fd), buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return werr != unix.EAGAIN
	}); err != nil {
		return err
	}
	if werr != nil {
		return fmt.Errorf("send batch: %w", werr)
	}
	return b.readReplies(raw, begin, begin+uint32(last))
}

const nlmsgHeaderLen = 16

func nlmsgAlign(n int) int { return (n + 3) &^ 3 }

// appendMsg appends one netlink message (header in host byte order, as
// netlink wants) with its padding.
func appendMsg(buf []byte, typ, flags uint16, seq uint32, data []byte) []byte {
	n := nlmsgHeaderLen + len(data)
	buf = binary.NativeEndian.AppendUint32(buf, uint32(n))
	buf = binary.NativeEndian.AppendUint16(buf, typ)
	buf = binary.NativeEndian.AppendUint16(buf, flags)
	buf = binary.NativeEndian.AppendUint32(buf, seq)
	buf = binary.NativeEndian.AppendUint32(buf, 0)
	buf = append(buf, data...)
	return append(buf, make([]byte, nlmsgAlign(n)-n)...)
}

func (b *BatchSocket) readReplies(raw syscall.RawConn, begin, last uint32) error {
	if b.buf == nil {
		b.buf = make([]byte, 1<<16)
	}
	var errs []error
	for {
		var n int
		var rerr error
		if err := raw.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), b.buf, 0)
			return rerr != unix.EAGAIN
		}); err != nil {
			return err
		}
		if rerr != nil {
			return fmt.Errorf("read batch replies: %w", rerr)
		}
		replies, err := syscall.ParseNetlinkMessage(b.buf[:n])
		if err != nil {
			return fmt.Errorf("read batch replies: %w", err)
		}
		for _, m := range replies {
			if m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4 {
				continue
			}
			seq := m.Header.Seq
			if code := int32(binary.NativeEndian.Uint32(m.Data[:4])); code != 0 {
				errs = append(errs, fmt.Errorf("message %d of the batch: %w", seq-begin, syscall.Errno(-code)))
			}
			if seq == last || seq == begin {
				return errors.Join(errs...)
			}
		}
	}
}
