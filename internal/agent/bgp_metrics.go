package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

// bgpCollector reports the speaker's sessions at scrape time.
type bgpCollector struct{ a *Agent }

var (
	bgpUpDesc = prometheus.NewDesc("calico_node_bgp_session_established",
		"1 when the BGP session is Established, else 0.", []string{"peer", "type"}, nil)
	bgpFlapsDesc = prometheus.NewDesc("calico_node_bgp_session_flaps_total",
		"Times the BGP session left Established since the speaker started.", []string{"peer", "type"}, nil)
	bgpPrefixDesc = prometheus.NewDesc("calico_node_bgp_prefixes",
		"Unicast prefixes (of the session's family) per BGP session, by direction (received, accepted, advertised).", []string{"peer", "type", "direction"}, nil)
	bgpLearnedDesc = prometheus.NewDesc("calico_node_bgp_learned_routes",
		"Best paths learned from BGP peers.", nil, nil)
)

func (c bgpCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- bgpUpDesc
	ch <- bgpFlapsDesc
	ch <- bgpPrefixDesc
	ch <- bgpLearnedDesc
}

func (c bgpCollector) Collect(ch chan<- prometheus.Metric) {
	_, peers, _ := c.a.bgpStatus()
	for _, p := range peers {
		up := 0.0
		if p.State == "Established" {
			up = 1
		}
		t := string(p.Type)
		ch <- prometheus.MustNewConstMetric(bgpUpDesc, prometheus.GaugeValue, up, p.Address, t)
		ch <- prometheus.MustNewConstMetric(bgpFlapsDesc, prometheus.CounterValue, float64(p.Flaps), p.Address, t)
		ch <- prometheus.MustNewConstMetric(bgpPrefixDesc, prometheus.GaugeValue, float64(p.Received), p.Address, t, "received")
		ch <- prometheus.MustNewConstMetric(bgpPrefixDesc, prometheus.GaugeValue, float64(p.Accepted), p.Address, t, "accepted")
		ch <- prometheus.MustNewConstMetric(bgpPrefixDesc, prometheus.GaugeValue, float64(p.Advertised), p.Address, t, "advertised")
	}
	if c.a.bgp != nil {
		// Not Learned(): that would take the pending changes from the
		// learned-route fast path.
		ch <- prometheus.MustNewConstMetric(bgpLearnedDesc, prometheus.GaugeValue, float64(c.a.bgp.speaker.LearnedCount()))
	}
}
