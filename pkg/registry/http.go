package registry

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// errorBody is the OCI distribution error format.
type errorBody struct {
	Errors []ociError `json:"errors"`
}

type ociError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

func writeError(w http.ResponseWriter, status int, code, message string, detail any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(errorBody{Errors: []ociError{{Code: code, Message: message, Detail: detail}}})
}

// readOnly lets GET and HEAD of the /v2/ API through to h and answers
// everything else itself, without reading the body: other methods 405
// UNSUPPORTED (the OCI distribution spec's answer for an operation a
// registry does not offer) with Allow: GET, HEAD; the upload endpoints,
// whatever the method, the same (their state belongs to the write
// listener's clients); paths outside /v2/ 404.
func readOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2" && !strings.HasPrefix(r.URL.Path, "/v2/") {
			writeError(w, http.StatusNotFound, "NOT_FOUND", "only the /v2/ API is served here", nil)
			return
		}
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || strings.Contains(r.URL.Path, "/blobs/uploads") {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED",
				"this registry listener is read-only: push through the boot server's local write listener",
				map[string]string{"method": r.Method, "path": r.URL.Path})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// metrics are the registry's own Prometheus metrics.
type metrics struct {
	requests *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	uploads  prometheus.Counter
	pushes   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "neco_registry", Name: "requests_total",
			Help: "HTTP requests answered, by listener (public, write), method and status code.",
		}, []string{"listener", "method", "code"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "neco_registry", Name: "response_bytes_total",
			Help: "Bytes of response bodies served, by listener.",
		}, []string{"listener"}),
		uploads: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "neco_registry", Name: "blob_uploads_total",
			Help: "Blob uploads completed (201 to the final PUT of an upload).",
		}),
		pushes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "neco_registry", Name: "manifest_pushes_total",
			Help: "Manifests stored (201 to a PUT of a manifest).",
		}),
	}
	reg.MustRegister(m.requests, m.bytes, m.uploads, m.pushes)
	return m
}

// instrument counts h's requests and logs them: at Debug each, at Info
// the writes that stored something (a completed blob upload, a manifest),
// at Warn those answered 5xx.
func (m *metrics) instrument(listener string, h http.Handler) http.Handler {
	m.bytes.WithLabelValues(listener)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &recorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rw, r)
		method := r.Method
		switch method {
		case "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE":
		default:
			method = "other"
		}
		m.requests.WithLabelValues(listener, method, strconv.Itoa(rw.status)).Inc()
		m.bytes.WithLabelValues(listener).Add(float64(rw.written))
		attrs := []any{"listener", listener, "method", r.Method, "path", r.URL.Path, "status", rw.status,
			"bytes", rw.written, "elapsed", time.Since(start), "remote", r.RemoteAddr}
		level := slog.LevelDebug
		if r.Method == http.MethodPut && rw.status == http.StatusCreated {
			level = slog.LevelInfo
			switch {
			case strings.Contains(r.URL.Path, "/blobs/uploads/"):
				m.uploads.Inc()
				attrs = append(attrs, "digest", r.URL.Query().Get("digest"))
			case strings.Contains(r.URL.Path, "/manifests/"):
				m.pushes.Inc()
				attrs = append(attrs, "digest", rw.Header().Get("Docker-Content-Digest"))
			}
		}
		if rw.status >= 500 {
			level = slog.LevelWarn
		}
		slog.Log(r.Context(), level, "registry: request", attrs...)
	})
}

// recorder remembers the status and body size of a response.
type recorder struct {
	http.ResponseWriter
	status  int
	written int64
	wrote   bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	n, err := r.ResponseWriter.Write(b)
	r.written += int64(n)
	return n, err
}

// Flush lets streamed responses through.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap is for http.ResponseController.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
