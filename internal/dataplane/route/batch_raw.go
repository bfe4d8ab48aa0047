package route

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// The Batcher's write path, serialised by hand. Why: building each
// request with the netlink library (a request, an RtMsg and an attribute
// value per field, then Serialize) and reading one acknowledgement per
// request through its Receive (a 64 KiB buffer and a message slice per
// read) cost more than the kernel's own insert: for 10,000 learned BGP
// routes about half of the time from UPDATE to kernel. Here a chunk of
// requests is appended to one reused buffer and only the last request of
// the chunk asks for an acknowledgement: the kernel handles a write's
// requests in order and answers the others only when they fail (an error
// carries the request's sequence number), so the replies are the
// failures and one final acknowledgement.

// rawChunk is how many requests go in one write (about 60-80 bytes each).
// It also bounds the replies when every request fails (a gateway gone):
// each is a buffer of its own in the socket's receive queue.
const rawChunk = 256

// rawRecvSize is the receive buffer of one read.
const rawRecvSize = 64 << 10

// rawSeqStart is where the Batcher's sequence numbers start, far from
// the netlink library's (which count from 0 per process), so a late reply
// to a library request on the same socket is not taken for one of ours.
const rawSeqStart = 1 << 31

// replaceRaw installs routes (all batchable, links resolved in ls) in
// chunks and returns one error per failed route.
func (b *Batcher) replaceRaw(routes []Route, table int, ls links) []error {
	var errs []error
	for start := 0; start < len(routes); start += rawChunk {
		chunk := routes[start:min(start+rawChunk, len(routes))]
		errs = append(errs, b.replaceRawChunk(chunk, table, ls)...)
	}
	return errs
}

func (b *Batcher) replaceRawChunk(routes []Route, table int, ls links) []error {
	var errs []error
	if b.seq < rawSeqStart {
		b.seq = rawSeqStart
	}
	// Requests are numbered consecutively from first: a reply's route is
	// routes[sent[seq-first]].
	first := b.seq + 1
	buf := b.wbuf[:0]
	sent := b.sent[:0]
	lastAt := 0
	for i, r := range routes {
		at := len(buf)
		var err error
		if buf, err = appendRouteRequest(buf, r, table, ls, first+uint32(len(sent))); err != nil {
			errs = append(errs, fmt.Errorf("replace route %s: %w", r, err))
			continue
		}
		sent, lastAt = append(sent, i), at
	}
	b.wbuf, b.sent = buf, sent
	if len(sent) == 0 {
		return errs
	}
	last := first + uint32(len(sent)) - 1
	b.seq = last
	// The last request asks for the acknowledgement that ends the chunk.
	flags := binary.NativeEndian.Uint16(buf[lastAt+6:])
	binary.NativeEndian.PutUint16(buf[lastAt+6:], flags|unix.NLM_F_ACK)
	failed, err := b.sendRaw(buf, last)
	if err != nil {
		for _, i := range sent {
			errs = append(errs, fmt.Errorf("replace route %s: %w", routes[i], err))
		}
		return errs
	}
	for _, f := range failed {
		if i := int(f.seq - first); i >= 0 && i < len(sent) {
			errs = append(errs, fmt.Errorf("replace route %s: %w", routes[sent[i]], f.err))
		}
	}
	return errs
}

type rawFailure struct {
	seq uint32
	err error
}

// sendRaw writes msgs in one write and reads replies until the one to
// the request numbered last. It returns the requests that failed.
func (b *Batcher) sendRaw(msgs []byte, last uint32) ([]rawFailure, error) {
	fd := b.s.Socket().GetFd()
	if err := unix.Sendto(fd, msgs, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	if b.rbuf == nil {
		b.rbuf = make([]byte, rawRecvSize)
	}
	var failed []rawFailure
	for {
		n, err := recvWait(fd, b.rbuf)
		if err != nil {
			return nil, fmt.Errorf("read ack: %w", err)
		}
		for msg := b.rbuf[:n]; len(msg) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(msg[0:4]))
			if l < unix.NLMSG_HDRLEN || l > len(msg) {
				return nil, errors.New("read ack: truncated message")
			}
			typ := binary.NativeEndian.Uint16(msg[4:6])
			seq := binary.NativeEndian.Uint32(msg[8:12])
			data := msg[unix.NLMSG_HDRLEN:l]
			msg = msg[min(len(msg), rawAlign(l)):]
			if typ != unix.NLMSG_ERROR || len(data) < 4 {
				continue
			}
			if code := int32(binary.NativeEndian.Uint32(data[:4])); code != 0 {
				failed = append(failed, rawFailure{seq: seq, err: syscall.Errno(-code)})
			}
			if seq == last {
				return failed, nil
			}
		}
	}
}

// recvWait reads one datagram into buf, waiting for it (the socket is
// non-blocking; the kernel has usually queued the replies already when
// the write returns).
func recvWait(fd int, buf []byte) (int, error) {
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
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

func rawAlign(l int) int { return (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// appendRouteRequest appends r's RTM_NEWROUTE (request, create, replace;
// no ack) numbered seq to buf.
func appendRouteRequest(buf []byte, r Route, table int, ls links, seq uint32) ([]byte, error) {
	oif := -1
	if r.LinkName != "" {
		idx, ok := ls.byName[r.LinkName]
		if !ok {
			return buf, errors.New("link " + r.LinkName + " not found")
		}
		oif = idx
	}
	start := len(buf)
	// struct nlmsghdr: len (filled in below), type, flags, seq, pid.
	buf = binary.NativeEndian.AppendUint32(buf, 0)
	buf = binary.NativeEndian.AppendUint16(buf, unix.RTM_NEWROUTE)
	buf = binary.NativeEndian.AppendUint16(buf, unix.NLM_F_REQUEST|unix.NLM_F_CREATE|unix.NLM_F_REPLACE)
	buf = binary.NativeEndian.AppendUint32(buf, seq)
	buf = binary.NativeEndian.AppendUint32(buf, 0)
	// struct rtmsg: family, dst_len, src_len, tos, table, protocol,
	// scope, type, flags.
	family := byte(unix.AF_INET)
	if r.Dst.Addr().Is6() {
		family = unix.AF_INET6
	}
	tbl := byte(unix.RT_TABLE_UNSPEC)
	if table < 256 {
		tbl = byte(table)
	}
	var flags uint32
	if r.OnLink {
		flags |= unix.RTNH_F_ONLINK
	}
	buf = append(buf, family, byte(r.Dst.Bits()), 0, 0, tbl, byte(r.proto()), byte(r.Scope), unix.RTN_UNICAST)
	buf = binary.NativeEndian.AppendUint32(buf, flags)
	buf = appendAddrAttr(buf, unix.RTA_DST, r.Dst.Addr())
	if table >= 256 {
		buf = appendAttrU32(buf, unix.RTA_TABLE, uint32(table))
	}
	if r.Gw.IsValid() {
		buf = appendAddrAttr(buf, unix.RTA_GATEWAY, r.Gw)
	}
	if oif >= 0 {
		buf = appendAttrU32(buf, unix.RTA_OIF, uint32(oif))
	}
	binary.NativeEndian.PutUint32(buf[start:], uint32(len(buf)-start))
	return buf, nil
}

// appendAttr appends a route attribute (struct rtattr, then the value
// padded to 4 bytes).
func appendAttr(buf []byte, typ uint16, v []byte) []byte {
	buf = binary.NativeEndian.AppendUint16(buf, uint16(unix.SizeofRtAttr+len(v)))
	buf = binary.NativeEndian.AppendUint16(buf, typ)
	buf = append(buf, v...)
	for len(buf)%unix.RTA_ALIGNTO != 0 {
		buf = append(buf, 0)
	}
	return buf
}

func appendAttrU32(buf []byte, typ uint16, v uint32) []byte {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return appendAttr(buf, typ, b[:])
}

func appendAddrAttr(buf []byte, typ uint16, a netip.Addr) []byte {
	if a.Is4() {
		b := a.As4()
		return appendAttr(buf, typ, b[:])
	}
	b := a.As16()
	return appendAttr(buf, typ, b[:])
}
