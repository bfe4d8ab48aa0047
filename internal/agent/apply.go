package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"reflect"
	"time"

	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/dataplane/nft"
	"github.com/onecalico/calico/internal/dataplane/route"
	"github.com/onecalico/calico/internal/dataplane/tunnel"
)

// dataplane applies Desired states to the kernel. It is used only by the
// reconcile goroutine. It remembers what it last applied successfully, per
// part, so that an incremental apply touches only what changed.
type dataplane struct {
	a *Agent
	k Kernel // every kernel call goes through it (kernel.go)

	host        HostFacts
	hostFor     netip.Prefix // the node address host facts were read for
	hostPattern string       // the mtuIfacePattern they were read with
	hostRead    bool
	hostFor6    netip.Prefix // the node IPv6 address host facts were read for

	last    applied
	last6   applied6        // the IPv6 device (apply6.go)
	wepDone map[string]bool // workload interfaces whose sysctls are set (or that were missing)
	wepV6   bool            // wepDone's interfaces got the IPv6 settings too
	// calc is the last Calc's result and calcModel its input (reconcileOnce),
	// valid with calcOK.
	calc      Desired
	calcModel *Model
	calcOK    bool
	vxf       *vxlanFilterPlane // VXLAN peer filter (vxlanfilter.go); nil until first used
	peering   peeringState      // BGP peering addresses on workload interfaces (bgp_workloads.go)
	// incr is the incremental calculator (incr.go), nil until a complete
	// full pass seeds it; while routesStale, its routes are what was
	// applied, not last.routes (dropIncr writes them back; the same for
	// the VTEPs).
	incr        *incrCalc
	routesStale bool
	// vtepsStale: the calculator's VTEP list is the applied one (it
	// changes it in place), not last.vteps.
	vtepsStale bool
	// seed is the model of the last complete full pass (whose result is
	// calc) until the calculator is seeded from them.
	seed *Model
	// collected: the collection before the first full pass is done
	// (peakmem.go).
	collected bool
}

// applied is what the last successful apply of each part installed.
type applied struct {
	sysctls    []netns.Sysctl
	sysctlsOK  bool
	vxlanState DeviceState
	vxlan      tunnel.VXLAN
	vxlanOK    bool
	vteps      []tunnel.VTEP
	vtepsOK    bool
	ipip       tunnel.IPIP
	ipipOK     bool
	routes     []route.Route
	routesOK   bool
	ownBGP     bool // the routes were applied owning protocol 12
	nat        nft.Table
	natOK      bool
	mtu        int
	mtuOK      bool
}

// newDataplane applies through Config.Kernel, or the kernel of
// Config.NetNS when that is nil.
func newDataplane(a *Agent) (*dataplane, error) {
	k := a.cfg.Kernel
	if k == nil {
		nk, err := newNetlinkKernel(a.cfg.NetNS, a.log)
		if err != nil {
			return nil, err
		}
		k = nk
	}
	return &dataplane{a: a, k: k, wepDone: map[string]bool{}}, nil
}

func (dp *dataplane) close() { dp.k.Close() }

// refreshHost reads the kernel facts calc needs (the interface holding the
// node address, the host MTU) when they may have changed: on the first
// pass, on a full resync, when the node address or the MTU pattern changed,
// or while the address is on no interface.
func (dp *dataplane) refreshHost(m *Model, full bool) error {
	me := m.Nodes[m.NodeName]
	pattern := ""
	if m.Felix.MTUIfacePattern != nil {
		pattern = m.Felix.MTUIfacePattern.String()
	}
	if dp.hostRead && !full && me.IPv4 == dp.hostFor && pattern == dp.hostPattern &&
		(dp.host.ParentIf != "" || !me.IPv4.IsValid()) && !dp.host6Stale(me) {
		return nil
	}
	ifs, err := dp.k.Interfaces()
	if err != nil {
		return err
	}
	facts := HostFacts{IPIPUnsupported: dp.host.IPIPUnsupported}
	if me.IPv4.IsValid() {
		for _, i := range ifs {
			for _, a := range i.Addrs {
				if a.Addr() == me.IPv4.Addr() {
					facts.ParentIf, facts.ParentIndex = i.Name, i.Index
				}
			}
		}
	}
	hostFacts6(&facts, me, ifs)
	if m.Felix.MTUIfacePattern != nil {
		if facts.HostMTU, err = dp.k.HostMTU(m.Felix.MTUIfacePattern); err != nil {
			return err
		}
	}
	dp.host, dp.hostFor, dp.hostPattern, dp.hostRead = facts, me.IPv4, pattern, true
	dp.hostFor6 = me.IPv6
	return nil
}

// applyResult is what one apply did.
type applyResult struct {
	errs         []error
	routeChanges int
	// recalc asks for another Calc: the apply learned a kernel fact
	// (IPIP is unsupported) that changes the desired state.
	recalc bool
}

func (r *applyResult) fail(part string, err error, dp *dataplane) {
	r.errs = append(r.errs, fmt.Errorf("%s: %w", part, err))
	dp.a.met.applyErrs.WithLabelValues(part).Inc()
}

// apply makes the kernel match d. With full, every part is re-applied;
// otherwise only parts whose desired state differs from the last
// successful apply. Order: settings, devices, neighbours, routes (replace
// before delete), device removal, NAT, MTU file.
func (dp *dataplane) apply(d Desired, full bool) applyResult {
	var res applyResult
	a, l := dp.a, &dp.last
	timed := func(part string, f func()) {
		t := time.Now()
		f()
		a.met.reconcile.WithLabelValues(part).Observe(time.Since(t).Seconds())
		a.log.Debug("applied part", "component", "dataplane", "part", part, "full", full, "elapsed", time.Since(t))
	}
	dp.applySysctls(d, full, &res, timed)
	dp.workloads(d, full, &res, timed)
	dp.applyPeeringAddrs(d, full, &res, timed)

	vxlanApplied := false
	if d.VXLANState == DevicePresent && (full || !l.vxlanOK || l.vxlanState != DevicePresent || !reflect.DeepEqual(d.VXLAN, l.vxlan)) {
		timed("vxlan", func() {
			l.vxlanOK = false
			if err := dp.k.EnsureVXLAN(d.VXLAN); err != nil {
				res.fail("vxlan", err, dp)
				return
			}
			l.vxlan, l.vxlanState, l.vxlanOK, vxlanApplied = d.VXLAN, DevicePresent, true, true
		})
	}
	dp.applyVXLANFilter(d, full, &res, timed)
	if d.VXLANState == DevicePresent && l.vxlanOK && (full || vxlanApplied || !l.vtepsOK || !reflect.DeepEqual(d.VTEPs, l.vteps)) {
		timed("vteps", func() {
			l.vtepsOK = false
			if err := dp.k.SyncVTEPs(VXLANDevice, d.VTEPs); err != nil {
				res.fail("vteps", err, dp)
				return
			}
			l.vteps, l.vtepsOK = d.VTEPs, true
		})
	}
	if dp.applyVXLANV6(d, full, &res, timed) {
		vxlanApplied = true
	}
	if d.IPIPState == DevicePresent && (full || !l.ipipOK || !reflect.DeepEqual(d.IPIP, l.ipip)) {
		timed("ipip", func() {
			l.ipipOK = false
			err := dp.k.EnsureIPIP(d.IPIP)
			switch {
			case errors.Is(err, tunnel.ErrNotSupported):
				dp.host.IPIPUnsupported = true
				res.recalc = true
				// The degradation it causes is logged (once) as such.
				a.log.Debug("tunl0 cannot be created", "component", "dataplane", "err", err)
			case err != nil:
				res.fail("ipip", err, dp)
			default:
				l.ipip, l.ipipOK = d.IPIP, true
			}
		})
		if res.recalc {
			return res
		}
	}
	if full || vxlanApplied || !l.routesOK || d.OwnBGPRoutes != l.ownBGP || !reflect.DeepEqual(d.Routes, l.routes) {
		timed("routes", func() {
			wasOK := l.routesOK
			l.routesOK = false
			r, err := dp.applyRoutes(d, full || vxlanApplied || !wasOK)
			res.routeChanges = r.Added + r.Replaced + r.Deleted
			if res.routeChanges > 0 {
				a.met.routeChanges.Add(float64(res.routeChanges))
				a.log.Debug("routes changed", "component", "dataplane", "added", r.Added, "replaced", r.Replaced, "deleted", r.Deleted)
			}
			if err != nil {
				res.fail("routes", err, dp)
				return
			}
			l.routes, l.routesOK, l.ownBGP = d.Routes, true, d.OwnBGPRoutes
		})
	}
	if d.VXLANState == DeviceAbsent && (full || !l.vxlanOK || l.vxlanState != DeviceAbsent) {
		timed("vxlan", func() {
			l.vxlanOK = false
			if err := dp.k.DeleteLink(VXLANDevice); err != nil {
				res.fail("vxlan", err, dp)
				return
			}
			l.vxlanState, l.vxlan, l.vxlanOK = DeviceAbsent, tunnel.VXLAN{}, true
			l.vteps, l.vtepsOK = nil, false
		})
	}
	dp.deleteVXLANV6(d, full, &res, timed)
	dp.applyNAT(d, full, &res, timed)
	dp.applyMTUFile(d, full, &res, timed)
	return res
}

// workloads sets the workload sysctls once per local interface. An
// interface that does not exist (yet, or any more) is tried again at the
// next full resync: the CNI plugin sets the same values when it creates
// the veth, so nothing waits on this.
func (dp *dataplane) workloads(d Desired, full bool, res *applyResult, timed func(string, func())) {
	if d.WorkloadV6 != dp.wepV6 {
		full, dp.wepV6 = true, d.WorkloadV6 // IPv6 came on: set every interface again
	}
	want := make(map[string]bool, len(d.WorkloadIfaces))
	for _, i := range d.WorkloadIfaces {
		want[i] = true
	}
	for i := range dp.wepDone {
		if !want[i] || full {
			delete(dp.wepDone, i)
		}
	}
	var todo []string
	for _, i := range d.WorkloadIfaces {
		if !dp.wepDone[i] {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return
	}
	timed("workload", func() {
		for _, i := range todo {
			sysctls := WorkloadSysctls(i)
			if d.WorkloadV6 {
				sysctls = append(sysctls, WorkloadSysctlsV6(i)...)
			}
			err := dp.k.SetSysctls(sysctls...)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				dp.a.log.Debug("workload interface not present; its sysctls are retried at the next resync", "component", "dataplane", "iface", i)
			case err != nil:
				res.fail("workload", fmt.Errorf("interface %s: %w", i, err), dp)
				continue
			}
			dp.wepDone[i] = true
		}
	})
}
