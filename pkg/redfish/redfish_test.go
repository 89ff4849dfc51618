package redfish

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stmcginnis/gofish/schemas"
)

const (
	testUser     = "admin"
	testPassword = "correct-horse-battery-staple"
)

// fakeSystem is a machine in memory: its power state and the resets it got.
type fakeSystem struct {
	mu     sync.Mutex
	power  PowerState
	resets []ResetType
	fail   error
}

func (s *fakeSystem) PowerState(context.Context) (PowerState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return "", s.fail
	}
	return s.power, nil
}

func (s *fakeSystem) Reset(_ context.Context, t ResetType) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.resets = append(s.resets, t)
	switch t {
	case ResetForceOff, ResetGracefulShutdown:
		s.power = PowerOff
	default:
		s.power = PowerOn
	}
	return nil
}

func (s *fakeSystem) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *fakeSystem) received() []ResetType {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.resets)
}

// syncBuffer is a log destination safe for concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fakeClock is the sessions' clock, moved by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type service struct {
	h     *handler
	sys   *fakeSystem
	logs  *syncBuffer
	clock *fakeClock
}

var testInfo = Info{ID: "1", Name: "rack0-cs1", SerialNumber: "SN0001", Manufacturer: "openneco", Model: "virtual"}

// newService returns a handler over a fake system that is on, logging at
// Debug into a buffer, its sessions on a fake clock.
func newService(t *testing.T, modify ...func(*Options)) *service {
	t.Helper()
	s := &service{
		sys:   &fakeSystem{power: PowerOn},
		logs:  &syncBuffer{},
		clock: &fakeClock{now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)},
	}
	o := Options{
		Info:     testInfo,
		System:   s.sys,
		Username: testUser,
		Password: testPassword,
		Log:      slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range modify {
		m(&o)
	}
	h, err := NewHandler(o)
	if err != nil {
		t.Fatal(err)
	}
	s.h = h.(*handler)
	s.h.sessions.now = s.clock.Now
	return s
}

type auth func(*http.Request)

func basic(user, password string) auth {
	return func(r *http.Request) { r.SetBasicAuth(user, password) }
}

func withToken(token string) auth {
	return func(r *http.Request) { r.Header.Set("X-Auth-Token", token) }
}

var admin = basic(testUser, testPassword)

func (s *service) do(t *testing.T, method, path, body string, a auth) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if a != nil {
		a(r)
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	if got := w.Header().Get("OData-Version"); got != "4.0" {
		t.Errorf("%s %s: OData-Version = %q", method, path, got)
	}
	return w
}

// login creates a session and returns its token and location.
func (s *service) login(t *testing.T) (string, string) {
	t.Helper()
	w := s.do(t, http.MethodPost, pathSessions, `{"UserName":"admin","Password":"`+testPassword+`"}`, nil)
	if w.Code != http.StatusCreated {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	return w.Header().Get("X-Auth-Token"), w.Header().Get("Location")
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, w.Body, err)
	}
	return v
}

// wantError checks w is a Redfish error with status and the MessageId
// Base.1.8.<key>, and returns the body.
func wantError(t *testing.T, w *httptest.ResponseRecorder, status int, key string) errorBody {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	body := decode[errorBody](t, w)
	id := "Base.1.8." + key
	if body.Error.Code != id || len(body.Error.ExtendedInfo) != 1 || body.Error.ExtendedInfo[0].MessageID != id ||
		body.Error.Message == "" || body.Error.ExtendedInfo[0].Message == "" || strings.Contains(body.Error.ExtendedInfo[0].Message, "%") {
		t.Errorf("error body = %+v, want code %s", body, id)
	}
	// gofish reads the same body into its own error type.
	var gerr struct{ Error schemas.Error }
	if err := json.Unmarshal(w.Body.Bytes(), &gerr); err != nil || gerr.Error.Code != id {
		t.Errorf("gofish reads the error as %+v, %v", gerr.Error, err)
	}
	return body
}

func TestNewHandlerValidates(t *testing.T) {
	sys := &fakeSystem{}
	tests := []struct {
		name   string
		modify func(*Options)
	}{
		{"no system", func(o *Options) { o.System = nil }},
		{"no user name", func(o *Options) { o.Username = "" }},
		{"no password", func(o *Options) { o.Password = "" }},
		{"ID with a slash", func(o *Options) { o.Info.ID = "a/b" }},
		{"unknown reset type", func(o *Options) { o.ResetTypes = []ResetType{ResetOn, "Nmi"} }},
		{"no reset type", func(o *Options) { o.ResetTypes = []ResetType{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{System: sys, Username: "u", Password: "p"}
			tt.modify(&o)
			if _, err := NewHandler(o); err == nil {
				t.Error("NewHandler accepted", o)
			}
		})
	}
	h, err := NewHandler(Options{System: sys, Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	hh := h.(*handler)
	if hh.info.ID != "1" || hh.info.Name == "" || !slices.Equal(hh.allowed, AllResetTypes()) || hh.log == nil {
		t.Errorf("defaults: info %+v, allowed %v", hh.info, hh.allowed)
	}
}

func TestPublicResources(t *testing.T) {
	s := newService(t)
	w := s.do(t, http.MethodGet, "/redfish", "", nil)
	if w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != `{"v1":"/redfish/v1/"}` {
		t.Errorf("GET /redfish: %d %s", w.Code, w.Body)
	}
	for _, path := range []string{"/redfish/v1/", "/redfish/v1"} {
		w := s.do(t, http.MethodGet, path, "", nil)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
		}
		root := decode[map[string]any](t, w)
		want := map[string]any{
			"@odata.id":      "/redfish/v1/",
			"@odata.type":    "#ServiceRoot.v1_5_0.ServiceRoot",
			"@odata.context": "/redfish/v1/$metadata#ServiceRoot.ServiceRoot",
			"Systems":        map[string]any{"@odata.id": "/redfish/v1/Systems"},
			"Chassis":        map[string]any{"@odata.id": "/redfish/v1/Chassis"},
			"Managers":       map[string]any{"@odata.id": "/redfish/v1/Managers"},
			"SessionService": map[string]any{"@odata.id": "/redfish/v1/SessionService"},
			"Links":          map[string]any{"Sessions": map[string]any{"@odata.id": "/redfish/v1/SessionService/Sessions"}},
		}
		for k, v := range want {
			if got, _ := json.Marshal(root[k]); !bytes.Equal(got, must(json.Marshal(v))) {
				t.Errorf("GET %s: %s = %s, want %v", path, k, got, v)
			}
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// protected lists a request on every resource that needs authentication.
var protected = []struct{ method, path, body string }{
	{http.MethodGet, "/redfish/v1/SessionService", ""},
	{http.MethodGet, "/redfish/v1/SessionService/Sessions", ""},
	{http.MethodGet, "/redfish/v1/SessionService/Sessions/0123456789abcdef", ""},
	{http.MethodDelete, "/redfish/v1/SessionService/Sessions/0123456789abcdef", ""},
	{http.MethodGet, "/redfish/v1/Systems", ""},
	{http.MethodGet, "/redfish/v1/Systems/1", ""},
	{http.MethodPost, "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", `{"ResetType":"ForceOff"}`},
	{http.MethodGet, "/redfish/v1/Chassis", ""},
	{http.MethodGet, "/redfish/v1/Chassis/1", ""},
	{http.MethodGet, "/redfish/v1/Managers", ""},
	{http.MethodGet, "/redfish/v1/Managers/1", ""},
	{http.MethodGet, "/redfish/v1/NoSuchThing", ""},
	{http.MethodPut, "/redfish/v1/", ""},
}

func TestAuthentication(t *testing.T) {
	s := newService(t)
	token, _ := s.login(t)
	tests := []struct {
		name string
		auth auth
		ok   bool
	}{
		{"none", nil, false},
		{"basic", admin, true},
		{"basic, wrong password", basic(testUser, "wrong"), false},
		{"basic, password's prefix", basic(testUser, testPassword[:5]), false},
		{"basic, wrong user", basic("root", testPassword), false},
		{"session token", withToken(token), true},
		{"unknown token", withToken(strings.Repeat("0", 64)), false},
		{"unknown token with good basic auth", func(r *http.Request) { admin(r); withToken("bad")(r) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, p := range protected {
				w := s.do(t, p.method, p.path, p.body, tt.auth)
				if tt.ok {
					if w.Code == http.StatusUnauthorized {
						t.Errorf("%s %s: 401 %s", p.method, p.path, w.Body)
					}
					continue
				}
				wantError(t, w, http.StatusUnauthorized, "NoValidSession")
				if got := w.Header().Get("WWW-Authenticate"); got != `Basic realm="redfish"` {
					t.Errorf("%s %s: WWW-Authenticate = %q", p.method, p.path, got)
				}
			}
		})
	}
	if got, want := s.sys.received(), []ResetType{ResetForceOff, ResetForceOff}; !slices.Equal(got, want) {
		t.Errorf("resets reaching the system: %v, want %v (the two authenticated ones)", got, want)
	}
}
