package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"slices"
	"sort"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/bgp"
)

// BGP sessions with local workloads (BGPPeer localWorkloadSelector): the
// speaker peers with a selected workload's address from the default
// BGPConfiguration's localWorkloadPeeringIPV4/IPV6, and that address
// goes on the workload's host-side interface (upstream's Felix does the
// same), so that the workload reaches it over its veth and the session's
// packets leave from it.

// localWorkloads lists this node's workload endpoints for bgp.Calc, when
// a BGPPeer selects local workloads (the endpoints of every node are in
// the model: not worth a pass otherwise).
func localWorkloads(m *Model) []bgp.Workload {
	if !slices.ContainsFunc(slices.Collect(maps.Values(m.BGP.Peers)), func(p *api.BGPPeer) bool { return p.Spec.LocalWorkloadSelector != "" }) {
		return nil
	}
	var out []bgp.Workload
	for _, key := range sortedKeys(m.WEPs) {
		w := m.WEPs[key]
		if w.Node != m.NodeName || w.Interface == "" {
			continue
		}
		bw := bgp.Workload{Name: key, Labels: w.Labels, Interface: w.Interface}
		for _, ip := range w.IPs {
			switch a := ip.Addr(); {
			case a.Is4() && !bw.IPv4.IsValid():
				bw.IPv4 = a
			case a.Is6() && !bw.IPv6.IsValid():
				bw.IPv6 = a
			}
		}
		out = append(out, bw)
	}
	return out
}

// peeringAddrs is the interface -> addresses form of the speaker's
// WorkloadAddrs.
func peeringAddrs(as []bgp.WorkloadAddr) map[string][]netip.Prefix {
	if len(as) == 0 {
		return nil
	}
	out := map[string][]netip.Prefix{}
	for _, a := range as {
		out[a.Interface] = append(out[a.Interface], a.Addr)
	}
	return out
}

// peeringState is what applyPeeringAddrs installed.
type peeringState struct {
	done map[string][]netip.Prefix // interface -> addresses, as installed
	ok   bool
	// ours are the peering addresses this process has put on workload
	// interfaces: only these are ever deleted from them.
	ours map[netip.Prefix]bool
}

// applyPeeringAddrs puts the peering addresses on the workload interfaces
// that need them and takes them off the others (when they changed, or on
// a full pass). A workload interface that does not exist (yet, or any
// more) is left for the next pass.
func (dp *dataplane) applyPeeringAddrs(d Desired, full bool, res *applyResult, timed func(string, func())) {
	st := &dp.peering
	if !full && st.ok && maps.EqualFunc(d.PeeringAddrs, st.done, slices.Equal) {
		return
	}
	if st.ours == nil {
		st.ours = map[netip.Prefix]bool{}
	}
	for _, as := range d.PeeringAddrs {
		for _, a := range as {
			st.ours[a] = true
		}
	}
	ifs := map[string]bool{}
	for i := range d.PeeringAddrs {
		ifs[i] = true
	}
	for i := range st.done {
		ifs[i] = true
	}
	if len(ifs) == 0 {
		st.done, st.ok = nil, true
		return
	}
	names := slices.Collect(maps.Keys(ifs))
	sort.Strings(names)
	timed("bgp-peering", func() {
		done, ok := map[string][]netip.Prefix{}, true
		for _, name := range names {
			want := d.PeeringAddrs[name]
			err := dp.k.SyncLinkAddrs(name, want, func(p netip.Prefix) bool { return st.ours[p] })
			switch {
			case errors.Is(err, fs.ErrNotExist):
				ok = ok && len(want) == 0
			case err != nil:
				res.fail("bgp-peering", fmt.Errorf("interface %s: %w", name, err), dp)
				ok = false
			default:
				if len(want) > 0 {
					done[name] = want
				}
			}
		}
		st.done, st.ok = done, ok
	})
}
