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
