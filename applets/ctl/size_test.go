package ctl

import (
	"fmt"
	"strings"
	"testing"
)

// An oversized resource in a multi-document apply is refused before any
// document is written (issue 8, item 7): one line naming the resource,
// not echoing the value, and the datastore unchanged.
func TestOversizedResourceRefusedBeforeAnyWrite(t *testing.T) {
	c := newCtlEnv(t)
	c.mustRun("apply", "-f", "testdata/resources/pools.json") // initialised datastore
	pool := func(name, cidr, annotations string) string {
		return fmt.Sprintf("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: %s\n%sspec:\n  cidr: %s\n", name, annotations, cidr)
	}
	big := strings.Repeat("x", 2<<20)      // past etcd's 1.5 MiB request limit
	medium := strings.Repeat("y", 300<<10) // past the 256 KiB annotation limit
	many := strings.Repeat("z", 200<<10)   // each within it
	for _, tc := range []struct {
		name, doc2, want string
	}{
		{"2 MiB annotation", pool("p2", "10.2.0.0/16", "  annotations:\n    note: "+big+"\n"), "metadata.annotations: annotations total"},
		{"300 KiB annotation", pool("p2", "10.2.0.0/16", "  annotations:\n    note: "+medium+"\n"), "metadata.annotations: annotations total"},
		{"object past 1 MiB", "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: huge\nspec:\n  nets:\n" +
			strings.Repeat("  - 10.0.0.0/8\n", 100000), "(whole resource): encodes to"},
		{"several annotations adding up", pool("p2", "10.2.0.0/16", "  annotations:\n    a: "+many+"\n    b: "+many+"\n"), "metadata.annotations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := c.snapshot()
			in := pool("p1", "10.1.0.0/16", "") + "---\n" + tc.doc2 + "---\n" + pool("p3", "10.3.0.0/16", "")
			r := c.runIn(in, "apply", "-f", "-")
			oneErrorLine(t, r, "document 2", tc.want)
			if len(r.stderr) > 500 {
				t.Errorf("error echoes the value: %d bytes", len(r.stderr))
			}
			if after := c.snapshot(); after.rev != before.rev {
				t.Errorf("a refused apply wrote: revision %d -> %d, keys %v", before.rev, after.rev, after.keys)
			}
		})
	}
	// Just inside the limits is stored.
	ok := pool("p4", "10.4.0.0/16", "  annotations:\n    a: "+strings.Repeat("k", 250<<10)+"\n")
	if r := c.runIn(ok, "apply", "-f", "-"); r.rc != 0 {
		t.Errorf("250 KiB annotation refused:\n%.500s", r)
	}
}
