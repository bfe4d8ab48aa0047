package agent

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/bgp"
	"github.com/onecalico/calico/internal/dataplane/route"
)

// routeOwner is RouteOwner plus protocol 12 once the BGP routes are
// complete (BGPView.Synced) or when BGP is off (to clean up).
func (d Desired) routeOwner() route.Owner {
	o := RouteOwner
	if d.OwnBGPRoutes {
		o.Protocols = append(slices.Clone(o.Protocols), BGPRouteProtocol)
	}
	return o
}

// bgpSource reports whether routes to pool's remote blocks come from BGP
// rather than from the datastore: the speaker runs and the pool does not
// use VXLAN (as upstream, VXLAN routes stay Felix's).
func (c *calc) bgpSource(p Pool) bool {
	return c.m.BGP.Enabled && !p.vxlan()
}

// bgpRoutes adds a protocol 12 route for every learned best path inside a
// pool without VXLAN, following upstream's kernel export filter: no
// encapsulation (or CrossSubnet with the next hop on this node's subnet)
// routes via the next hop; IPIP routes via the next hop on tunl0.
// Learned paths outside every pool are installed too (externalRoute).
func (c *calc) bgpRoutes(add func(netip.Prefix, route.Route)) {
	m := c.m
	c.d.OwnBGPRoutes = !m.BGP.Enabled || m.BGP.Synced
	if !m.BGP.Enabled {
		return
	}
	c.d.PeeringAddrs = peeringAddrs(m.BGP.WorkloadAddrs)
	if m.BGP.Down != "" {
		c.degrade("bgp: the BGP speaker is %s: routes to other nodes' blocks in pools without VXLAN are not programmed", m.BGP.Down)
	}
	pools := poolsBySpecificity(m.Pools)
	for dst, l := range m.BGP.Learned {
		if r, ok := c.learnedRoute(pools, dst, l); ok {
			add(dst, r)
		}
	}
	// A BGPPeer's reachableBy: the peer via its gateway (upstream's
	// static protocol, which BIRD prefers to BGP).
	for _, s := range m.BGP.Static {
		add(s.Dst, route.Route{Dst: s.Dst, Gw: s.Gw, Protocol: BGPRouteProtocol})
	}
}

// poolsBySpecificity lists pools by prefix length, longest first: the
// first containing pool is the most specific (poolFor's rule, without its
// per-call sort).
func poolsBySpecificity(m map[string]Pool) []Pool {
	pools := slices.Collect(maps.Values(m))
	slices.SortFunc(pools, func(a, b Pool) int { return cmp.Or(b.CIDR.Bits()-a.CIDR.Bits(), strings.Compare(a.Name, b.Name)) })
	return pools
}

// learnedRoute is the route for one learned path, if it is installed:
// inside a pool without VXLAN, not this node's own block; outside every
// pool, see externalRoute. Its metric is the path's priority (a
// BGPFilter import rule's setPriority).
func (c *calc) learnedRoute(pools []Pool, dst netip.Prefix, l bgp.Learned) (route.Route, bool) {
	r, ok := c.learnedRouteAt(pools, dst, l)
	r.Metric = int(l.Priority)
	return r, ok
}

func (c *calc) learnedRouteAt(pools []Pool, dst netip.Prefix, l bgp.Learned) (route.Route, bool) {
	m := c.m
	v6 := dst.Addr().Is6()
	if !l.NextHop.IsValid() || l.NextHop.Is6() != v6 {
		return route.Route{}, false
	}
	i := slices.IndexFunc(pools, func(p Pool) bool {
		return p.CIDR.Addr().Is6() == v6 && p.CIDR.Bits() <= dst.Bits() && p.CIDR.Contains(dst.Addr())
	})
	if i < 0 {
		return c.externalRoute(dst, l.NextHop)
	}
	if pools[i].vxlan() {
		return route.Route{}, false
	}
	if b, ok := m.Blocks[dst]; ok && b.Affinity == m.NodeName {
		return route.Route{}, false // our own block, reflected back
	}
	return c.bgpRoute(dst, l.NextHop, pools[i])
}

// externalRoute is the route for a path learned outside every pool:
// upstream's kernel filter ends with accept, so BIRD installs such routes
// (a ToR's other subnets, say) via their next hop, and so do we. One
// exception: a destination that contains this node's own address (its
// subnet, a default route) is not installed, as it would replace the
// host's own route to it (BIRD's add fails on the existing route).
func (c *calc) externalRoute(dst netip.Prefix, nh netip.Addr) (route.Route, bool) {
	if me := c.myPrefix(dst.Addr().Is6()); me.IsValid() && dst.Contains(me.Addr()) {
		return route.Route{}, false
	}
	return c.bgpRoute(dst, nh, Pool{})
}

// myPrefix is this node's address (with its subnet) of one family.
func (c *calc) myPrefix(v6 bool) netip.Prefix {
	if v6 {
		return c.me.IPv6
	}
	return c.me.IPv4
}

// bgpRoute is the kernel route for one learned path.
func (c *calc) bgpRoute(dst netip.Prefix, nh netip.Addr, pool Pool) (route.Route, bool) {
	me := c.myPrefix(nh.Is6())
	sameSubnet := me.IsValid() && me.Masked().Contains(nh)
	if nh.Is6() {
		pool.IPIPMode = "" // IPIP is IPv4 only
	}
	if pool.IPIPMode == api.IPIPModeAlways || (pool.IPIPMode == api.IPIPModeCrossSubnet && !sameSubnet) {
		if c.d.IPIPState != DevicePresent {
			return route.Route{}, false // reported as the ipip degradation
		}
		return route.Route{Dst: dst, Gw: nh, LinkName: IPIPDevice, OnLink: true, Protocol: BGPRouteProtocol}, true
	}
	r := route.Route{Dst: dst, Gw: nh, Protocol: BGPRouteProtocol}
	if sameSubnet {
		r.LinkName = c.m.Host.ParentIf
	}
	return r, true
}

// applyRoutes installs d.Routes: a full Apply (kernel dump and diff) on
// a full pass (the caller also asks for one after a failure), when protocol 12 ownership changed or a
// device was recreated; otherwise only the routes that changed since the
// last successful apply, so that one BGP UPDATE costs one netlink request.
func (dp *dataplane) applyRoutes(d Desired, full bool) (route.Result, error) {
	l := &dp.last
	if full || l.ownBGP != d.OwnBGPRoutes {
		return dp.k.ApplyRoutes(d.routeOwner(), d.Routes)
	}
	return dp.k.ApplyRouteChanges(d.routeOwner(), l.routes, d.Routes)
}
