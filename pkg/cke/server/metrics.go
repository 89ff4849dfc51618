package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openneco/neco/pkg/cke/decide"
)

type metrics struct {
	leader        prometheus.Gauge
	operations    *prometheus.CounterVec
	reconciles    *prometheus.CounterVec
	lastReconcile prometheus.Gauge
	duration      prometheus.Histogram
	phase         *prometheus.GaugeVec
	nodes         *prometheus.GaugeVec
	sabakan       *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "cke", Name: "leader",
			Help: "1 while this engine is the leader."}),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "cke", Name: "operations_total",
			Help: "Operations run, by kind and result (completed, failed)."}, []string{"kind", "result"}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "cke", Name: "reconciles_total",
			Help: "Reconciliations, by result (ok, error)."}, []string{"result"}),
		lastReconcile: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "cke", Name: "last_reconcile_timestamp_seconds",
			Help: "When the last reconciliation ended (Unix time)."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "cke", Name: "reconcile_duration_seconds",
			Help: "Time of one reconciliation, operations included.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}),
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "cke", Name: "phase",
			Help: "1 for the phase of the last decision."}, []string{"phase"}),
		nodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "cke", Name: "nodes",
			Help: "Nodes of the cluster by reachability."}, []string{"reachable"}),
		sabakan: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "cke", Name: "sabakan_integrations_total",
			Help: "Runs of the sabakan integration, by result (updated, unchanged, error)."}, []string{"result"}),
	}
}

// Register adds the engine's metrics to reg.
func (s *Server) Register(reg prometheus.Registerer) {
	m := s.metrics
	reg.MustRegister(m.leader, m.operations, m.reconciles, m.lastReconcile, m.duration, m.phase, m.nodes, m.sabakan)
}

func (m *metrics) reconciled(started time.Time, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.reconciles.WithLabelValues(result).Inc()
	m.duration.Observe(time.Since(started).Seconds())
	m.lastReconcile.SetToCurrentTime()
}

func (m *metrics) setPhase(p decide.Phase) {
	m.phase.Reset()
	m.phase.WithLabelValues(string(p)).Set(1)
}
