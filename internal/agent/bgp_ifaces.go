package agent

import (
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/bgp"
	"github.com/onecalico/calico/internal/dataplane/ifaces"
	"github.com/onecalico/calico/internal/dataplane/netns"
)

// BGPFilter interface matches see the routes upstream's BIRD has with an
// interface: the connected subnets of the host's interfaces (its direct
// protocol; BIRD's device protocol rescans them every 2 s, we on the
// kernel's address and link events, bgp_ifwatch.go) and the routes to
// local workloads through their veths (learned from the kernel). They
// are gathered only while some rule has an interface match. The BGP
// goroutine reads the interfaces with its own netlink handle: the
// speaker runs only in the node's own namespace.

// ifaceScan is the BGP goroutine's view of the host's interfaces.
type ifaceScan struct {
	h         *netlink.Handle // opened on first use
	connected []bgp.IfaceRoute
	watch     *ifaceWatch // while needed (bgp_ifwatch.go); nil: polled
}

// needIfaceRoutes reports whether a BGPFilter rule matches an interface.
func needIfaceRoutes(filters map[string]*api.BGPFilterSpec) bool {
	for _, f := range filters {
		for _, l := range [][]api.BGPFilterRule{f.ExportV4, f.ExportV6, f.ImportV4, f.ImportV6} {
			if slices.ContainsFunc(l, func(r api.BGPFilterRule) bool { return r.Interface != "" }) {
				return true
			}
		}
	}
	return false
}

// rescanIfaces lists the connected subnets again when interface matches
// are in use; it reports whether they changed. Only the BGP goroutine
// calls it.
func (a *Agent) rescanIfaces() bool {
	need := a.needIfaces()
	a.rewatchIfaces(need)
	s := &a.bgp.ifaces
	if !need {
		changed := s.connected != nil
		s.connected = nil
		return changed
	}
	if s.h == nil {
		h, err := netns.NewHandle(a.cfg.NetNS)
		if err != nil {
			a.log.Warn("BGP interface routes: open netlink", "component", "bgp", "err", err)
			return false
		}
		s.h = h
	}
	ifs, err := ifaces.List(s.h)
	if err != nil {
		a.log.Warn("BGP interface routes: list interfaces", "component", "bgp", "err", err)
		return false
	}
	got := connectedRoutes(ifs)
	changed := !slices.Equal(got, s.connected) || s.connected == nil
	s.connected = got
	return changed
}

// connectedRoutes are the subnets of the addresses of up interfaces,
// without host-scoped (loopback) and link-local ones, which BIRD's
// direct protocol leaves out too.
func connectedRoutes(ifs []ifaces.Interface) []bgp.IfaceRoute {
	out := []bgp.IfaceRoute{}
	for _, i := range ifs {
		if !i.Up {
			continue
		}
		for _, a := range i.Addrs {
			if ip := a.Addr(); ip.IsLoopback() || ip.IsLinkLocalUnicast() {
				continue
			}
			out = append(out, bgp.IfaceRoute{Prefix: a.Masked(), Interface: i.Name, Connected: true})
		}
	}
	return out
}

// ifaceRoutes is bgp.Input.IfaceRoutes: the scanned connected subnets
// and the routes to this node's workloads.
func (a *Agent) ifaceRoutes(m *Model) []bgp.IfaceRoute {
	if a.bgp == nil || a.bgp.ifaces.connected == nil {
		return nil
	}
	s := &a.bgp.ifaces
	out := slices.Clone(s.connected)
	for _, key := range sortedKeys(m.WEPs) {
		w := m.WEPs[key]
		if w.Node != m.NodeName || w.Interface == "" {
			continue
		}
		for _, ip := range w.IPs {
			out = append(out, bgp.IfaceRoute{Prefix: netip.PrefixFrom(ip.Addr(), ip.Addr().BitLen()), Interface: w.Interface})
		}
	}
	return out
}

// closeIfaces releases the scan's netlink handle and subscription.
func (a *Agent) closeIfaces() {
	a.rewatchIfaces(false)
	if h := a.bgp.ifaces.h; h != nil {
		h.Close()
		a.bgp.ifaces.h = nil
	}
}
