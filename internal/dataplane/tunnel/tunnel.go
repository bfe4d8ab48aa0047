// Package tunnel manages the node's overlay devices: the VXLAN device
// (vxlan.calico) with its static VTEP neighbour and FDB entries, and the IPIP
// device (tunl0).
//
// Every function is idempotent and fixes state in place where the kernel
// allows it; a device is only recreated when an attribute that cannot be
// changed on a live device differs. Functions act through the given netlink
// handle, i.e. in the namespace it is bound to. The package imports only the
// standard library, netlink and the lower dataplane packages netns and link
// (addresses as prefixes).
package tunnel

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/onecalico/calico/internal/dataplane/link"
)

// ErrNotSupported is wrapped when the kernel lacks a device type (no module,
// and none can be loaded).
var ErrNotSupported = errors.New("not supported by this kernel")

// ErrInvalid is wrapped by errors about malformed desired state.
var ErrInvalid = errors.New("invalid tunnel config")

// DefaultVXLANPort is used when VXLAN.Port is 0 (Felix's VXLANPort default;
// the kernel's own default would be 8472).
const DefaultVXLANPort = 4789

// VXLAN is the desired VXLAN device.
type VXLAN struct {
	Name        string           // e.g. "vxlan.calico"
	VNI         int              // e.g. 4096
	Port        int              // UDP destination port; 0 = 4789
	MAC         net.HardwareAddr // nil = kernel-chosen
	LocalIP     netip.Addr       // underlay source address (the node IP)
	ParentIndex int              // underlay interface owning LocalIP; 0 = none
	MTU         int              // 0 = kernel default
	Addr        netip.Prefix     // tunnel address, e.g. 10.244.1.0/32; zero = none
}

func (v VXLAN) port() int {
	if v.Port == 0 {
		return DefaultVXLANPort
	}
	return v.Port
}

func (v VXLAN) validate() error {
	switch {
	case v.Name == "" || len(v.Name) >= unix.IFNAMSIZ:
		return fmt.Errorf("vxlan name %q: %w", v.Name, ErrInvalid)
	case v.VNI < 1 || v.VNI > 1<<24-1:
		return fmt.Errorf("vxlan %s: vni %d: %w", v.Name, v.VNI, ErrInvalid)
	case v.Port < 0 || v.Port > 65535:
		return fmt.Errorf("vxlan %s: port %d: %w", v.Name, v.Port, ErrInvalid)
	case v.MAC != nil && len(v.MAC) != 6:
		return fmt.Errorf("vxlan %s: mac %s: %w", v.Name, v.MAC, ErrInvalid)
	case v.MTU < 0:
		return fmt.Errorf("vxlan %s: mtu %d: %w", v.Name, v.MTU, ErrInvalid)
	}
	return nil
}

// EnsureVXLAN creates the device described by v or fixes it in place: MTU,
// MAC and up state are changed on the live device; the device is recreated
// only when the VNI, port, local address or parent differs, learning is on,
// or a link of another type has the name. The device's addresses are then
// set to exactly v.Addr (IPv6 link-local addresses are left alone).
func EnsureVXLAN(h *netlink.Handle, v VXLAN) error {
	_, err := ensureVXLAN(h, v)
	return err
}

// ensureVXLAN is EnsureVXLAN that also reports the changes it made.
func ensureVXLAN(h *netlink.Handle, v VXLAN) ([]string, error) {
	if err := v.validate(); err != nil {
		return nil, err
	}
	var changes []string
	l, err := h.LinkByName(v.Name)
	switch {
	case isNotFound(err):
		l = nil
	case err != nil:
		return nil, fmt.Errorf("look up link %s: %w", v.Name, err)
	}
	if l != nil {
		if why := vxlanMismatch(l, v); why != "" {
			if err := h.LinkDel(l); err != nil {
				return changes, fmt.Errorf("delete link %s to recreate it (%s): %w", v.Name, why, err)
			}
			changes = append(changes, "delete: "+why)
			l = nil
		}
	}
	if l == nil {
		la := netlink.NewLinkAttrs()
		la.Name = v.Name
		la.MTU = v.MTU
		la.HardwareAddr = v.MAC
		la.Flags = net.FlagUp
		vx := &netlink.Vxlan{LinkAttrs: la, VxlanId: v.VNI, VtepDevIndex: v.ParentIndex, Port: v.port(), Learning: false}
		if v.LocalIP.IsValid() {
			vx.SrcAddr = v.LocalIP.AsSlice()
		}
		if err := h.LinkAdd(vx); err != nil {
			return changes, fmt.Errorf("create vxlan %s (vni %d, port %d, local %s): %w", v.Name, v.VNI, v.port(), v.LocalIP, err)
		}
		changes = append(changes, "create")
		if l, err = h.LinkByName(v.Name); err != nil {
			return changes, fmt.Errorf("look up new link %s: %w", v.Name, err)
		}
	}
	a := l.Attrs()
	if v.MTU != 0 && a.MTU != v.MTU {
		if err := h.LinkSetMTU(l, v.MTU); err != nil {
			return changes, fmt.Errorf("set mtu %d on %s: %w", v.MTU, v.Name, err)
		}
		changes = append(changes, fmt.Sprintf("mtu %d", v.MTU))
	}
	if v.MAC != nil && !bytes.Equal(a.HardwareAddr, v.MAC) {
		if err := h.LinkSetHardwareAddr(l, v.MAC); err != nil {
			return changes, fmt.Errorf("set mac %s on %s: %w", v.MAC, v.Name, err)
		}
		changes = append(changes, "mac "+v.MAC.String())
	}
	if a.Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(l); err != nil {
			return changes, fmt.Errorf("set %s up: %w", v.Name, err)
		}
		changes = append(changes, "up")
	}
	c, err := syncAddr(h, l, v.Addr)
	return append(changes, c...), err
}

// vxlanMismatch says why an existing link cannot be fixed in place, or "".
func vxlanMismatch(l netlink.Link, v VXLAN) string {
	vx, ok := l.(*netlink.Vxlan)
	if !ok {
		return "link is a " + l.Type()
	}
	local, _ := netip.AddrFromSlice(vx.SrcAddr)
	local = local.Unmap()
	switch {
	case vx.VxlanId != v.VNI:
		return fmt.Sprintf("vni %d, want %d", vx.VxlanId, v.VNI)
	case vx.Port != v.port():
		return fmt.Sprintf("port %d, want %d", vx.Port, v.port())
	case local != v.LocalIP.Unmap():
		return fmt.Sprintf("local %s, want %s", local, v.LocalIP)
	case vx.VtepDevIndex != v.ParentIndex:
		return fmt.Sprintf("parent index %d, want %d", vx.VtepDevIndex, v.ParentIndex)
	case vx.Learning:
		return "learning is on"
	}
	return ""
}

// syncAddr makes want (if valid) the only address of l, keeping IPv6
// link-local addresses, which the kernel manages.
func syncAddr(h *netlink.Handle, l netlink.Link, want netip.Prefix) ([]string, error) {
	name := l.Attrs().Name
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", name, err)
	}
	var changes []string
	have := false
	for _, a := range addrs {
		p, ok := link.AddrPrefix(a)
		if !ok {
			continue
		}
		if p == want {
			have = true
			continue
		}
		if ip := p.Addr(); ip.Is6() && ip.IsLinkLocalUnicast() {
			continue
		}
		if err := h.AddrDel(l, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return changes, fmt.Errorf("delete address %s from %s: %w", p, name, err)
		}
		changes = append(changes, "del addr "+p.String())
	}
	if want.IsValid() && !have {
		ipn := &net.IPNet{IP: want.Addr().AsSlice(), Mask: net.CIDRMask(want.Bits(), want.Addr().BitLen())}
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipn}); err != nil {
			return changes, fmt.Errorf("add address %s to %s: %w", want, name, err)
		}
		changes = append(changes, "add addr "+want.String())
	}
	return changes, nil
}

// DeleteLink deletes the link called name; a missing link is not an error.
func DeleteLink(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up link %s: %w", name, err)
	}
	if err := h.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// IPIP is the desired IPIP device. Name is normally "tunl0", the kernel's
// fallback device, which exists as soon as the ipip module is loaded.
type IPIP struct {
	Name string       // tunl0
	MTU  int          // 0 = kernel default
	Addr netip.Prefix // tunnel address /32; zero = none
}

// EnsureIPIP creates (if needed) and configures the IPIP device. On a kernel
// without IPIP support the error wraps ErrNotSupported.
func EnsureIPIP(h *netlink.Handle, t IPIP) error {
	if t.Name == "" || len(t.Name) >= unix.IFNAMSIZ || t.MTU < 0 {
		return fmt.Errorf("ipip %q mtu %d: %w", t.Name, t.MTU, ErrInvalid)
	}
	l, err := h.LinkByName(t.Name)
	if isNotFound(err) {
		la := netlink.NewLinkAttrs()
		la.Name = t.Name
		la.MTU = t.MTU
		err = h.LinkAdd(&netlink.Iptun{LinkAttrs: la})
		if errors.Is(err, unix.EOPNOTSUPP) {
			// rtnl_newlink answers "Unknown device type" with EOPNOTSUPP
			// when the ipip kind is neither built in nor loadable.
			return fmt.Errorf("create ipip %s: %w (%w)", t.Name, ErrNotSupported, err)
		}
		if err != nil {
			return fmt.Errorf("create ipip %s: %w", t.Name, err)
		}
		l, err = h.LinkByName(t.Name)
	}
	if err != nil {
		return fmt.Errorf("look up link %s: %w", t.Name, err)
	}
	if l.Type() != "ipip" {
		return fmt.Errorf("link %s is a %s, not ipip: %w", t.Name, l.Type(), ErrInvalid)
	}
	if t.MTU != 0 && l.Attrs().MTU != t.MTU {
		if err := h.LinkSetMTU(l, t.MTU); err != nil {
			return fmt.Errorf("set mtu %d on %s: %w", t.MTU, t.Name, err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("set %s up: %w", t.Name, err)
		}
	}
	_, err = syncAddr(h, l, t.Addr)
	return err
}
