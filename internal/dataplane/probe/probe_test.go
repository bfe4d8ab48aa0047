package probe

import (
	"fmt"
	"os/exec"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/onecalico/calico/internal/testutil"
)

// rootLinks lists the links of the test's own namespace.
func rootLinks(t *testing.T) []string {
	ls, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range ls {
		names = append(names, fmt.Sprintf("%d:%s", l.Attrs().Index, l.Attrs().Name))
	}
	return names
}

// TestPrivilegedProbeMatchesKernel compares each answer with what `ip link
// add` does in a namespace of the test's own, and checks the caller's
// namespace is left as it was.
func TestPrivilegedProbeMatchesKernel(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCmd(t, "ip", "nft")
	before := rootLinks(t)
	tablesBefore, _ := exec.Command("nft", "list", "tables").Output()
	got := Run()
	if after := rootLinks(t); !slices.Equal(before, after) {
		t.Errorf("links of the caller's namespace changed:\n%v\n%v", before, after)
	}
	if tablesAfter, _ := exec.Command("nft", "list", "tables").Output(); string(tablesAfter) != string(tablesBefore) {
		t.Errorf("nft tables of the caller's namespace changed:\n%s\n%s", tablesBefore, tablesAfter)
	}

	ns := testutil.NewNetNS(t)
	want := map[string]bool{}
	for name, args := range map[string][]string{
		"veth":      {"probe0", "type", "veth", "peer", "name", "probe1"},
		"vxlan":     {"probe-vx", "type", "vxlan", "id", "4096", "dstport", "4789"},
		"ipip":      {"probe-ipip", "type", "ipip"},
		"wireguard": {"probe-wg", "type", "wireguard"},
	} {
		_, err := testutil.RunInErr(ns, append([]string{"ip", "link", "add", "name"}, args...)...)
		want[name] = err == nil
	}
	_, err := testutil.RunInErr(ns, "nft", "add table inet p; add chain inet p post { type nat hook postrouting priority srcnat; }; add rule inet p post masquerade")
	want["nftables"] = err == nil
	if len(got) != len(want) {
		t.Fatalf("probed %d features, want %d: %+v", len(got), len(want), got)
	}
	for _, f := range got {
		if f.OK != want[f.Name] || f.Unknown {
			t.Errorf("%s: probe says ok=%v unknown=%v (%s); ip/nft in a namespace say ok=%v", f.Name, f.OK, f.Unknown, f.Detail, want[f.Name])
		}
	}
	t.Logf("features: %+v", got)
}
