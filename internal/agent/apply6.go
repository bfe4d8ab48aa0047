package agent

import (
	"reflect"

	"github.com/onecalico/calico/internal/dataplane/ifaces"
	"github.com/onecalico/calico/internal/dataplane/tunnel"
)

// applied6 is what the last successful apply of the IPv6 device parts
// installed (the IPv6 routes are part of Desired.Routes).
type applied6 struct {
	vxlanState DeviceState
	vxlan      tunnel.VXLAN
	vxlanOK    bool
	vteps      []tunnel.VTEP
	vtepsOK    bool
}

// applyVXLANV6 creates or fixes vxlan-v6.calico and its VTEPs, like the
// IPv4 device in apply. It reports whether the device was (re)applied, in
// which case the routes need a full apply (their link index may be new).
func (dp *dataplane) applyVXLANV6(d Desired, full bool, res *applyResult, timed func(string, func())) bool {
	l := &dp.last6
	if d.VXLANV6State != DevicePresent {
		return false
	}
	applied := false
	if full || !l.vxlanOK || l.vxlanState != DevicePresent || !reflect.DeepEqual(d.VXLANV6, l.vxlan) {
		timed("vxlan6", func() {
			l.vxlanOK = false
			if err := dp.k.EnsureVXLAN(d.VXLANV6); err != nil {
				res.fail("vxlan6", err, dp)
				return
			}
			l.vxlan, l.vxlanState, l.vxlanOK, applied = d.VXLANV6, DevicePresent, true, true
		})
	}
	if l.vxlanOK && (full || applied || !l.vtepsOK || !reflect.DeepEqual(d.VTEPsV6, l.vteps)) {
		timed("vteps6", func() {
			l.vtepsOK = false
			if err := dp.k.SyncVTEPs(VXLANV6Device, d.VTEPsV6); err != nil {
				res.fail("vteps6", err, dp)
				return
			}
			l.vteps, l.vtepsOK = d.VTEPsV6, true
		})
	}
	return applied
}

// deleteVXLANV6 removes vxlan-v6.calico when it is not wanted (after the
// routes through it are gone).
func (dp *dataplane) deleteVXLANV6(d Desired, full bool, res *applyResult, timed func(string, func())) {
	l := &dp.last6
	if d.VXLANV6State != DeviceAbsent || !(full || !l.vxlanOK || l.vxlanState != DeviceAbsent) {
		return
	}
	timed("vxlan6", func() {
		l.vxlanOK = false
		if err := dp.k.DeleteLink(VXLANV6Device); err != nil {
			res.fail("vxlan6", err, dp)
			return
		}
		*l = applied6{vxlanState: DeviceAbsent, vxlanOK: true}
	})
}

// hostFacts6 fills in the interface holding the node's IPv6 address.
func hostFacts6(facts *HostFacts, me Node, ifs []ifaces.Interface) {
	if !me.IPv6.IsValid() {
		return
	}
	for _, i := range ifs {
		for _, a := range i.Addrs {
			if a.Addr() == me.IPv6.Addr() {
				facts.ParentIfV6, facts.ParentIndexV6 = i.Name, i.Index
			}
		}
	}
}

// host6Stale reports whether the IPv6 host facts must be read again: the
// node's IPv6 address changed, or it is on no interface yet.
func (dp *dataplane) host6Stale(me Node) bool {
	return me.IPv6 != dp.hostFor6 || (me.IPv6.IsValid() && dp.host.ParentIfV6 == "")
}
