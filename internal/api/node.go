package api

import "net/netip"

// KindNode is the Node kind.
const KindNode = "Node"

// Node is a Calico node: its addresses, AS number and tunnel endpoints.
type Node struct {
	TypeMeta
	ObjectMeta `json:"metadata"`
	Spec       NodeSpec   `json:"spec"`
	Status     NodeStatus `json:"status"`
}

// NodeSpec is a node's configuration, field order as upstream.
type NodeSpec struct {
	BGP                  *NodeBGPSpec       `json:"bgp,omitempty"`
	IPv4VXLANTunnelAddr  string             `json:"ipv4VXLANTunnelAddr,omitempty"`
	VXLANTunnelMACAddr   string             `json:"vxlanTunnelMACAddr,omitempty"`
	IPv6VXLANTunnelAddr  string             `json:"ipv6VXLANTunnelAddr,omitempty"`
	VXLANTunnelMACAddrV6 string             `json:"vxlanTunnelMACAddrV6,omitempty"`
	OrchRefs             []OrchRef          `json:"orchRefs,omitempty"`
	Wireguard            *NodeWireguardSpec `json:"wireguard,omitempty"`
	Addresses            []NodeAddress      `json:"addresses,omitempty"`
	Interfaces           []NodeInterface    `json:"interfaces,omitempty"`
}

// NodeBGPSpec holds the node's BGP identity. IPv4Address is a CIDR that
// keeps the host bits ("10.0.0.11/24"): the address and its subnet.
type NodeBGPSpec struct {
	ASNumber                *ASNumber `json:"asNumber,omitempty"`
	IPv4Address             string    `json:"ipv4Address,omitempty"`
	IPv6Address             string    `json:"ipv6Address,omitempty"`
	IPv4IPIPTunnelAddr      string    `json:"ipv4IPIPTunnelAddr,omitempty"`
	RouteReflectorClusterID string    `json:"routeReflectorClusterID,omitempty"`
}

// OrchRef ties the node to its name in an orchestrator.
type OrchRef struct {
	NodeName     string `json:"nodeName,omitempty"`
	Orchestrator string `json:"orchestrator"`
}

// NodeWireguardSpec holds WireGuard interface addresses.
type NodeWireguardSpec struct {
	InterfaceIPv4Address string `json:"interfaceIPv4Address,omitempty"`
	InterfaceIPv6Address string `json:"interfaceIPv6Address,omitempty"`
}

// NodeAddress is an address the node can be reached at.
type NodeAddress struct {
	Address string `json:"address"`
	Type    string `json:"type,omitempty"`
}

// NodeInterface is one of the node's interfaces and its addresses.
type NodeInterface struct {
	Name      string   `json:"name,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
}

// NodeStatus is always written (as {}) because upstream's is a plain struct.
type NodeStatus struct {
	WireguardPublicKey   string   `json:"wireguardPublicKey,omitempty"`
	WireguardPublicKeyV6 string   `json:"wireguardPublicKeyV6,omitempty"`
	PodCIDRs             []string `json:"podCIDRs,omitempty"`
}

// NewNode returns an empty Node with its TypeMeta set.
func NewNode() *Node {
	return &Node{TypeMeta: TypeMeta{Kind: KindNode, APIVersion: APIVersion}}
}

// IPv4 returns the node's IPv4 address with its subnet, or false if unset or invalid.
func (n *Node) IPv4() (netip.Prefix, bool) {
	if n.Spec.BGP == nil || n.Spec.BGP.IPv4Address == "" {
		return netip.Prefix{}, false
	}
	p, err := ParseAddrOrCIDR(n.Spec.BGP.IPv4Address)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, false
	}
	return p, true
}

// Validate checks the node's addresses.
func (n *Node) Validate() error {
	var es errs
	if b := n.Spec.BGP; b != nil {
		if *b == (NodeBGPSpec{}) {
			es.add(fieldErr("spec.bgp", nil, "must not be empty: remove it or set ipv4Address"))
		}
		if b.IPv4Address != "" {
			if p, err := ParseAddrOrCIDR(b.IPv4Address); err != nil || !p.Addr().Is4() {
				es.add(fieldErr("spec.bgp.ipv4Address", b.IPv4Address, "must be an IPv4 address with its prefix length, e.g. 10.0.0.11/24"))
			}
		}
		if b.IPv6Address != "" {
			if p, err := ParseAddrOrCIDR(b.IPv6Address); err != nil || !p.Addr().Is6() {
				es.add(fieldErr("spec.bgp.ipv6Address", b.IPv6Address, "must be an IPv6 address with its prefix length"))
			}
		}
		if b.IPv4IPIPTunnelAddr != "" {
			es.add(validateIP("spec.bgp.ipv4IPIPTunnelAddr", b.IPv4IPIPTunnelAddr, 32))
		}
		if b.RouteReflectorClusterID != "" {
			es.add(validateIP("spec.bgp.routeReflectorClusterID", b.RouteReflectorClusterID, 32))
		}
	}
	if n.Spec.IPv4VXLANTunnelAddr != "" {
		es.add(validateIP("spec.ipv4VXLANTunnelAddr", n.Spec.IPv4VXLANTunnelAddr, 32))
	}
	if n.Spec.IPv6VXLANTunnelAddr != "" {
		es.add(validateIP("spec.ipv6VXLANTunnelAddr", n.Spec.IPv6VXLANTunnelAddr, 128))
	}
	for f, m := range map[string]string{"spec.vxlanTunnelMACAddr": n.Spec.VXLANTunnelMACAddr, "spec.vxlanTunnelMACAddrV6": n.Spec.VXLANTunnelMACAddrV6} {
		if m != "" {
			es.add(validateMAC(f, m))
		}
	}
	return es.err()
}
