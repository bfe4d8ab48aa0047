package agent_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/nft"
)

// TestPrivilegedResyncRepairsVXLAN: what a full resync puts back besides
// routes (TestPrivilegedResyncAndOwnChanges): a remote VTEP's FDB entry
// deleted by hand, and the VXLAN peer filter edited by hand (a foreign
// peer added, a chain's rules flushed).
func TestPrivilegedResyncRepairsVXLAN(t *testing.T) {
	_, n1, a := resyncLab(t)
	peers := "elements = { 10.99.0.12 }"
	waitOutput(t, n1.NS, peers, "nft", "list", "table", "inet", nft.VXLANFilterTableName)
	waitOutput(t, n1.NS, "dst 10.99.0.12 self permanent", "bridge", "fdb", "show", "dev", "vxlan.calico")

	mac := strings.Fields(run(t, n1.NS, "bridge", "fdb", "show", "dev", "vxlan.calico"))
	var hw string
	for i, f := range mac {
		if f == "dst" && i > 0 && mac[i+1] == "10.99.0.12" {
			hw = mac[0]
		}
	}
	if hw == "" {
		t.Fatalf("no FDB entry for n2:\n%s", run(t, n1.NS, "bridge", "fdb", "show", "dev", "vxlan.calico"))
	}
	run(t, n1.NS, "bridge", "fdb", "del", hw, "dev", "vxlan.calico", "dst", "10.99.0.12", "self")
	waitOutput(t, n1.NS, hw+" dst 10.99.0.12 self permanent", "bridge", "fdb", "show", "dev", "vxlan.calico")

	run(t, n1.NS, "nft", "add element inet "+nft.VXLANFilterTableName+" "+nft.SetVXLANPeersV4+" { 192.0.2.9 }")
	waitOutput(t, n1.NS, peers, "nft", "list", "table", "inet", nft.VXLANFilterTableName)
	run(t, n1.NS, "nft", "flush chain inet "+nft.VXLANFilterTableName+" "+nft.ChainVXLANForward)
	waitOutput(t, n1.NS, `iifname "cali*" udp dport 4789 counter name "vxlan-workload-dropped" drop`,
		"nft", "list", "chain", "inet", nft.VXLANFilterTableName, nft.ChainVXLANForward)
	if err := a.Stop(); err != nil {
		t.Errorf("agent ended with %v", err)
	}
}

// resyncLab is the lab of the resync tests: node n1 with VXLAN tunnel
// address 10.244.1.0 in pool1 (VXLAN always), a remote Node n2
// (10.99.0.12, block 10.244.2.0/26), and n1's agent ready with a 0.3 s
// route refresh.
func resyncLab(t *testing.T) (*labtest.Lab, *labtest.Node, *labtest.RunningAgent) {
	t.Helper()
	lab := newLab(t)
	n1 := lab.AddNode("n1", 99, 11)
	lab.Pool("pool1", "10.244.0.0/16", api.VXLANModeAlways, api.IPIPModeNever, true)
	lab.TunnelAddress("n1", addr("10.244.1.0"))
	lab.PutNode("n2", netip.MustParsePrefix("10.99.0.12/24"), addr("10.244.2.0"))
	lab.ClaimBlock("n2", addr("10.244.2.0"))
	cfg := n1.AgentConfig()
	cfg.FelixOverrides = map[string]string{"routerefreshinterval": "0.3s"}
	a := n1.StartAgent(cfg)
	if err := a.WaitReady(20 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, a.Log)
	}
	return lab, n1, a
}
