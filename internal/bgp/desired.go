package bgp

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/selector"
)

// Node is what BGP needs from one Node resource.
type Node struct {
	Name        string
	Labels      map[string]string
	IPv4        netip.Prefix // address with its subnet; invalid: none
	IPv6        netip.Prefix // address with its subnet; invalid: none
	ASNumber    uint32       // 0: the cluster's AS
	RRClusterID string       // non-empty: this node is a route reflector
}

// Pool is what BGP needs from one IP pool.
type Pool struct {
	CIDR          netip.Prefix
	DisableExport bool
}

// Block is what BGP needs from one IPAM block: its affine node (whose
// affinity is confirmed; "" for none) and the addresses other nodes hold.
type Block struct {
	CIDR     netip.Prefix
	Affinity string
	Borrowed map[netip.Addr]string
}

// Input is the datastore view Calc reads. Calc never changes it.
type Input struct {
	NodeName string
	Nodes    map[string]Node
	// Global and Local are the "default" and "node.<NodeName>"
	// BGPConfiguration specs (nil when absent).
	Global, Local *api.BGPConfigurationSpec
	Peers         map[string]*api.BGPPeer       // by name
	Filters       map[string]*api.BGPFilterSpec // by name
	Pools         []Pool
	Blocks        []Block
	// Workloads are this node's workload endpoints, sorted by Name.
	Workloads []Workload
	// IfaceRoutes are this node's routes with an interface, for BGPFilter
	// interface matches (only needed when a rule has one).
	IfaceRoutes []IfaceRoute
	// Secret returns key of the named secret (a file in a directory laid
	// out like a mounted Kubernetes Secret). nil: no secrets available.
	Secret func(name, key string) (string, error)
}

// PeerType is how upstream's `calicoctl node status` names a session.
type PeerType string

// Peer types.
const (
	PeerMesh   PeerType = "node-to-node mesh"
	PeerGlobal PeerType = "global"
	PeerNode   PeerType = "node specific"
)

// Global is the server-wide configuration; a change recreates the server.
type Global struct {
	RouterID   netip.Addr
	ASNumber   uint32
	ListenPort int32
	// ListenAddrs is empty to listen on every address (bindMode None).
	ListenAddrs []string
	LogSeverity string
	// RestartTime is the graceful restart time announced to peers (s).
	RestartTime uint32
}

// Peer is one BGP session as it is configured.
type Peer struct {
	Type        PeerType
	Addr        netip.Addr
	Port        uint16 // 0: 179
	ASNumber    uint32
	LocalAS     uint32 // 0: the global AS
	Passive     bool
	LocalAddr   string // source address; "" for any
	Password    string
	RRClient    bool
	ClusterID   string
	RestartTime uint32 // graceful restart time (s)
	Keepalive   uint32 // seconds; 0: default
	TTLSecurity uint8  // hops; 0: off
	AllowOwnAS  uint32
	// NextHop is the next hop sent to the peer: NextHopAuto, NextHopSelf
	// or NextHopKeep (nextHopMode, keepOriginalNextHop).
	NextHop string
	// Down is set when the session must not come up (its password
	// secret cannot be read); Problem says why.
	Down    bool
	Problem string
	// Import and Export are the peer's BGPFilter rules, in order.
	Import, Export []FilterRule
}

// Key identifies a peer inside the server: address and port.
func (p Peer) Key() string {
	if p.Port == 0 || p.Port == api.DefaultListenPort {
		return p.Addr.String()
	}
	return netip.AddrPortFrom(p.Addr, p.Port).String()
}

// Origin is one prefix this node originates, with its communities.
type Origin struct {
	Prefix      netip.Prefix
	Communities []uint32
	Large       [][3]uint32
}

// StaticRoute is a kernel route the speaker needs: a BGPPeer's
// reachableBy (the peer's address via a gateway, so that the session
// comes up across a subnet).
type StaticRoute struct {
	Dst netip.Prefix
	Gw  netip.Addr
}

// Desired is one node's whole BGP state.
type Desired struct {
	// Enabled is false when this node cannot speak BGP (it has no
	// address yet); the speaker then stops.
	Enabled bool
	Global  Global
	// NextHop and NextHop6 are the next hops of originated IPv4 and IPv6
	// prefixes (the node's addresses; invalid: that family is off).
	NextHop, NextHop6 netip.Addr
	Peers             []Peer   // sorted by Key
	Originated        []Origin // sorted by prefix
	// ExportPools are the pools whose learned routes may be passed on
	// to peers (not disableBGPExport), sorted.
	ExportPools []netip.Prefix
	// Static are the routes to install for the sessions, sorted by Dst.
	Static []StaticRoute
	// WorkloadAddrs are the peering addresses to put on the host-side
	// interfaces of workloads this node peers with, sorted.
	WorkloadAddrs []WorkloadAddr
	// Problems are configuration issues, one sentence each.
	Problems []string
}

// Defaults of upstream's BIRD templates.
const (
	DefaultRestartTime = 120
)

// Calc computes the desired BGP state of in.NodeName. It is a pure
// function.
func Calc(in *Input) Desired {
	c := &calc{in: in, me: in.Nodes[in.NodeName], peers: map[string]Peer{}, ifaceExport: map[netip.Prefix]bool{}}
	c.global()
	if !c.d.Enabled {
		return c.d
	}
	c.mesh()
	c.explicit()
	c.d.Peers = slices.SortedFunc(maps.Values(c.peers), func(a, b Peer) int { return strings.Compare(a.Key(), b.Key()) })
	c.originate()
	slices.SortFunc(c.d.Static, func(a, b StaticRoute) int { return comparePrefix(a.Dst, b.Dst) })
	c.d.sortWorkloadAddrs()
	slices.Sort(c.d.Problems)
	c.d.Problems = slices.Compact(c.d.Problems)
	return c.d
}

type calc struct {
	in    *Input
	me    Node
	d     Desired
	peers map[string]Peer
	// ifaceExport are the interface routes export rules accept.
	ifaceExport map[netip.Prefix]bool
}

func (c *calc) problem(format string, a ...any) {
	c.d.Problems = append(c.d.Problems, fmt.Sprintf(format, a...))
}

func (c *calc) globalSpec() *api.BGPConfigurationSpec {
	if c.in.Global != nil {
		return c.in.Global
	}
	return &api.BGPConfigurationSpec{}
}

// clusterAS is the AS of a node: its own, else the global one.
func (c *calc) asOf(n Node) uint32 {
	if n.ASNumber != 0 {
		return n.ASNumber
	}
	return uint32(c.globalSpec().EffectiveASNumber())
}

func (c *calc) global() {
	g, l := c.globalSpec(), c.in.Local
	if !c.me.IPv4.IsValid() && !c.me.IPv6.IsValid() {
		return
	}
	c.d.Enabled = true
	if c.me.IPv4.IsValid() {
		c.d.NextHop = c.me.IPv4.Addr()
	}
	if c.me.IPv6.IsValid() {
		c.d.NextHop6 = c.me.IPv6.Addr()
	}
	gl := Global{RouterID: routerID(c.me), ASNumber: c.asOf(c.me), ListenPort: int32(g.EffectiveListenPort()),
		LogSeverity: g.EffectiveLogSeverity(), RestartTime: DefaultRestartTime}
	bind := g.BindMode
	if l != nil {
		if l.ListenPort != 0 {
			gl.ListenPort = int32(l.ListenPort)
		}
		if l.LogSeverityScreen != "" {
			gl.LogSeverity = l.LogSeverityScreen
		}
		if l.BindMode != nil {
			bind = l.BindMode
		}
	}
	switch {
	case bind != nil && *bind == api.BindModeNodeIP:
		for _, a := range []netip.Addr{c.d.NextHop, c.d.NextHop6} {
			if a.IsValid() {
				gl.ListenAddrs = append(gl.ListenAddrs, a.String())
			}
		}
	case c.me.IPv6.IsValid():
		gl.ListenAddrs = []string{"0.0.0.0", "::"}
	}
	c.d.Global = gl
}

// routerID is the node's IPv4 address, else (an IPv6-only node) a
// 32-bit hash of its name, as upstream's CALICO_ROUTER_ID=hash.
func routerID(n Node) netip.Addr {
	if n.IPv4.IsValid() {
		return n.IPv4.Addr()
	}
	h := fnv.New32a()
	h.Write([]byte(n.Name))
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], h.Sum32())
	return netip.AddrFrom4(b)
}

// addrOf is a node's address of one family (invalid: none).
func addrOf(n Node, v6 bool) netip.Addr {
	p := n.IPv4
	if v6 {
		p = n.IPv6
	}
	if !p.IsValid() {
		return netip.Addr{}
	}
	return p.Addr()
}

// mesh adds a session to every other node, unless the mesh is off or this
// node is a route reflector. Upstream's passive rule: the node whose
// address string is smaller waits, so each pair has one connection.
func (c *calc) mesh() {
	g := c.globalSpec()
	if !g.MeshEnabled() || c.me.RRClusterID != "" {
		return
	}
	restart := uint32(DefaultRestartTime)
	if g.NodeMeshMaxRestartTime != nil {
		restart = uint32(g.NodeMeshMaxRestartTime.Seconds())
	}
	var password string
	down, problem := false, ""
	if g.NodeMeshPassword != nil {
		password, problem = c.secret(g.NodeMeshPassword, "nodeMeshPassword")
		down = problem != ""
	}
	// One session per family, as upstream's bird and bird6.
	for _, v6 := range []bool{false, true} {
		me := addrOf(c.me, v6)
		if !me.IsValid() {
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(c.in.Nodes)) {
			n := c.in.Nodes[name]
			ip := addrOf(n, v6)
			if name == c.in.NodeName || !ip.IsValid() || n.RRClusterID != "" || ip == me {
				continue
			}
			p := Peer{Type: PeerMesh, Addr: ip, ASNumber: c.asOf(n), Passive: ip.String() > me.String(),
				LocalAddr: me.String(), Password: password, RestartTime: restart, Down: down, Problem: problem}
			if lp := g.EffectiveListenPort(); lp != api.DefaultListenPort {
				p.Port = lp
			}
			c.peers[p.Key()] = p
		}
	}
}

// selects reports whether a selector (as stored) matches labels; a bad
// selector matches nothing and is reported.
func (c *calc) selects(field, sel string, labels map[string]string) bool {
	s, err := selector.Parse(sel)
	if err != nil {
		c.problem("%s %q does not parse: %v", field, sel, err)
		return false
	}
	return s.Evaluate(labels)
}

// appliesTo reports whether a BGPPeer's node scope (node, nodeSelector,
// or neither: every node) includes n.
func (c *calc) appliesTo(p *api.BGPPeer, n Node) bool {
	switch {
	case p.Spec.Node != "":
		return p.Spec.Node == n.Name
	case p.Spec.NodeSelector != "":
		return c.selects("BGPPeer "+p.Name+" nodeSelector", p.Spec.NodeSelector, n.Labels)
	}
	return true
}

func (c *calc) explicit() {
	for _, name := range slices.Sorted(maps.Keys(c.in.Peers)) {
		p := c.in.Peers[name]
		typ := PeerGlobal
		if p.Spec.Node != "" || p.Spec.NodeSelector != "" {
			typ = PeerNode
		}
		switch {
		case p.Spec.PeerIP != "":
			if !c.appliesTo(p, c.me) {
				continue
			}
			addr, port, err := api.ParsePeerIP(p.Spec.PeerIP)
			if err != nil {
				c.problem("BGPPeer %s: %v", name, err)
				continue
			}
			c.addExplicit(p, typ, addr, port, uint32(p.Spec.ASNumber), c.nodeByIP(addr))
		case p.Spec.PeerSelector != "":
			c.selected(p, typ)
		case p.Spec.LocalWorkloadSelector != "" && c.appliesTo(p, c.me):
			c.localWorkloads(p)
		}
	}
}

// selected adds sessions of a peerSelector BGPPeer: from this node (when
// in scope) to every selected node, and the reverse sessions (when this
// node is selected) to every node in scope, as upstream's reversePeering
// Auto does.
func (c *calc) selected(p *api.BGPPeer, typ PeerType) {
	reverse := p.Spec.ReversePeering == nil || *p.Spec.ReversePeering == api.ReversePeeringAuto
	mine := c.appliesTo(p, c.me)
	selectedMe := c.selects("BGPPeer "+p.Name+" peerSelector", p.Spec.PeerSelector, c.me.Labels)
	for _, name := range slices.Sorted(maps.Keys(c.in.Nodes)) {
		n := c.in.Nodes[name]
		if name == c.in.NodeName {
			continue
		}
		forward := mine && c.selects("BGPPeer "+p.Name+" peerSelector", p.Spec.PeerSelector, n.Labels)
		back := reverse && selectedMe && c.appliesTo(p, n)
		if !forward && !back {
			continue
		}
		for _, v6 := range []bool{false, true} {
			if ip := addrOf(n, v6); ip.IsValid() {
				nn := n
				if c.addExplicit(p, typ, ip, 0, c.asOf(n), &nn) && reverse {
					c.oneSideConnects(ip)
				}
			}
		}
	}
}

func (c *calc) nodeByIP(a netip.Addr) *Node {
	for _, name := range slices.Sorted(maps.Keys(c.in.Nodes)) {
		if n := c.in.Nodes[name]; addrOf(n, a.Is6()) == a {
			return &n
		}
	}
	return nil
}

// oneSideConnects makes the session to addr passive when addr's string is
// the greater, as the mesh does. With reversePeering Auto both ends have
// the session, and if both connect GoBGP drops both connections of the
// collision and retries 2-4 s later: at 100 nodes behind two reflectors
// that took sessions tens of seconds (BenchmarkRouteReflectors).
func (c *calc) oneSideConnects(addr netip.Addr) {
	k := Peer{Addr: addr}.Key()
	p := c.peers[k]
	p.Passive = addr.String() > addrOf(c.me, addr.Is6()).String()
	c.peers[k] = p
}

// addExplicit stores a session of BGPPeer p; it reports whether it did.
func (c *calc) addExplicit(p *api.BGPPeer, typ PeerType, addr netip.Addr, port uint16, as uint32, node *Node) bool {
	// A session is of its address's family; this node needs an address
	// of that family (upstream: bird6 runs only with an IPv6 address).
	me := addrOf(c.me, addr.Is6())
	if !me.IsValid() || addr == me {
		return false
	}
	s := &p.Spec
	if as == 0 {
		as = c.asOf(c.me)
	}
	out := Peer{Type: typ, Addr: addr, Port: port, ASNumber: as, RestartTime: DefaultRestartTime}
	if s.LocalASNumber != nil {
		out.LocalAS = uint32(*s.LocalASNumber)
	}
	if s.SourceAddress != api.SourceAddressNone {
		out.LocalAddr = me.String()
	}
	if s.MaxRestartTime != nil {
		out.RestartTime = uint32(s.MaxRestartTime.Seconds())
	}
	if s.KeepaliveTime != nil {
		out.Keepalive = uint32(s.KeepaliveTime.Seconds())
	}
	if s.TTLSecurity != nil {
		out.TTLSecurity = *s.TTLSecurity
	}
	if s.NumAllowedLocalASNumbers != nil && *s.NumAllowedLocalASNumbers > 0 {
		out.AllowOwnAS = uint32(*s.NumAllowedLocalASNumbers)
	}
	// A route reflector treats iBGP peers outside its cluster as clients.
	if id := c.me.RRClusterID; id != "" && as == c.asOf(c.me) && (node == nil || node.RRClusterID != id) {
		out.RRClient, out.ClusterID = true, id
	}
	switch {
	case s.KeepOriginalNextHop || s.NextHopMode != nil && *s.NextHopMode == api.NextHopModeKeep:
		out.NextHop = NextHopKeep
	case s.NextHopMode != nil && *s.NextHopMode == api.NextHopModeSelf:
		out.NextHop = NextHopSelf
	}
	localAS := c.asOf(c.me)
	if out.LocalAS != 0 {
		localAS = out.LocalAS
	}
	out.Import, out.Export = c.filterRules(s.Filters, "BGPPeer "+p.Name, as, localAS)
	if s.Password != nil {
		out.Password, out.Problem = c.secret(s.Password, "BGPPeer "+p.Name+" password")
		out.Down = out.Problem != ""
	}
	// Explicit peers replace a mesh session to the same address; between
	// two explicit ones the first by name wins.
	if old, ok := c.peers[out.Key()]; ok && old.Type != PeerMesh {
		return false
	}
	c.peers[out.Key()] = out
	c.reachableBy(p, addr)
	return true
}

// reachableBy adds the static route of a peerIP BGPPeer's reachableBy:
// the peer's address via the gateway, as upstream's static protocol.
func (c *calc) reachableBy(p *api.BGPPeer, addr netip.Addr) {
	if p.Spec.ReachableBy == "" || p.Spec.PeerIP == "" {
		return
	}
	gw, err := netip.ParseAddr(p.Spec.ReachableBy)
	if err != nil || gw.Is4() != addr.Is4() {
		c.problem("BGPPeer %s: reachableBy %q is not an address of the peer's family", p.Name, p.Spec.ReachableBy)
		return
	}
	dst := netip.PrefixFrom(addr, addr.BitLen())
	if !slices.ContainsFunc(c.d.Static, func(r StaticRoute) bool { return r.Dst == dst }) {
		c.d.Static = append(c.d.Static, StaticRoute{Dst: dst, Gw: gw})
	}
}

func (c *calc) secret(pw *api.BGPPassword, what string) (string, string) {
	ref := pw.SecretKeyRef
	if ref == nil {
		return "", ""
	}
	if c.in.Secret == nil {
		return "", fmt.Sprintf("%s: secret %s/%s: no secret directory", what, ref.Name, ref.Key)
	}
	v, err := c.in.Secret(ref.Name, ref.Key)
	if err != nil {
		return "", fmt.Sprintf("%s: %v", what, err)
	}
	return v, ""
}

// originate lists what this node advertises, as upstream's export filter:
// its affine blocks, the addresses it holds in other nodes' blocks, and
// the service CIDRs; nothing inside a pool with disableBGPExport.
func (c *calc) originate() {
	in := c.in
	g := c.globalSpec()
	noExport := func(p netip.Prefix) bool {
		for _, pool := range in.Pools {
			if pool.DisableExport && pool.CIDR.Overlaps(p) && pool.CIDR.Bits() <= p.Bits() {
				return true
			}
		}
		return false
	}
	inPool := func(p netip.Prefix) bool {
		return slices.ContainsFunc(in.Pools, func(pool Pool) bool { return pool.CIDR.Bits() <= p.Bits() && pool.CIDR.Contains(p.Addr()) })
	}
	// A family is advertised only over sessions of that family, which
	// need this node's address of that family (the next hop).
	family := func(p netip.Prefix) bool {
		if p.Addr().Is4() {
			return c.d.NextHop.IsValid()
		}
		return c.d.NextHop6.IsValid()
	}
	set := map[netip.Prefix]bool{}
	for _, b := range in.Blocks {
		if !family(b.CIDR) {
			continue
		}
		if b.Affinity == in.NodeName {
			if !noExport(b.CIDR) {
				set[b.CIDR.Masked()] = true
			}
			continue
		}
		for ip, node := range b.Borrowed {
			p := netip.PrefixFrom(ip, ip.BitLen())
			if node == in.NodeName && inPool(p) && !noExport(p) {
				set[p] = true
			}
		}
	}
	var svc []string
	for _, x := range g.ServiceClusterIPs {
		svc = append(svc, x.CIDR)
	}
	for _, x := range g.ServiceExternalIPs {
		svc = append(svc, x.CIDR)
	}
	for _, x := range g.ServiceLoadBalancerIPs {
		svc = append(svc, x.CIDR)
	}
	for _, s := range svc {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			c.problem("service CIDR %q does not parse", s)
			continue
		}
		if family(p) {
			set[p.Masked()] = true
		}
	}
	c.interfaceRoutes(set)
	for _, pool := range in.Pools {
		if !pool.DisableExport {
			c.d.ExportPools = append(c.d.ExportPools, pool.CIDR.Masked())
		}
	}
	slices.SortFunc(c.d.ExportPools, comparePrefix)
	for _, p := range slices.SortedFunc(maps.Keys(set), comparePrefix) {
		o := Origin{Prefix: p}
		c.communities(&o, g)
		c.d.Originated = append(c.d.Originated, o)
	}
}

// communities applies prefixAdvertisements whose CIDR contains o.
func (c *calc) communities(o *Origin, g *api.BGPConfigurationSpec) {
	named := map[string]string{}
	for _, cm := range g.Communities {
		named[cm.Name] = cm.Value
	}
	for _, pa := range g.PrefixAdvertisements {
		cidr, err := netip.ParsePrefix(pa.CIDR)
		if err != nil || cidr.Bits() > o.Prefix.Bits() || !cidr.Contains(o.Prefix.Addr()) {
			continue
		}
		for _, name := range pa.Communities {
			v := name
			if nv, ok := named[name]; ok {
				v = nv
			}
			std, large, ok := parseCommunity(v)
			switch {
			case !ok:
				c.problem("prefixAdvertisements %s: community %q is not aa:nn or aa:nn:mm", pa.CIDR, name)
			case large != nil:
				o.Large = append(o.Large, *large)
			default:
				o.Communities = append(o.Communities, std)
			}
		}
	}
}

func parseCommunity(v string) (uint32, *[3]uint32, bool) {
	parts := strings.Split(v, ":")
	bits := 16
	if len(parts) == 3 {
		bits = 32
	} else if len(parts) != 2 {
		return 0, nil, false
	}
	var n [3]uint32
	for i, s := range parts {
		x, err := strconv.ParseUint(s, 10, bits)
		if err != nil {
			return 0, nil, false
		}
		n[i] = uint32(x)
	}
	if bits == 32 {
		return 0, &n, true
	}
	return n[0]<<16 | n[1], nil, true
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}
