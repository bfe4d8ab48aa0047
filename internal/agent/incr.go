package agent

import (
	"bytes"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/onecalico/calico/internal/dataplane/route"
	"github.com/onecalico/calico/internal/dataplane/tunnel"
)

// The incremental calculator. A reconcile pass caused by Node, block or
// WorkloadEndpoint events of other nodes recomputes only what those items
// feed: the routes to the changed blocks and addresses, the routes and
// VTEP of a changed Node, this node's workloads. Everything else of the
// desired state depends on global inputs (pools, Felix configuration,
// this node's own Node, host facts, BGP). A change of a pool, the Felix
// configuration or this node's Node is followed too where it leaves the
// device states alone (incr_global.go); any other global change makes
// the pass a full Calc, after which the calculator is seeded again from
// that Calc's model and result. Calc stays the reference: a seed is used
// only when the calculator rebuilds exactly Calc's result from it, and
// TestIncrMatchesCalc checks random change sequences against Calc.
//
// The calculator owns its model (copied item by item from the live one
// under a.mu, dirty.go), so a pass costs what changed, not the cluster.

// incrCalc is the calculator's state; the reconcile goroutine owns it.
type incrCalc struct {
	m    *Model  // its own model, changed item by item
	base Desired // the seeding Calc's result: the global parts
	// pools is poolFor's pool order (global).
	pools []Pool
	// routes is the route per destination: what was applied.
	routes map[netip.Prefix]route.Route
	// skips are the skip notes of each destination ("reason\x00what").
	skips map[netip.Prefix][]string
	// skipBy holds the skipped destinations of each reason, sorted, and
	// lines each reason's degraded line.
	skipBy   map[string][]string
	lines    map[string]string
	global   []string // degraded lines that are not skip lines
	degraded []string
	// vteps is sorted by tunnel address and never changed in place;
	// macs holds its MACs. It has no duplicates (else Calc decides), so
	// a node's VTEP is vtepFor its Node.
	vteps []tunnel.VTEP
	macs  map[[6]byte]struct{}
	// byAff lists each node's blocks; owner is Calc's borrowed map (the
	// node an address is routed to when not its block's) and byOwner its
	// inverse.
	byAff   map[string][]netip.Prefix
	owner   map[netip.Addr]string
	byOwner map[string]map[netip.Addr]struct{}
	// wepIPs are the endpoints (with a node) per address; blkIPs counts
	// the blocks listing an address as borrowed.
	wepIPs map[netip.Addr][]string
	blkIPs map[netip.Addr]int
	// bitsN counts the blocks of each prefix length (calc.blockBits).
	bitsN [129]int
	// local counts this node's endpoints per host prefix; localWEPs are
	// those endpoints.
	local     map[netip.Prefix]int
	localWEPs map[string]WEP
	// inPool lists the destinations (blocks and indexed addresses) of
	// each pool, by name, and poolOf is its inverse: what a change of
	// that pool's encapsulation reroutes (incr_global.go).
	inPool map[string]map[netip.Prefix]struct{}
	poolOf map[netip.Prefix]string
}

// routeChange is one destination whose route changed.
type routeChange struct {
	dst       netip.Prefix
	old, new  route.Route
	had, has  bool
	skips     []string
	skipsDiff bool
}

// incrResult is what one incremental update changed.
type incrResult struct {
	routes   []routeChange
	vteps    bool // ic.vteps is a new list
	vtepGone []tunnel.VTEP
	vtepSet  []tunnel.VTEP
	local    bool // this node's workloads changed
	degraded bool
	global   bool // the global parts (base) changed: settings, device MTUs, NAT, MTU file
}

// incrEligible reports whether a full pass's result can seed the
// calculator: BGP (whose learned routes have their own fast path) and the
// IPv6 VXLAN device are left to Calc.
func incrEligible(m *Model, d Desired) bool {
	return !m.BGP.Enabled && d.VXLANV6State != DevicePresent
}

// newIncr seeds a calculator from a full pass's model and Calc result;
// nil when the pass is not eligible or the calculator does not rebuild d
// exactly (duplicate VTEPs, say).
func newIncr(m *Model, d Desired) *incrCalc {
	if !incrEligible(m, d) {
		return nil
	}
	ic := &incrCalc{m: m, base: d, routes: map[netip.Prefix]route.Route{}, skips: map[netip.Prefix][]string{},
		skipBy: map[string][]string{}, lines: map[string]string{},
		macs:  map[[6]byte]struct{}{},
		byAff: map[string][]netip.Prefix{}, owner: map[netip.Addr]string{}, byOwner: map[string]map[netip.Addr]struct{}{},
		wepIPs: map[netip.Addr][]string{}, blkIPs: map[netip.Addr]int{},
		local: map[netip.Prefix]int{}, localWEPs: map[string]WEP{},
		inPool: map[string]map[netip.Prefix]struct{}{}, poolOf: map[netip.Prefix]string{}}
	ic.base.Routes, ic.base.VTEPs, ic.base.Degraded, ic.base.WorkloadIfaces = nil, nil, nil, nil
	ic.pools = make([]Pool, 0, len(m.Pools))
	for _, name := range sortedKeys(m.Pools) {
		ic.pools = append(ic.pools, m.Pools[name])
	}
	dests := map[netip.Prefix]struct{}{}
	for cidr, b := range m.Blocks {
		ic.indexBlock(b, 1)
		dests[cidr] = struct{}{}
	}
	for k, w := range m.WEPs {
		ic.indexWEP(k, w, 1)
	}
	for a := range ic.wepIPs {
		dests[hostPrefix(a)] = struct{}{}
	}
	for a := range ic.blkIPs {
		dests[hostPrefix(a)] = struct{}{}
	}
	c := ic.calc()
	for dst := range dests {
		if dst.Bits() == dst.Addr().BitLen() {
			ic.setOwner(dst.Addr(), c)
		}
	}
	changed := map[string]bool{}
	for dst := range dests {
		ch := ic.dest(c, dst)
		ic.track(c, dst)
		if ch.has {
			ic.routes[dst] = ch.new
		}
		ic.setSkips(dst, ch.skips, changed)
	}
	ic.renderLines(changed)
	if !ic.seedVTEPs(d) {
		return nil
	}
	ic.global = minus(d.Degraded, ic.skipLines())
	ic.degraded = ic.buildDegraded()
	if !ic.rebuilds(d) {
		return nil
	}
	return ic
}

// rebuilds reports whether the calculator's state is exactly d (the
// parts it keeps; the rest is d's own).
func (ic *incrCalc) rebuilds(d Desired) bool {
	if len(ic.routes) != len(d.Routes) || len(ic.vteps) != len(d.VTEPs) || !slices.Equal(ic.degraded, d.Degraded) {
		return false
	}
	for _, r := range d.Routes {
		if ic.routes[r.Dst] != r {
			return false
		}
	}
	for i, v := range d.VTEPs {
		if !equalVTEP(v, ic.vteps[i]) {
			return false
		}
	}
	n, ifs := ic.workloads()
	return n == d.LocalWorkloads && slices.Equal(ifs, d.WorkloadIfaces)
}

// seedVTEPs builds the VTEP list; false when Calc found duplicates
// (which node wins depends on every node's name, so Calc decides).
func (ic *incrCalc) seedVTEPs(d Desired) bool {
	if d.VXLANState != DevicePresent {
		return true
	}
	for name, n := range ic.m.Nodes {
		v, ok := ic.vtepFor(name, n)
		if !ok {
			continue
		}
		if _, dup := ic.macs[[6]byte(v.MAC)]; dup {
			return false
		}
		ic.macs[[6]byte(v.MAC)] = struct{}{}
		ic.vteps = append(ic.vteps, v)
	}
	slices.SortFunc(ic.vteps, compareVTEP)
	for i := 1; i < len(ic.vteps); i++ {
		if ic.vteps[i].TunnelIP == ic.vteps[i-1].TunnelIP {
			return false
		}
	}
	return true
}

func compareVTEP(a, b tunnel.VTEP) int { return a.TunnelIP.Compare(b.TunnelIP) }

// vtepFor is Calc's VTEP for node name (before the duplicate checks).
func (ic *incrCalc) vtepFor(name string, n Node) (tunnel.VTEP, bool) {
	if name == ic.m.NodeName || !n.IPv4.IsValid() || !n.VXLANTunnelAddr.IsValid() {
		return tunnel.VTEP{}, false
	}
	return tunnel.VTEP{TunnelIP: n.VXLANTunnelAddr, MAC: n.mac(), NodeIP: n.IPv4.Addr()}, true
}

func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// calc is a calculation over the calculator's model with the seeding
// Calc's device states, for the per-destination steps of routes().
func (ic *incrCalc) calc() *calc {
	var seen [129]bool
	for b, n := range ic.bitsN {
		seen[b] = n > 0
	}
	c := &calc{m: ic.m, me: ic.m.Nodes[ic.m.NodeName], pools: ic.pools, blockBits: bitsOf(seen[:])}
	b := ic.base
	c.d.VXLANState, c.d.IPIPState, c.d.VXLANV6State, c.d.WorkloadV6 = b.VXLANState, b.IPIPState, b.VXLANV6State, b.WorkloadV6
	return c
}

// indexBlock adds (n = 1) or removes (n = -1) a block from the indexes.
func (ic *incrCalc) indexBlock(b Block, n int) {
	ic.bitsN[b.CIDR.Bits()] += n
	if b.Affinity != "" {
		addList(ic.byAff, b.Affinity, b.CIDR, n > 0)
	}
	for a := range b.Borrowed {
		if ic.blkIPs[a] += n; ic.blkIPs[a] <= 0 {
			delete(ic.blkIPs, a)
		}
	}
}

// indexWEP adds (n = 1) or removes (n = -1) an endpoint from the indexes.
func (ic *incrCalc) indexWEP(key string, w WEP, n int) {
	if w.Node == "" {
		return
	}
	for _, ip := range w.IPs {
		addList(ic.wepIPs, ip.Addr(), key, n > 0)
	}
	if w.Node != ic.m.NodeName {
		return
	}
	if n > 0 {
		ic.localWEPs[key] = w
	} else {
		delete(ic.localWEPs, key)
	}
	for _, ip := range w.IPs {
		p := hostPrefix(ip.Addr())
		if ic.local[p] += n; ic.local[p] <= 0 {
			delete(ic.local, p)
		}
	}
}

// addList adds v to (add) or removes it from the list m[k] (a set: each
// list is short, most hold one item).
func addList[K, V comparable](m map[K][]V, k K, v V, add bool) {
	l := m[k]
	i := slices.Index(l, v)
	switch {
	case add && i < 0:
		m[k] = append(l, v)
	case !add && i >= 0:
		if l = slices.Delete(l, i, i+1); len(l) == 0 {
			delete(m, k)
		} else {
			m[k] = l
		}
	}
}

// addSet adds v to (add) or removes it from the set m[k].
func addSet[K, V comparable](m map[K]map[V]struct{}, k K, v V, add bool) {
	s := m[k]
	if add {
		if s == nil {
			s = map[V]struct{}{}
			m[k] = s
		}
		s[v] = struct{}{}
		return
	}
	delete(s, v)
	if len(s) == 0 {
		delete(m, k)
	}
}

// ownerOf is Calc's borrowed[a]: the node of the endpoint holding a (the
// greatest key wins) when that is not the node of a's block, else the
// first block, in prefix order, that lists a as borrowed.
func (ic *incrCalc) ownerOf(c *calc, a netip.Addr) (string, bool) {
	blk, inBlock := c.blockOf(a)
	best, node := "", ""
	for _, k := range ic.wepIPs[a] {
		w := ic.m.WEPs[k]
		if inBlock && blk.Affinity == w.Node {
			continue
		}
		if node == "" || k > best {
			best, node = k, w.Node
		}
	}
	if node != "" {
		return node, true
	}
	if ic.blkIPs[a] == 0 {
		return "", false
	}
	var first netip.Prefix
	for bits := a.BitLen(); bits >= 0; bits-- {
		p, _ := a.Prefix(bits)
		b, ok := ic.m.Blocks[p]
		if !ok || c.off6(p.Addr()) {
			continue
		}
		if n, ok := b.Borrowed[a]; ok && (node == "" || comparePrefix(p, first) < 0) {
			first, node = p, n
		}
	}
	return node, node != ""
}

// setOwner recomputes a's owner and keeps byOwner in step.
func (ic *incrCalc) setOwner(a netip.Addr, c *calc) {
	old, had := ic.owner[a]
	n, ok := ic.ownerOf(c, a)
	if had == ok && old == n {
		return
	}
	if had {
		addSet(ic.byOwner, old, a, false)
		delete(ic.owner, a)
	}
	if ok {
		addSet(ic.byOwner, n, a, true)
		ic.owner[a] = n
	}
}

// dest is what Calc's routes() gives dst: the block route, replaced by
// the route to a borrowed address, neither when dst is a local
// workload's address; and the skip notes both leave.
func (ic *incrCalc) dest(c *calc, dst netip.Prefix) routeChange {
	m := ic.m
	c.skipped = nil
	ch := routeChange{dst: dst}
	ch.old, ch.had = ic.routes[dst]
	if b, ok := m.Blocks[dst]; ok && !c.off6(dst.Addr()) {
		if pool, ok := c.poolFor(dst); ok && b.Affinity != "" {
			switch {
			case b.Affinity == m.NodeName:
				if dst.Bits() < dst.Addr().BitLen() {
					ch.new, ch.has = route.Route{Dst: dst, Type: route.Blackhole, Protocol: RouteProtocol}, true
				}
			case !c.bgpSource(pool):
				ch.new, ch.has = c.routeTo(dst, b.Affinity, pool)
			}
		}
	}
	if node, ok := ic.owner[dst.Addr()]; ok && dst.Bits() == dst.Addr().BitLen() && node != m.NodeName && !c.off6(dst.Addr()) {
		if pool, ok := c.poolFor(dst); ok && !c.bgpSource(pool) {
			if r, ok := c.routeTo(dst, node, pool); ok {
				ch.new, ch.has = r, true
			}
		}
	}
	if ic.local[dst] > 0 {
		ch.new, ch.has = route.Route{}, false
	}
	for reason, whats := range c.skipped {
		for _, w := range whats {
			ch.skips = append(ch.skips, reason+"\x00"+w)
		}
	}
	slices.Sort(ch.skips)
	ch.skipsDiff = !slices.Equal(ch.skips, ic.skips[dst])
	return ch
}

// setSkips replaces dst's skip notes in skips and skipBy, recording in
// changed the reasons whose lines must be rendered again (renderLines).
func (ic *incrCalc) setSkips(dst netip.Prefix, notes []string, changed map[string]bool) {
	for _, n := range ic.skips[dst] {
		reason, what, _ := strings.Cut(n, "\x00")
		l := ic.skipBy[reason]
		if i, ok := slices.BinarySearch(l, what); ok {
			ic.skipBy[reason] = slices.Delete(l, i, i+1)
		}
		changed[reason] = true
	}
	for _, n := range notes {
		reason, what, _ := strings.Cut(n, "\x00")
		l := ic.skipBy[reason]
		i, _ := slices.BinarySearch(l, what)
		ic.skipBy[reason] = slices.Insert(l, i, what)
		changed[reason] = true
	}
	if len(notes) > 0 {
		ic.skips[dst] = notes
	} else {
		delete(ic.skips, dst)
	}
}

// renderLines renders the changed reasons' lines as Calc does: one line
// per reason, its destinations sorted.
func (ic *incrCalc) renderLines(changed map[string]bool) {
	for reason := range changed {
		if l := ic.skipBy[reason]; len(l) > 0 {
			ic.lines[reason] = reason + ": " + strings.Join(l, ", ")
		} else {
			delete(ic.skipBy, reason)
			delete(ic.lines, reason)
		}
	}
}

func (ic *incrCalc) skipLines() []string { return slices.Collect(maps.Values(ic.lines)) }

func (ic *incrCalc) buildDegraded() []string {
	out := append(slices.Clone(ic.global), ic.skipLines()...)
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) == 0 {
		return nil
	}
	return out
}

// minus returns the elements of a not in b.
func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// workloads is Calc's workloads() over this node's endpoints.
func (ic *incrCalc) workloads() (n int, ifs []string) {
	for _, w := range ic.localWEPs {
		if w.Interface != "" {
			ifs = append(ifs, w.Interface)
		}
	}
	slices.Sort(ifs)
	return len(ic.localWEPs), slices.Compact(ifs)
}

// desired is the whole result, as Calc returns it (O(cluster): for the
// seed check and tests; a pass applies the changes only).
func (ic *incrCalc) desired() Desired {
	d := ic.base
	d.LocalWorkloads, d.WorkloadIfaces = ic.workloads()
	d.VTEPs, d.Degraded = ic.vteps, ic.degraded
	d.Routes = ic.sortedRoutes()
	return d
}

// sortedRoutes lists the routes in Calc's order.
func (ic *incrCalc) sortedRoutes() []route.Route {
	out := make([]route.Route, 0, len(ic.routes)) // Calc's is never nil
	for _, r := range ic.routes {
		out = append(out, r)
	}
	route.Sort(out)
	return out
}

func equalVTEP(a, b tunnel.VTEP) bool {
	return a.TunnelIP == b.TunnelIP && a.NodeIP == b.NodeIP && bytes.Equal(a.MAC, b.MAC)
}
