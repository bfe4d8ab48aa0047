package agent_test

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/dataplane/nft"
	"github.com/onecalico/calico/internal/testutil"
)

// TestPrivilegedVXLANFilterMetrics: VXLAN forged by the external host
// (no VTEP) and UDP to the VXLAN port sent by a pod, to its node and
// through it, are dropped by the daemon's VXLAN filter and show on the
// metrics endpoint as calico_vxlan_peer_filter_dropped_packets_total and
// calico_vxlan_workload_dropped_packets_total. With a route refresh (a
// full resync that rewrites the filter table) every 0.3 s, the counts
// stay where they were across several rewrites.
func TestPrivilegedVXLANFilterMetrics(t *testing.T) {
	lab := newLab(t)
	ext := lab.AddExternal()
	n1 := lab.AddNode("n1", 99, 11)
	lab.Pool("pool1", "10.244.0.0/16", api.VXLANModeAlways, api.IPIPModeNever, true)
	lab.TunnelAddress("n1", addr("10.244.1.0"))
	cfg := n1.AgentConfig()
	cfg.DisableListeners = false
	cfg.FelixOverrides = map[string]string{"healthport": "0", "prometheusmetricsenabled": "true",
		"prometheusmetricshost": "127.0.0.1", "prometheusmetricsport": "9191", "routerefreshinterval": "0.3s"}
	a := n1.StartAgent(cfg)
	if err := a.WaitReady(20 * time.Second); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, a.Log)
	}
	pod := n1.AddPod("a", addr("10.244.1.2"))
	scrape := func() string {
		t.Helper()
		code, body, err := httpIn(n1.NS, "http://127.0.0.1:9191/metrics")
		if err != nil || code != 200 {
			t.Fatalf("scrape: %d %v", code, err)
		}
		return body
	}
	value := func(body, name string) (int, error) {
		m := regexp.MustCompile(`(?m)^` + name + ` (\d+)$`).FindStringSubmatch(body)
		if m == nil {
			return 0, fmt.Errorf("no %s in the metrics", name)
		}
		return strconv.Atoi(m[1])
	}
	const peerM, wlM, rewritesM = "calico_vxlan_peer_filter_dropped_packets_total", "calico_vxlan_workload_dropped_packets_total",
		`calico_node_reconcile_seconds_count\{part="vxlan-filter"\}`
	expect := func(peer, wl int) {
		t.Helper()
		if err := labtest.Poll(10*time.Second, func() error {
			body := scrape()
			for _, c := range []struct {
				name string
				want int
			}{{peerM, peer}, {wlM, wl}} {
				if got, err := value(body, c.name); err != nil || got != c.want {
					return fmt.Errorf("%s = %d (%v), want %d", c.name, got, err, c.want)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	send := func(ns string, to netip.Addr, n int) {
		t.Helper()
		for range n {
			if err := netns.Do(ns, func() error {
				conn, err := net.Dial("udp", netip.AddrPortFrom(to, nft.DefaultVXLANPort).String())
				if err != nil {
					return err
				}
				defer conn.Close()
				_, err = conn.Write(make([]byte, 50))
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		_, err := value(scrape(), peerM)
		return err
	})
	expect(0, 0)
	send(ext, n1.IP.Addr(), 3)          // forged: the external host is no VTEP
	send(pod.NS, n1.IP.Addr(), 2)       // a pod to its node's VXLAN port
	send(pod.NS, labtest.ExternalIP, 2) // a pod's VXLAN forwarded through the node
	expect(3, 4)

	// Several full resyncs rewrite the table; the counts carry on.
	rewrites, err := value(scrape(), rewritesM)
	if err != nil {
		t.Fatal(err)
	}
	if err := labtest.Poll(10*time.Second, func() error {
		n, err := value(scrape(), rewritesM)
		if err == nil && n < rewrites+3 {
			err = fmt.Errorf("the filter was applied %d times, want at least %d", n, rewrites+3)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	expect(3, 4)
	send(ext, n1.IP.Addr(), 1)
	expect(4, 4)
}
