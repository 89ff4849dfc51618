package agent

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openneco/neco/pkg/podnet/ipam"
)

type metrics struct {
	blocks     *prometheus.GaugeVec
	addresses  *prometheus.GaugeVec
	latency    *prometheus.HistogramVec
	allocation prometheus.Histogram
	failures   *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		blocks: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "podnet_blocks", Help: "Address blocks this node owns, by pool.",
		}, []string{"pool"}),
		addresses: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "podnet_addresses_in_use", Help: "Pod addresses in use on this node, by pool.",
		}, []string{"pool"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "podnet_cni_duration_seconds", Help: "Time to serve a CNI command (ADD includes address allocation and wiring).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"command"}),
		allocation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "podnet_allocation_duration_seconds", Help: "Time to take an address (and claim a block when the node has no free one).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podnet_cni_failures_total", Help: "CNI commands that failed.",
		}, []string{"command"}),
	}
}

// Register adds the daemon's metrics to reg.
func (a *Agent) Register(reg prometheus.Registerer) {
	reg.MustRegister(a.metrics.blocks, a.metrics.addresses, a.metrics.latency, a.metrics.allocation, a.metrics.failures)
}

func (m *metrics) command(cmd string, d time.Duration, err error) {
	m.latency.WithLabelValues(cmd).Observe(d.Seconds())
	if err != nil {
		m.failures.WithLabelValues(cmd).Inc()
	}
}

func (m *metrics) observe(s ipam.Stats) {
	m.blocks.Reset()
	m.addresses.Reset()
	for pool, p := range s.Pools {
		m.blocks.WithLabelValues(pool).Set(float64(p.Blocks))
		m.addresses.WithLabelValues(pool).Set(float64(p.InUse))
	}
}
