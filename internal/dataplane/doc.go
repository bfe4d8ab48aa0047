// Package dataplane is the root of the kernel layer of the node: network
// namespaces (netns), workload veths (link), declarative routes (route),
// VXLAN and IPIP devices (tunnel) and the daemon's nftables table (nft).
//
// Every package below receives plain desired-state structs and explicit
// namespace handles or paths. None of them imports the datastore, BGP,
// IPAM, API or agent packages, none keeps global state, and none touches the
// root network namespace unless the caller passes a handle to it. Product
// code never shells out to ip, nft, iptables or sysctl.
package dataplane
