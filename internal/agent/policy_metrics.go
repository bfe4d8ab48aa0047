package agent

import (
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/onecalico/calico/internal/dataplane/netns"
	"github.com/onecalico/calico/internal/dataplane/nft"
	"github.com/onecalico/calico/internal/ruleset"
)

// policyCollector exports the policy table's counters: packets and bytes
// per policy rule (tier, policy, kind, direction, rule index) and per
// endpoint default deny. It reads every named counter in one netlink dump
// when scraped, at most once a second.
type policyCollector struct {
	ns      string
	applier *nft.PolicyApplier

	rulePkts, ruleBytes, denyPkts, denyBytes *prometheus.Desc

	mu     sync.Mutex
	read   time.Time
	values map[string]nft.CounterValue
}

func newPolicyCollector(ns string, applier *nft.PolicyApplier) *policyCollector {
	ruleLabels := []string{"tier", "policy", "kind", "direction", "rule"}
	epLabels := []string{"endpoint", "interface", "direction"}
	return &policyCollector{
		ns: ns, applier: applier,
		rulePkts:  prometheus.NewDesc("calico_node_policy_rule_packets_total", "Packets matched by a policy or profile rule (tier is empty for a profile).", ruleLabels, nil),
		ruleBytes: prometheus.NewDesc("calico_node_policy_rule_bytes_total", "Bytes matched by a policy or profile rule.", ruleLabels, nil),
		denyPkts:  prometheus.NewDesc("calico_node_policy_default_deny_packets_total", "Packets an endpoint dropped because no rule allowed them (end of tier, or no profile accepted).", epLabels, nil),
		denyBytes: prometheus.NewDesc("calico_node_policy_default_deny_bytes_total", "Bytes an endpoint dropped because no rule allowed them.", epLabels, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *policyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.rulePkts, c.ruleBytes, c.denyPkts, c.denyBytes} {
		ch <- d
	}
}

// counters returns the kernel's counter values, read at most once a second.
func (c *policyCollector) counters() map[string]nft.CounterValue {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.read) < time.Second && c.values != nil {
		return c.values
	}
	var opts []nftables.ConnOption
	if c.ns != "" {
		f, err := netns.Open(c.ns)
		if err != nil {
			return c.values
		}
		defer func(f *os.File) { f.Close() }(f)
		opts = append(opts, nftables.WithNetNSFd(int(f.Fd())))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return c.values
	}
	vals, err := nft.ReadCounters(conn, nft.PolicyTableName)
	if err != nil {
		return c.values
	}
	c.values, c.read = vals, time.Now()
	return vals
}

// Collect implements prometheus.Collector. Counters that several kernel
// rules share (one source rule split per family or per named port) are
// summed under one label set.
func (c *policyCollector) Collect(ch chan<- prometheus.Metric) {
	labels := c.applier.CounterLabels()
	if len(labels) == 0 {
		return
	}
	vals := c.counters()
	type key [5]string
	rules := map[key]nft.CounterValue{}
	denies := map[[3]string]nft.CounterValue{}
	for name, info := range labels {
		v := vals[name]
		if r := info.Rule; r != nil {
			k := key{r.Tier, r.Policy, r.Kind, r.Direction.String(), strconv.Itoa(r.Index)}
			s := rules[k]
			rules[k] = nft.CounterValue{Packets: s.Packets + v.Packets, Bytes: s.Bytes + v.Bytes}
			continue
		}
		k := [3]string{info.Endpoint, info.Interface, directionName(info.Direction)}
		s := denies[k]
		denies[k] = nft.CounterValue{Packets: s.Packets + v.Packets, Bytes: s.Bytes + v.Bytes}
	}
	for k, v := range rules {
		ch <- prometheus.MustNewConstMetric(c.rulePkts, prometheus.CounterValue, float64(v.Packets), k[:]...)
		ch <- prometheus.MustNewConstMetric(c.ruleBytes, prometheus.CounterValue, float64(v.Bytes), k[:]...)
	}
	for k, v := range denies {
		ch <- prometheus.MustNewConstMetric(c.denyPkts, prometheus.CounterValue, float64(v.Packets), k[:]...)
		ch <- prometheus.MustNewConstMetric(c.denyBytes, prometheus.CounterValue, float64(v.Bytes), k[:]...)
	}
}

func directionName(d ruleset.Direction) string { return d.String() }
