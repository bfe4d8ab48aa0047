package api

import (
	"fmt"
	"strings"
)

// Orchestrator names that shape a WorkloadEndpoint name.
const (
	OrchestratorK8s        = "k8s"
	OrchestratorCNI        = "cni"
	OrchestratorLibnetwork = "libnetwork"
)

// WorkloadEndpointIdentifiers are the parts a WorkloadEndpoint name is made
// of. Which ones count depends on the orchestrator (upstream's rule):
//
//	k8s:        <node>-k8s-<pod>-<endpoint>
//	cni:        <node>-cni-<containerID>-<endpoint>
//	libnetwork: <node>-libnetwork-libnetwork-<endpoint>
//	other:      <node>-<orchestrator>-<workload>-<endpoint>
//
// Each part is joined with a single dash after doubling the dashes inside
// it, so the name parses back unambiguously; a part may therefore not begin
// or end with a dash.
type WorkloadEndpointIdentifiers struct {
	Node         string
	Orchestrator string
	Endpoint     string
	Workload     string
	Pod          string
	ContainerID  string
}

type wepSegment struct{ field, value string }

// segments lists the name's parts for the orchestrator, in order.
func (ids WorkloadEndpointIdentifiers) segments() []wepSegment {
	node := wepSegment{"node", ids.Node}
	orch := wepSegment{"orchestrator", ids.Orchestrator}
	endp := wepSegment{"endpoint", ids.Endpoint}
	switch ids.Orchestrator {
	case OrchestratorK8s:
		return []wepSegment{node, orch, {"pod", ids.Pod}, endp}
	case OrchestratorCNI:
		return []wepSegment{node, orch, {"containerID", ids.ContainerID}, endp}
	case OrchestratorLibnetwork:
		return []wepSegment{node, orch, orch, endp}
	}
	return []wepSegment{node, orch, {"workload", ids.Workload}, endp}
}

// WorkloadEndpointName returns the name upstream Calico gives the endpoint
// with these identifiers, e.g. node "node-1", orchestrator "cni", container
// "abc", endpoint "eth0" give "node--1-cni-abc-eth0". Every part the
// orchestrator uses is required.
func WorkloadEndpointName(ids WorkloadEndpointIdentifiers) (string, error) {
	segs := ids.segments()
	parts := make([]string, len(segs))
	for i, s := range segs {
		switch {
		case s.value == "":
			return "", fieldErr(s.field, nil, "required to name a workload endpoint")
		case s.value[0] == '-':
			return "", fieldErr(s.field, s.value, "must not begin with a '-'")
		case s.value[len(s.value)-1] == '-':
			return "", fieldErr(s.field, s.value, "must not end with a '-'")
		}
		parts[i] = strings.ReplaceAll(s.value, "-", "--")
	}
	return strings.Join(parts, "-"), nil
}

// splitWEPName splits a name at single dashes, turning "--" back into "-".
func splitWEPName(name string) []string {
	var parts []string
	start := 0
	for i := 1; i < len(name); i++ {
		if name[i] != '-' {
			continue
		}
		if i+1 < len(name) && name[i+1] == '-' {
			i++ // an escaped dash
			continue
		}
		parts = append(parts, strings.ReplaceAll(name[start:i], "--", "-"))
		start = i + 1
	}
	return append(parts, strings.ReplaceAll(name[start:], "--", "-"))
}

// ParseWorkloadEndpointName splits a WorkloadEndpoint name back into its
// identifiers (the inverse of WorkloadEndpointName for complete names).
func ParseWorkloadEndpointName(name string) (WorkloadEndpointIdentifiers, error) {
	if name == "" {
		return WorkloadEndpointIdentifiers{}, fmt.Errorf("parse workload endpoint name: the name is empty")
	}
	parts := splitWEPName(name)
	if len(parts) != 4 {
		return WorkloadEndpointIdentifiers{}, fmt.Errorf("parse workload endpoint name %q: want <node>-<orchestrator>-<workload>-<endpoint> (dashes inside a part doubled), got %d parts", name, len(parts))
	}
	for i, p := range parts {
		if p == "" {
			return WorkloadEndpointIdentifiers{}, fmt.Errorf("parse workload endpoint name %q: part %d is empty", name, i+1)
		}
	}
	ids := WorkloadEndpointIdentifiers{Node: parts[0], Orchestrator: parts[1], Endpoint: parts[3]}
	switch ids.Orchestrator {
	case OrchestratorK8s:
		ids.Pod = parts[2]
	case OrchestratorCNI:
		ids.ContainerID = parts[2]
	case OrchestratorLibnetwork:
		if parts[2] != OrchestratorLibnetwork {
			return WorkloadEndpointIdentifiers{}, fmt.Errorf("parse workload endpoint name %q: a libnetwork name has %q as its third part", name, OrchestratorLibnetwork)
		}
	default:
		ids.Workload = parts[2]
	}
	return ids, nil
}
