package ctl

import (
	"strings"
	"testing"
)

// TestBGPFeatureValuesRefused: calicoctl apply of a bad value in the BGP
// fields (BGPFilter interface, priority, setPriority, prependASPath;
// BGPPeer localWorkloadSelector; BGPConfiguration ignoredInterfaces)
// prints one line naming the document and the field and writes nothing,
// not even the valid document before it.
func TestBGPFeatureValuesRefused(t *testing.T) {
	c := newCtlEnv(t)
	ok := "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {name: good}\nspec:\n  exportV4: [{interface: \"dummy*\", action: Accept, operations: [{prependASPath: {prefix: [65010, 65020]}}]}]\n---\n"
	cases := []struct{ doc, want string }{
		{"kind: BGPFilter\nmetadata: {name: f}\nspec:\n  exportV4: [{interface: \"eth/0\", action: Accept}]\n", "spec.exportV4[0].interface"},
		{"kind: BGPFilter\nmetadata: {name: f}\nspec:\n  importV4: [{action: Accept, operations: [{setPriority: {value: 0}}]}]\n", "spec.importV4[0].operations[0].setPriority.value"},
		{"kind: BGPFilter\nmetadata: {name: f}\nspec:\n  exportV6: [{priority: 2147483647, action: Reject}]\n", "spec.exportV6[0].priority"},
		{"kind: BGPFilter\nmetadata: {name: f}\nspec:\n  exportV4: [{action: Accept, operations: [{prependASPath: {prefix: [1,2,3,4,5,6,7,8,9,10,11]}}]}]\n", "spec.exportV4[0].operations[0].prependASPath.prefix"},
		{"kind: BGPPeer\nmetadata: {name: p}\nspec: {localWorkloadSelector: \"role == 'x'\"}\n", "spec.asNumber"},
		{"kind: BGPPeer\nmetadata: {name: p}\nspec: {localWorkloadSelector: \"role ==\", asNumber: 65401}\n", "spec.localWorkloadSelector"},
		{"kind: BGPConfiguration\nmetadata: {name: default}\nspec: {ignoredInterfaces: [\"*\"]}\n", "spec.ignoredInterfaces[0]"},
		{"kind: BGPConfiguration\nmetadata: {name: default}\nspec: {localWorkloadPeeringIPV4: \"fd12::1\"}\n", "spec.localWorkloadPeeringIPV4"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			before := c.snapshot()
			r := c.runIn(ok+"apiVersion: projectcalico.org/v3\n"+tc.doc, "apply", "-f", "-")
			oneErrorLine(t, r, "document 2", tc.want)
			after := c.snapshot()
			if after.rev != before.rev || strings.Join(after.keys, ",") != strings.Join(before.keys, ",") {
				t.Errorf("etcd changed: keys %v -> %v", before.keys, after.keys)
			}
		})
	}
	if r := c.runIn(strings.TrimSuffix(ok, "---\n"), "apply", "-f", "-"); r.rc != 0 {
		t.Errorf("the valid filter alone is refused: %s", r)
	}
}
