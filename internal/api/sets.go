package api

import "fmt"

// Kinds of the address-set and host-endpoint resources.
const (
	KindNetworkSet       = "NetworkSet"
	KindGlobalNetworkSet = "GlobalNetworkSet"
	KindHostEndpoint     = "HostEndpoint"
	KindIPReservation    = "IPReservation"
)

// NetworkSet is a namespaced set of networks that policy selectors can match by label.
type NetworkSet struct {
	TypeMeta
	ObjectMeta `json:"metadata"`
	Spec       NetworkSetSpec `json:"spec"`
}

// NetworkSetSpec lists the networks.
type NetworkSetSpec struct {
	Nets []string `json:"nets,omitempty"`
}

// GlobalNetworkSet is the cluster-wide NetworkSet.
type GlobalNetworkSet struct {
	TypeMeta
	ObjectMeta `json:"metadata"`
	Spec       GlobalNetworkSetSpec `json:"spec"`
}

// GlobalNetworkSetSpec lists the networks.
type GlobalNetworkSetSpec struct {
	Nets []string `json:"nets,omitempty"`
}

// HostEndpoint is one of a host's interfaces (or all of them) under policy.
type HostEndpoint struct {
	TypeMeta
	ObjectMeta `json:"metadata"`
	Spec       HostEndpointSpec `json:"spec"`
}

// HostEndpointSpec names the node, the interface and its addresses.
type HostEndpointSpec struct {
	Node          string         `json:"node,omitempty"`
	InterfaceName string         `json:"interfaceName,omitempty"`
	ExpectedIPs   []string       `json:"expectedIPs,omitempty"`
	Profiles      []string       `json:"profiles,omitempty"`
	Ports         []EndpointPort `json:"ports,omitempty"`
}

// EndpointPort is a named port of a host endpoint.
type EndpointPort struct {
	Name     string   `json:"name"`
	Protocol Protocol `json:"protocol"`
	Port     uint16   `json:"port"`
}

// IPReservation lists addresses IPAM must never hand out.
type IPReservation struct {
	TypeMeta
	ObjectMeta `json:"metadata"`
	Spec       IPReservationSpec `json:"spec"`
}

// IPReservationSpec lists the reserved CIDRs or addresses.
type IPReservationSpec struct {
	ReservedCIDRs []string `json:"reservedCIDRs,omitempty"`
}

// NewNetworkSet returns an empty NetworkSet with its TypeMeta set.
func NewNetworkSet() *NetworkSet {
	return &NetworkSet{TypeMeta: TypeMeta{Kind: KindNetworkSet, APIVersion: APIVersion}}
}

// NewGlobalNetworkSet returns an empty GlobalNetworkSet with its TypeMeta set.
func NewGlobalNetworkSet() *GlobalNetworkSet {
	return &GlobalNetworkSet{TypeMeta: TypeMeta{Kind: KindGlobalNetworkSet, APIVersion: APIVersion}}
}

// NewHostEndpoint returns an empty HostEndpoint with its TypeMeta set.
func NewHostEndpoint() *HostEndpoint {
	return &HostEndpoint{TypeMeta: TypeMeta{Kind: KindHostEndpoint, APIVersion: APIVersion}}
}

// NewIPReservation returns an empty IPReservation with its TypeMeta set.
func NewIPReservation() *IPReservation {
	return &IPReservation{TypeMeta: TypeMeta{Kind: KindIPReservation, APIVersion: APIVersion}}
}

// Validate checks the networks.
func (n *NetworkSet) Validate() error { return validateCIDRList("spec.nets", n.Spec.Nets) }

// Validate checks the networks.
func (n *GlobalNetworkSet) Validate() error { return validateCIDRList("spec.nets", n.Spec.Nets) }

// Validate checks the reserved ranges.
func (r *IPReservation) Validate() error {
	return validateCIDRList("spec.reservedCIDRs", r.Spec.ReservedCIDRs)
}

// Validate checks the host endpoint names a node and an interface or addresses.
func (h *HostEndpoint) Validate() error {
	var es errs
	s := &h.Spec
	if s.Node == "" {
		es.add(fieldErr("spec.node", nil, "a node is required"))
	}
	if s.InterfaceName == "" && len(s.ExpectedIPs) == 0 {
		es.add(fieldErr("spec", nil, "set interfaceName or expectedIPs"))
	}
	if s.InterfaceName != "" && s.InterfaceName != "*" {
		es.add(ValidateInterfaceName("spec.interfaceName", s.InterfaceName))
	}
	for i, ip := range s.ExpectedIPs {
		es.add(validateIP(fmt.Sprintf("spec.expectedIPs[%d]", i), ip, 0))
	}
	for i, p := range s.Ports {
		f := fmt.Sprintf("spec.ports[%d]", i)
		if p.Name == "" {
			es.add(fieldErr(f+".name", nil, "a name is required"))
		}
		if !p.Protocol.SupportsPorts() {
			es.add(fieldErr(f+".protocol", p.Protocol.String(), "protocol does not support ports"))
		}
	}
	return es.err()
}
