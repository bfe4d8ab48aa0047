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

// send writes req (BATCH_BEGIN, messages, BATCH_END) with an
// acknowledgement asked of the last message only, then reads replies up
// to that acknowledgement, or to an error reported on the batch as a
// whole (the kernel then sends nothing else).
func (b *BatchSocket) send(req []netlink.Message) error {
	if b.nl == nil {
		return errors.New("batch socket not opened (BatchSocket.Grab was not a socket option)")
	}
	msgs := make([]netlink.Message, len(req))
	for i, m := range req {
		m.Header.Sequence, m.Header.PID = 0, 0
		m.Header.Flags &^= netlink.Acknowledge
		msgs[i] = m
	}
	last := len(msgs) - 2
	if last < 1 {
		return nil
	}
	msgs[last].Header.Flags |= netlink.Acknowledge
	sent, err := b.nl.SendMessages(msgs)
	if err != nil {
		return fmt.Errorf("send batch: %w", err)
	}
	return b.readReplies(sent[0].Header.Sequence, sent[last].Header.Sequence)
}

func (b *BatchSocket) readReplies(begin, last uint32) error {
	raw, err := b.nl.SyscallConn()
	if err != nil {
		return err
	}
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
