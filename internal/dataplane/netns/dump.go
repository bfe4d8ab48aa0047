package netns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// dumpBufSize is the receive buffer of Dump: the kernel fills at most
// about 32 KiB per read of a dump.
const dumpBufSize = 64 << 10

// Dump sends the dump request req and calls f with each reply message's
// type and payload (valid only during the call; f returns false to skip
// the rest), reading into one buffer kept by the socket instead of one
// per read. It returns netlink.ErrDumpInterrupted, after the whole dump,
// when the kernel flagged it inconsistent (the table changed meanwhile).
//
// Why not the netlink library's iteration: it allocates a 64 KiB buffer
// and a message slice per read, which for a 10,000-route resync is most
// of the garbage the resync makes.
func (b *BatchSocket) Dump(req *nl.NetlinkRequest, f func(typ uint16, data []byte) bool) error {
	fd := b.s.GetFd()
	if err := unix.Sendto(fd, req.Serialize(), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("send dump request: %w", err)
	}
	if b.buf == nil {
		b.buf = make([]byte, dumpBufSize)
	}
	intr, more := false, true
	for {
		n, err := b.recv(fd)
		if err != nil {
			return fmt.Errorf("read dump: %w", err)
		}
		for msg := b.buf[:n]; len(msg) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(msg[0:4]))
			if l < unix.NLMSG_HDRLEN || l > len(msg) {
				return errors.New("read dump: truncated message")
			}
			typ := binary.NativeEndian.Uint16(msg[4:6])
			flags := binary.NativeEndian.Uint16(msg[6:8])
			seq := binary.NativeEndian.Uint32(msg[8:12])
			data := msg[unix.NLMSG_HDRLEN:l]
			msg = msg[min(len(msg), nlmsgAlign(l)):]
			if seq != req.Seq {
				continue // a late reply to an earlier request
			}
			intr = intr || flags&unix.NLM_F_DUMP_INTR != 0
			switch typ {
			case unix.NLMSG_DONE:
				if intr {
					return netlink.ErrDumpInterrupted
				}
				return nil
			case unix.NLMSG_ERROR:
				if len(data) >= 4 {
					if code := int32(binary.NativeEndian.Uint32(data[:4])); code != 0 {
						return fmt.Errorf("dump: %w", syscall.Errno(-code))
					}
				}
				return nil
			default:
				if more {
					more = f(typ, data)
				}
			}
		}
	}
}

// recv reads one datagram into b.buf, waiting for it (the socket is
// non-blocking).
func (b *BatchSocket) recv(fd int) (int, error) {
	for {
		n, _, err := unix.Recvfrom(fd, b.buf, 0)
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if _, err := unix.Poll(pfd, 5000); err != nil && !errors.Is(err, unix.EINTR) {
				return 0, err
			}
			if pfd[0].Revents == 0 {
				return 0, errors.New("no reply in 5 s")
			}
		default:
			return 0, err
		}
	}
}

func nlmsgAlign(l int) int { return (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }
