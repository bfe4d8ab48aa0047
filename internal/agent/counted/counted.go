// Package counted is a node kernel that records instead of changing: the
// routes, permanent neighbours, FDB entries, devices, sysctls, NAT table
// and policy table a node daemon would install, how many changes it took
// to get there, and when each route and VTEP last appeared or went. It
// satisfies the node agent's Kernel interface (agent.Config.Kernel), so
// the scale harness runs the real datastore path and calculation of many
// agents in one process with only the last step swapped.
//
// It never touches a kernel.
package counted

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/dataplane/ifaces"
	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/dataplane/nft"
	"github.com/onecalico/calico/internal/dataplane/route"
	"github.com/onecalico/calico/internal/dataplane/tunnel"
	"github.com/onecalico/calico/internal/ruleset"
)

// Counts are the changes a Kernel was asked to make since New: one per
// route, neighbour or FDB entry added, replaced or deleted, one per
// device created, changed or deleted, one per sysctl written, one per
// NAT or policy table write.
type Counts struct {
	RoutesAdded, RoutesReplaced, RoutesDeleted int
	NeighSet, NeighDeleted                     int
	FDBSet, FDBDeleted                         int
	LinksAdded, LinksChanged, LinksDeleted     int
	Sysctls                                    int
	NATWrites, PolicyWrites, FilterWrites      int
	// Calls is every call that could change something.
	Calls int
}

// Host is the node's one underlay interface, as Interfaces reports it.
type Host struct {
	Iface string       // e.g. "eth0"
	Addr  netip.Prefix // the node address with its prefix length
	MTU   int          // 0 = 1500
}

var _ agent.Kernel = (*Kernel)(nil)

// Kernel records one node's dataplane. It is safe for concurrent use: the
// agent writes from its reconcile goroutine while the harness reads.
type Kernel struct {
	host Host

	mu      sync.Mutex
	counts  Counts
	links   map[string]any // tunnel.VXLAN or tunnel.IPIP
	routes  map[netip.Prefix]route.Route
	neigh   map[netip.Addr]neighEntry
	fdb     map[string]fdbEntry // key: device and MAC (fdbKey)
	filter  nft.VXLANFilter     // the VXLAN peer filter; zero when absent
	sysctls map[string]string
	nat     nft.Table
	policy  PolicySummary
	// routeAt and vtepAt are when a route or VTEP (by tunnel address)
	// last appeared; goneAt when it last went.
	routeAt, routeGoneAt map[netip.Prefix]time.Time
	vtepAt, vtepGoneAt   map[netip.Addr]time.Time
	// changedAt is when a device ("link:<name>"), the NAT table ("nat")
	// or the policy table ("policy") last changed.
	changedAt map[string]time.Time
	changed   chan struct{}
}

// neighEntry is a permanent neighbour on a device; fdbEntry a permanent
// FDB entry (the MAC is in the key).
type (
	neighEntry struct {
		mac net.HardwareAddr
		dev string
	}
	fdbEntry struct {
		node netip.Addr
		dev  string
	}
)

func fdbKey(dev string, mac net.HardwareAddr) string { return dev + "|" + mac.String() }

// PolicySummary is the last rule set applied to the policy table.
type PolicySummary struct {
	Endpoints, Chains, Sets int
}

// New returns an empty kernel with host's interface (and loopback).
func New(host Host) *Kernel {
	if host.MTU == 0 {
		host.MTU = 1500
	}
	return &Kernel{
		host:        host,
		links:       map[string]any{},
		routes:      map[netip.Prefix]route.Route{},
		neigh:       map[netip.Addr]neighEntry{},
		fdb:         map[string]fdbEntry{},
		sysctls:     map[string]string{},
		routeAt:     map[netip.Prefix]time.Time{},
		routeGoneAt: map[netip.Prefix]time.Time{},
		vtepAt:      map[netip.Addr]time.Time{},
		vtepGoneAt:  map[netip.Addr]time.Time{},
		changedAt:   map[string]time.Time{},
		changed:     make(chan struct{}, 1),
	}
}

// Changed receives (coalesced) after any call that changed something.
func (k *Kernel) Changed() <-chan struct{} { return k.changed }

func (k *Kernel) signal() {
	select {
	case k.changed <- struct{}{}:
	default:
	}
}

// ChangedAt returns when what ("link:<name>", "nat" or "policy") last
// changed; zero if never.
func (k *Kernel) ChangedAt(what string) time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.changedAt[what]
}

// Counts returns the changes so far.
func (k *Kernel) Counts() Counts {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.counts
}

// Route returns the installed route to dst and when it appeared.
func (k *Kernel) Route(dst netip.Prefix) (route.Route, time.Time, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	r, ok := k.routes[dst]
	return r, k.routeAt[dst], ok
}

// RouteGone returns when the route to dst went, if it is not installed.
func (k *Kernel) RouteGone(dst netip.Prefix) (time.Time, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.routes[dst]; ok {
		return time.Time{}, false
	}
	t, ok := k.routeGoneAt[dst]
	return t, ok
}

// VTEP returns the VTEP with tunnel address ip (neighbour and FDB entry
// both present) and when it appeared.
func (k *Kernel) VTEP(ip netip.Addr) (tunnel.VTEP, time.Time, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	n, ok := k.neigh[ip]
	if !ok {
		return tunnel.VTEP{}, time.Time{}, false
	}
	f, ok := k.fdb[fdbKey(n.dev, n.mac)]
	if !ok {
		return tunnel.VTEP{}, time.Time{}, false
	}
	return tunnel.VTEP{TunnelIP: ip, MAC: n.mac, NodeIP: f.node}, k.vtepAt[ip], true
}

// VTEPGone returns when the VTEP with tunnel address ip went, if it is
// not installed.
func (k *Kernel) VTEPGone(ip netip.Addr) (time.Time, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.neigh[ip]; ok {
		return time.Time{}, false
	}
	t, ok := k.vtepGoneAt[ip]
	return t, ok
}

// Sizes are the numbers of installed objects.
type Sizes struct{ Routes, Neigh, FDB, Links int }

// Sizes returns how many routes, neighbours, FDB entries and devices are
// installed.
func (k *Kernel) Sizes() Sizes {
	k.mu.Lock()
	defer k.mu.Unlock()
	return Sizes{Routes: len(k.routes), Neigh: len(k.neigh), FDB: len(k.fdb), Links: len(k.links)}
}

// Routes returns a copy of the installed routes.
func (k *Kernel) Routes() []route.Route {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]route.Route, 0, len(k.routes))
	for _, r := range k.routes {
		out = append(out, r)
	}
	return out
}

// VXLAN returns the VXLAN device named name, if installed.
func (k *Kernel) VXLAN(name string) (tunnel.VXLAN, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.links[name].(tunnel.VXLAN)
	return v, ok
}

// NAT returns the NAT table last written.
func (k *Kernel) NAT() nft.Table {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.nat
}

// PolicySummary returns a summary of the rule set last applied.
func (k *Kernel) PolicySummary() PolicySummary {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.policy
}

// Sysctl returns the value last written to key.
func (k *Kernel) Sysctl(key string) (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.sysctls[key]
	return v, ok
}

// Interfaces reports loopback, the host interface and the devices made.
func (k *Kernel) Interfaces() ([]ifaces.Interface, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := []ifaces.Interface{
		{Name: "lo", Index: 1, Up: true, MTU: 65536, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
		{Name: k.host.Iface, Index: 2, Up: true, MTU: k.host.MTU, Addrs: []netip.Prefix{k.host.Addr}},
	}
	i := 3
	for name, l := range k.links {
		it := ifaces.Interface{Name: name, Index: i, Up: true}
		switch d := l.(type) {
		case tunnel.VXLAN:
			it.MTU = d.MTU
			if d.Addr.IsValid() {
				it.Addrs = []netip.Prefix{d.Addr}
			}
		case tunnel.IPIP:
			it.MTU = d.MTU
			if d.Addr.IsValid() {
				it.Addrs = []netip.Prefix{d.Addr}
			}
		}
		out = append(out, it)
		i++
	}
	return out, nil
}

// HostMTU is the host interface's MTU when it matches pattern, else 0.
func (k *Kernel) HostMTU(pattern *regexp.Regexp) (int, error) {
	if pattern != nil && pattern.MatchString(k.host.Iface) {
		return k.host.MTU, nil
	}
	return 0, nil
}

// SetSysctls records each setting.
func (k *Kernel) SetSysctls(settings ...netns.Sysctl) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.counts.Calls++
	for _, s := range settings {
		k.sysctls[s.Key] = s.Value
		k.counts.Sysctls++
	}
	return nil
}

// EnsureVXLAN records the device (a change when it differs).
func (k *Kernel) EnsureVXLAN(v tunnel.VXLAN) error {
	return k.ensureLink(v.Name, v)
}

// EnsureIPIP records the device (a change when it differs).
func (k *Kernel) EnsureIPIP(t tunnel.IPIP) error {
	return k.ensureLink(t.Name, t)
}

func (k *Kernel) ensureLink(name string, dev any) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.counts.Calls++
	old, ok := k.links[name]
	switch {
	case !ok:
		k.counts.LinksAdded++
	case fmt.Sprint(old) != fmt.Sprint(dev):
		k.counts.LinksChanged++
	default:
		return nil
	}
	k.links[name] = dev
	k.changedAt["link:"+name] = time.Now()
	k.signal()
	return nil
}

// DeleteLink removes a device and, as the kernel does, its routes,
// neighbours and FDB entries.
// SyncLinkAddrs records nothing: the harness has no workload links.
func (k *Kernel) SyncLinkAddrs(string, []netip.Prefix, func(netip.Prefix) bool) error { return nil }

func (k *Kernel) DeleteLink(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.counts.Calls++
	dev, ok := k.links[name]
	if !ok {
		return nil
	}
	delete(k.links, name)
	k.counts.LinksDeleted++
	now := time.Now()
	k.changedAt["link:"+name] = now
	for dst, r := range k.routes {
		if r.LinkName == name {
			delete(k.routes, dst)
			k.routeGoneAt[dst] = now
		}
	}
	if _, vxlan := dev.(tunnel.VXLAN); vxlan {
		for ip, n := range k.neigh {
			if n.dev == name {
				delete(k.neigh, ip)
				k.vtepGoneAt[ip] = now
			}
		}
		for key, f := range k.fdb {
			if f.dev == name {
				delete(k.fdb, key)
			}
		}
	}
	k.signal()
	return nil
}

// SyncVTEPs makes the neighbours and FDB entries exactly vteps' (one
// device: the daemon has one VXLAN device per family).
func (k *Kernel) SyncVTEPs(device string, vteps []tunnel.VTEP) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.counts.Calls++
	if _, ok := k.links[device]; !ok {
		return fmt.Errorf("sync VTEPs: link %s not found", device)
	}
	now := time.Now()
	wantN := make(map[netip.Addr]neighEntry, len(vteps))
	wantF := make(map[string]fdbEntry, len(vteps))
	for _, v := range vteps {
		wantN[v.TunnelIP] = neighEntry{v.MAC, device}
		wantF[fdbKey(device, v.MAC)] = fdbEntry{v.NodeIP, device}
	}
	changed := false
	for ip, n := range wantN {
		if old, ok := k.neigh[ip]; !ok || old.dev != device || old.mac.String() != n.mac.String() {
			k.neigh[ip] = n
			k.vtepAt[ip] = now
			k.counts.NeighSet++
			changed = true
		}
	}
	for ip, n := range k.neigh {
		if _, ok := wantN[ip]; !ok && n.dev == device {
			delete(k.neigh, ip)
			k.vtepGoneAt[ip] = now
			k.counts.NeighDeleted++
			changed = true
		}
	}
	for key, f := range wantF {
		if old, ok := k.fdb[key]; !ok || old != f {
			k.fdb[key] = f
			k.counts.FDBSet++
			changed = true
		}
	}
	for key, f := range k.fdb {
		if _, ok := wantF[key]; !ok && f.dev == device {
			delete(k.fdb, key)
			k.counts.FDBDeleted++
			changed = true
		}
	}
	if changed {
		k.signal()
	}
	return nil
}

var _ agent.VTEPChanger = (*Kernel)(nil)

// ApplyVTEPChanges removes gone's neighbours and FDB entries (unless set
// has their tunnel address) and records set's, without looking at the
// others: the incremental pass's delta.
func (k *Kernel) ApplyVTEPChanges(device string, gone, set []tunnel.VTEP) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.counts.Calls++
	if _, ok := k.links[device]; !ok {
		return fmt.Errorf("change VTEPs: link %s not found", device)
	}
	now := time.Now()
	keep := make(map[netip.Addr]bool, len(set))
	for _, v := range set {
		keep[v.TunnelIP] = true
	}
	for _, v := range gone {
		if n, ok := k.neigh[v.TunnelIP]; ok && n.dev == device && !keep[v.TunnelIP] {
			delete(k.neigh, v.TunnelIP)
			k.vtepGoneAt[v.TunnelIP] = now
			k.counts.NeighDeleted++
		}
		if f, ok := k.fdb[fdbKey(device, v.MAC)]; ok && f.dev == device && !slices.ContainsFunc(set, func(s tunnel.VTEP) bool { return s.MAC.String() == v.MAC.String() }) {
			delete(k.fdb, fdbKey(device, v.MAC))
			k.counts.FDBDeleted++
		}
	}
	for _, v := range set {
		if old, ok := k.neigh[v.TunnelIP]; !ok || old.dev != device || old.mac.String() != v.MAC.String() {
			k.neigh[v.TunnelIP] = neighEntry{v.MAC, device}
			k.vtepAt[v.TunnelIP] = now
			k.counts.NeighSet++
		}
		f := fdbEntry{v.NodeIP, device}
		if old, ok := k.fdb[fdbKey(device, v.MAC)]; !ok || old != f {
			k.fdb[fdbKey(device, v.MAC)] = f
			k.counts.FDBSet++
		}
	}
	if len(gone)+len(set) > 0 {
		k.signal()
	}
	return nil
}

// ApplyRoutes makes the recorded routes exactly want (every recorded
// route is the owner's: nothing else installs routes here).
func (k *Kernel) ApplyRoutes(_ route.Owner, want []route.Route) (route.Result, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.counts.Calls++
	if err := checkUnique(want); err != nil {
		return route.Result{}, err
	}
	old := make([]route.Route, 0, len(k.routes))
	for _, r := range k.routes {
		old = append(old, r)
	}
	return k.changeRoutes(old, want), nil
}

// ApplyRouteChanges goes from prev to want, as the real one, without
// looking at what is recorded.
func (k *Kernel) ApplyRouteChanges(_ route.Owner, prev, want []route.Route) (route.Result, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.counts.Calls++
	if err := checkUnique(want); err != nil {
		return route.Result{}, err
	}
	return k.changeRoutes(prev, want), nil
}

func checkUnique(rs []route.Route) error {
	seen := make(map[netip.Prefix]bool, len(rs))
	for _, r := range rs {
		if seen[r.Dst] {
			return fmt.Errorf("route %s: duplicate destination: %w", r.Dst, route.ErrInvalidRoute)
		}
		seen[r.Dst] = true
	}
	return nil
}

// changeRoutes installs what in want differs from prev and deletes what
// in prev want lacks (k.mu held).
func (k *Kernel) changeRoutes(prev, want []route.Route) route.Result {
	var res route.Result
	now := time.Now()
	wanted := make(map[netip.Prefix]bool, len(want))
	for _, r := range want {
		wanted[r.Dst] = true
		old, ok := k.routes[r.Dst]
		switch {
		case !ok:
			res.Added++
			k.routeAt[r.Dst] = now
		case old != r:
			res.Replaced++
		default:
			continue
		}
		k.routes[r.Dst] = r
	}
	for _, r := range prev {
		if wanted[r.Dst] {
			continue
		}
		if _, ok := k.routes[r.Dst]; ok {
			delete(k.routes, r.Dst)
			k.routeGoneAt[r.Dst] = now
			res.Deleted++
		}
	}
	k.counts.RoutesAdded += res.Added
	k.counts.RoutesReplaced += res.Replaced
	k.counts.RoutesDeleted += res.Deleted
	if res != (route.Result{}) {
		k.signal()
	}
	return res
}

// ApplyNAT records the table (one write when it differs).
func (k *Kernel) ApplyNAT(t nft.Table) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.counts.Calls++
	if fmt.Sprint(t) == fmt.Sprint(k.nat) {
		return nil
	}
	k.nat = t
	k.counts.NATWrites++
	k.changedAt["nat"] = time.Now()
	k.signal()
	return nil
}

// VXLANFilter returns the VXLAN peer filter's recorder.
func (k *Kernel) VXLANFilter(string) agent.VXLANFilterKernel { return &vxlanFilter{k: k} }

// Filter returns the VXLAN peer filter last applied (zero when absent).
func (k *Kernel) Filter() nft.VXLANFilter {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.filter
}

type vxlanFilter struct{ k *Kernel }

// Apply records the filter: one table write, or one element change per
// peer that came or went.
func (f *vxlanFilter) Apply(want nft.VXLANFilter) (nft.VXLANFilterStats, error) {
	k := f.k
	k.mu.Lock()
	defer k.mu.Unlock()
	k.counts.Calls++
	var st nft.VXLANFilterStats
	old := make(map[netip.Addr]bool, len(k.filter.Peers))
	for _, p := range k.filter.Peers {
		old[p] = true
	}
	for _, p := range want.Peers {
		if !old[p] {
			st.Added++
		}
		delete(old, p)
	}
	st.Deleted = len(old)
	if st.Added+st.Deleted > 0 || want.Port != k.filter.Port {
		k.counts.FilterWrites++
		k.changedAt["vxlan-filter"] = time.Now()
	}
	k.filter = nft.VXLANFilter{Port: want.Port, Peers: slices.Clone(want.Peers)}
	return st, nil
}

var _ agent.VXLANFilterChanger = (*vxlanFilter)(nil)

// ApplyPeerChanges removes one occurrence of each gone peer and adds the
// added ones (the incremental pass's delta).
func (f *vxlanFilter) ApplyPeerChanges(gone, added []netip.Addr) error {
	k := f.k
	k.mu.Lock()
	defer k.mu.Unlock()
	k.counts.Calls++
	peers := slices.Clone(k.filter.Peers) // Filter's callers keep the old one
	for _, a := range gone {
		if i := slices.Index(peers, a); i >= 0 {
			peers = slices.Delete(peers, i, i+1)
		}
	}
	k.filter.Peers = append(peers, added...)
	if len(gone)+len(added) > 0 {
		k.counts.FilterWrites++
		k.changedAt["vxlan-filter"] = time.Now()
	}
	return nil
}

func (f *vxlanFilter) Invalidate() {}

// Check reports the recorded filter intact: nobody else edits it.
func (f *vxlanFilter) Check() (bool, error) { return true, nil }

// Delete records the table's removal.
func (f *vxlanFilter) Delete() error {
	k := f.k
	k.mu.Lock()
	defer k.mu.Unlock()
	k.counts.Calls++
	if k.filter.Port != 0 || len(k.filter.Peers) > 0 {
		k.counts.FilterWrites++
		k.changedAt["vxlan-filter"] = time.Now()
	}
	k.filter = nft.VXLANFilter{}
	return nil
}

// Close does nothing: what was recorded stays readable.
func (k *Kernel) Close() {}

// Policy returns the policy table's recorder.
func (k *Kernel) Policy(string) (agent.PolicyKernel, error) { return &Policy{k: k}, nil }

// Policy records rule sets applied to the policy table.
type Policy struct {
	k     *Kernel
	last  string       // the last rule set applied, rendered without the peers; "" before the first
	peers []netip.Addr // and its peers
}

// Apply records rs (one write when it differs from the last).
func (p *Policy) Apply(rs *ruleset.Ruleset, o nft.PolicyOptions) (nft.PolicyStats, error) {
	var sum PolicySummary
	if rs != nil {
		sum = PolicySummary{Endpoints: len(rs.Endpoints), Chains: len(rs.Chains), Sets: len(rs.Sets)}
	}
	// The peers (one per node) are compared as they are; the rest is
	// small enough to render.
	peers := o.VXLANPeers
	o.VXLANPeers = nil
	key := fmt.Sprint(rs, o)
	k := p.k
	k.mu.Lock()
	defer k.mu.Unlock()
	k.counts.Calls++
	if key == p.last && slices.Equal(peers, p.peers) {
		return nft.PolicyStats{}, nil
	}
	// Never Full: the daemon answers a full write with
	// debug.FreeOSMemory, which returns a real table build's garbage but
	// here would collect the whole shared heap of every agent, once per
	// agent (a thousand collections at a cold start of N = 1,000).
	st := nft.PolicyStats{}
	// The daemon never changes a list of peers it handed over (dirty.go's
	// peerList), so it is kept as it is.
	p.last, p.peers = key, peers
	k.policy = sum
	k.counts.PolicyWrites++
	k.changedAt["policy"] = time.Now()
	k.signal()
	return st, nil
}

// Invalidate makes the next Apply a write.
func (p *Policy) Invalidate() { p.last = "" }

// Check always finds the table as it was written.
func (p *Policy) Check() (bool, error) { return true, nil }

// Close does nothing.
func (p *Policy) Close() {}
