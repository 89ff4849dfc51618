package store

import "github.com/prometheus/client_golang/prometheus"

var (
	machinesDesc = prometheus.NewDesc("sabakan_machines", "Registered machines, by state.", []string{"state"}, nil)
	pendingDesc  = prometheus.NewDesc("sabakan_machines_hidden", "Machines written by registrations that have not committed (or were abandoned).", nil, nil)
	revisionDesc = prometheus.NewDesc("sabakan_index_revision", "etcd revision the in-memory machine index is current to.", nil, nil)
)

// Collector exports the index's figures as Prometheus metrics.
func (s *Store) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Store }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- machinesDesc
	ch <- pendingDesc
	ch <- revisionDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for state, n := range c.s.idx.stateCounts() {
		ch <- prometheus.MustNewConstMetric(machinesDesc, prometheus.GaugeValue, float64(n), string(state))
	}
	visible, all := c.s.idx.count()
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(all-visible))
	ch <- prometheus.MustNewConstMetric(revisionDesc, prometheus.GaugeValue, float64(c.s.idx.revision()))
}
