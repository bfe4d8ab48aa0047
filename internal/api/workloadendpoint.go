package api

import "fmt"

// KindWorkloadEndpoint is the WorkloadEndpoint kind.
const KindWorkloadEndpoint = "WorkloadEndpoint"

// Labels the datastore client adds to every workload endpoint.
const (
	LabelNamespace    = "projectcalico.org/namespace"
	LabelOrchestrator = "projectcalico.org/orchestrator"
)

// WorkloadEndpoint is one network interface of a workload (pod or container).
type WorkloadEndpoint struct {
	TypeMeta
	ObjectMeta `json:"metadata"`
	Spec       WorkloadEndpointSpec `json:"spec"`
}

// WorkloadEndpointSpec is an endpoint's configuration, field order as upstream.
type WorkloadEndpointSpec struct {
	Orchestrator               string                 `json:"orchestrator,omitempty"`
	Workload                   string                 `json:"workload,omitempty"`
	Node                       string                 `json:"node,omitempty"`
	ContainerID                string                 `json:"containerID,omitempty"`
	Pod                        string                 `json:"pod,omitempty"`
	Endpoint                   string                 `json:"endpoint,omitempty"`
	ServiceAccountName         string                 `json:"serviceAccountName,omitempty"`
	IPNetworks                 []string               `json:"ipNetworks,omitempty"`
	IPNATs                     []IPNAT                `json:"ipNATs,omitempty"`
	IPv4Gateway                string                 `json:"ipv4Gateway,omitempty"`
	IPv6Gateway                string                 `json:"ipv6Gateway,omitempty"`
	Profiles                   []string               `json:"profiles,omitempty"`
	InterfaceName              string                 `json:"interfaceName,omitempty"`
	MAC                        string                 `json:"mac,omitempty"`
	Ports                      []WorkloadEndpointPort `json:"ports,omitempty"`
	AllowSpoofedSourcePrefixes []string               `json:"allowSpoofedSourcePrefixes,omitempty"`
	QoSControls                map[string]any         `json:"qosControls,omitempty"`
}

// WorkloadEndpointPort is a named or host-mapped port of an endpoint.
type WorkloadEndpointPort struct {
	Name     string   `json:"name"`
	Protocol Protocol `json:"protocol"`
	Port     uint16   `json:"port"`
	HostPort uint16   `json:"hostPort"`
	HostIP   string   `json:"hostIP"`
}

// IPNAT is a 1:1 NAT mapping of an endpoint address.
type IPNAT struct {
	InternalIP string `json:"internalIP"`
	ExternalIP string `json:"externalIP"`
}

// NewWorkloadEndpoint returns an empty WorkloadEndpoint with its TypeMeta set.
func NewWorkloadEndpoint() *WorkloadEndpoint {
	return &WorkloadEndpoint{TypeMeta: TypeMeta{Kind: KindWorkloadEndpoint, APIVersion: APIVersion}}
}

// Default sets the labels upstream's client adds on write.
func (w *WorkloadEndpoint) Default() {
	if w.Namespace == "" {
		w.Namespace = "default"
	}
	if w.Labels == nil {
		w.Labels = map[string]string{}
	}
	w.Labels[LabelNamespace] = w.Namespace
	if w.Spec.Orchestrator != "" {
		w.Labels[LabelOrchestrator] = w.Spec.Orchestrator
	}
}

// Validate checks the endpoint's addresses and interface.
func (w *WorkloadEndpoint) Validate() error {
	var es errs
	s := &w.Spec
	for i, n := range s.IPNetworks {
		if _, err := ParseAddrOrCIDR(n); err != nil {
			es.add(fieldErr(fmt.Sprintf("spec.ipNetworks[%d]", i), n, "not an IP address or CIDR"))
		}
	}
	if s.InterfaceName != "" {
		es.add(ValidateInterfaceName("spec.interfaceName", s.InterfaceName))
	}
	if s.MAC != "" {
		es.add(validateMAC("spec.mac", s.MAC))
	}
	if s.IPv4Gateway != "" {
		es.add(validateIP("spec.ipv4Gateway", s.IPv4Gateway, 32))
	}
	if s.IPv6Gateway != "" {
		es.add(validateIP("spec.ipv6Gateway", s.IPv6Gateway, 128))
	}
	for i, p := range s.Ports {
		f := fmt.Sprintf("spec.ports[%d]", i)
		if !p.Protocol.SupportsPorts() {
			es.add(fieldErr(f+".protocol", p.Protocol.String(), "protocol does not support ports"))
		}
		if p.Name == "" && p.HostPort == 0 {
			es.add(fieldErr(f+".name", nil, "a name is required unless hostPort is set"))
		}
	}
	es.add(validateCIDRList("spec.allowSpoofedSourcePrefixes", s.AllowSpoofedSourcePrefixes))
	return es.err()
}
