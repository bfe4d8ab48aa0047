package bgp

import (
	"net/netip"
	"time"
)

// The types a Speaker hands out; they do not depend on GoBGP (the
// nogobgp build's stub Speaker returns them too).

// Learned is a best path learned from a peer.
type Learned struct {
	NextHop netip.Addr
	Peer    netip.Addr
	// Priority is the kernel metric of the route (0: the default): a
	// BGPFilter import rule's setPriority, or what the peer sent the
	// same way (see PriorityOf).
	Priority uint32
}

// MaxLocalPref is the LOCAL_PREF that stands for priority 0; a route of
// priority p carries MaxLocalPref-p (upstream's bgp_local_pref =
// 2^31-1 - krt_metric).
const MaxLocalPref = 1<<31 - 1

// MaxCarriedPriority bounds the priorities carried in LOCAL_PREF: a
// LOCAL_PREF below MaxLocalPref-MaxCarriedPriority (the usual 100, or
// an operator's own preference) is a preference, not a priority.
const MaxCarriedPriority = 1 << 30

// PriorityOf is the priority a LOCAL_PREF carries (0: none).
func PriorityOf(localPref uint32) uint32 {
	if localPref >= MaxLocalPref || localPref < MaxLocalPref-MaxCarriedPriority {
		return 0
	}
	return MaxLocalPref - localPref
}

// Change is one learned prefix that changed: its best path now, or Gone.
type Change struct {
	Prefix netip.Prefix
	Learned
	Gone bool
}

// PeerStatus is one session as `calicoctl node status` reports it.
type PeerStatus struct {
	Address    string    `json:"address"`
	Type       PeerType  `json:"type"`
	State      string    `json:"state"` // GoBGP session state: Idle, Connect, Active, OpenSent, OpenConfirm, Established
	Since      time.Time `json:"since,omitzero"`
	Info       string    `json:"info,omitempty"`
	Received   uint64    `json:"received"`
	Accepted   uint64    `json:"accepted"`
	Advertised uint64    `json:"advertised"`
	Flaps      uint64    `json:"flaps"`
}
