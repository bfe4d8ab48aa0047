package agent

import (
	"net/netip"
	"slices"
)

// itemChange is one dirty model item, before and after.
type itemChange[K comparable, V any] struct {
	key      K
	old, new V
	had, has bool
}

// incrInput is a pass's dirty items.
type incrInput struct {
	nodes  []itemChange[string, Node]
	blocks []itemChange[netip.Prefix, Block]
	weps   []itemChange[string, WEP]
	pools  []itemChange[string, Pool]
	// felix holds the Felix configuration before and after (had: it may
	// have changed).
	felix itemChange[struct{}, FelixConfig]
	// dests are destinations a global change may have changed
	// (globalStep), and global says whether the global parts did.
	dests  []netip.Prefix
	global bool
}

// pull copies the dirty items of the live model into the calculator's;
// a.mu is held. Values are immutable once stored, so this copies no more
// than the map entries.
func (ic *incrCalc) pull(live *Model, d dirtySet) incrInput {
	var in incrInput
	for k := range d.nodes {
		in.nodes = append(in.nodes, pullItem(ic.m.Nodes, live.Nodes, k))
	}
	for k := range d.blocks {
		in.blocks = append(in.blocks, pullItem(ic.m.Blocks, live.Blocks, k))
	}
	for k := range d.weps {
		in.weps = append(in.weps, pullItem(ic.m.WEPs, live.WEPs, k))
	}
	for k := range d.pools {
		in.pools = append(in.pools, pullItem(ic.m.Pools, live.Pools, k))
	}
	if d.felix {
		in.felix = itemChange[struct{}, FelixConfig]{old: ic.m.Felix, new: live.Felix, had: true, has: true}
		ic.m.Felix = live.Felix
	}
	return in
}

func pullItem[K comparable, V any](dst, src map[K]V, k K) itemChange[K, V] {
	c := itemChange[K, V]{key: k}
	c.old, c.had = dst[k]
	c.new, c.has = src[k]
	if c.has {
		dst[k] = c.new
	} else {
		delete(dst, k)
	}
	return c
}

// update applies a pass's dirty items to the indexes and computes what
// changed. ok is false when the calculator cannot follow (a VTEP
// duplicate): the caller drops it and runs a full Calc.
func (ic *incrCalc) update(in incrInput) (res incrResult, ok bool) {
	dests := make(map[netip.Prefix]struct{}, len(in.dests))
	res.global, res.degraded = in.global, in.global
	addrs := map[netip.Addr]struct{}{} // whose owner may change
	for _, b := range in.blocks {
		if b.had {
			ic.indexBlock(b.old, -1)
		}
		if b.has {
			ic.indexBlock(b.new, 1)
		}
		dests[b.key] = struct{}{}
		for a := range b.old.Borrowed {
			addrs[a] = struct{}{}
		}
		for a := range b.new.Borrowed {
			addrs[a] = struct{}{}
		}
		ic.addrsIn(b.key, addrs)
	}
	for _, w := range in.weps {
		if ic.wepChanged(w, addrs) {
			res.local = true
		}
	}
	c := ic.calc()
	for a := range addrs {
		ic.setOwner(a, c)
		dests[hostPrefix(a)] = struct{}{}
	}
	for _, n := range in.nodes {
		for _, p := range ic.byAff[n.key] {
			dests[p] = struct{}{}
		}
		for a := range ic.byOwner[n.key] {
			dests[hostPrefix(a)] = struct{}{}
		}
	}
	if !ic.updateVTEPs(in.nodes, &res) {
		return res, false
	}
	for dst := range dests {
		ic.track(c, dst)
	}
	for _, dst := range in.dests { // their pool stays
		dests[dst] = struct{}{}
	}
	for dst := range dests {
		ch := ic.dest(c, dst)
		if ch.had != ch.has || ch.old != ch.new || ch.skipsDiff {
			res.routes = append(res.routes, ch)
			res.degraded = res.degraded || ch.skipsDiff
		}
	}
	return res, true
}

// wepChanged re-indexes one endpoint, adds its addresses to addrs and
// reports whether this node's workloads changed.
func (ic *incrCalc) wepChanged(w itemChange[string, WEP], addrs map[netip.Addr]struct{}) bool {
	if w.had {
		ic.indexWEP(w.key, w.old, -1)
		for _, ip := range w.old.IPs {
			addrs[ip.Addr()] = struct{}{}
		}
	}
	if w.has {
		ic.indexWEP(w.key, w.new, 1)
		for _, ip := range w.new.IPs {
			addrs[ip.Addr()] = struct{}{}
		}
	}
	me := ic.m.NodeName
	return (w.had && w.old.Node == me) || (w.has && w.new.Node == me)
}

// addrsIn adds the indexed addresses (endpoints', borrowed) inside block
// cidr: their block, and so their owner, may have changed.
func (ic *incrCalc) addrsIn(cidr netip.Prefix, addrs map[netip.Addr]struct{}) {
	if host := cidr.Addr().BitLen() - cidr.Bits(); host <= 12 {
		a := cidr.Masked().Addr()
		for range 1 << host {
			if _, ok := ic.wepIPs[a]; ok || ic.blkIPs[a] > 0 {
				addrs[a] = struct{}{}
			}
			a = a.Next()
		}
		return
	}
	for a := range ic.wepIPs {
		if cidr.Contains(a) {
			addrs[a] = struct{}{}
		}
	}
	for a := range ic.blkIPs {
		if cidr.Contains(a) {
			addrs[a] = struct{}{}
		}
	}
}

// updateVTEPs recomputes the changed nodes' VTEPs in the sorted list
// (changed in place: see dataplane.vtepsStale) and records what went
// (vtepGone) and came (vtepSet). On false the list is half changed: the
// caller drops the calculator.
func (ic *incrCalc) updateVTEPs(nodes []itemChange[string, Node], res *incrResult) bool {
	if ic.base.VXLANState != DevicePresent {
		return true
	}
	next := ic.vteps
	for _, n := range nodes {
		old, had := ic.vtepFor(n.key, n.old)
		v, has := ic.vtepFor(n.key, n.new)
		had, has = had && n.had, has && n.has
		if had == has && (!has || equalVTEP(old, v)) {
			continue
		}
		res.vteps = true
		if had {
			if i, ok := slices.BinarySearchFunc(next, old, compareVTEP); ok {
				next = slices.Delete(next, i, i+1)
			}
			delete(ic.macs, [6]byte(old.MAC))
			res.vtepGone = append(res.vtepGone, old)
		}
		if has {
			i, dup := slices.BinarySearchFunc(next, v, compareVTEP)
			if _, dupMAC := ic.macs[[6]byte(v.MAC)]; dup || dupMAC {
				return false
			}
			ic.macs[[6]byte(v.MAC)] = struct{}{}
			next = slices.Insert(next, i, v)
			res.vtepSet = append(res.vtepSet, v)
		}
	}
	if len(next) == 0 {
		next = nil // as Calc's
	}
	ic.vteps = next
	return true
}

// commit records a pass's route changes once they are applied.
func (ic *incrCalc) commit(res incrResult) {
	changed := map[string]bool{}
	for _, ch := range res.routes {
		if ch.has {
			ic.routes[ch.dst] = ch.new
		} else {
			delete(ic.routes, ch.dst)
		}
		if ch.skipsDiff {
			ic.setSkips(ch.dst, ch.skips, changed)
		}
	}
	ic.renderLines(changed)
	if res.degraded {
		ic.degraded = ic.buildDegraded()
	}
}

// pass is the desired state after an update, for the apply step: the
// global parts from the seed, the current VTEPs, workloads and degraded
// lines; Routes is left empty (the apply takes res.routes).
func (ic *incrCalc) pass() Desired {
	d := ic.base
	d.LocalWorkloads, d.WorkloadIfaces = ic.workloads()
	d.VTEPs, d.Degraded = ic.vteps, ic.degraded
	return d
}
