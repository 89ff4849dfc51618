package agent

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "bgp_node_agent"

// metrics are the agent's Prometheus metrics (documented in
// docs/bgp-agent.md).
type metrics struct {
	ready         prometheus.Gauge
	degraded      prometheus.Gauge
	birdUp        prometheus.Gauge
	birdRestarts  prometheus.Counter
	sessionUp     *prometheus.GaugeVec
	bfdUp         *prometheus.GaugeVec
	defaultPaths  prometheus.Gauge
	routesByPaths *prometheus.GaugeVec
	configApplies *prometheus.CounterVec
	configError   prometheus.Gauge
	linkChanges   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		ready: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "ready",
			Help: "1 when at least one ToR session is established and a default route is in the kernel."}),
		degraded: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "degraded",
			Help: "1 when ready without full redundancy (a ToR session, its BFD or a default route path missing)."}),
		birdUp: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "bird_up",
			Help: "1 when BIRD answers on its control socket."}),
		birdRestarts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "bird_restarts_total",
			Help: "Times the agent restarted BIRD after it exited."}),
		sessionUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "session_established",
			Help: "1 when the BGP session with the ToR is established."}, []string{"session", "peer"}),
		bfdUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "bfd_up",
			Help: "1 when the BFD session with the ToR is up."}, []string{"session", "peer"}),
		defaultPaths: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "default_route_paths",
			Help: "Next hops of the default route BIRD installed in the main table (0: none)."}),
		routesByPaths: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "routes",
			Help: "Routes BIRD installed in the main table, by number of next hops (2 is ECMP over both NICs)."}, []string{"paths"}),
		configApplies: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "config_applies_total",
			Help: "BIRD configuration changes by result: applied or rejected."}, []string{"result"}),
		configError: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "config_rejected",
			Help: "1 while BIRD rejects the configuration the agent renders (the previous one stays in force)."}),
		linkChanges: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "link_changes_total",
			Help: "Changes the agent made to links, addresses and sysctls."}),
	}
	reg.MustRegister(m.ready, m.degraded, m.birdUp, m.birdRestarts, m.sessionUp, m.bfdUp, m.defaultPaths,
		m.routesByPaths, m.configApplies, m.configError, m.linkChanges)
	m.configApplies.WithLabelValues("applied")
	m.configApplies.WithLabelValues("rejected")
	return m
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (m *metrics) observe(st *Status) {
	m.ready.Set(bool01(st.Ready))
	m.degraded.Set(bool01(st.Degraded))
	m.birdUp.Set(bool01(st.BIRDRunning))
	for _, s := range st.Sessions {
		m.sessionUp.WithLabelValues(s.Name, s.Peer.String()).Set(bool01(s.Established()))
		m.bfdUp.WithLabelValues(s.Name, s.Peer.String()).Set(bool01(s.BFD == "Up"))
	}
	m.defaultPaths.Set(float64(st.DefaultRoutePaths))
	m.routesByPaths.Reset()
	for n, count := range st.RoutesByPaths {
		m.routesByPaths.WithLabelValues(strconv.Itoa(n)).Set(float64(count))
	}
	m.configError.Set(bool01(st.ConfigError != ""))
}
