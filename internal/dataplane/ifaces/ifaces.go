// Package ifaces reads the host's interfaces and their addresses, and asks
// the kernel which source address it would use toward a destination. It is
// the kernel half of node IP autodetection; choosing among the interfaces is
// pure logic that lives with the caller (the agent).
//
// It only reads: it never changes links, addresses or routes, and it sends no
// packets. It imports only the standard library, netlink and the netns
// package, never the datastore, API, BGP or agent packages.
package ifaces

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/onecalico/calico/internal/dataplane/netns"
)

// Interface is one link with its addresses.
type Interface struct {
	Name  string
	Index int
	Up    bool // operationally up (or unknown, as loopback and tunnels report)
	MTU   int
	// Addrs keeps the host bits: 10.0.0.11/24, not 10.0.0.0/24.
	Addrs []netip.Prefix
}

// dumpRetries bounds retries of dumps the kernel interrupted because the
// table changed meanwhile (NLM_F_DUMP_INTR).
const dumpRetries = 5

// List returns every link of the namespace h is bound to, sorted by index,
// each with all its IPv4 and IPv6 addresses. It makes two netlink dumps.
func List(h *netlink.Handle) ([]Interface, error) {
	var links []netlink.Link
	var err error
	for range dumpRetries {
		if links, err = h.LinkList(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var addrs []netlink.Addr
	for range dumpRetries {
		if addrs, err = h.AddrList(nil, netlink.FAMILY_ALL); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	byIndex := make(map[int][]netip.Prefix, len(links))
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok {
			byIndex[a.LinkIndex] = append(byIndex[a.LinkIndex], p)
		}
	}
	out := make([]Interface, 0, len(links))
	for _, l := range links {
		at := l.Attrs()
		out = append(out, Interface{
			Name:  at.Name,
			Index: at.Index,
			Up:    at.OperState == netlink.OperUp || (at.OperState == netlink.OperUnknown && at.Flags&net.FlagUp != 0),
			MTU:   at.MTU,
			Addrs: byIndex[at.Index],
		})
	}
	slices.SortFunc(out, func(a, b Interface) int { return a.Index - b.Index })
	return out, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	a = a.Unmap()
	if bits == 0 || (a.Is4() && bits != 32) {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}

// SourceAddr returns the local address the kernel of the namespace at
// nsPath ("" = the caller's) would use to send to dest, found by
// "connecting" a UDP socket to dest port 80: connect(2) on a datagram socket
// only selects a route and a source address, so no packet is sent. dest is
// an IP address or a host name; version (4 or 6) picks the family.
func SourceAddr(nsPath, dest string, version int) (netip.Addr, error) {
	network := "udp4"
	if version == 6 {
		network = "udp6"
	}
	var src netip.Addr
	err := netns.Do(nsPath, func() error {
		c, err := net.Dial(network, net.JoinHostPort(dest, "80"))
		if err != nil {
			return err
		}
		defer c.Close()
		ua, ok := c.LocalAddr().(*net.UDPAddr)
		if !ok {
			return fmt.Errorf("unexpected local address %v", c.LocalAddr())
		}
		a, ok := netip.AddrFromSlice(ua.IP)
		if !ok {
			return fmt.Errorf("unexpected local address %v", ua.IP)
		}
		src = a.Unmap()
		return nil
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("find source address toward %s: %w", dest, err)
	}
	return src, nil
}
