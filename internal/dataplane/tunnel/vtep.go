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
	wantNeigh := make(map[netip.Addr]net.HardwareAddr, len(vteps))
	wantFDB := make(map[[6]byte]netip.Addr, len(vteps)) // key: the MAC
	for _, v := range vteps {
		if !v.TunnelIP.IsValid() || !v.NodeIP.IsValid() || len(v.MAC) != 6 {
			return st, fmt.Errorf("vtep %s (mac %s, node %s): %w", v.TunnelIP, v.MAC, v.NodeIP, ErrInvalid)
		}
		if _, dup := wantNeigh[v.TunnelIP]; dup {
			return st, fmt.Errorf("vtep %s listed twice: %w", v.TunnelIP, ErrInvalid)
		}
		if n, dup := wantFDB[[6]byte(v.MAC)]; dup && n != v.NodeIP {
			return st, fmt.Errorf("vtep mac %s on nodes %s and %s: %w", v.MAC, n, v.NodeIP, ErrInvalid)
		}
		wantNeigh[v.TunnelIP.Unmap()] = v.MAC
		wantFDB[[6]byte(v.MAC)] = v.NodeIP.Unmap()
	}
	l, err := h.LinkByName(linkName)
	if err != nil {
		return st, fmt.Errorf("look up link %s: %w", linkName, err)
	}
	idx := l.Attrs().Index
	var errs []error

	// ARP/ND entries, both families in one dump.
	neighs, err := neighbours(h, b, idx, unix.AF_UNSPEC, len(vteps))
	if err != nil {
		return st, fmt.Errorf("list neighbours of %s: %w", linkName, err)
	}
	haveNeigh := make(map[netip.Addr]bool, len(vteps))
	for i := range neighs {
		n := &neighs[i]
		if (n.family != unix.AF_INET && n.family != unix.AF_INET6) || !n.ip.IsValid() {
			continue
		}
		mac, wanted := wantNeigh[n.ip]
		switch {
		case wanted && n.state&permanent != 0 && bytes.Equal(n.mac[:n.macLen], mac):
			haveNeigh[n.ip] = true
		case !wanted && n.state&permanent != 0:
			if err := h.NeighDel(n.neigh()); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("delete neighbour %s on %s: %w", n.ip, linkName, err))
				continue
			}
			st.delNeigh++
		}
	}
	var set []*netlink.Neigh
	for ip, mac := range wantNeigh {
		if !haveNeigh[ip] {
			set = append(set, &netlink.Neigh{LinkIndex: idx, State: permanent, IP: ip.AsSlice(), HardwareAddr: mac})
		}
	}
	for i, err := range setNeighs(h, b, set) {
		if err != nil {
			errs = append(errs, fmt.Errorf("set neighbour %s lladdr %s on %s: %w", set[i].IP, set[i].HardwareAddr, linkName, err))
			continue
		}
		st.setNeigh++
	}

	// FDB entries of the VXLAN device itself ("self").
	fdb, err := neighbours(h, b, idx, unix.AF_BRIDGE, len(vteps))
	if err != nil {
		return st, errors.Join(append(errs, fmt.Errorf("list fdb of %s: %w", linkName, err))...)
	}
	haveFDB := make(map[[6]byte]bool, len(vteps))
	for i := range fdb {
		e := &fdb[i]
		if e.state&permanent == 0 || e.macLen != 6 || e.mac == [6]byte{} {
			continue // kernel-managed, or the all-zeros default destination
		}
		mac := e.mac
		if want, ok := wantFDB[mac]; ok {
			// Right: keep. Wrong destination: NeighSet below replaces it
			// in place, so the MAC is never without a destination.
			haveFDB[mac] = haveFDB[mac] || want == e.ip
			continue
		}
		if err := h.NeighDel(e.neigh()); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete fdb %s dst %s on %s: %w", net.HardwareAddr(mac[:]), e.ip, linkName, err))
			continue
		}
		st.delFDB++
	}
	set = set[:0]
	for mac, dst := range wantFDB {
		if !haveFDB[mac] {
			hw := net.HardwareAddr(append([]byte(nil), mac[:]...))
			set = append(set, &netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, State: permanent, IP: dst.AsSlice(), HardwareAddr: hw})
		}
	}
	for i, err := range setNeighs(h, b, set) {
		if err != nil {
			errs = append(errs, fmt.Errorf("set fdb %s dst %s on %s: %w", set[i].HardwareAddr, set[i].IP, linkName, err))
			continue
		}
		st.setFDB++
	}
	return st, errors.Join(errs...)
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
