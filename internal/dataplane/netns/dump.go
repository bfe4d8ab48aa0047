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
// non-blocking). It reads with read(2): every acknowledgement of a batch
// is a datagram of its own, and recvfrom's source address would be an
// allocation per datagram.
func (b *BatchSocket) recv(fd int) (int, error) {
	for {
		n, err := unix.Read(fd, b.buf)
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			pfd := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if _, err := unix.Poll(pfd[:], 5000); err != nil && !errors.Is(err, unix.EINTR) {
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

// seqBase keeps SendEach's sequence numbers clear of the netlink
// library's (which count up from small numbers) on the same socket.
const seqBase = 1 << 31

// SendEach is Send for requests the caller serializes itself: build
// appends request i (one message) with sequence number seq to buf. All n
// go in one write; errs[i] is the kernel's answer to request i, nil for
// success.
//
// Only the last request asks for an acknowledgement: the kernel answers
// a failing request whether asked or not, and handles a write's requests
// in order, so the last one's answer means every answer is in. One read
// instead of one per request (each acknowledgement is a datagram of its
// own), and building the bytes directly instead of a NetlinkRequest with
// an object per attribute, is what makes a batch of thousands cheap.
func (b *BatchSocket) SendEach(n int, build func(buf []byte, i int, seq uint32) []byte) []error {
	errs := make([]error, n)
	if n == 0 {
		return errs
	}
	if b.seq < seqBase {
		b.seq = seqBase
	}
	first := b.seq + 1
	b.seq += uint32(n)
	msgs := b.out[:0]
	for i := range n {
		at := len(msgs)
		msgs = build(msgs, i, first+uint32(i))
		flags := binary.NativeEndian.Uint16(msgs[at+6:]) | unix.NLM_F_ACK
		if i < n-1 {
			flags &^= unix.NLM_F_ACK
		}
		binary.NativeEndian.PutUint16(msgs[at+6:], flags)
	}
	b.out = msgs[:0]
	fd := b.s.GetFd()
	fail := func(err error) []error {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	if err := unix.Sendto(fd, msgs, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fail(err)
	}
	if b.buf == nil {
		b.buf = make([]byte, dumpBufSize)
	}
	for {
		got, err := b.recv(fd)
		if err != nil {
			return fail(fmt.Errorf("read ack: %w", err))
		}
		for msg := b.buf[:got]; len(msg) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(msg[0:4]))
			if l < unix.NLMSG_HDRLEN || l > len(msg) {
				return fail(errors.New("read ack: truncated message"))
			}
			typ := binary.NativeEndian.Uint16(msg[4:6])
			i := int(binary.NativeEndian.Uint32(msg[8:12]) - first)
			data := msg[unix.NLMSG_HDRLEN:l]
			msg = msg[min(len(msg), nlmsgAlign(l)):]
			if typ != unix.NLMSG_ERROR || i < 0 || i >= n || len(data) < 4 {
				continue
			}
			if code := int32(binary.NativeEndian.Uint32(data[:4])); code != 0 {
				errs[i] = syscall.Errno(-code)
			}
			if i == n-1 {
				return errs
			}
		}
	}
}

// AppendHeader appends a netlink message header for a message of
// payload bytes; the caller appends the payload.
func AppendHeader(buf []byte, typ, flags uint16, seq uint32, payload int) []byte {
	buf = binary.NativeEndian.AppendUint32(buf, uint32(unix.NLMSG_HDRLEN+payload))
	buf = binary.NativeEndian.AppendUint16(buf, typ)
	buf = binary.NativeEndian.AppendUint16(buf, flags)
	buf = binary.NativeEndian.AppendUint32(buf, seq)
	return binary.NativeEndian.AppendUint32(buf, 0)
}

// AppendAttr appends a route attribute (header, value, padding).
func AppendAttr(buf []byte, typ uint16, v []byte) []byte {
	buf = binary.NativeEndian.AppendUint16(buf, uint16(unix.SizeofRtAttr+len(v)))
	buf = binary.NativeEndian.AppendUint16(buf, typ)
	buf = append(buf, v...)
	for range AttrLen(len(v)) - unix.SizeofRtAttr - len(v) {
		buf = append(buf, 0)
	}
	return buf
}

// AttrLen is the aligned size of an attribute with a value of n bytes.
func AttrLen(n int) int {
	return (unix.SizeofRtAttr + n + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1)
}

// AppendAttrU32 appends a route attribute holding a native-endian uint32.
func AppendAttrU32(buf []byte, typ uint16, v uint32) []byte {
	buf = binary.NativeEndian.AppendUint16(buf, uint16(unix.SizeofRtAttr+4))
	buf = binary.NativeEndian.AppendUint16(buf, typ)
	return binary.NativeEndian.AppendUint32(buf, v)
}

// Attrs walks the route attributes of a message payload (what Dump hands
// over, past the fixed header): for a := Attrs(b); a.Next(); { a.Type,
// a.Value }. A value type with no closure, so a dump of 10,000 entries
// parses without an allocation per entry. Bad reports a malformed length,
// which ends the walk.
type Attrs []byte

// Attr is one attribute of an Attrs walk.
type Attr struct {
	Type  uint16
	Value []byte
}

// Next returns the next attribute; ok is false at the end, or at a
// malformed length (then bad is true).
func (a *Attrs) Next() (at Attr, ok, bad bool) {
	b := *a
	if len(b) < unix.SizeofRtAttr {
		return Attr{}, false, false
	}
	l := int(binary.NativeEndian.Uint16(b[0:2]))
	if l < unix.SizeofRtAttr || l > len(b) {
		return Attr{}, false, true
	}
	at = Attr{Type: binary.NativeEndian.Uint16(b[2:4]), Value: b[unix.SizeofRtAttr:l]}
	*a = b[min(len(b), (l+unix.RTA_ALIGNTO-1)&^(unix.RTA_ALIGNTO-1)):]
	return at, true, false
}
