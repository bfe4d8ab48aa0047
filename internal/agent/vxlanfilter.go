package agent

import (
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/google/nftables"

	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/dataplane/nft"
	"github.com/onecalico/calico/internal/dataplane/tunnel"
)

// vxlanFilterPlane keeps the VXLAN peer filter (nft.VXLANFilterApplier,
// Felix's all-vxlan-net) in step with the VTEPs: while the VXLAN device
// is present, the node accepts VXLAN only from the underlay addresses of
// the VTEPs it programs; when the device goes, so does the filter.
type vxlanFilterPlane struct {
	applier VXLANFilterKernel
	want    nft.VXLANFilter
	present bool // the filter was applied and is installed
	absent  bool // the table was deleted (VXLAN off)
}

// vxlanPeers are the underlay addresses the filter admits: the node
// address of every VTEP of each VXLAN device that is present.
func vxlanPeers(d Desired) []netip.Addr {
	out := make([]netip.Addr, 0, len(d.VTEPs)+len(d.VTEPsV6))
	if d.VXLANState == DevicePresent {
		for _, v := range d.VTEPs {
			out = append(out, v.NodeIP)
		}
	}
	if d.VXLANV6State == DevicePresent {
		for _, v := range d.VTEPsV6 {
			out = append(out, v.NodeIP)
		}
	}
	return out
}

// vxlanFilterState is the filter's own device state: present while
// either VXLAN device is, absent once both are, kept otherwise.
func vxlanFilterState(d Desired) DeviceState {
	switch {
	case d.VXLANState == DevicePresent || d.VXLANV6State == DevicePresent:
		return DevicePresent
	case d.VXLANState == DeviceAbsent && d.VXLANV6State == DeviceAbsent:
		return DeviceAbsent
	}
	return DeviceKeep
}

// applyVXLANFilter runs before the VTEPs are programmed, so a new node's
// packets are admitted by the time its FDB entry exists. A full resync
// checks the table (Check: a generation read while nobody else touched
// it, else a read back) and rewrites it only if it changed behind our
// back; otherwise only the peers that came and went are sent.
func (dp *dataplane) applyVXLANFilter(d Desired, full bool, res *applyResult, timed func(string, func())) {
	if dp.vxf == nil {
		dp.vxf = &vxlanFilterPlane{applier: dp.k.VXLANFilter(nft.VXLANFilterTableName)}
		if _, real := dp.k.(*netlinkKernel); real {
			dp.a.registerVXLANCollector() // it reads the kernel's counters
		}
	}
	p := dp.vxf
	switch vxlanFilterState(d) {
	case DevicePresent:
		same := p.present && p.want.Port == uint16(vxlanPort(d)) && slices.Equal(p.want.WorkloadPrefixes, dp.workloadPrefixes()) &&
			sameVXLANPeers(d, p.want.Peers)
		if !full && same {
			return
		}
		timed("vxlan-filter", func() {
			if full && p.present && !dp.vxlanFilterIntact() {
				p.present, same = false, false
			}
			if same {
				return
			}
			want := nft.VXLANFilter{Port: uint16(vxlanPort(d)), Peers: vxlanPeers(d), WorkloadPrefixes: dp.workloadPrefixes()}
			p.present, p.absent = false, false
			st, err := p.applier.Apply(want)
			if err != nil {
				res.fail("vxlan-filter", err, dp)
				return
			}
			p.want, p.present = want, true
			if st.Replaced || st.Added+st.Deleted > 0 {
				dp.a.log.Debug("VXLAN peer filter applied", "component", "dataplane", "replaced", st.Replaced,
					"added", st.Added, "deleted", st.Deleted, "peers_v4", st.PeersV4, "peers_v6", st.PeersV6)
			}
		})
	case DeviceAbsent:
		if p.absent && !full {
			return
		}
		timed("vxlan-filter", func() {
			p.present = false
			if err := p.applier.Delete(); err != nil {
				res.fail("vxlan-filter", err, dp)
				return
			}
			p.absent = true
		})
	}
}

// vxlanFilterIntact reports whether the table still holds what was last
// applied (a full resync's check); if not, the next Apply rewrites it.
func (dp *dataplane) vxlanFilterIntact() bool {
	ok, err := dp.vxf.applier.Check()
	if err != nil {
		dp.a.log.Warn("VXLAN peer filter check; rewriting it", "component", "dataplane", "err", err)
		dp.vxf.applier.Invalidate()
		return false
	}
	if !ok {
		dp.a.log.Info("VXLAN peer filter table changed behind our back; rewriting it", "component", "dataplane", "table", nft.VXLANFilterTableName)
	}
	return ok
}

// nftVXLANFilter is the real VXLANFilterKernel: the applier on an
// nftables socket of its own, whose commits its watch tells apart from
// everyone else's (the NAT table's Conn is shared and rewritten on every
// full resync).
type nftVXLANFilter struct {
	*nft.VXLANFilterApplier
	conn   *nftables.Conn
	nsFile *os.File
}

// VXLANFilter opens the VXLAN filter's applier; if its own socket or
// watch cannot be had, it works on the shared Conn and Check reads the
// table back.
func (k *netlinkKernel) VXLANFilter(table string) VXLANFilterKernel {
	if k.vxf != nil {
		return k.vxf
	}
	f, err := k.openVXLANFilter(table)
	if err != nil {
		k.log.Warn("VXLAN peer filter socket; the table is read back on each full resync", "component", "dataplane", "err", err)
		return nft.NewVXLANFilterApplier(k.nft, table)
	}
	k.vxf = f
	return f
}

func (k *netlinkKernel) openVXLANFilter(table string) (*nftVXLANFilter, error) {
	f, err := netns.Open(k.ns)
	if err != nil {
		return nil, err
	}
	sock := &nft.BatchSocket{}
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())), nftables.AsLasting(), nftables.WithSockOptions(sock.Grab))
	if err != nil {
		f.Close()
		return nil, err
	}
	v := &nftVXLANFilter{VXLANFilterApplier: nft.NewVXLANFilterApplier(c, table), conn: c, nsFile: f}
	if err := v.Watch(sock, int(f.Fd())); err != nil {
		v.close()
		return nil, err
	}
	return v, nil
}

func (v *nftVXLANFilter) close() {
	v.Close() // the watch
	_ = v.conn.CloseLasting()
	v.nsFile.Close()
}

// workloadPrefixes are Felix's interfacePrefix, split at commas, from
// the model the last Calc used.
func (dp *dataplane) workloadPrefixes() []string {
	if dp.calcModel == nil || dp.calcModel.Felix.InterfacePrefix == "" {
		return nil
	}
	return strings.Split(dp.calcModel.Felix.InterfacePrefix, ",")
}

// sameVXLANPeers reports whether vxlanPeers(d) would be peers, without
// building it (10,000 VTEPs on every pass).
func sameVXLANPeers(d Desired, peers []netip.Addr) bool {
	i := 0
	for _, vs := range [][]tunnel.VTEP{vtepsIf(d.VXLANState, d.VTEPs), vtepsIf(d.VXLANV6State, d.VTEPsV6)} {
		for _, v := range vs {
			if i >= len(peers) || peers[i] != v.NodeIP {
				return false
			}
			i++
		}
	}
	return i == len(peers)
}

func vtepsIf(s DeviceState, vs []tunnel.VTEP) []tunnel.VTEP {
	if s != DevicePresent {
		return nil
	}
	return vs
}

// vxlanPort is the UDP port of the present device (both use FelixConfiguration's vxlanPort).
func vxlanPort(d Desired) int {
	if d.VXLANState == DevicePresent {
		return d.VXLAN.Port
	}
	return d.VXLANV6.Port
}
