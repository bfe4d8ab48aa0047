package agent_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/agent"
	"github.com/onecalico/calico/internal/agent/counted"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
	"github.com/onecalico/calico/internal/ipam"
	"github.com/onecalico/calico/internal/testutil"
)

// passLog keeps the daemon's "applied" lines (one per reconcile pass).
type passLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *passLog) Write(p []byte) (int, error) {
	if s := string(p); strings.Contains(s, "msg=applied ") {
		l.mu.Lock()
		l.lines = append(l.lines, s)
		l.mu.Unlock()
	}
	return len(p), nil
}

// since returns the lines after the first n.
func (l *passLog) since(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines[n:]...)
}

func (l *passLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// TestGlobalChangesFollowedIncrementally runs a daemon (real etcd, the
// counted kernel) and changes what every node depends on: the pool's
// natOutgoing, FelixConfiguration vxlanMTU, the pool's vxlanMode, this
// node's labels. Each reaches the kernel through incremental passes only;
// a VXLAN VNI change (the device is recreated) still takes a full one.
func TestGlobalChangesFollowedIncrementally(t *testing.T) {
	ctx := context.Background()
	st := agent.EtcdStore(t)
	c := datastore.NewClient(st)
	pool := api.NewIPPool()
	pool.Name = "p"
	pool.Spec = api.IPPoolSpec{CIDR: "10.64.0.0/16", VXLANMode: api.VXLANModeAlways, IPIPMode: api.IPIPModeNever,
		NATOutgoing: true, BlockSize: 26, NodeSelector: "all()"}
	if _, err := c.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"n1", "n2"} {
		n := api.NewNode()
		n.Name = name
		n.Spec.BGP = &api.NodeBGPSpec{IPv4Address: fmt.Sprintf("172.16.0.%d/12", i+1)}
		n.Spec.IPv4VXLANTunnelAddr = fmt.Sprintf("10.64.%d.1", i)
		// With its MAC the tunnel address loop has nothing to record on
		// n1 (a change of this node's MAC takes a full pass).
		n.Spec.VXLANTunnelMACAddr = agent.VTEPMAC(name).String()
		if _, err := c.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	v4, _, err := ipam.New(st, ipam.Options{}).AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Hostname: "n2", Attrs: map[string]string{"node": "n2"}})
	if err != nil || len(v4) != 1 {
		t.Fatalf("assign an address on n2: %v %v", v4, err)
	}
	blk, _ := v4[0].Addr().Prefix(26)

	k := counted.New(counted.Host{Iface: "eth0", Addr: netip.MustParsePrefix("172.16.0.1/12")})
	logs := &passLog{}
	dir := t.TempDir()
	a, err := agent.New(agent.Config{Store: st, NodeName: "n1", IP: "172.16.0.1/12", Backend: agent.BackendVXLAN, NoDefaultPools: true,
		NodenameFile: filepath.Join(dir, "nodename"), MTUFile: filepath.Join(dir, "mtu"), RunDir: dir, DisableListeners: true, Kernel: k,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(actx) }()
	t.Cleanup(func() { cancel(); <-done })

	wait := func(what string, cond func() bool) {
		t.Helper()
		if err := testutil.Poll(20*time.Second, func() error {
			if !cond() {
				return fmt.Errorf("waiting for %s", what)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	wait("the route to n2's block", func() bool { r, _, ok := k.Route(blk); return ok && r.LinkName == agent.VXLANDevice })
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatalf("daemon stopped: %v", err)
	}
	// Startup's own passes (its Node and FelixConfiguration writes) are
	// over once a Node change is followed by incremental passes only.
	warm := false
	for i := range 20 {
		n := logs.len()
		n3 := api.NewNode()
		n3.Name = fmt.Sprintf("warm%d", i)
		n3.Spec.BGP = &api.NodeBGPSpec{IPv4Address: fmt.Sprintf("172.16.1.%d/12", i+1)}
		n3.Spec.IPv4VXLANTunnelAddr = fmt.Sprintf("10.64.2.%d", i+1)
		if _, err := c.Create(ctx, n3); err != nil {
			t.Fatal(err)
		}
		wait("the VTEP of "+n3.Name, func() bool {
			_, _, ok := k.VTEP(netip.MustParseAddr(n3.Spec.IPv4VXLANTunnelAddr))
			return ok && logs.len() > n
		})
		if warm = !slices.ContainsFunc(logs.since(n), func(l string) bool { return !strings.Contains(l, "incremental=true") }); warm {
			break
		}
	}
	if !warm {
		t.Fatal("no Node change was followed incrementally after startup")
	}
	// step makes a change and waits for it in the kernel (and for a pass
	// after it); then every pass since must be incremental, or (full) a
	// full one among them.
	step := func(what string, full bool, change func(), done func() bool) {
		t.Helper()
		n := logs.len()
		change()
		wait(what, func() bool { return done() && logs.len() > n })
		fulls := 0
		for _, l := range logs.since(n) {
			if !strings.Contains(l, "incremental=true") {
				fulls++
			}
		}
		if full != (fulls > 0) {
			t.Errorf("%s: %d full passes of %d, want a full one: %v\n%s", what, fulls, len(logs.since(n)), full, strings.Join(logs.since(n), ""))
		}
	}
	updatePool := func(mut func(s *api.IPPoolSpec)) func() {
		return func() {
			if err := testutil.Poll(10*time.Second, func() error {
				p, err := datastore.GetOf[*api.IPPool](ctx, c, api.KindIPPool, "", "p")
				if err != nil {
					return err
				}
				mut(&p.Spec)
				_, err = c.Update(ctx, p)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	updateFelix := func(mut func(s *api.FelixConfigurationSpec)) func() {
		return func() {
			if err := testutil.Poll(10*time.Second, func() error {
				fc, err := datastore.GetOf[*api.FelixConfiguration](ctx, c, api.KindFelixConfiguration, "", "default")
				if err != nil {
					return err
				}
				mut(&fc.Spec)
				_, err = c.Update(ctx, fc)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	vxlan := func() vxlanDev { v, _ := k.VXLAN(agent.VXLANDevice); return vxlanDev{v.MTU, v.VNI} }

	step("natOutgoing off", false, updatePool(func(s *api.IPPoolSpec) { s.NATOutgoing = false }),
		func() bool { return len(k.NAT().NAT.MasqPools) == 0 })
	mtu := 1400
	step("vxlanMTU 1400", false, updateFelix(func(s *api.FelixConfigurationSpec) { s.VXLANMTU = &mtu }), func() bool {
		m, err := agent.ReadMTUFile(filepath.Join(dir, "mtu"))
		return vxlan().mtu == 1400 && err == nil && m == 1400
	})
	step("vxlanMode CrossSubnet", false, updatePool(func(s *api.IPPoolSpec) { s.VXLANMode = api.VXLANModeCrossSubnet }),
		func() bool { r, _, ok := k.Route(blk); return ok && r.LinkName == "eth0" })
	step("this node's labels", false, func() {
		if err := testutil.Poll(10*time.Second, func() error {
			n, err := datastore.GetOf[*api.Node](ctx, c, api.KindNode, "", "n1")
			if err != nil {
				return err
			}
			n.Labels = map[string]string{"zone": "b"}
			_, err = c.Update(ctx, n)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}, func() bool { return true })
	vni := 5000
	step("VNI 5000", true, updateFelix(func(s *api.FelixConfigurationSpec) { s.VXLANVNI = &vni }),
		func() bool { return vxlan().vni == 5000 })
}

type vxlanDev struct{ mtu, vni int }
