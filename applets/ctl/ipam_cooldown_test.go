package ctl

import (
	"context"
	"strings"
	"testing"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/ipam"
)

// TestIPAMConfigureCooldown: --ip-cooldown-seconds writes upstream
// master's ipCooldownSeconds; configure without it keeps the value; show
// and check count a cooling address as neither in use nor leaked.
func TestIPAMConfigureCooldown(t *testing.T) {
	x := newIPAMEnv(t)
	ctx := context.Background()
	out, _, rc := x.ctl("ipam", "configure", "--ip-cooldown-seconds=300")
	if rc != 0 || out != "Successfully set IPCooldownSeconds to: 300\n" {
		t.Fatalf("configure: rc %d %q", rc, out)
	}
	stored := func() string {
		item, err := x.store.Get(ctx, api.IPAMConfigKey)
		if err != nil {
			t.Fatal(err)
		}
		return string(item.Value)
	}
	want := `{"auto_allocate_blocks":true,"kubeVirtVMAddressPersistence":"Enabled","ipCooldownSeconds":300}`
	if got := stored(); got != want {
		t.Fatalf("stored %s, want %s", got, want)
	}
	if _, _, rc := x.ctl("ipam", "configure", "--strictaffinity=true"); rc != 0 {
		t.Fatalf("configure strict: rc %d", rc)
	}
	if got := stored(); !strings.Contains(got, `"ipCooldownSeconds":300`) || !strings.Contains(got, `"strict_affinity":true`) {
		t.Fatalf("configure without the flag changed the cooldown: %s", got)
	}
	for _, bad := range []string{"-1", "soon"} {
		if _, errs, rc := x.ctl("ipam", "configure", "--ip-cooldown-seconds="+bad); rc != exitUsage || !strings.Contains(errs, "ip-cooldown-seconds") {
			t.Fatalf("--ip-cooldown-seconds=%s: rc %d %q", bad, rc, errs)
		}
	}
	out, _, _ = x.ctl("ipam", "show", "--show-configuration")
	if !strings.Contains(out, "| IPCooldownSeconds            |     300 |") {
		t.Fatalf("show-configuration:\n%s", out)
	}

	node := api.NewNode()
	node.Name = "n1"
	if _, err := x.c.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	p := api.NewIPPool()
	p.Name, p.Spec.CIDR, p.Spec.BlockSize = "p", "10.7.0.0/30", 30
	if _, err := x.c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	a := ipam.New(x.store, ipam.Options{})
	v4, _, err := a.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 2, HandleID: "h", Hostname: "n1", Attrs: map[string]string{"node": "n1"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.ReleaseIPs(ctx, []ipam.ReleaseOptions{{Address: v4[0].Addr()}}); err != nil {
		t.Fatal(err)
	}
	out, _, _ = x.ctl("ipam", "show", "--show-blocks")
	if !strings.Contains(out, "| IP Pool  | 10.7.0.0/30 |         4 | 1 (25%)    | 2 (50%)  |") || !strings.Contains(out, "1 released IP(s) are cooling down") {
		t.Fatalf("show:\n%s", out)
	}
	out, _, _ = x.ctl("ipam", "show", "--ip="+v4[0].Addr().String())
	if !strings.HasPrefix(out, v4[0].Addr().String()+" is not assigned: released at ") || !strings.Contains(out, "ipCooldownSeconds 300") {
		t.Fatalf("show --ip of a cooling address: %q", out)
	}
	out, _, _ = x.ctl("ipam", "check")
	if !strings.Contains(out, "IPAM blocks record 1 allocations.\n1 released IPs are cooling down") || !strings.Contains(out, "Found 1 IPs that are allocated in IPAM but not actually in use.") {
		t.Fatalf("check:\n%s", out)
	}
}
