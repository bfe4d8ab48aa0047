package agent_test

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/agent/labtest"
	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore/etcd"
	"github.com/onecalico/calico/internal/testutil"
)

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// dataplaneLines is dataplaneState as a sorted set of lines, without what
// the kernel changes by itself (IPv6 address "tentative" flags, neighbour
// order, blank lines).
func dataplaneLines(t *testing.T, n *labtest.Node) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(dataplaneState(t, n), "\n") {
		if l = strings.TrimSpace(strings.ReplaceAll(l, " tentative", "")); l != "" {
			out = append(out, l)
		}
	}
	return sorted(out)
}

// metricValue reads one sample from the daemon's metrics in ns.
func metricValue(t *testing.T, ns, name string) float64 {
	t.Helper()
	code, body, err := httpIn(ns, "http://127.0.0.1:9091/metrics")
	if err != nil || code != 200 {
		t.Fatalf("metrics: %d %v", code, err)
	}
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("metrics lack %s:\n%s", name, body)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestPrivilegedDatastoreLoss runs the daemon against an etcd in a child
// process, then takes the datastore away twice: kill -9 (connections
// reset) and SIGSTOP (a partition: connections stay open, nothing
// answers). Each time the daemon must say so within seconds (readiness
// 503 with the reason, calicoctl node status, one log line, the metrics),
// leave the dataplane exactly as it was, and once the datastore is back,
// program a remote block written then without waiting for a long
// reconnect back-off. The catch-up times are logged.
func TestPrivilegedDatastoreLoss(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCmd(t, "ip", "bridge", "nft")
	ep := testutil.StartEtcdProcess(t)
	lab := labtest.New(t, testutil.NewNetNS, ep.Endpoint)
	n1 := lab.AddNode("n1", 99, 11)
	lab.Pool("pool1", "10.244.0.0/16", api.VXLANModeAlways, api.IPIPModeNever, true)
	lab.TunnelAddress("n1", addr("10.244.1.0"))
	lab.PutNode("n2", netip.MustParsePrefix("10.99.0.12/24"), addr("10.244.2.0"))
	lab.ClaimBlock("n2", addr("10.244.2.0"))
	// n3 and n4 get their blocks while the datastore is coming back.
	lab.PutNode("n3", netip.MustParsePrefix("10.99.0.13/24"), addr("10.244.3.0"))
	lab.PutNode("n4", netip.MustParsePrefix("10.99.0.14/24"), addr("10.244.4.0"))

	// The daemon has its own client, as a real calico-node has.
	st, err := etcd.New(etcd.Config{Endpoints: []string{ep.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := n1.AgentConfig()
	cfg.Store = st
	cfg.DisableListeners = false
	cfg.FelixOverrides = map[string]string{"healthport": "9099", "healthhost": "127.0.0.1",
		"prometheusmetricsenabled": "true", "prometheusmetricshost": "127.0.0.1", "prometheusmetricsport": "9091"}
	a := n1.StartAgent(cfg)
	if err := a.WaitReady(30 * time.Second); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, a.Log)
	}
	want := []string{"blackhole 10.244.1.0/26 proto 80", "10.244.2.0/26 via 10.244.2.0 dev vxlan.calico onlink proto 80"}
	waitRoutes(t, n1, want...)
	want = sorted(want)
	if err := labtest.Poll(10*time.Second, func() error {
		if s := a.Status(); s.VTEPs != 3 {
			return fmt.Errorf("%d VXLAN peers, want 3", s.VTEPs)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if v := metricValue(t, n1.NS, "calico_node_datastore_connected"); v != 1 {
		t.Fatalf("calico_node_datastore_connected = %v before any outage", v)
	}
	ctl := filepath.Join(labtest.BinDir(t), "calicoctl")

	for i, ph := range []struct {
		name     string
		down, up func()
	}{
		{"kill -9", ep.Kill, ep.Start},
		{"SIGSTOP (partition)", ep.Pause, ep.Resume},
	} {
		node := fmt.Sprintf("n%d", 3+i)
		block := netip.MustParsePrefix(fmt.Sprintf("10.244.%d.0/26", 3+i))
		before := dataplaneLines(t, n1)
		errs0 := metricValue(t, n1.NS, "calico_node_datastore_errors_total")
		lost0, back0 := strings.Count(a.Log.String(), "datastore unreachable"), strings.Count(a.Log.String(), "datastore reachable again")

		down := time.Now()
		ph.down()
		var body string
		if err := labtest.Poll(20*time.Second, func() error {
			var code int
			code, body, err = httpIn(n1.NS, "http://127.0.0.1:9099/readiness")
			if err != nil || code != 503 || !strings.Contains(body, "datastore unreachable") {
				return fmt.Errorf("readiness %d %q %v", code, body, err)
			}
			return nil
		}); err != nil {
			t.Fatalf("%s: the daemon did not notice: %v\nlog:\n%s", ph.name, err, a.Log)
		}
		detect := time.Since(down)
		out, err := runCmd(t, ctl, nil, "node", "status", "--run-dir", n1.RunDir())
		if err != nil || !regexp.MustCompile(`Ready:\s+no`).MatchString(out) || !regexp.MustCompile(`Datastore:\s+datastore unreachable`).MatchString(out) {
			t.Errorf("%s: calicoctl node status: %v\n%s", ph.name, err, out)
		}
		if v := metricValue(t, n1.NS, "calico_node_datastore_connected"); v != 0 {
			t.Errorf("%s: calico_node_datastore_connected = %v during the outage", ph.name, v)
		}
		// Let the outage last (the errors counter rises with every failed
		// probe, so 8 more take 8-24 s): a client's reconnect back-off
		// grows with it. Then check the dataplane is untouched.
		if err := labtest.Poll(60*time.Second, func() error {
			if v := metricValue(t, n1.NS, "calico_node_datastore_errors_total"); v < errs0+8 {
				return fmt.Errorf("calico_node_datastore_errors_total = %v, want >= %v", v, errs0+8)
			}
			return nil
		}); err != nil {
			t.Errorf("%s: %v", ph.name, err)
		}
		if after := dataplaneLines(t, n1); !slices.Equal(after, before) {
			t.Errorf("%s: the dataplane changed during the outage:\nbefore:\n%s\nafter:\n%s", ph.name, strings.Join(before, "\n"), strings.Join(after, "\n"))
		}
		if got := sorted(ownedRoutes(t, n1)); !slices.Equal(got, want) {
			t.Errorf("%s: routes during the outage %q, want %q", ph.name, got, want)
		}

		// Back: a fresh writer commits a new remote block at once.
		ph.up()
		back := time.Now()
		w, err := etcd.New(etcd.Config{Endpoints: []string{ep.Endpoint}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Commit(context.Background(), labtest.ClaimWrites(node, block)); err != nil {
			t.Fatalf("%s: write after the datastore came back: %v", ph.name, err)
		}
		written := time.Now()
		w.Close()
		route := fmt.Sprintf("%s via %s dev vxlan.calico onlink proto 80", block, block.Addr())
		want = append(want, route)
		slices.Sort(want)
		var inKernel time.Time
		if err := labtest.Poll(60*time.Second, func() error {
			if got := ownedRoutes(t, n1); !slices.Contains(got, route) {
				return fmt.Errorf("routes %q lack %q", got, route)
			}
			inKernel = time.Now()
			return nil
		}); err != nil {
			t.Fatalf("%s: %v\nlog:\n%s", ph.name, err, a.Log)
		}
		if err := labtest.Poll(20*time.Second, func() error {
			code, body, err := httpIn(n1.NS, "http://127.0.0.1:9099/readiness")
			if err != nil || code != 200 {
				return fmt.Errorf("readiness %d %q %v", code, body, err)
			}
			return nil
		}); err != nil {
			t.Errorf("%s: not ready again: %v", ph.name, err)
		}
		if v := metricValue(t, n1.NS, "calico_node_datastore_connected"); v != 1 {
			t.Errorf("%s: calico_node_datastore_connected = %v after the outage", ph.name, v)
		}
		log := a.Log.String()
		if n := strings.Count(log, "datastore unreachable") - lost0; n != 1 {
			t.Errorf("%s: %d 'datastore unreachable' log lines, want 1", ph.name, n)
		}
		if n := strings.Count(log, "datastore reachable again") - back0; n != 1 {
			t.Errorf("%s: %d 'datastore reachable again' log lines, want 1", ph.name, n)
		}
		t.Logf("%s: not ready %v after the datastore went (%s); outage %v; back: write committed after %v, new remote block in the kernel %v after the datastore returned (%v after the write)",
			ph.name, detect.Round(time.Millisecond), strings.TrimSpace(body), back.Sub(down).Round(time.Second), written.Sub(back).Round(time.Millisecond),
			inKernel.Sub(back).Round(time.Millisecond), inKernel.Sub(written).Round(time.Millisecond))
	}
}
