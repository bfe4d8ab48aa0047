// Package bgp is calico-node's BGP speaker: an embedded GoBGP v3 server
// driven by the datastore, as upstream's confd + BIRD pair is.
//
// It has two halves. Calc is pure: from the nodes, the BGPConfiguration
// objects ("default" and "node.<name>"), the BGPPeers, the IP pools and the
// IPAM blocks it computes the Desired BGP state of one node (global
// settings, one Peer per session, the prefixes to originate). Speaker owns
// the GoBGP server's lifecycle and converges it to a Desired value: the
// server is recreated only when the global settings change, peers are
// diffed by a hash of their settings (one peer is added, changed or removed
// without touching the others), originated prefixes are diffed and
// announced or withdrawn. Learned best paths arrive through GoBGP's
// WatchEvent (BEST table, Init) and are kept in a map the caller reads; the
// callback given to the Speaker only learns that something changed.
//
// Invariants: GoBGP's gRPC API is never opened; this package never touches
// netlink, the datastore or the agent (scripts/lint-deps.sh); Stop leaves
// the TCP sessions to die with the process, so peers with graceful restart
// keep this node's routes while it restarts.
//
// Built with the nogobgp tag, speaker_nogobgp.go replaces the files that
// import GoBGP (speaker.go, filter.go, logger.go) with a Speaker that
// reports BGP unavailable. That build is for measurement only (what
// linking GoBGP costs every applet: applets/cni BenchmarkCNIGoBGPCost).
package bgp
