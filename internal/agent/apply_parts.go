package agent

import (
	"reflect"
	"strconv"
)

// Parts of the apply step that a full pass (apply) and an incremental
// one after a global change (applyGlobal) share. Each applies its part
// with full, or when it differs from what was last applied.

func (dp *dataplane) applySysctls(d Desired, full bool, res *applyResult, timed func(string, func())) {
	l := &dp.last
	if !full && l.sysctlsOK && reflect.DeepEqual(d.Sysctls, l.sysctls) {
		return
	}
	timed("sysctl", func() {
		l.sysctlsOK = false
		if err := dp.k.SetSysctls(d.Sysctls...); err != nil {
			res.fail("sysctl", err, dp)
			return
		}
		l.sysctls, l.sysctlsOK = d.Sysctls, true
	})
}

func (dp *dataplane) applyNAT(d Desired, full bool, res *applyResult, timed func(string, func())) {
	l := &dp.last
	if !full && l.natOK && reflect.DeepEqual(d.NAT, l.nat) {
		return
	}
	timed("nat", func() {
		l.natOK = false
		if err := dp.k.ApplyNAT(d.NAT); err != nil {
			res.fail("nat", err, dp)
			return
		}
		l.nat, l.natOK = d.NAT, true
	})
}

// applyMTUFile writes the pod MTU for the CNI plugin.
func (dp *dataplane) applyMTUFile(d Desired, full bool, res *applyResult, timed func(string, func())) {
	l, a := &dp.last, dp.a
	if !full && l.mtuOK && d.MTU == l.mtu {
		return
	}
	timed("mtu", func() {
		l.mtuOK = false
		changed, err := writeFileAtomic(a.cfg.MTUFile, []byte(strconv.Itoa(d.MTU)))
		if err != nil {
			res.fail("mtu", err, dp)
			return
		}
		if changed {
			a.log.Info("wrote pod MTU", "component", "dataplane", "file", a.cfg.MTUFile, "mtu", d.MTU)
		}
		l.mtu, l.mtuOK = d.MTU, true
	})
}
