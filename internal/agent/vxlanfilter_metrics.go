package agent

import (
	"errors"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/dataplane/nft"
)

// vxlanCollector exports the VXLAN filter's drop counters (table
// nft.VXLANFilterTableName), read when scraped, at most once a second.
// While the table is absent (VXLAN off) it exports nothing.
type vxlanCollector struct {
	ns         string
	peer, wl   *prometheus.Desc
	peerB, wlB *prometheus.Desc
	mu         sync.Mutex
	read       time.Time
	values     map[string]nft.CounterValue
	present    bool
}

func newVXLANCollector(ns string) *vxlanCollector {
	return &vxlanCollector{
		ns:    ns,
		peer:  prometheus.NewDesc("calico_vxlan_peer_filter_dropped_packets_total", "VXLAN packets to this host dropped because their source is no known VTEP (Felix's all-vxlan-net).", nil, nil),
		peerB: prometheus.NewDesc("calico_vxlan_peer_filter_dropped_bytes_total", "Bytes of the VXLAN packets dropped because their source is no known VTEP.", nil, nil),
		wl:    prometheus.NewDesc("calico_vxlan_workload_dropped_packets_total", "Packets to the VXLAN port dropped because they came from a workload interface.", nil, nil),
		wlB:   prometheus.NewDesc("calico_vxlan_workload_dropped_bytes_total", "Bytes of the packets to the VXLAN port dropped because they came from a workload interface.", nil, nil),
	}
}

// registerVXLANCollector adds the collector to the daemon's registry once.
func (a *Agent) registerVXLANCollector() {
	err := a.met.registry.Register(newVXLANCollector(a.cfg.NetNS))
	var are prometheus.AlreadyRegisteredError
	if err != nil && !errors.As(err, &are) {
		a.log.Warn("VXLAN filter metrics", "err", err)
	}
}

// Describe implements prometheus.Collector.
func (c *vxlanCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.peer, c.peerB, c.wl, c.wlB} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *vxlanCollector) Collect(ch chan<- prometheus.Metric) {
	vals, ok := c.counters()
	if !ok {
		return
	}
	for _, m := range []struct {
		pkts, bytes *prometheus.Desc
		name        string
	}{{c.peer, c.peerB, nft.CounterVXLANDropped}, {c.wl, c.wlB, nft.CounterVXLANWorkloadDropped}} {
		v, found := vals[m.name]
		if !found {
			continue
		}
		ch <- prometheus.MustNewConstMetric(m.pkts, prometheus.CounterValue, float64(v.Packets))
		ch <- prometheus.MustNewConstMetric(m.bytes, prometheus.CounterValue, float64(v.Bytes))
	}
}

// counters reads the table's counters; false when the table is absent or
// unreadable.
func (c *vxlanCollector) counters() (map[string]nft.CounterValue, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.read) < time.Second {
		return c.values, c.present
	}
	var opts []nftables.ConnOption
	if c.ns != "" {
		f, err := netns.Open(c.ns)
		if err != nil {
			return nil, false
		}
		defer f.Close()
		opts = append(opts, nftables.WithNetNSFd(int(f.Fd())))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return nil, false
	}
	vals, err := nft.ReadCounters(conn, nft.VXLANFilterTableName)
	c.values, c.present, c.read = vals, err == nil, time.Now()
	return vals, err == nil
}
