package agent_test

import (
	"strings"
	"testing"
	"time"

	"github.com/onecalico/calico/internal/api"
)

// TestPrivilegedMetricsOffByDefault: with the listeners on and nothing
// said about metrics, health answers and no metrics port is open (upstream's
// default). Turned on with FELIX_PROMETHEUSMETRICSENABLED, metrics are
// served on the configured host and port only.
func TestPrivilegedMetricsOffByDefault(t *testing.T) {
	lab := newLab(t)
	n1 := lab.AddNode("n1", 99, 11)
	lab.Pool("pool1", "10.244.0.0/16", api.VXLANModeAlways, api.IPIPModeNever, true)

	cfg := n1.AgentConfig()
	cfg.DisableListeners = false
	cfg.FelixOverrides = map[string]string{"healthport": "9099", "healthhost": "0.0.0.0"}
	a := n1.StartAgent(cfg)
	if err := a.WaitReady(20 * time.Second); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, a.Log)
	}
	if code, body, err := httpIn(n1.NS, "http://127.0.0.1:9099/readiness"); err != nil || code != 200 {
		t.Fatalf("readiness: %d %q %v", code, body, err)
	}
	for _, url := range []string{"http://127.0.0.1:9091/metrics", "http://10.99.0.11:9091/metrics"} {
		if code, _, err := httpIn(n1.NS, url); err == nil {
			t.Errorf("metrics are served by default: %s answered %d", url, code)
		}
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}

	cfg.FelixOverrides = map[string]string{"healthport": "0", "prometheusmetricsenabled": "true",
		"prometheusmetricshost": "127.0.0.1", "prometheusmetricsport": "9191"}
	a = n1.StartAgent(cfg)
	if err := a.WaitReady(20 * time.Second); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, a.Log)
	}
	code, body, err := httpIn(n1.NS, "http://127.0.0.1:9191/metrics")
	if err != nil || code != 200 || !strings.Contains(body, "calico_node_routes_programmed") {
		t.Errorf("metrics on 127.0.0.1:9191: %d %v\n%s", code, err, body)
	}
	for _, url := range []string{"http://10.99.0.11:9191/metrics", "http://127.0.0.1:9091/metrics", "http://127.0.0.1:9099/readiness"} {
		if code, _, err := httpIn(n1.NS, url); err == nil {
			t.Errorf("%s answered %d; want nothing listening there", url, code)
		}
	}
}
