package ctl

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/ipam"
)

// Deleting a Node cleans up after it as upstream's client does: the
// addresses of its endpoints and its tunnel address are released, its
// endpoints, affinities, BGP peers, per-node configuration and host
// endpoints are deleted; another node's data is untouched.
func TestDeleteNodeCleansUp(t *testing.T) {
	c := newCtlEnv(t)
	ctx := context.Background()
	if r := c.runIn(`apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p1}
spec: {cidr: 10.80.0.0/16, vxlanMode: Always}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node1}
spec: {bgp: {ipv4Address: 10.99.0.11/24}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node2}
spec: {bgp: {ipv4Address: 10.99.0.12/24}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: node1-tor}
spec: {node: node1, peerIP: 10.99.0.1, asNumber: 64512}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: node2-tor}
spec: {node: node2, peerIP: 10.99.0.1, asNumber: 64512}
---
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata: {name: node.node1}
spec: {}
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-eth0}
spec: {node: node1, interfaceName: eth0}
`, "apply", "-f", "-"); r.rc != 0 {
		t.Fatalf("apply:\n%s", r)
	}
	alloc := ipam.New(c.store, ipam.Options{})
	addrOf := func(host, handle string) netip.Addr {
		t.Helper()
		v4, _, err := alloc.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, HandleID: handle, Hostname: host})
		if err != nil || len(v4) != 1 {
			t.Fatalf("assign for %s: %v %v", host, v4, err)
		}
		return v4[0].Addr()
	}
	tunnel, err := alloc.EnsureTunnelAddress(ctx, "node1", ipam.TunnelVXLAN, []string{"p1"})
	if err != nil {
		t.Fatal(err)
	}
	pod1, pod2 := addrOf("node1", "pod1"), addrOf("node2", "pod2")
	if r := c.runIn(`apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node1}
spec: {bgp: {ipv4Address: 10.99.0.11/24}, ipv4VXLANTunnelAddr: `+tunnel.String()+`}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: node1-cni-pod1-eth0, namespace: default}
spec: {node: node1, orchestrator: cni, containerID: pod1, endpoint: eth0, interfaceName: calipod1, ipNetworks: [`+pod1.String()+`/32]}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: node2-cni-pod2-eth0, namespace: default}
spec: {node: node2, orchestrator: cni, containerID: pod2, endpoint: eth0, interfaceName: calipod2, ipNetworks: [`+pod2.String()+`/32]}
`, "apply", "-f", "-"); r.rc != 0 {
		t.Fatalf("apply:\n%s", r)
	}

	if r := c.run("delete", "node", "node1"); r.rc != 0 || !strings.Contains(r.stdout, "Successfully deleted 1 'Node' resource(s)") {
		t.Fatalf("delete:\n%s", r)
	}
	keys := func(prefix string) []string {
		items, _, err := c.store.List(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, it := range items {
			out = append(out, strings.TrimPrefix(it.Key, prefix))
		}
		return out
	}
	for _, check := range []struct {
		prefix string
		want   []string
	}{
		{api.ResourcePrefix + "nodes/", []string{"node2"}},
		{api.ResourcePrefix + "workloadendpoints/", []string{"default/node2-cni-pod2-eth0"}},
		{api.ResourcePrefix + "bgppeers/", []string{"node2-tor"}},
		{api.ResourcePrefix + "felixconfigurations/", nil},
		{api.ResourcePrefix + "hostendpoints/", nil},
		{api.HostAffinityPrefix("node1", 4), nil},
		{api.IPAMHandlePrefix, []string{"pod2"}},
	} {
		if got := keys(check.prefix); !slices.Equal(got, check.want) {
			t.Errorf("%s: got %q, want %q", check.prefix, got, check.want)
		}
	}
	if got := keys(api.HostAffinityPrefix("node2", 4)); len(got) != 1 {
		t.Errorf("node2's affinity: %q", got)
	}
	for _, a := range []netip.Addr{pod1, tunnel} {
		if info, err := alloc.Lookup(ctx, a); !errors.Is(err, ipam.ErrNotAllocated) {
			t.Errorf("%s: want not allocated, got %+v %v", a, info, err)
		}
	}
	if ips, err := alloc.IPsByHandle(ctx, "pod2"); err != nil || len(ips) != 1 || ips[0] != pod2 {
		t.Errorf("node2's address was lost: %v %v", ips, err)
	}
	// node1's block was empty, so it is gone.
	block, _ := pod1.Prefix(26)
	if _, err := c.store.Get(ctx, api.BlockKey(block)); err == nil {
		t.Errorf("node1's empty block %s is still there", block)
	}
}
