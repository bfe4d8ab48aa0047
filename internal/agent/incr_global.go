package agent

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"

	"github.com/onecalico/calico/internal/dataplane/tunnel"
)

// Global changes in the incremental calculator: an IPPool, the Felix
// configuration or this node's own Node. Each feeds two kinds of result:
// the global parts of Desired (settings, the devices and their MTUs, the
// NAT table, the pod MTU), which calcGlobal computes without looking at
// the cluster's Nodes, blocks and endpoints, and the routes, which depend
// on them only through
//
//   - the device states (and identities) calcGlobal gives: compared with
//     the seed's, and when they differ the pass is a full Calc;
//   - a pool's encapsulation modes (routeTo): the destinations of that
//     pool (inPool) are recomputed; a pool added, deleted or with a new
//     CIDR (which may change the pool of any destination) is a full Calc;
//   - this node's addresses (routeTo's same-subnet test, the devices): any
//     change to its Node besides labels and BGP fields is a full Calc.
//
// A pool's natOutgoing or disabled flag, disableBGPExport (read only by
// the BGP speaker; with BGP on the calculator is not used), nodeSelector
// and allowedUses (the tunnel address manager's), and the Felix fields
// behind sysctls, MTUs and NAT change no route, so such a change costs
// O(pools), not O(cluster). The Felix fields read outside Calc that the
// incremental apply does not follow (VNI and port: the device is
// recreated; interfacePrefix: the VXLAN filter; routeRefreshInterval: the
// resync timer) make the pass a full one.

// calcGlobal is Calc without the parts that depend on the cluster's
// Nodes (other than this one), blocks and endpoints: no workloads, VTEPs
// or routes, and so no skip lines in Degraded.
func calcGlobal(m *Model) Desired {
	c := calc{m: m, me: m.Nodes[m.NodeName], global: true}
	return c.run()
}

// globalStep follows in's pool, Felix and own-Node changes (already in
// ic.m): it recomputes the global parts into ic.base and ic.global and
// adds to in the destinations whose routes may have changed. False when
// the pass must be a full Calc; the calculator is then dropped, so it
// may be left half changed.
func (ic *incrCalc) globalStep(in *incrInput) bool {
	for _, n := range in.nodes {
		if n.key == ic.m.NodeName && (n.had != n.has || !sameForCalc(n.old, n.new)) {
			return false
		}
	}
	var encap []string
	for _, p := range in.pools {
		if !p.had || !p.has || p.old.CIDR != p.new.CIDR {
			return false
		}
		if p.old.VXLANMode != p.new.VXLANMode || p.old.IPIPMode != p.new.IPIPMode {
			encap = append(encap, p.key)
		}
	}
	f := in.felix
	felix := f.had && !equalFelix(f.old, f.new)
	if felix && !felixFollowed(f.old, f.new) {
		return false
	}
	if len(in.pools) == 0 && !felix {
		return true
	}
	ic.pools = ic.pools[:0]
	for _, name := range sortedKeys(ic.m.Pools) {
		ic.pools = append(ic.pools, ic.m.Pools[name])
	}
	nb := calcGlobal(ic.m)
	if !sameRouting(ic.base, nb) {
		return false
	}
	for _, name := range encap {
		for dst := range ic.inPool[name] {
			in.dests = append(in.dests, dst)
		}
	}
	lines := nb.Degraded
	nb.Degraded = nil
	nb.OwnBGPRoutes, nb.PeeringAddrs, nb.LocalWorkloads = ic.base.OwnBGPRoutes, ic.base.PeeringAddrs, ic.base.LocalWorkloads
	if reflect.DeepEqual(nb, ic.base) && slices.Equal(lines, ic.global) {
		return true
	}
	ic.base, ic.global, in.global = nb, lines, true
	return true
}

// sameForCalc reports whether two versions of this node's Node give Calc
// the same result: only its labels (the tunnel address manager's pool
// selection) and BGP fields (BGP is not the calculator's) may differ.
func sameForCalc(a, b Node) bool {
	a.Labels, b.Labels = nil, nil
	a.ASNumber, b.ASNumber = 0, 0
	a.RRClusterID, b.RRClusterID = "", ""
	return reflect.DeepEqual(a, b)
}

// felixFollowed reports whether a Felix change from a to b is one the
// incremental apply follows (the fields read outside Calc are the same).
func felixFollowed(a, b FelixConfig) bool {
	return a.VXLANVNI == b.VXLANVNI && a.VXLANPort == b.VXLANPort && a.InterfacePrefix == b.InterfacePrefix &&
		a.RouteRefreshInterval == b.RouteRefreshInterval
}

// sameRouting reports whether the routes computed with b's global parts
// equal those with a's: the same device states, and devices that differ
// at most in MTU (a VXLAN device with another VNI, port, MAC or parent is
// recreated, which takes its neighbours and routes with it).
func sameRouting(a, b Desired) bool {
	if a.VXLANState != b.VXLANState || a.IPIPState != b.IPIPState || a.VXLANV6State != b.VXLANV6State || a.WorkloadV6 != b.WorkloadV6 {
		return false
	}
	va, vb := a.VXLAN, b.VXLAN
	va.MTU, vb.MTU = 0, 0
	ia, ib := a.IPIP, b.IPIP
	ia.MTU, ib.MTU = 0, 0
	return reflect.DeepEqual(va, vb) && ia == ib && reflect.DeepEqual(a.VXLANV6, b.VXLANV6)
}

// track keeps dst's place in inPool: the pool poolFor gives it while it
// is a destination (a block, or an address of an endpoint or a borrowed
// one).
func (ic *incrCalc) track(c *calc, dst netip.Prefix) {
	name := ""
	if ic.isDest(dst) {
		if p, ok := c.poolFor(dst); ok {
			name = p.Name
		}
	}
	old, had := ic.poolOf[dst]
	if had && old == name {
		return
	}
	if had {
		addSet(ic.inPool, old, dst, false)
		delete(ic.poolOf, dst)
	}
	if name != "" {
		addSet(ic.inPool, name, dst, true)
		ic.poolOf[dst] = name
	}
}

func (ic *incrCalc) isDest(dst netip.Prefix) bool {
	if _, ok := ic.m.Blocks[dst]; ok {
		return true
	}
	a := dst.Addr()
	return dst.Bits() == a.BitLen() && (len(ic.wepIPs[a]) > 0 || ic.blkIPs[a] > 0)
}

// applyGlobal applies the global parts of an incremental pass: the
// settings, the devices' MTUs (globalStep let nothing else of them
// change), the NAT table and the pod MTU file, each only if it differs
// from what was applied.
func (dp *dataplane) applyGlobal(d Desired, ar *applyResult, timed func(string, func())) {
	l := &dp.last
	dp.applySysctls(d, false, ar, timed)
	if d.VXLANState == DevicePresent && !reflect.DeepEqual(d.VXLAN, l.vxlan) {
		timed("vxlan", func() {
			l.vxlanOK = false
			if err := dp.k.EnsureVXLAN(d.VXLAN); err != nil {
				ar.fail("vxlan", err, dp)
				return
			}
			l.vxlan, l.vxlanOK = d.VXLAN, true
		})
	}
	if d.IPIPState == DevicePresent && d.IPIP != l.ipip {
		timed("ipip", func() {
			l.ipipOK = false
			err := dp.k.EnsureIPIP(d.IPIP)
			if errors.Is(err, tunnel.ErrNotSupported) {
				dp.host.IPIPUnsupported = true // the full pass this failure causes degrades instead
			}
			if err != nil {
				ar.fail("ipip", err, dp)
				return
			}
			l.ipip, l.ipipOK = d.IPIP, true
		})
	}
	dp.applyNAT(d, false, ar, timed)
	dp.applyMTUFile(d, false, ar, timed)
}
