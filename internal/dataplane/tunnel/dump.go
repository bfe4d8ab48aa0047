package tunnel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/dataplane/netns"
)

// neighEntry is one dumped neighbour or FDB entry, parsed without the
// per-entry allocations of netlink.NeighList (a resync with thousands of
// remote VTEPs reads them all).
type neighEntry struct {
	family, index, state, flags, typ int
	ip                               netip.Addr // unmapped
	mac                              [6]byte
	macLen                           int
	vlan, vni, master                int
}

func (e *neighEntry) hw() net.HardwareAddr {
	return net.HardwareAddr(append([]byte(nil), e.mac[:e.macLen]...))
}

// neigh is the entry as netlink.NeighDel wants it.
func (e *neighEntry) neigh() *netlink.Neigh {
	return &netlink.Neigh{LinkIndex: e.index, Family: e.family, State: e.state, Type: e.typ, Flags: e.flags,
		IP: e.ip.AsSlice(), HardwareAddr: e.hw(), Vlan: e.vlan, VNI: e.vni, MasterIndex: e.master}
}

// eachNeighbour calls visit with each entry of family (AF_UNSPEC: ARP
// and ND) on link idx: read in place through b's socket when b is set,
// else listed with netlink.NeighList. reset is called before each read
// (a dump the kernel interrupted is read again).
func eachNeighbour(h *netlink.Handle, b *Batcher, idx, family int, reset func(), visit func(*neighEntry)) error {
	if b == nil {
		ns, err := listNeigh(h, idx, family)
		if err != nil {
			return err
		}
		reset()
		for _, n := range ns {
			e := neighEntry{family: n.Family, index: n.LinkIndex, state: n.State, flags: n.Flags, typ: n.Type,
				macLen: min(len(n.HardwareAddr), 6), vlan: n.Vlan, vni: n.VNI, master: n.MasterIndex}
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				e.ip = ip.Unmap()
			}
			copy(e.mac[:], n.HardwareAddr)
			visit(&e)
		}
		return nil
	}
	var err error
	for range 5 {
		reset()
		if err = b.dumpNeigh(idx, family, visit); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return err
}

// dumpNeigh dumps family's neighbour table and visits the entries of
// link idx.
func (b *Batcher) dumpNeigh(idx, family int, visit func(*neighEntry)) error {
	req := nl.NewNetlinkRequest(unix.RTM_GETNEIGH, unix.NLM_F_DUMP)
	req.AddData(&netlink.Ndmsg{Family: uint8(family), Index: uint32(idx)})
	// One entry for the whole dump, not one allocation per entry: visit
	// copies what it keeps.
	var e neighEntry
	err := b.s.Dump(req, func(typ uint16, data []byte) bool {
		if typ != unix.RTM_NEWNEIGH {
			return true
		}
		var ok bool
		if e, ok = parseNeigh(data); ok && e.index == idx && (family == unix.AF_UNSPEC || e.family == family) {
			visit(&e)
		}
		return true
	})
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("dump neighbours: %w", err)
	}
	return err
}

// ndmsgLen is sizeof(struct ndmsg).
const ndmsgLen = 12

func parseNeigh(b []byte) (neighEntry, bool) {
	if len(b) < ndmsgLen {
		return neighEntry{}, false
	}
	e := neighEntry{
		family: int(b[0]),
		index:  int(int32(binary.NativeEndian.Uint32(b[4:8]))),
		state:  int(binary.NativeEndian.Uint16(b[8:10])),
		flags:  int(b[10]),
		typ:    int(b[11]),
	}
	attrs := netns.Attrs(b[ndmsgLen:])
	for {
		at, ok, bad := attrs.Next()
		if bad {
			return e, false
		}
		if !ok {
			break
		}
		v := at.Value
		switch at.Type {
		case unix.NDA_DST:
			if ip, ok := netip.AddrFromSlice(v); ok {
				e.ip = ip.Unmap()
			}
		case unix.NDA_LLADDR:
			if len(v) == 6 {
				e.macLen = copy(e.mac[:], v)
			}
		case unix.NDA_VLAN:
			if len(v) >= 2 {
				e.vlan = int(binary.NativeEndian.Uint16(v))
			}
		case unix.NDA_VNI:
			if len(v) >= 4 {
				e.vni = int(binary.NativeEndian.Uint32(v))
			}
		case unix.NDA_MASTER:
			if len(v) >= 4 {
				e.master = int(binary.NativeEndian.Uint32(v))
			}
		}
	}
	return e, true
}
