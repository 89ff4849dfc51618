package daemon

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/cybozu-go/well"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server is an HTTP server that runs in the daemon's well environment and
// drains its connections on shutdown: when the environment is cancelled it
// stops accepting, closes idle connections, and lets the requests in flight
// finish for at most ShutdownTimeout. Their contexts survive the
// cancellation for that long (well derives a request's context from the
// environment's, which would cancel them at once).
type Server struct {
	// Addr is the listen address, host:port.
	Addr string
	// Handler serves the requests.
	Handler http.Handler
	// ShutdownTimeout bounds the graceful drain; zero means 30 s.
	ShutdownTimeout time.Duration
	// ReadTimeout bounds reading a whole request; zero means 30 s. Servers
	// that accept large uploads set it to the longest upload they allow.
	ReadTimeout time.Duration
	// ConnState, if set, is the http.Server's ConnState hook.
	ConnState func(net.Conn, http.ConnState)
	// TLSConfig, if set, makes the server speak TLS (with HTTP/2) with it.
	TLSConfig *tls.Config
}

// Start listens and serves in the background until the environment stops.
// It returns the listener's address (useful with port 0).
func (s Server) Start(env *well.Environment) (net.Addr, error) {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return nil, err
	}
	shutdown := s.ShutdownTimeout
	if shutdown == 0 {
		shutdown = 30 * time.Second
	}
	read := s.ReadTimeout
	if read == 0 {
		read = 30 * time.Second
	}
	// The server gets the TLS configuration the listener negotiates with:
	// http.Server serves HTTP/2 only when its TLSConfig offers h2, so a
	// listener offering h2 in ALPN to a server without it would accept h2
	// clients and then drop their connections.
	var tlsCfg *tls.Config
	if s.TLSConfig != nil {
		tlsCfg = s.TLSConfig.Clone()
		if len(tlsCfg.NextProtos) == 0 {
			tlsCfg.NextProtos = []string{"h2", "http/1.1"}
		}
	}
	hs := &well.HTTPServer{
		Server: &http.Server{
			Handler:           drain(s.Handler, shutdown),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       read,
			IdleTimeout:       2 * time.Minute,
			ConnState:         s.ConnState,
			TLSConfig:         tlsCfg,
		},
		ShutdownTimeout: shutdown,
		Env:             env,
	}
	addr := ln.Addr()
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	return addr, hs.Serve(ln)
}

// drain gives h's requests a context that outlives the cancellation of the
// server's environment by grace, the longest the server waits for them
// before it exits: a request in flight when the daemon stops completes
// (well.HTTPServer derives the request's context from the environment's,
// which would cancel it at the first moment of the stop). Its values (the
// request id) are kept.
func drain(h http.Handler, grace time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stopping := r.Context()
		ctx, cancel := context.WithCancel(context.WithoutCancel(stopping))
		defer cancel()
		var timer *time.Timer
		var mu sync.Mutex
		unhook := context.AfterFunc(stopping, func() {
			mu.Lock()
			defer mu.Unlock()
			timer = time.AfterFunc(grace, cancel)
		})
		defer func() {
			if !unhook() {
				mu.Lock()
				if timer != nil {
					timer.Stop()
				}
				mu.Unlock()
			}
		}()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// HealthCheck reports why the daemon is unhealthy, or nil.
type HealthCheck func(ctx context.Context) error

// HealthHandler serves GET /health: 200 {"health":"healthy"} when check
// passes within 5 s, else 500 {"health":"unhealthy","error":...} (the
// reference boot server's format).
func HealthHandler(check HealthCheck) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		body := map[string]string{"health": "healthy"}
		status := http.StatusOK
		if err := check(ctx); err != nil {
			body = map[string]string{"health": "unhealthy", "error": err.Error()}
			status = http.StatusInternalServerError
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(body)
	})
}

// NewRegistry returns a Prometheus registry with the Go runtime and process
// collectors registered, ready for a daemon's own metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// MetricsMux serves /metrics from reg and /health from check: the metrics
// listener every daemon opens.
func MetricsMux(reg *prometheus.Registry, check HealthCheck) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("GET /health", HealthHandler(check))
	return mux
}
