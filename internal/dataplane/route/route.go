// Package route reconciles the node daemon's routes declaratively.
//
// Apply reads the routes installed in one table, diffs them against the
// desired set and converges with RouteReplace for what is missing or
// different, then RouteDel for what is ours and no longer wanted (add before
// delete, so traffic never loses a route that is being changed). Ownership
// is explicit (Owner): a route is ours if its protocol is one of ours or its
// outgoing interface has one of our name prefixes. Everything else is never
// touched. A second identical Apply makes no netlink changes.
//
// The diff is a pure function (diff) tested without a kernel. The package
// imports only the standard library and netlink.
package route

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Type is the kind of route.
type Type int

const (
	// Unicast forwards through LinkName and/or Gw.
	Unicast Type = iota
	// Blackhole silently drops (used for local affine IPAM blocks).
	Blackhole
	// Other is any other kernel route type (unreachable, prohibit, ...). It
	// only appears in routes read back from the kernel.
	Other
)

func (t Type) String() string {
	switch t {
	case Unicast:
		return "unicast"
	case Blackhole:
		return "blackhole"
	}
	return "other"
}

// ProtoBoot is the protocol the kernel records when none is given (3). A
// desired route with Protocol 0 is installed, and compared, as ProtoBoot.
const ProtoBoot = unix.RTPROT_BOOT

// protoKernel marks routes the kernel derives from addresses.
const protoKernel = unix.RTPROT_KERNEL

// Route is one desired (or installed) route.
type Route struct {
	Dst      netip.Prefix
	Type     Type
	Gw       netip.Addr    // zero for none
	LinkName string        // "" for blackhole
	OnLink   bool          // gateway is on the link even without a subnet route
	Scope    netlink.Scope // SCOPE_LINK for device routes without gateway
	MTU      int           // 0 = none
	Protocol int           // e.g. 80; 0 = boot (3)
	Src      netip.Addr    // optional preferred source
	// Metric is the route's priority (`ip route ... metric N`); 0 is the
	// family's default (0 for IPv4, 1024 for IPv6).
	Metric int
}

// String renders r like `ip route` does, with fields in a fixed order.
func (r Route) String() string {
	var b strings.Builder
	if r.Type != Unicast {
		b.WriteString(r.Type.String() + " ")
	}
	b.WriteString(r.Dst.String())
	if r.Gw.IsValid() {
		b.WriteString(" via " + r.Gw.String())
	}
	if r.LinkName != "" {
		b.WriteString(" dev " + r.LinkName)
	}
	if r.OnLink {
		b.WriteString(" onlink")
	}
	fmt.Fprintf(&b, " proto %d", r.proto())
	if r.Scope != netlink.SCOPE_UNIVERSE {
		fmt.Fprintf(&b, " scope %s", r.Scope)
	}
	if r.MTU != 0 {
		fmt.Fprintf(&b, " mtu %d", r.MTU)
	}
	if r.Src.IsValid() {
		b.WriteString(" src " + r.Src.String())
	}
	if r.Metric != 0 {
		fmt.Fprintf(&b, " metric %d", r.Metric)
	}
	return b.String()
}

func (r Route) proto() int {
	if r.Protocol == 0 {
		return ProtoBoot
	}
	return r.Protocol
}

// equal reports whether an installed route already is the desired one.
func (r Route) equal(o Route) bool {
	if r.Type == Blackhole && o.Type == Blackhole {
		// IPv6 blackholes are reported on "lo"; ignore the device.
		return r.Dst == o.Dst && r.proto() == o.proto() && r.MTU == o.MTU
	}
	// IPv6 has no route scopes: the kernel reports every route as universe.
	sameScope := r.Scope == o.Scope || r.Dst.Addr().Is6()
	// A desired gateway route without a link (a BGP next hop the kernel
	// resolves) matches whatever link the kernel chose.
	sameLink := r.LinkName == o.LinkName || (o.LinkName == "" && o.Gw.IsValid() && !o.OnLink)
	return r.Dst == o.Dst && r.Type == o.Type && r.Gw == o.Gw && sameLink &&
		r.OnLink == o.OnLink && sameScope && r.MTU == o.MTU && r.proto() == o.proto() && r.Src == o.Src
}

// ErrInvalidRoute is wrapped by validation errors of desired routes.
var ErrInvalidRoute = errors.New("invalid route")

func (r Route) validate() error {
	bad := func(why string) error { return fmt.Errorf("route %s: %s: %w", r, why, ErrInvalidRoute) }
	switch {
	case !r.Dst.IsValid():
		return bad("no destination")
	case r.Dst != r.Dst.Masked():
		return bad("destination has host bits set")
	case r.Protocol < 0 || r.Protocol > 255:
		return bad("protocol out of range")
	case r.MTU < 0:
		return bad("negative mtu")
	case r.Metric < 0:
		return bad("negative metric")
	case r.Gw.IsValid() && r.Gw.Is4() != r.Dst.Addr().Is4():
		return bad("gateway family differs from destination")
	case r.Src.IsValid() && r.Src.Is4() != r.Dst.Addr().Is4():
		return bad("source family differs from destination")
	}
	switch r.Type {
	case Unicast:
		if r.LinkName == "" && !r.Gw.IsValid() {
			return bad("unicast route needs a link or a gateway")
		}
		if r.OnLink && (r.LinkName == "" || !r.Gw.IsValid()) {
			return bad("onlink needs a link and a gateway")
		}
	case Blackhole:
		if r.LinkName != "" || r.Gw.IsValid() || r.OnLink {
			return bad("blackhole route with a link or gateway")
		}
	default:
		return bad("unsupported type")
	}
	return nil
}

// Owner says which installed routes are ours: those in Table (0 = main)
// whose protocol is in Protocols, or whose outgoing interface name starts
// with one of LinkPrefixes. Routes the kernel derives from addresses
// (proto kernel) and IPv6 link-local routes are never owned by link prefix,
// so an interface's own fe80::/64 route is left alone.
type Owner struct {
	Protocols    []int
	LinkPrefixes []string
	Table        int
}

func (o Owner) table() int {
	if o.Table == 0 {
		return unix.RT_TABLE_MAIN
	}
	return o.Table
}

func (o Owner) owns(r Route) bool {
	if slices.Contains(o.Protocols, r.proto()) {
		return true
	}
	if r.LinkName == "" || r.proto() == protoKernel || (r.Dst.Addr().Is6() && r.Dst.Addr().IsLinkLocalUnicast()) {
		return false
	}
	for _, p := range o.LinkPrefixes {
		if p != "" && strings.HasPrefix(r.LinkName, p) {
			return true
		}
	}
	return false
}

// Result counts what Apply changed.
type Result struct{ Added, Replaced, Deleted int }

// current is an installed route: its Route view, whether we own it, and the
// kernel's own record (used verbatim to delete it).
type current struct {
	Route
	Owned    bool
	Priority int
	key      kernelKey // what else selects it for deletion
}

// priority is the kernel priority r is installed at.
func (r Route) priority() int {
	if r.Metric != 0 {
		return r.Metric
	}
	return defaultPriority(r.Dst)
}

func defaultPriority(dst netip.Prefix) int {
	if dst.Addr().Is6() {
		return 1024
	}
	return 0
}

// plan is the outcome of diff.
type plan struct {
	add     []Route   // no installed route at the default priority for Dst
	replace []Route   // an installed route at Dst differs
	del     []current // owned routes that are not desired
}

// diff computes the changes that turn installed into desired. It never
// deletes a route that is not Owned, and keeps at most one owned route per
// desired destination.
func diff(installed []current, desired []Route) plan {
	d := newDiffer(desiredIndex(desired))
	for _, c := range installed {
		d.see(c)
	}
	return d.plan()
}

// desired is the desired routes and the position of each destination.
type desired struct {
	routes []Route
	at     map[netip.Prefix]int
	dup    netip.Prefix // a destination listed twice, if any
}

func desiredIndex(routes []Route) *desired {
	ix := &desired{routes: routes, at: make(map[netip.Prefix]int, len(routes))}
	for i, r := range routes {
		if _, dup := ix.at[r.Dst]; dup && !ix.dup.IsValid() {
			ix.dup = r.Dst
		}
		ix.at[r.Dst] = i
	}
	return ix
}

// differ is diff fed one installed route at a time (as a dump yields
// them), so that the installed routes are never held: per desired route
// it keeps whether one is installed at the default priority and whether
// that one matches.
type differ struct {
	want  *desired
	state []uint8 // per desired route: atDefault, matched
	del   []current
}

const (
	atDefault uint8 = 1 << iota
	matched
)

func newDiffer(want *desired) *differ {
	return &differ{want: want, state: make([]uint8, len(want.routes))}
}

// see takes one installed route.
func (d *differ) see(c current) {
	i, wanted := d.want.at[c.Dst]
	switch {
	case !wanted:
		if c.Owned {
			d.del = append(d.del, c)
		}
	case c.Priority == d.want.routes[i].priority():
		d.state[i] |= atDefault
		if c.equal(d.want.routes[i]) {
			d.state[i] |= matched
		}
	case c.Owned:
		// Other owned routes to the same destination (other metrics)
		// are duplicates; the one at the default priority is kept or
		// replaced.
		d.del = append(d.del, c)
	}
}

func (d *differ) plan() plan {
	p := plan{del: d.del}
	n := 0
	for _, st := range d.state {
		if st&matched == 0 {
			n++
		}
	}
	if n == 0 {
		return p
	}
	if n == len(d.state) && !d.anyAtDefault() {
		// A cold start adds every desired route: hand over the desired
		// list itself rather than a copy of thousands of routes.
		p.add = d.want.routes
		return p
	}
	p.add = make([]Route, 0, n)
	for i, r := range d.want.routes {
		switch {
		case d.state[i]&matched != 0:
		case d.state[i]&atDefault != 0:
			p.replace = append(p.replace, r)
		default:
			p.add = append(p.add, r)
		}
	}
	return p
}

func (d *differ) anyAtDefault() bool {
	for _, st := range d.state {
		if st&atDefault != 0 {
			return true
		}
	}
	return false
}

// reset forgets what was seen (a dump that is read again).
func (d *differ) reset() {
	clear(d.state)
	d.del = d.del[:0]
}

// Apply makes the owned routes of owner.Table equal to desired (both address
// families). It validates all of desired before changing anything, then
// replaces before it deletes. It continues past per-route failures and
// returns them joined together with what it achieved.
func Apply(h *netlink.Handle, owner Owner, desired []Route) (Result, error) {
	return ApplyWith(h, nil, owner, desired)
}

// ApplyWith is Apply with a Batcher (nil for none): when many routes are
// to be added or replaced (a cold start with thousands of remote blocks),
// the batchable ones are written in batches instead of one request and
// one acknowledgement each.
func ApplyWith(h *netlink.Handle, b *Batcher, owner Owner, desired []Route) (Result, error) {
	want, err := b.desiredIndex(desired)
	if err != nil {
		return Result{}, err
	}
	links, err := linkIndex(h)
	if err != nil {
		return Result{}, err
	}
	d := newDiffer(want)
	if err := read(h, b, owner, links, d); err != nil {
		return Result{}, err
	}
	p := d.plan()

	var res Result
	var errs []error
	errs = append(errs, replaceAll(h, b, owner, links, p.add, &res.Added)...)
	errs = append(errs, replaceAll(h, b, owner, links, p.replace, &res.Replaced)...)
	for _, c := range p.del {
		if err := h.RouteDel(delRoute(c)); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete route %s: %w", c.Route, err))
			continue
		}
		res.Deleted++
	}
	return res, errors.Join(errs...)
}

// replaceAll installs routes, in batches when b is set and there are at
// least minBatch, and adds the number installed to *n. Each run of
// batchable routes is sent as it is (a cold start's thousands are not
// copied); the others go one by one, in their place.
func replaceAll(h *netlink.Handle, b *Batcher, owner Owner, ls links, routes []Route, n *int) []error {
	var errs []error
	batch := b != nil && len(routes) >= minBatch
	for i := 0; i < len(routes); {
		if batch && batchable(routes[i]) {
			j := i + 1
			for j < len(routes) && batchable(routes[j]) {
				j++
			}
			berrs := b.replace(routes[i:j], owner.table(), ls)
			errs = append(errs, berrs...)
			*n += j - i - len(berrs)
			i = j
			continue
		}
		r := routes[i]
		i++
		nr, err := toNetlink(r, owner.table(), ls)
		if err == nil {
			err = h.RouteReplace(nr)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("replace route %s: %w", r, err))
			continue
		}
		*n++
	}
	return errs
}

// List returns the installed routes of owner.Table that owner owns, sorted.
func List(h *netlink.Handle, owner Owner) ([]Route, error) {
	links, err := linkIndex(h)
	if err != nil {
		return nil, err
	}
	d := newDiffer(desiredIndex(nil))
	if err := read(h, nil, owner, links, d); err != nil {
		return nil, err
	}
	var out []Route
	for _, c := range d.del { // with nothing desired: every owned route
		out = append(out, c.Route)
	}
	Sort(out)
	return out, nil
}

// Sort orders routes by family, destination address and prefix length.
func Sort(rs []Route) {
	slices.SortFunc(rs, func(a, b Route) int {
		if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Dst.Bits(), b.Dst.Bits())
	})
}

type links struct {
	byName  map[string]int
	byIndex map[int]string
}

// dumpRetries bounds retries of netlink dumps the kernel interrupted
// because the table changed meanwhile (NLM_F_DUMP_INTR).
const dumpRetries = 5

func linkIndex(h *netlink.Handle) (links, error) {
	var ls []netlink.Link
	var err error
	for range dumpRetries {
		if ls, err = h.LinkList(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return links{}, fmt.Errorf("list links: %w", err)
	}
	l := links{byName: make(map[string]int, len(ls)), byIndex: make(map[int]string, len(ls))}
	for _, x := range ls {
		l.byName[x.Attrs().Name] = x.Attrs().Index
		l.byIndex[x.Attrs().Index] = x.Attrs().Name
	}
	return l, nil
}

func prefixOf(n *net.IPNet, family int) (netip.Prefix, bool) {
	if n == nil {
		if family == unix.AF_INET6 {
			return netip.MustParsePrefix("::/0"), true
		}
		return netip.MustParsePrefix("0.0.0.0/0"), true
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	if family == unix.AF_INET {
		a = a.Unmap()
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a, ones), true
}

func addrOf(ip net.IP, family int) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	if family == unix.AF_INET {
		return a.Unmap()
	}
	return a
}

func fromNetlink(nr netlink.Route, ls links) (Route, bool) {
	dst, ok := prefixOf(nr.Dst, nr.Family)
	if !ok {
		return Route{}, false
	}
	r := Route{
		Dst:      dst,
		Gw:       addrOf(nr.Gw, nr.Family),
		LinkName: ls.byIndex[nr.LinkIndex],
		OnLink:   nr.Flags&int(netlink.FLAG_ONLINK) != 0,
		Scope:    nr.Scope,
		MTU:      nr.MTU,
		Protocol: int(nr.Protocol),
		Src:      addrOf(nr.Src, nr.Family),
	}
	if dst, ok := prefixOf(nr.Dst, nr.Family); ok && nr.Priority != defaultPriority(dst) {
		r.Metric = nr.Priority
	}
	if r.Type = typeOf(nr.Type); r.Type == Blackhole {
		r.LinkName = ""
	}
	return r, true
}

// typeOf is the Type of a kernel route type (RTN_*). A blackhole has no
// link, whatever the kernel reports (IPv6 ones are on "lo").
func typeOf(rtType int) Type {
	switch rtType {
	case unix.RTN_UNICAST:
		return Unicast
	case unix.RTN_BLACKHOLE:
		return Blackhole
	default:
		return Other
	}
}

func toNetlink(r Route, table int, ls links) (*netlink.Route, error) {
	nr := &netlink.Route{
		Dst:      &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), r.Dst.Addr().BitLen())},
		Table:    table,
		Protocol: netlink.RouteProtocol(r.proto()),
		Scope:    r.Scope,
		MTU:      r.MTU,
		Priority: r.Metric,
	}
	if r.Src.IsValid() {
		nr.Src = r.Src.AsSlice()
	}
	if r.Type == Blackhole {
		nr.Type = unix.RTN_BLACKHOLE
		return nr, nil
	}
	nr.Type = unix.RTN_UNICAST
	if r.LinkName != "" {
		idx, ok := ls.byName[r.LinkName]
		if !ok {
			return nil, fmt.Errorf("link %s not found", r.LinkName)
		}
		nr.LinkIndex = idx
	}
	if r.Gw.IsValid() {
		nr.Gw = r.Gw.AsSlice()
	}
	if r.OnLink {
		nr.Flags |= int(netlink.FLAG_ONLINK)
	}
	return nr, nil
}
