package ctl

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/ipam"
)

// Deleting a pool disables it, releases every node's affinity to its blocks
// (deleting the empty ones, un-affining the ones still in use), then deletes it.
func TestDeletePoolReleasesBlockAffinities(t *testing.T) {
	c := newCtlEnv(t)
	ctx := context.Background()
	r := c.runIn(`apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node1}
spec: {bgp: {ipv4Address: 10.99.0.11/24}}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p1}
spec: {cidr: 10.80.0.0/16}
`, "apply", "-f", "-")
	if r.rc != 0 {
		t.Fatalf("apply:\n%s", r)
	}
	alloc := ipam.New(c.store, ipam.Options{})
	// Two blocks for node1: one keeps an address, one is emptied again.
	keep, _, err := alloc.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, HandleID: "keep", Hostname: "node1", MaxBlocksPerHost: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alloc.AssignIP(ctx, ipam.AssignIPArgs{IP: netip.MustParseAddr("10.80.200.1"), HandleID: "gone", Hostname: "node1"}); err != nil {
		t.Fatal(err)
	}
	if err := alloc.ReleaseByHandle(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	affinities, _, _ := c.store.List(ctx, api.HostAffinityPrefix("node1", 4))
	if len(affinities) != 2 {
		t.Fatalf("%d affinities before delete, want 2", len(affinities))
	}

	if r := c.run("delete", "ippool", "p1"); r.rc != 0 || !strings.Contains(r.stdout, "Successfully deleted 1 'IPPool' resource(s)") {
		t.Fatalf("delete:\n%s", r)
	}
	if affinities, _, _ := c.store.List(ctx, api.HostAffinityPrefix("node1", 4)); len(affinities) != 0 {
		t.Fatalf("affinities left after deleting the pool: %v", affinities)
	}
	blocks, _, _ := c.store.List(ctx, api.BlockPrefix(4))
	if len(blocks) != 1 || !strings.Contains(string(blocks[0].Value), `"affinity":null`) {
		t.Fatalf("blocks after delete: want only the one in use, un-affined: %v", blocks)
	}
	if ips, err := alloc.IPsByHandle(ctx, "keep"); err != nil || len(ips) != 1 || ips[0] != keep[0].Addr() {
		t.Fatalf("the address in use was lost: %v %v", ips, err)
	}
}
