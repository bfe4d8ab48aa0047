package api

import (
	"strings"
	"testing"
)

func TestWorkloadEndpointName(t *testing.T) {
	for _, c := range []struct {
		ids  WorkloadEndpointIdentifiers
		want string
	}{
		// Examples from upstream's observed names (calico-observed.md §3, calico.md §1.3).
		{WorkloadEndpointIdentifiers{Node: "node1", Orchestrator: "cni", ContainerID: "anchorp1", Endpoint: "eth0"}, "node1-cni-anchorp1-eth0"},
		{WorkloadEndpointIdentifiers{Node: "node-1", Orchestrator: "cni", ContainerID: "abc", Endpoint: "eth0"}, "node--1-cni-abc-eth0"},
		{WorkloadEndpointIdentifiers{Node: "node1", Orchestrator: "k8s", Pod: "web-1", Endpoint: "eth0"}, "node1-k8s-web--1-eth0"},
		{WorkloadEndpointIdentifiers{Node: "n", Orchestrator: "libnetwork", Endpoint: "ep-1"}, "n-libnetwork-libnetwork-ep--1"},
		{WorkloadEndpointIdentifiers{Node: "n", Orchestrator: "mesos", Workload: "w--x", Endpoint: "e"}, "n-mesos-w----x-e"},
		// The parts the orchestrator does not use are ignored.
		{WorkloadEndpointIdentifiers{Node: "n", Orchestrator: "cni", ContainerID: "c", Pod: "ignored", Workload: "ignored", Endpoint: "e"}, "n-cni-c-e"},
	} {
		got, err := WorkloadEndpointName(c.ids)
		if err != nil || got != c.want {
			t.Errorf("WorkloadEndpointName(%+v) = %q, %v; want %q", c.ids, got, err, c.want)
			continue
		}
		back, err := ParseWorkloadEndpointName(got)
		want := c.ids
		switch want.Orchestrator {
		case "cni":
			want.Pod, want.Workload = "", ""
		case "k8s":
			want.ContainerID, want.Workload = "", ""
		}
		if err != nil || back != want {
			t.Errorf("ParseWorkloadEndpointName(%q) = %+v, %v; want %+v", got, back, err, want)
		}
	}
}

func TestWorkloadEndpointNameErrors(t *testing.T) {
	for _, c := range []struct {
		ids  WorkloadEndpointIdentifiers
		want string
	}{
		{WorkloadEndpointIdentifiers{Orchestrator: "cni", ContainerID: "c", Endpoint: "e"}, "node: required"},
		{WorkloadEndpointIdentifiers{Node: "n", Orchestrator: "cni", Endpoint: "e"}, "containerID: required"},
		{WorkloadEndpointIdentifiers{Node: "n", Orchestrator: "k8s", ContainerID: "c", Endpoint: "e"}, "pod: required"},
		{WorkloadEndpointIdentifiers{Node: "n", Orchestrator: "cni", ContainerID: "c"}, "endpoint: required"},
		{WorkloadEndpointIdentifiers{Node: "-n", Orchestrator: "cni", ContainerID: "c", Endpoint: "e"}, `node = "-n": must not begin`},
		{WorkloadEndpointIdentifiers{Node: "n", Orchestrator: "k8s", Pod: "p-", Endpoint: "e"}, `pod = "p-": must not end`},
	} {
		if _, err := WorkloadEndpointName(c.ids); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("WorkloadEndpointName(%+v) error %v, want it to contain %q", c.ids, err, c.want)
		}
	}
	for _, name := range []string{"", "a-b-c", "a-b-c-d-e", "a-cni--c-d", "a-libnetwork-x-e", "a--cni-b"} {
		if ids, err := ParseWorkloadEndpointName(name); err == nil {
			t.Errorf("ParseWorkloadEndpointName(%q) = %+v, want an error", name, ids)
		}
	}
}

func FuzzWorkloadEndpointName(f *testing.F) {
	f.Add("node-1", "cni", "abc-", "eth0")
	f.Fuzz(func(t *testing.T, node, orch, mid, ep string) {
		ids := WorkloadEndpointIdentifiers{Node: node, Orchestrator: orch, Endpoint: ep, Workload: mid, Pod: mid, ContainerID: mid}
		name, err := WorkloadEndpointName(ids)
		if err != nil {
			return
		}
		back, err := ParseWorkloadEndpointName(name)
		if err != nil {
			t.Fatalf("ParseWorkloadEndpointName(%q): %v", name, err)
		}
		again, err := WorkloadEndpointName(back)
		if err != nil || again != name {
			t.Fatalf("round trip %q -> %+v -> %q, %v", name, back, again, err)
		}
	})
}
