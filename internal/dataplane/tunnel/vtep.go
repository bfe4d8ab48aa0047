package tunnel

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VTEP is a remote node's VXLAN endpoint, taken from its Node resource.
type VTEP struct {
	TunnelIP netip.Addr       // the remote vxlan device's address
	MAC      net.HardwareAddr // the remote vxlan device's MAC
	NodeIP   netip.Addr       // the remote node's underlay address
}

// neighbour/FDB state we program: permanent, so it never ages out and is
// never resolved by ARP (the device has learning off).
const permanent = unix.NUD_PERMANENT

type syncStats struct{ setNeigh, delNeigh, setFDB, delFDB int }

func (s syncStats) zero() bool { return s == syncStats{} }

// SyncVTEPs makes the static neighbours and FDB entries of linkName exactly
// those of vteps: per VTEP a permanent neighbour "TunnelIP lladdr MAC" and a
// permanent FDB entry "MAC dst NodeIP self". Permanent entries on the link
// that belong to no VTEP are removed; entries the kernel manages (not
// permanent) are left alone. Entries that are already right are not
// rewritten, so a repeated call makes no changes.
func SyncVTEPs(h *netlink.Handle, linkName string, vteps []VTEP) error {
	_, err := syncVTEPs(h, nil, linkName, vteps)
	return err
}

// SyncVTEPsWith is SyncVTEPs with a Batcher (nil for none) for setting
// many entries at once.
func SyncVTEPsWith(h *netlink.Handle, b *Batcher, linkName string, vteps []VTEP) error {
	_, err := syncVTEPs(h, b, linkName, vteps)
	return err
}

func syncVTEPs(h *netlink.Handle, b *Batcher, linkName string, vteps []VTEP) (syncStats, error) {
	var st syncStats
	ix, err := b.index(vteps)
	if err != nil {
		return st, err
	}
	l, err := h.LinkByName(linkName)
	if err != nil {
		return st, fmt.Errorf("look up link %s: %w", linkName, err)
	}
	idx := l.Attrs().Index
	var errs []error

	// ARP/ND entries, both families in one dump, compared as they are
	// read; the few to delete are kept.
	have := make([]bool, len(vteps)) // by index in vteps
	var dels []neighEntry
	reset := func() { clear(have); dels = dels[:0] }
	err = eachNeighbour(h, b, idx, unix.AF_UNSPEC, reset, func(n *neighEntry) {
		if (n.family != unix.AF_INET && n.family != unix.AF_INET6) || !n.ip.IsValid() || n.state&permanent == 0 {
			return
		}
		if j, wanted := ix.neigh[n.ip]; !wanted {
			dels = append(dels, *n)
		} else if bytes.Equal(n.mac[:n.macLen], vteps[j].MAC) {
			have[j] = true
		}
	})
	if err != nil {
		return st, fmt.Errorf("list neighbours of %s: %w", linkName, err)
	}
	for i := range dels {
		n := &dels[i]
		if err := h.NeighDel(n.neigh()); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete neighbour %s on %s: %w", n.ip, linkName, err))
			continue
		}
		st.delNeigh++
	}
	var missing []int // positions in vteps
	for j := range vteps {
		if !have[j] {
			missing = append(missing, j)
		}
	}
	neighAt := func(i int) entry {
		v := vteps[missing[i]]
		return entry{index: idx, ip: v.TunnelIP.Unmap(), mac: v.MAC}
	}
	for i, err := range setEntries(h, b, len(missing), neighAt) {
		if err != nil {
			v := vteps[missing[i]]
			errs = append(errs, fmt.Errorf("set neighbour %s lladdr %s on %s: %w", v.TunnelIP, v.MAC, linkName, err))
			continue
		}
		st.setNeigh++
	}

	// FDB entries of the VXLAN device itself ("self"); have is now by
	// index of the first VTEP with the MAC.
	err = eachNeighbour(h, b, idx, unix.AF_BRIDGE, reset, func(e *neighEntry) {
		if e.state&permanent == 0 || e.macLen != 6 || e.mac == [6]byte{} {
			return // kernel-managed, or the all-zeros default destination
		}
		if j, ok := ix.fdb[e.mac]; ok {
			// Right: keep. Wrong destination: NeighSet below replaces it
			// in place, so the MAC is never without a destination.
			have[j] = have[j] || vteps[j].NodeIP.Unmap() == e.ip
			return
		}
		dels = append(dels, *e)
	})
	if err != nil {
		return st, errors.Join(append(errs, fmt.Errorf("list fdb of %s: %w", linkName, err))...)
	}
	for i := range dels {
		e := &dels[i]
		if err := h.NeighDel(e.neigh()); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete fdb %s dst %s on %s: %w", net.HardwareAddr(e.mac[:]), e.ip, linkName, err))
			continue
		}
		st.delFDB++
	}
	missing = missing[:0]
	for j, v := range vteps {
		if !have[j] && ix.fdb[[6]byte(v.MAC)] == j {
			missing = append(missing, j)
		}
	}
	fdbAt := func(i int) entry {
		v := vteps[missing[i]]
		return entry{index: idx, fdb: true, ip: v.NodeIP.Unmap(), mac: v.MAC}
	}
	for i, err := range setEntries(h, b, len(missing), fdbAt) {
		if err != nil {
			v := vteps[missing[i]]
			errs = append(errs, fmt.Errorf("set fdb %s dst %s on %s: %w", v.MAC, v.NodeIP, linkName, err))
			continue
		}
		st.setFDB++
	}
	return st, errors.Join(errs...)
}

// vtepIndex finds the VTEP of a dumped neighbour (by tunnel address)
// and of a dumped FDB entry (by MAC: the first VTEP with it).
type vtepIndex struct {
	keys  []vtepKey // the VTEPs it indexes (a copy)
	neigh map[netip.Addr]int
	fdb   map[[6]byte]int
}

type vtepKey struct {
	tunnel, node netip.Addr
	mac          [6]byte
}

func keyOf(v VTEP) vtepKey {
	k := vtepKey{tunnel: v.TunnelIP, node: v.NodeIP}
	copy(k.mac[:], v.MAC)
	return k
}

// index validates vteps and indexes them. With a Batcher the index is
// kept for the next call with the same VTEPs (a resync with thousands
// of them would otherwise build the same two maps every time).
func (b *Batcher) index(vteps []VTEP) (*vtepIndex, error) {
	for _, v := range vteps {
		if !v.TunnelIP.IsValid() || !v.NodeIP.IsValid() || len(v.MAC) != 6 {
			return nil, fmt.Errorf("vtep %s (mac %s, node %s): %w", v.TunnelIP, v.MAC, v.NodeIP, ErrInvalid)
		}
	}
	if b != nil && b.vteps != nil && len(b.vteps.keys) == len(vteps) {
		same := true
		for i, v := range vteps {
			if b.vteps.keys[i] != keyOf(v) {
				same = false
				break
			}
		}
		if same {
			return b.vteps, nil
		}
	}
	ix := &vtepIndex{neigh: make(map[netip.Addr]int, len(vteps)), fdb: make(map[[6]byte]int, len(vteps))}
	for i, v := range vteps {
		if _, dup := ix.neigh[v.TunnelIP.Unmap()]; dup {
			return nil, fmt.Errorf("vtep %s listed twice: %w", v.TunnelIP, ErrInvalid)
		}
		if j, dup := ix.fdb[[6]byte(v.MAC)]; dup {
			if n := vteps[j].NodeIP; n.Unmap() != v.NodeIP.Unmap() {
				return nil, fmt.Errorf("vtep mac %s on nodes %s and %s: %w", v.MAC, n, v.NodeIP, ErrInvalid)
			}
		} else {
			ix.fdb[[6]byte(v.MAC)] = i
		}
		ix.neigh[v.TunnelIP.Unmap()] = i
	}
	if b != nil {
		ix.keys = make([]vtepKey, len(vteps))
		for i, v := range vteps {
			ix.keys[i] = keyOf(v)
		}
		b.vteps = ix
	}
	return ix, nil
}

func listNeigh(h *netlink.Handle, idx, family int) ([]netlink.Neigh, error) {
	var ns []netlink.Neigh
	var err error
	for range 5 {
		if ns, err = h.NeighList(idx, family); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return ns, err
}
