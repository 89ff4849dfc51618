// Package web is sabakan's HTTP API: the REST API under /api/v1 (compatible
// with the reference boot server), /graphql, /version and /health on the HTTP
// listener, and the disk encryption keys (/api/v1/crypts) on the HTTPS one.
//
// # Extending it (boot content, DHCP status, ...)
//
// Other packages of the boot server add their endpoints with Server.Handle
// from files of their own, before Handler is called:
//
//	srv.Handle("PUT", "/api/v1/images/coreos/{id}", func(w http.ResponseWriter, r *http.Request) error {
//		body, err := web.ReadBody(r, 4<<30) // 413 past the limit
//		...
//		return err // rendered by RenderError: sentinel errors pick the status
//	})
//
// What every route gets, without doing anything:
//   - Access control: GET and HEAD are open to every client; any other method
//     needs the client address in allow-ips (403 otherwise).
//   - The actor: the request's context carries sabakan.Actor (X-Sabakan-User,
//     client IP, this server's host name), which store.AuditOp records.
//   - The body: a read that fails because the client sent less than its
//     Content-Length or broke the connection returns an error wrapping
//     ErrIncompleteBody (400), so handlers need not tell it apart; a client
//     that pauses the body for longer than Config.BodyIdleTimeout fails the
//     read with ErrBodyTimeout (408) and loses its connection.
//   - Errors: return an error wrapping sabakan.ErrBadRequest (400),
//     ErrNotFound (404), ErrConflict (409), ErrLengthRequired (411),
//     ErrTooLarge (413), ErrUnavailable (503), or this package's ErrForbidden
//     (403); anything else is 500. The body is {"status": N, "error": "message"}.
//   - JSON 404 for unknown paths and 405 (with Allow) for unknown methods.
//   - Request metrics (sabakan_api_requests_total) when Config.Registry is set.
//
// Write success responses with WriteJSON, or directly.
package web

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	graphql "github.com/graph-gophers/graphql-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/store"
)

// HeaderUser is the header clients name their user with; the audit log
// records it.
const HeaderUser = "X-Sabakan-User"

// Config configures a Server.
type Config struct {
	// Store is the inventory.
	Store *store.Store
	// AllowedIPs may use mutating methods (default 127.0.0.1/32 and ::1/128).
	AllowedIPs []netip.Prefix
	// Hostname is this server's name, recorded as the host of audit entries.
	Hostname string
	// Version is reported by /version.
	Version string
	// Registry, if set, receives the request metrics.
	Registry prometheus.Registerer
	// BodyIdleTimeout is how long a request body may pause (default
	// DefaultBodyIdleTimeout).
	BodyIdleTimeout time.Duration
}

// DefaultBodyIdleTimeout is Config.BodyIdleTimeout's default.
const DefaultBodyIdleTimeout = 30 * time.Second

// HandlerFunc serves one request. A returned error is rendered by
// RenderError, unless the handler already wrote a response.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// route is the handlers of one path pattern, by method.
type route struct {
	handlers map[string]HandlerFunc
	open     map[string]bool // methods open to every client
}

// Server routes sabakan's API.
type Server struct {
	cfg      Config
	mu       sync.Mutex
	http     map[string]*route
	https    map[string]*route
	requests *prometheus.CounterVec
	// httpConns and httpsConns are each listener's connections (ConnState).
	httpConns, httpsConns conns
	graphql               *graphql.Schema
	gqlSchemaLists        gqlMultipliers // introspection list sizes (graphql.go)
	gqlSlowOnly           bool           // no fast path for searchMachines (benchmarks compare)
}

// New returns a Server with sabakan's own routes registered.
func New(cfg Config) *Server {
	if cfg.AllowedIPs == nil {
		cfg.AllowedIPs = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}
	}
	if cfg.BodyIdleTimeout <= 0 {
		cfg.BodyIdleTimeout = DefaultBodyIdleTimeout
	}
	s := &Server{cfg: cfg, http: map[string]*route{}, https: map[string]*route{}}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "sabakan", Name: "api_requests_total",
		Help: "API requests served, by listener, route pattern, method and status code.",
	}, []string{"listener", "pattern", "method", "code"})
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(s.requests)
	}
	s.graphql = s.newGraphQL()
	s.routes()
	return s
}

// Store is the inventory the server serves.
func (s *Server) Store() *store.Store { return s.cfg.Store }

// Handle registers h for method and pattern on the HTTP listener. pattern is
// a net/http ServeMux path pattern without method, e.g.
// "/api/v1/images/coreos/{id}". A GET handler also serves HEAD. It panics
// when the method of the pattern is already registered.
func (s *Server) Handle(method, pattern string, h HandlerFunc) {
	s.add(s.http, method, pattern, h, false)
}

// HandleFunc registers a plain http.HandlerFunc with a ServeMux-style
// pattern that names its method ("PUT /api/v1/assets/{name}"), so that code
// written against *http.ServeMux registers here unchanged. The handler
// writes its own responses (render errors with RenderError); access control,
// the actor and metrics apply as for Handle.
func (s *Server) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok || method == "" || !strings.HasPrefix(path, "/") {
		panic("web: HandleFunc pattern must be \"METHOD /path\", got " + pattern)
	}
	s.Handle(method, path, func(w http.ResponseWriter, r *http.Request) error {
		h(w, r)
		return nil
	})
}

// HandleTLS registers h on the HTTPS listener. open makes a mutating method
// available to every client (disk keys are written by the machines).
func (s *Server) HandleTLS(method, pattern string, h HandlerFunc, open bool) {
	s.add(s.https, method, pattern, h, open)
}

func (s *Server) add(table map[string]*route, method, pattern string, h HandlerFunc, open bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := table[pattern]
	if rt == nil {
		rt = &route{handlers: map[string]HandlerFunc{}, open: map[string]bool{}}
		table[pattern] = rt
	}
	if rt.handlers[method] != nil {
		panic("web: " + method + " " + pattern + " registered twice")
	}
	rt.handlers[method] = h
	rt.open[method] = open
}

// Handler is the HTTP listener's handler. Its http.Server's ConnState hook
// should be ConnState.
func (s *Server) Handler() http.Handler { return s.mux("http", s.http, &s.httpConns) }

// TLSHandler is the HTTPS listener's handler, with TLSConnState.
func (s *Server) TLSHandler() http.Handler { return s.mux("https", s.https, &s.httpsConns) }

func (s *Server) mux(listener string, table map[string]*route, conns *conns) http.Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	mux := http.NewServeMux()
	for pattern, rt := range table {
		mux.Handle(pattern, s.serve(listener, pattern, rt, conns))
	}
	mux.Handle("/", s.serve(listener, "/", &route{}, conns))
	return mux
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// ReadFrom keeps io.Copy from a file on the kernel's sendfile path, which
// boot content downloads depend on for throughput.
func (w *statusRecorder) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// serve wraps a route: method dispatch, access control, the actor, error
// rendering and metrics.
func (s *Server) serve(listener, pattern string, rt *route, conns *conns) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := &statusRecorder{ResponseWriter: rw}
		err := s.dispatch(w, r, pattern, rt, conns.of(r))
		if err != nil && w.status == 0 {
			RenderError(w, r, err)
		} else if err != nil {
			slog.Warn("web: request failed after the response started", "method", r.Method, "path", r.URL.Path, "error", err)
		}
		code := w.status
		if code == 0 {
			code = http.StatusOK
		}
		s.requests.WithLabelValues(listener, pattern, r.Method, itoa(code)).Inc()
	})
}

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, pattern string, rt *route, conn net.Conn) error {
	if pattern == "/" {
		return notFoundPath(r, s.https[strings.TrimSuffix(r.URL.Path, "/")] != nil || strings.HasPrefix(r.URL.Path, "/api/v1/crypts/"))
	}
	method := r.Method
	h := rt.handlers[method]
	if h == nil && method == http.MethodHead {
		h = rt.handlers[http.MethodGet]
	}
	if h == nil {
		allow := make([]string, 0, len(rt.handlers))
		for m := range rt.handlers {
			allow = append(allow, m)
		}
		if rt.handlers[http.MethodGet] != nil {
			allow = append(allow, http.MethodHead)
		}
		slices.Sort(allow)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return errMethod(method, r.URL.Path, allow)
	}
	allowed := s.allowed(r)
	if method != http.MethodGet && method != http.MethodHead && !rt.open[method] && !allowed {
		return errForbidden(r)
	}
	user := r.Header.Get(HeaderUser)
	if !validUser(user) {
		return badHeader(HeaderUser, "want at most 255 printable characters")
	}
	ctx := sabakan.WithActor(r.Context(), sabakan.Actor{User: user, IP: clientIP(r).String(), Host: s.cfg.Hostname})
	ctx = context.WithValue(ctx, allowedKey{}, allowed)
	// A copy of the request: net/http looks at the original's body after
	// the handler to decide whether to drain it.
	r = r.WithContext(ctx)
	wrapBody(w, r, conn, s.cfg.BodyIdleTimeout)
	return h(w, r)
}

type allowedKey struct{}

// isAllowed reports whether the request's client is in allow-ips.
func isAllowed(ctx context.Context) bool {
	ok, _ := ctx.Value(allowedKey{}).(bool)
	return ok
}

func (s *Server) allowed(r *http.Request) bool {
	ip := clientIP(r)
	for _, p := range s.cfg.AllowedIPs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// clientIP is the address the request came from (forwarding headers are not
// trusted).
func clientIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func validUser(u string) bool {
	if len(u) > 255 {
		return false
	}
	for i := 0; i < len(u); i++ {
		if u[i] < ' ' || u[i] > '~' {
			return false
		}
	}
	return true
}

// ParseAllowIPs parses allow-ips entries: addresses or CIDR prefixes.
func ParseAllowIPs(entries []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if strings.Contains(e, "/") {
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, badValue("allow-ips", e, "want an IP address or CIDR prefix")
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(e)
		if err != nil {
			return nil, badValue("allow-ips", e, "want an IP address or CIDR prefix")
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// now is the time used for computed fields such as durations.
func (s *Server) now() time.Time { return s.cfg.Store.Now() }
