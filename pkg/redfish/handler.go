package redfish

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
)

const (
	pathRoot           = "/redfish/v1"
	pathSessionService = pathRoot + "/SessionService"
	pathSessions       = pathSessionService + "/Sessions"
	pathSystems        = pathRoot + "/Systems"
	pathChassis        = pathRoot + "/Chassis"
	pathManagers       = pathRoot + "/Managers"
	resetAction        = "ComputerSystem.Reset"
)

type handler struct {
	info     Info
	system   System
	user     string
	password string
	allowed  []ResetType
	log      *slog.Logger
	sessions *sessionStore
	routes   map[string]*route
	session  *route // /redfish/v1/SessionService/Sessions/{id}
}

// endpoint serves one method of one resource. It writes the response, or
// returns an error and writes nothing.
type endpoint func(x *exchange) error

type route struct {
	methods map[string]endpoint
	public  map[string]bool // the methods that need no authentication
}

func (rt *route) allow() []string {
	var l []string
	for m := range rt.methods {
		l = append(l, m)
	}
	if rt.methods[http.MethodGet] != nil {
		l = append(l, http.MethodHead)
	}
	slices.Sort(l)
	return l
}

// exchange is one request and its response.
type exchange struct {
	w     *recorder
	r     *http.Request
	param string // the session ID in a session's URL
}

// recorder remembers what the request log needs.
type recorder struct {
	http.ResponseWriter
	status int
	user   string
	err    error
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (h *handler) systemPath() string  { return pathSystems + "/" + h.info.ID }
func (h *handler) chassisPath() string { return pathChassis + "/" + h.info.ID }
func (h *handler) managerPath() string { return pathManagers + "/" + h.info.ID }

func (h *handler) buildRoutes() map[string]*route {
	get := func(e endpoint) *route { return &route{methods: map[string]endpoint{http.MethodGet: e}} }
	h.session = &route{methods: map[string]endpoint{http.MethodGet: h.getSession, http.MethodDelete: h.deleteSession}}
	return map[string]*route{
		"/redfish":         {methods: map[string]endpoint{http.MethodGet: h.getVersions}, public: map[string]bool{http.MethodGet: true}},
		pathRoot:           {methods: map[string]endpoint{http.MethodGet: h.getServiceRoot}, public: map[string]bool{http.MethodGet: true}},
		pathSessionService: get(h.getSessionService),
		pathSessions: {
			methods: map[string]endpoint{http.MethodGet: h.listSessions, http.MethodPost: h.createSession},
			public:  map[string]bool{http.MethodPost: true},
		},
		pathSystems:    get(h.getSystems),
		h.systemPath(): get(h.getSystem),
		h.systemPath() + "/Actions/" + resetAction: {methods: map[string]endpoint{http.MethodPost: h.reset}},
		pathChassis:     get(h.getChassisCollection),
		h.chassisPath(): get(h.getChassis),
		pathManagers:    get(h.getManagers),
		h.managerPath(): get(h.getManager),
	}
}

// match returns path's route and its variable segment.
func (h *handler) match(path string) (*route, string) {
	if rt, ok := h.routes[path]; ok {
		return rt, ""
	}
	if id, ok := strings.CutPrefix(path, pathSessions+"/"); ok && id != "" && !strings.Contains(id, "/") {
		return h.session, id
	}
	return nil, ""
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	rec.Header().Set("OData-Version", "4.0")
	if err := h.serve(rec, r); err != nil {
		rec.err = err
		status, header, body := errorResponse(err)
		for k, v := range header {
			rec.Header()[k] = v
		}
		writeJSON(rec, status, body)
	}
	h.logRequest(r, rec, time.Since(start))
}

func (h *handler) serve(w *recorder, r *http.Request) error {
	path := r.URL.Path
	if len(path) > 1 {
		path = strings.TrimSuffix(path, "/")
	}
	rt, param := h.match(path)
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	if rt == nil || !rt.public[method] {
		if err := h.authenticate(w, r); err != nil {
			return err
		}
	}
	if rt == nil {
		return &apiError{kind: errNotFound, args: []string{r.URL.Path}}
	}
	e := rt.methods[method]
	if e == nil {
		return &apiError{
			kind:   errMethodNotAllowed,
			allow:  rt.allow(),
			detail: fmt.Sprintf("The method %s is not allowed on %s.", r.Method, r.URL.Path),
		}
	}
	return e(&exchange{w: w, r: r, param: param})
}

// authenticate accepts a session's X-Auth-Token or, without one, HTTP Basic
// authentication.
func (h *handler) authenticate(w *recorder, r *http.Request) error {
	if token := r.Header.Get("X-Auth-Token"); token != "" {
		s, ok := h.sessions.authenticate(token)
		if !ok {
			return &apiError{kind: errUnauthorized, detail: "The session token is unknown or has expired."}
		}
		w.user = s.user
		return nil
	}
	user, password, ok := r.BasicAuth()
	if !ok {
		return &apiError{kind: errUnauthorized}
	}
	if !h.checkPassword(user, password) {
		return &apiError{kind: errUnauthorized, detail: "The user name or password is wrong."}
	}
	w.user = user
	return nil
}

// checkPassword compares in constant time, lengths included: it compares
// digests.
func (h *handler) checkPassword(user, password string) bool {
	u, wantU := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(h.user))
	p, wantP := sha256.Sum256([]byte(password)), sha256.Sum256([]byte(h.password))
	return subtle.ConstantTimeCompare(u[:], wantU[:])&subtle.ConstantTimeCompare(p[:], wantP[:]) == 1
}

// logRequest logs reads at Debug, other requests at Info and server errors at
// Warn. Neither headers nor bodies are logged: they hold passwords and tokens.
func (h *handler) logRequest(r *http.Request, w *recorder, d time.Duration) {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	level := slog.LevelInfo
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		level = slog.LevelDebug
	}
	if status >= 500 {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.String("remote", r.RemoteAddr),
		slog.Duration("duration", d),
	}
	if w.user != "" {
		attrs = append(attrs, slog.String("user", w.user))
	}
	if w.err != nil {
		attrs = append(attrs, slog.String("error", w.err.Error()))
	}
	h.log.LogAttrs(r.Context(), level, "redfish request", attrs...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // the bodies are this package's own types
		panic(fmt.Sprintf("redfish: encode %T: %v", v, err))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}

// readBody reads a request body of at most maxBody bytes.
func readBody(x *exchange) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(x.w.ResponseWriter, x.r.Body, maxBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, &apiError{kind: errTooLarge, detail: fmt.Sprintf("The request body is larger than %d bytes.", maxBody)}
	}
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	return b, nil
}
