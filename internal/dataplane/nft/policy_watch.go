package nft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// tableWatch follows a namespace's nftables notifications and records
// whether anything other than one netlink socket (the applier's) changed
// one table.
//
// Why: the daemon rewrites its NAT table on every full resync, and other
// programs commit to their own tables, so the namespace's generation
// number moves between two resyncs even when nobody touched the policy
// table; reading that table back to compare costs hundreds of
// milliseconds at a thousand policies. The kernel sends a notification
// for every committed change (naming its table, from the socket that made
// it) and then one for the new generation: the watch needs only those
// few bytes, so that a resync costs a generation read and, if someone did
// edit the table, the read back.
//
// A notification lost to a full receive buffer, or a watch that stopped,
// counts as a change.
type tableWatch struct {
	nl    *netlink.Conn
	table []byte
	own   uint32 // the applier's socket's port ID

	mu      sync.Mutex
	changed sync.Cond
	seen    uint32 // the last generation notified
	// foreign is the last generation whose transaction changed the table
	// from another socket (at the start: the generation then, as nothing
	// is known of the past); pending: the transaction being notified
	// did.
	foreign uint32
	pending bool
	lost    bool // a notification was lost
	stopped bool
}

// Watch makes p follow the nftables notifications of the namespace whose
// file descriptor is nsFd (0: the current one), so that Check costs one
// generation read while nobody else touched the table. It needs the
// BatchSocket (SendThrough). Stop it with Close.
func (p *PolicyApplier) Watch(nsFd int) error {
	w, err := newTableWatch(p.batch, p.table, nsFd)
	if err != nil {
		return fmt.Errorf("watch policy table: %w", err)
	}
	p.watch = w
	return nil
}

// newTableWatch starts following the notifications about table in the
// namespace of nsFd (0: the current one); b's socket is the one whose
// changes are not foreign. Stop it by closing w.nl.
func newTableWatch(b *BatchSocket, table string, nsFd int) (*tableWatch, error) {
	if b == nil || b.nl == nil {
		return nil, errors.New("no batch socket")
	}
	own, err := portID(b.nl)
	if err != nil {
		return nil, err
	}
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: nsFd})
	if err != nil {
		return nil, err
	}
	if err := BigBuffers(nl); err != nil {
		nl.Close()
		return nil, err
	}
	if err := nl.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		nl.Close()
		return nil, err
	}
	w := &tableWatch{nl: nl, table: []byte(table), own: own}
	w.changed.L = &w.mu
	g, err := b.genID()
	if err != nil {
		nl.Close()
		return nil, err
	}
	w.seen, w.foreign = g, g
	go w.run()
	return w, nil
}

// Close stops the watch, if any.
func (p *PolicyApplier) Close() {
	if p.watch != nil {
		p.watch.nl.Close()
		p.watch = nil
	}
}

func portID(c *netlink.Conn) (uint32, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var sa unix.Sockaddr
	var serr error
	if err := raw.Control(func(fd uintptr) { sa, serr = unix.Getsockname(int(fd)) }); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	nsa, ok := sa.(*unix.SockaddrNetlink)
	if !ok {
		return 0, errors.New("not a netlink socket")
	}
	return nsa.Pid, nil
}

func (w *tableWatch) run() {
	for {
		msgs, err := w.nl.Receive()
		if err != nil {
			w.mu.Lock()
			w.lost = true
			if !errors.Is(err, unix.ENOBUFS) {
				w.stopped = true
				w.changed.Broadcast()
				w.mu.Unlock()
				return
			}
			w.mu.Unlock()
			continue
		}
		w.mu.Lock()
		for _, m := range msgs {
			w.note(m)
		}
		w.mu.Unlock()
	}
}

// note records one notification (under mu).
func (w *tableWatch) note(m netlink.Message) {
	if uint16(m.Header.Type)>>8 != unix.NFNL_SUBSYS_NFTABLES || len(m.Data) < 4 {
		return
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		w.lost = true
		return
	}
	ad.ByteOrder = binary.BigEndian
	if uint16(m.Header.Type)&0xff == unix.NFT_MSG_NEWGEN {
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				w.seen = ad.Uint32()
				if w.pending {
					w.foreign, w.pending = w.seen, false
				}
				w.changed.Broadcast()
			}
		}
		return
	}
	// Every object's first attribute names its table (NFTA_TABLE_NAME,
	// NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE, ...: all 1).
	if m.Data[0] != unix.NFPROTO_INET || m.Header.PID == w.own {
		return
	}
	for ad.Next() {
		if ad.Type() == 1 {
			if bytes.Equal(bytes.TrimRight(ad.Bytes(), "\x00"), w.table) {
				w.pending = true
			}
			return
		}
	}
}

// clean waits (briefly) until the watch has seen generation g and
// reports whether no other socket changed the table after generation
// since. After a lost notification it reports false once (the caller
// then reads the table back).
func (w *tableWatch) clean(g, since uint32) bool {
	deadline := time.Now().Add(time.Second)
	timer := time.AfterFunc(time.Second, func() {
		w.mu.Lock()
		w.changed.Broadcast()
		w.mu.Unlock()
	})
	defer timer.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for int32(w.seen-g) < 0 && !w.stopped && time.Now().Before(deadline) {
		w.changed.Wait()
	}
	if w.lost || w.stopped || int32(w.seen-g) < 0 {
		w.lost = false
		return false
	}
	return int32(w.foreign-since) <= 0
}

// pause stops the notifications while the applier sends a big batch of
// its own (their notifications would cost more than the batch): the
// watch leaves the group and returns the generation then.
func (w *tableWatch) pause(b *BatchSocket) (uint32, bool) {
	if err := w.nl.LeaveGroup(unix.NFNLGRP_NFTABLES); err != nil {
		return 0, false
	}
	g, err := b.genID()
	if err != nil {
		_ = w.nl.JoinGroup(unix.NFNLGRP_NFTABLES)
		return 0, false
	}
	return g, true
}

// resume rejoins the group after pause at generation left, during which
// the applier committed commits (0 or 1) transactions: any other commit
// in between went unseen, and counts as a lost notification.
func (w *tableWatch) resume(b *BatchSocket, left uint32, commits uint32) {
	err := w.nl.JoinGroup(unix.NFNLGRP_NFTABLES)
	g, gerr := b.genID()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil || gerr != nil || g != left+commits {
		w.lost = true
	}
	if gerr == nil && int32(g-w.seen) > 0 {
		w.seen = g
		w.changed.Broadcast()
	}
}
