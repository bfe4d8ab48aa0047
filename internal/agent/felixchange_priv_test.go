package agent_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/testutil"
)

// TestPrivilegedConfigChangesInPlace changes configuration under two
// running daemons and shows real packets before and after each change:
// the global FelixConfiguration's VXLAN VNI and port (the encapsulated
// packets on the wire use the new port), its VXLAN MTU (a packet of the
// old size no longer fits, one of the new size passes), and the pool's
// natOutgoing (a pod reaches the external host only with NAT).
func TestPrivilegedConfigChangesInPlace(t *testing.T) {
	lab := newLab(t)
	testutil.RequireCmd(t, "tcpdump")
	lab.AddExternal()
	n1, n2 := lab.AddNode("n1", 99, 11), lab.AddNode("n2", 99, 12)
	lab.Pool("pool1", "10.244.0.0/16", api.VXLANModeAlways, api.IPIPModeNever, true)
	lab.TunnelAddress("n1", addr("10.244.1.0"))
	lab.TunnelAddress("n2", addr("10.244.2.0"))
	for _, n := range []*labtest.Node{n1, n2} {
		if err := n.StartAgent(n.AgentConfig()).WaitReady(20 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	a := n1.AddPod("a", addr("10.244.1.2"))
	b := n2.AddPod("b", addr("10.244.2.2"))
	ctx := context.Background()
	// n1's host sends to b below: as upstream, another node's host reaches
	// a pod only when the pod's policy or profile lets it.
	if err := lab.OpenNetworkProfile(ctx, "labnet"); err != nil {
		t.Fatal(err)
	}
	setFelix := func(mut func(s *api.FelixConfigurationSpec)) {
		t.Helper()
		if err := labtest.Poll(10*time.Second, func() error {
			fc, err := datastore.GetOf[*api.FelixConfiguration](ctx, lab.Client, api.KindFelixConfiguration, "", "default")
			if err != nil {
				return err
			}
			mut(&fc.Spec)
			_, err = lab.Client.Update(ctx, fc)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	// wireUDP captures on n2's uplink while a pings b and returns tcpdump's
	// lines for UDP to port.
	wireUDP := func(port int) (string, error) {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for cctx.Err() == nil {
				_ = labtest.Ping(a.NS, b.IP, 1)
			}
		}()
		out, err := labtest.Exec(cctx, n2.NS, "tcpdump", "-i", "eth0", "-n", "-c", "2", "-l", "udp", "and", "dst", "port", fmt.Sprint(port))
		cancel()
		<-done
		return out, err
	}
	pingBoth := func(when string) {
		t.Helper()
		if err := labtest.Ping(a.NS, b.IP, 3); err != nil {
			t.Fatalf("%s: ping a -> b: %v\nn1:\n%s", when, err, dataplaneState(t, n1))
		}
		if err := labtest.Ping(b.NS, a.IP, 3); err != nil {
			t.Fatalf("%s: ping b -> a: %v", when, err)
		}
	}

	// 1. VXLAN VNI and port.
	pingBoth("before any change")
	if out, err := wireUDP(4789); err != nil || !strings.Contains(out, ".4789:") {
		t.Fatalf("no VXLAN packets to port 4789 before the change: %v\n%s", err, out)
	}
	vni, port := 5001, 4790
	setFelix(func(s *api.FelixConfigurationSpec) { s.VXLANVNI, s.VXLANPort = &vni, &port })
	for _, n := range []*labtest.Node{n1, n2} {
		waitOutput(t, n.NS, "vxlan id 5001 ", "ip", "-d", "link", "show", "vxlan.calico")
		waitOutput(t, n.NS, "dstport 4790 ", "ip", "-d", "link", "show", "vxlan.calico")
	}
	pingBoth("after the VNI and port change")
	if out, err := wireUDP(4790); err != nil || !strings.Contains(out, ".4790:") {
		t.Errorf("no VXLAN packets to port 4790 after the change: %v\n%s", err, out)
	}

	// 2. VXLAN MTU: n1 sends DF packets to b through vxlan.calico.
	fits := func(size int) error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := labtest.Exec(cctx, n1.NS, "ping", "-n", "-c", "1", "-W", "1", "-M", "do", "-s", fmt.Sprint(size-28), b.IP.String())
		return err
	}
	if err := fits(1450); err != nil {
		t.Fatalf("a 1450-byte packet over VXLAN before the MTU change: %v", err)
	}
	mtu := 1400
	setFelix(func(s *api.FelixConfigurationSpec) { s.VXLANMTU = &mtu })
	waitOutput(t, n1.NS, "mtu 1400 ", "ip", "link", "show", "vxlan.calico")
	if err := labtest.Poll(10*time.Second, func() error {
		if m, err := agent.ReadMTUFile(n1.MTUFile()); err != nil || m != 1400 {
			return fmt.Errorf("MTU file %d %v", m, err)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if err := fits(1450); err == nil {
		t.Error("a 1450-byte DF packet still passes after vxlanMTU 1400")
	}
	if err := fits(1400); err != nil {
		t.Errorf("a 1400-byte packet after vxlanMTU 1400: %v", err)
	}

	// 3. natOutgoing on the pool: the external host answers a pod only
	// when its source was rewritten to the node's address.
	if err := labtest.Ping(a.NS, labtest.ExternalIP, 3); err != nil {
		t.Fatalf("pod -> external with natOutgoing: %v", err)
	}
	lab.Pool("pool1", "10.244.0.0/16", api.VXLANModeAlways, api.IPIPModeNever, false)
	if err := labtest.Poll(10*time.Second, func() error {
		if labtest.Ping(a.NS, labtest.ExternalIP, 1) == nil {
			return fmt.Errorf("the external host still answers the pod")
		}
		return nil
	}); err != nil {
		t.Errorf("after natOutgoing false: %v", err)
	}
	pingBoth("after natOutgoing false") // pod to pod is not NATed either way
	lab.Pool("pool1", "10.244.0.0/16", api.VXLANModeAlways, api.IPIPModeNever, true)
	if err := labtest.Poll(10*time.Second, func() error { return labtest.Ping(a.NS, labtest.ExternalIP, 1) }); err != nil {
		t.Errorf("after natOutgoing true again: %v", err)
	}
}
