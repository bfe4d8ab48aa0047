package agent

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"regexp"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/onecalico/calico/internal/dataplane/ifaces"
	"github.com/onecalico/calico/internal/dataplane/link"
	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/dataplane/nft"
	"github.com/onecalico/calico/internal/dataplane/route"
	"github.com/onecalico/calico/internal/dataplane/tunnel"
	"github.com/onecalico/calico/internal/ruleset"
)

// Kernel is the last step of a reconcile pass: every call the apply step
// (apply.go, calc_bgp.go, bgp_fast.go, policy_apply.go) makes to change or
// read a node's kernel. The daemon's Kernel is netlinkKernel, bound to
// Config.NetNS; Config.Kernel replaces it, which is the one seam through
// which the scale harness runs the real datastore path and calculation
// against a Kernel that records what would change
// (internal/dataplane/counted) instead of touching a kernel.
//
// Only the reconcile goroutine calls a Kernel (startup reads Interfaces
// before that goroutine starts).
type Kernel interface {
	// Interfaces lists the links with their addresses.
	Interfaces() ([]ifaces.Interface, error)
	// HostMTU is the smallest MTU of the up links matching pattern.
	HostMTU(pattern *regexp.Regexp) (int, error)
	// SetSysctls writes settings; a missing key wraps fs.ErrNotExist.
	SetSysctls(settings ...netns.Sysctl) error
	EnsureVXLAN(v tunnel.VXLAN) error
	// SyncVTEPs makes the permanent neighbour and FDB entries of device
	// exactly vteps.
	SyncVTEPs(device string, vteps []tunnel.VTEP) error
	// EnsureIPIP fails wrapping tunnel.ErrNotSupported without IPIP.
	EnsureIPIP(t tunnel.IPIP) error
	// DeleteLink removes a link; a missing one is not an error.
	DeleteLink(name string) error
	// SyncLinkAddrs makes the addresses of link name that ours reports
	// exactly want (a missing link wraps fs.ErrNotExist).
	SyncLinkAddrs(name string, want []netip.Prefix, ours func(netip.Prefix) bool) error
	// ApplyRoutes makes owner's routes exactly want, reading what is
	// installed; ApplyRouteChanges goes from prev (what the last
	// successful call installed) to want without reading.
	ApplyRoutes(owner route.Owner, want []route.Route) (route.Result, error)
	ApplyRouteChanges(owner route.Owner, prev, want []route.Route) (route.Result, error)
	// ApplyNAT makes the NAT table t.
	ApplyNAT(t nft.Table) error
	// Policy opens the policy table's applier.
	Policy(table string) (PolicyKernel, error)
	// VXLANFilter is the VXLAN peer filter table's applier.
	VXLANFilter(table string) VXLANFilterKernel
	// Close releases the Kernel's sockets; what it installed stays.
	Close()
}

// PolicyKernel applies rule sets to one nft policy table.
type PolicyKernel interface {
	// Apply makes the table match rs under o (only what changed since the
	// last successful Apply is sent).
	Apply(rs *ruleset.Ruleset, o nft.PolicyOptions) (nft.PolicyStats, error)
	// Invalidate makes the next Apply write the whole table.
	Invalidate()
	// Check reports whether the table still holds what the last Apply
	// wrote (if not, the next Apply restores it).
	Check() (bool, error)
	// Close releases the applier's sockets; the table stays.
	Close()
}

// VXLANFilterKernel applies the VXLAN peer filter table
// (nft.VXLANFilterApplier is the real one).
type VXLANFilterKernel interface {
	// Apply makes the table admit exactly f's peers.
	Apply(f nft.VXLANFilter) (nft.VXLANFilterStats, error)
	// Invalidate makes the next Apply rewrite the table.
	Invalidate()
	// Check reports whether the table still holds what the last Apply
	// wrote (if not, the next Apply rewrites it).
	Check() (bool, error)
	// Delete removes the table.
	Delete() error
}

// netlinkKernel is the real Kernel: netlink and nftables in one network
// namespace ("" is the process's own).
type netlinkKernel struct {
	ns       string
	log      *slog.Logger
	h        *netlink.Handle
	nft      *nftables.Conn
	nftClose func() error
	batch    *route.Batcher  // bulk route changes; nil until first used
	nbatch   *tunnel.Batcher // bulk neighbour/FDB changes; nil until first used
	vxf      *nftVXLANFilter // the VXLAN filter's applier (vxlanfilter.go); nil until opened
}

var _ Kernel = (*netlinkKernel)(nil)

func newNetlinkKernel(ns string, log *slog.Logger) (*netlinkKernel, error) {
	h, err := netns.NewHandle(ns)
	if err != nil {
		return nil, fmt.Errorf("open netlink in %q: %w", ns, err)
	}
	c, closer, err := netns.NewNftConn(ns)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("open nftables in %q: %w", ns, err)
	}
	return &netlinkKernel{ns: ns, log: log, h: h, nft: c, nftClose: closer}, nil
}

func (k *netlinkKernel) Interfaces() ([]ifaces.Interface, error) { return ifaces.List(k.h) }

func (k *netlinkKernel) HostMTU(p *regexp.Regexp) (int, error) { return link.HostMTU(k.h, p) }

func (k *netlinkKernel) SetSysctls(s ...netns.Sysctl) error { return netns.SetSysctls(k.ns, s...) }

func (k *netlinkKernel) EnsureVXLAN(v tunnel.VXLAN) error { return tunnel.EnsureVXLAN(k.h, v) }

func (k *netlinkKernel) SyncVTEPs(device string, vteps []tunnel.VTEP) error {
	if k.nbatch == nil {
		k.nbatch, _ = tunnel.NewBatcher(k.ns) // nil: one request per entry
	}
	return tunnel.SyncVTEPsWith(k.h, k.nbatch, device, vteps)
}

func (k *netlinkKernel) EnsureIPIP(t tunnel.IPIP) error { return tunnel.EnsureIPIP(k.h, t) }

func (k *netlinkKernel) DeleteLink(name string) error { return tunnel.DeleteLink(k.h, name) }

func (k *netlinkKernel) SyncLinkAddrs(name string, want []netip.Prefix, ours func(netip.Prefix) bool) error {
	return link.SyncAddrs(k.h, name, want, ours)
}

func (k *netlinkKernel) ApplyRoutes(o route.Owner, want []route.Route) (route.Result, error) {
	b := k.batcher()
	if b != nil {
		b.Forget()
	}
	return route.ApplyWith(k.h, b, o, want)
}

func (k *netlinkKernel) ApplyRouteChanges(o route.Owner, prev, want []route.Route) (route.Result, error) {
	return route.ApplyChanges(k.h, k.batcher(), o, prev, want)
}

// batcher opens the bulk route socket on first use; nil (one route per
// request) when it cannot be opened.
func (k *netlinkKernel) batcher() *route.Batcher {
	if k.batch == nil {
		b, err := route.NewBatcher(k.ns)
		if err != nil {
			k.log.Warn("bulk route socket", "component", "dataplane", "err", err)
			return nil
		}
		k.batch = b
	}
	return k.batch
}

func (k *netlinkKernel) ApplyNAT(t nft.Table) error { return nft.Apply(k.nft, t) }

func (k *netlinkKernel) Close() {
	k.h.Close()
	if k.batch != nil {
		k.batch.Close()
	}
	if k.nbatch != nil {
		k.nbatch.Close()
	}
	if k.vxf != nil {
		k.vxf.close()
	}
	_ = k.nftClose()
}

// Policy opens a Conn with big buffers in the namespace for the policy
// table.
func (k *netlinkKernel) Policy(table string) (PolicyKernel, error) {
	var opts []nftables.ConnOption
	var f *os.File
	if k.ns != "" {
		var err error
		if f, err = netns.Open(k.ns); err != nil {
			return nil, err
		}
		opts = append(opts, nftables.WithNetNSFd(int(f.Fd())))
	}
	batch := &nft.BatchSocket{}
	c, err := nftables.New(append(opts, nftables.AsLasting(), nftables.WithSockOptions(batch.Grab))...)
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, fmt.Errorf("open nftables for policy: %w", err)
	}
	p := &nftPolicy{PolicyApplier: nft.NewPolicyApplier(c, table).SendThrough(batch), conn: c, nsFile: f}
	nsFd := 0
	if f != nil {
		nsFd = int(f.Fd())
	}
	if err := p.Watch(nsFd); err != nil {
		k.log.Warn("policy table edits are found by reading it back on each resync", "component", "dataplane", "err", err)
	}
	return p, nil
}

// nftPolicy is the real PolicyKernel. Its counters are read for metrics
// (policy_metrics.go) through the PolicyApplier.
type nftPolicy struct {
	*nft.PolicyApplier
	conn   *nftables.Conn
	nsFile *os.File
}

func (p *nftPolicy) Close() {
	p.PolicyApplier.Close() // its watch of the table
	_ = p.conn.CloseLasting()
	if p.nsFile != nil {
		p.nsFile.Close()
	}
}
