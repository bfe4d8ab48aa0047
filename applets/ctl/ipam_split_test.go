package ctl

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/ipam"
)

// TestIPAMSplit splits a pool with an allocation in it: refused while the
// datastore is unlocked, then two children that keep the settings replace
// the parent in one transaction, and the allocation stays valid; a split
// finer than a block is refused and writes nothing.
func TestIPAMSplit(t *testing.T) {
	ctx := context.Background()
	c := newCtlEnv(t)
	if r := c.runIn(`apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p1, labels: {zone: a}}
spec: {cidr: 10.80.0.0/16, natOutgoing: true, vxlanMode: Always, blockSize: 26}
`, "apply", "-f", "-"); r.rc != 0 {
		t.Fatalf("apply:\n%s", r)
	}
	alloc := ipam.New(c.store, ipam.Options{})
	if _, err := alloc.AssignIP(ctx, ipam.AssignIPArgs{IP: netip.MustParseAddr("10.80.200.1"), HandleID: "keep", Hostname: "node1"}); err != nil {
		t.Fatal(err)
	}

	before := c.snapshot()
	if r := c.run("ipam", "split", "2", "--name=p1"); r.rc != 1 || !strings.Contains(r.stderr, "datastore is not locked") {
		t.Fatalf("split while unlocked:\n%s", r)
	}
	if c.snapshot().rev != before.rev {
		t.Fatal("a refused split wrote something")
	}
	c.mustRun("datastore", "migrate", "lock")
	for _, args := range [][]string{{"3", "--name=p1"}, {"2"}, {"2", "--name=p1", "--cidr=10.80.0.0/16"}} {
		if r := c.run(append([]string{"ipam", "split"}, args...)...); r.rc == 0 {
			t.Errorf("split %v succeeded:\n%s", args, r)
		}
	}
	before = c.snapshot()
	if r := c.run("ipam", "split", "2048", "--cidr=10.80.0.0/16"); r.rc != 1 || !strings.Contains(r.stderr, "smaller than one block") {
		t.Errorf("split finer than a block:\n%s", r)
	}
	if c.snapshot().rev != before.rev {
		t.Fatal("a refused split wrote something")
	}

	r := c.mustRun("ipam", "split", "2", "--cidr=10.80.0.0/16")
	want := "Successfully split IPPool p1 (10.80.0.0/16) into 2 IP pools: p1-10-80-0-0-17 (10.80.0.0/17), p1-10-80-128-0-17 (10.80.128.0/17)\n"
	if r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	if r := c.run("get", "ippool", "p1"); r.rc == 0 {
		t.Error("the parent pool survived the split")
	}
	for _, name := range []string{"p1-10-80-0-0-17", "p1-10-80-128-0-17"} {
		r := c.mustRun("get", "ippool", name, "-o", "yaml")
		for _, w := range []string{"natOutgoing: true", "vxlanMode: Always", "blockSize: 26", "zone: a"} {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%s lacks %q:\n%s", name, w, r.stdout)
			}
		}
	}
	info, err := alloc.Lookup(ctx, netip.MustParseAddr("10.80.200.1"))
	if err != nil || info.HandleID == nil || *info.HandleID != "keep" {
		t.Errorf("the allocation after the split: %+v %v", info, err)
	}
	c.mustRun("datastore", "migrate", "unlock")
}

func TestSplitPoolIPv6(t *testing.T) {
	p := api.NewIPPool()
	p.Name = "v6"
	p.Spec.CIDR = "fd00:10::/120"
	kids, err := splitPool(p, 4)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range kids {
		got = append(got, k.Name+"="+k.Spec.CIDR)
	}
	if w := "v6-fd00-10---122=fd00:10::/122 v6-fd00-10--40-122=fd00:10::40/122 v6-fd00-10--80-122=fd00:10::80/122 v6-fd00-10--c0-122=fd00:10::c0/122"; strings.Join(got, " ") != w {
		t.Errorf("children %s", strings.Join(got, " "))
	}
	if _, err := splitWrites(p, 5, kids); err != nil {
		t.Errorf("children do not validate: %v", err)
	}
}
