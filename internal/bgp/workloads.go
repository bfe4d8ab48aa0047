package bgp

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	"github.com/onecalico/calico/internal/api"
)

// Workload is a workload endpoint on this node, for BGPPeers with a
// localWorkloadSelector.
type Workload struct {
	Name      string // the endpoint's key, for messages and order
	Labels    map[string]string
	Interface string     // its host-side interface (cali...)
	IPv4      netip.Addr // its first address of each family (invalid: none)
	IPv6      netip.Addr
}

// WorkloadAddr is an address this node puts on a workload's host-side
// interface: BGPConfiguration localWorkloadPeeringIPV4/IPV6, the address
// the workload peers with and the session's source.
type WorkloadAddr struct {
	Interface string
	Addr      netip.Prefix // /32 or /128
}

// PeerLocalWorkload is the type of a session with a local workload.
const PeerLocalWorkload PeerType = "local workload"

// localWorkloads adds the sessions of a BGPPeer with a
// localWorkloadSelector, as upstream: one per selected workload on this
// node and family, to the workload's address with the peer's AS number,
// from the default BGPConfiguration's localWorkloadPeeringIPV4 (IPV6),
// which goes on the workload's host-side interface (upstream's Felix puts
// it there). Everything else is the BGPPeer's, as for a peerIP.
func (c *calc) localWorkloads(p *api.BGPPeer) {
	g := c.globalSpec()
	local := [2]string{g.LocalWorkloadPeeringIPV4, g.LocalWorkloadPeeringIPV6}
	for _, w := range c.in.Workloads {
		if !c.selects("BGPPeer "+p.Name+" localWorkloadSelector", p.Spec.LocalWorkloadSelector, w.Labels) {
			continue
		}
		for i, ip := range []netip.Addr{w.IPv4, w.IPv6} {
			if !ip.IsValid() {
				continue
			}
			src, err := netip.ParseAddr(local[i])
			if err != nil || src.Is6() != ip.Is6() {
				c.problem("BGPPeer %s: workload %s is selected, but BGPConfiguration default has no localWorkloadPeeringIPV%d (the address this node peers from); no session",
					p.Name, w.Name, 4+2*i)
				continue
			}
			if !c.addExplicit(p, PeerLocalWorkload, ip, 0, uint32(p.Spec.ASNumber), nil) {
				continue
			}
			k := Peer{Addr: ip}.Key()
			s := c.peers[k]
			s.LocalAddr = src.String()
			c.peers[k] = s
			c.d.WorkloadAddrs = append(c.d.WorkloadAddrs, WorkloadAddr{Interface: w.Interface, Addr: netip.PrefixFrom(src, src.BitLen())})
		}
	}
}

// sortWorkloadAddrs orders and deduplicates d.WorkloadAddrs.
func (d *Desired) sortWorkloadAddrs() {
	slices.SortFunc(d.WorkloadAddrs, func(a, b WorkloadAddr) int {
		return cmp.Or(strings.Compare(a.Interface, b.Interface), a.Addr.Addr().Compare(b.Addr.Addr()))
	})
	d.WorkloadAddrs = slices.Compact(d.WorkloadAddrs)
}
