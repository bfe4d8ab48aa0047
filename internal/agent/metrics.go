package agent

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the daemon's Prometheus metrics, in a registry of its own
// (nothing is registered globally or at init time).
type metrics struct {
	registry       *prometheus.Registry
	reconcile      *prometheus.HistogramVec
	routes         prometheus.Gauge
	vteps          prometheus.Gauge
	routeChanges   prometheus.Counter
	datastoreErrs  prometheus.Counter
	dsConnected    prometheus.Gauge
	applyErrs      *prometheus.CounterVec
	localWorkloads prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		reconcile: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "calico_node_reconcile_seconds",
			Help:    "Time spent computing and applying the dataplane, by part (calc, sysctl, workload, vxlan, vteps, ipip, routes, nat, mtu, total).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"part"}),
		routes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "calico_node_routes_programmed",
			Help: "Routes the daemon owns in the main table after the last successful apply.",
		}),
		vteps: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "calico_node_vxlan_vteps",
			Help: "Remote VXLAN endpoints (ARP and FDB entries) programmed on vxlan.calico.",
		}),
		routeChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "calico_node_route_changes_total",
			Help: "Routes added, replaced or deleted by the daemon.",
		}),
		datastoreErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "calico_node_datastore_errors_total",
			Help: "Failed datastore requests and broken watches.",
		}),
		dsConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "calico_node_datastore_connected",
			Help: "1 while the datastore answers the daemon's probe, 0 while it does not.",
		}),
		applyErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "calico_node_apply_errors_total",
			Help: "Failed dataplane applies, by part.",
		}, []string{"part"}),
		localWorkloads: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "calico_node_local_workload_endpoints",
			Help: "Workload endpoints on this node.",
		}),
	}
	m.registry.MustRegister(
		// These are what the collectors package wraps; importing that
		// package would also link database/sql into every applet.
		prometheus.NewGoCollector(),
		prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}),
		m.reconcile, m.routes, m.vteps, m.routeChanges, m.datastoreErrs, m.dsConnected, m.applyErrs, m.localWorkloads,
	)
	return m
}

// parseLevel maps Felix's logSeverityScreen values to slog levels.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug", "trace":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warning", "warn":
		return slog.LevelWarn, nil
	case "error", "fatal", "panic":
		return slog.LevelError, nil
	case "none":
		return slog.LevelError + 100, nil
	}
	return 0, fmt.Errorf("want Debug, Info, Warning, Error, Fatal or None")
}

// ParseLogLevel is parseLevel for the applet's --log-level flag.
func ParseLogLevel(s string) (slog.Level, error) { return parseLevel(s) }

func (a *Agent) applyLogLevel(s string) {
	if a.cfg.LogLevel == nil {
		return
	}
	if l, err := parseLevel(s); err == nil && a.cfg.LogLevel.Level() != l {
		a.cfg.LogLevel.Set(l)
	}
}
