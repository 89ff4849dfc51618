package redfish

import (
	"encoding/hex"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stmcginnis/gofish/schemas"
)

func TestSessionLifecycle(t *testing.T) {
	s := newService(t)
	w := s.do(t, http.MethodPost, "/redfish/v1/SessionService/Sessions", `{"UserName":"admin","Password":"`+testPassword+`"}`, nil)
	if w.Code != http.StatusCreated {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	token, location := w.Header().Get("X-Auth-Token"), w.Header().Get("Location")
	if b, err := hex.DecodeString(token); err != nil || len(b) != 32 {
		t.Errorf("token %q is not 32 bytes in hex", token)
	}
	if !regexp.MustCompile(`^/redfish/v1/SessionService/Sessions/[0-9a-f]{16}$`).MatchString(location) {
		t.Errorf("Location = %q", location)
	}
	created := decode[schemas.Session](t, w)
	if created.ODataID != location || created.UserName != testUser || created.ID != strings.TrimPrefix(location, pathSessions+"/") ||
		created.ODataType != "#Session.v1_4_0.Session" || created.Password != "" {
		t.Errorf("session = %+v", created)
	}
	if strings.Contains(w.Body.String(), token) {
		t.Error("the session's body holds its token")
	}

	if w := s.do(t, http.MethodGet, "/redfish/v1/Systems/1", "", withToken(token)); w.Code != http.StatusOK {
		t.Errorf("GET with the token: %d", w.Code)
	}
	if w := s.do(t, http.MethodGet, location, "", withToken(token)); w.Code != http.StatusOK || decode[schemas.Session](t, w).ID != created.ID {
		t.Errorf("GET %s: %d %s", location, w.Code, w.Body)
	}
	list := decode[schemas.Collection](t, s.do(t, http.MethodGet, pathSessions, "", admin))
	if !slices.Equal(list.ItemLinks, []string{location}) {
		t.Errorf("sessions = %v", list.ItemLinks)
	}

	if w := s.do(t, http.MethodDelete, location, "", withToken(token)); w.Code != http.StatusNoContent {
		t.Fatalf("logout: %d %s", w.Code, w.Body)
	}
	wantError(t, s.do(t, http.MethodGet, "/redfish/v1/Systems/1", "", withToken(token)), http.StatusUnauthorized, "NoValidSession")
	wantError(t, s.do(t, http.MethodGet, location, "", admin), http.StatusNotFound, "ResourceMissingAtURI")
	wantError(t, s.do(t, http.MethodDelete, location, "", admin), http.StatusNotFound, "ResourceMissingAtURI")
	if n := len(s.h.sessions.list()); n != 0 {
		t.Errorf("%d sessions after logout", n)
	}
}

func TestLoginFailures(t *testing.T) {
	s := newService(t)
	tests := []struct {
		name, body string
		status     int
		key        string
	}{
		{"wrong password", `{"UserName":"admin","Password":"wrong"}`, http.StatusUnauthorized, "NoValidSession"},
		{"wrong user", `{"UserName":"root","Password":"` + testPassword + `"}`, http.StatusUnauthorized, "NoValidSession"},
		{"no user", `{"Password":"` + testPassword + `"}`, http.StatusBadRequest, "PropertyMissing"},
		{"no password", `{"UserName":"admin"}`, http.StatusBadRequest, "PropertyMissing"},
		{"empty body", ``, http.StatusBadRequest, "MalformedJSON"},
		{"not JSON", `UserName=admin`, http.StatusBadRequest, "MalformedJSON"},
		{"not an object", `["admin"]`, http.StatusBadRequest, "MalformedJSON"},
		{"too large", `{"UserName":"` + strings.Repeat("a", maxBody) + `"}`, http.StatusRequestEntityTooLarge, "GeneralError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := s.do(t, http.MethodPost, pathSessions, tt.body, nil)
			wantError(t, w, tt.status, tt.key)
			if w.Header().Get("X-Auth-Token") != "" || w.Header().Get("Location") != "" {
				t.Errorf("a failed login got a session: %v", w.Header())
			}
		})
	}
	if n := len(s.h.sessions.list()); n != 0 {
		t.Errorf("%d sessions after failed logins", n)
	}
}

func TestSessionExpiresWhenIdle(t *testing.T) {
	s := newService(t)
	token, location := s.login(t)
	get := func() int { return s.do(t, http.MethodGet, "/redfish/v1/Systems/1", "", withToken(token)).Code }
	s.clock.Advance(29 * time.Minute)
	if code := get(); code != http.StatusOK {
		t.Fatalf("after 29 idle minutes: %d", code)
	}
	s.clock.Advance(29 * time.Minute) // 58 minutes old, but used 29 minutes ago
	if code := get(); code != http.StatusOK {
		t.Fatalf("29 minutes after its last use: %d", code)
	}
	s.clock.Advance(30 * time.Minute)
	if code := get(); code != http.StatusUnauthorized {
		t.Errorf("after 30 idle minutes: %d, want 401", code)
	}
	wantError(t, s.do(t, http.MethodGet, location, "", admin), http.StatusNotFound, "ResourceMissingAtURI")
	if n := len(s.h.sessions.list()); n != 0 {
		t.Errorf("%d sessions after expiry", n)
	}
}

func TestSessionLimitEvictsOldest(t *testing.T) {
	s := newService(t)
	var tokens []string
	for range maxSessions + 1 {
		token, _ := s.login(t)
		tokens = append(tokens, token)
		s.clock.Advance(time.Second)
	}
	if n := len(s.h.sessions.list()); n != maxSessions {
		t.Errorf("%d sessions, want %d", n, maxSessions)
	}
	for i, token := range []string{tokens[0], tokens[1], tokens[maxSessions]} {
		want := http.StatusOK
		if i == 0 {
			want = http.StatusUnauthorized
		}
		if code := s.do(t, http.MethodGet, "/redfish/v1/Systems", "", withToken(token)).Code; code != want {
			t.Errorf("token %d: %d, want %d", i, code, want)
		}
	}
}

// TestLogs checks one line per request at the right level, and that neither
// the password nor a token is ever logged, whatever the request.
func TestLogs(t *testing.T) {
	s := newService(t)
	token, location := s.login(t)
	s.do(t, http.MethodGet, "/redfish/v1/Systems/1", "", withToken(token))
	s.do(t, http.MethodGet, "/redfish/v1/Systems/1", "", admin)
	s.do(t, http.MethodGet, "/redfish/v1/Systems/1", "", basic(testUser, testPassword+"x"))
	s.do(t, http.MethodGet, "/redfish/v1/Systems/1?token="+token, "", withToken(token+"0"))
	s.do(t, http.MethodPost, pathSessions, `{"UserName":"admin","Password":"`+testPassword+`x"}`, nil)
	s.do(t, http.MethodPost, pathSessions, `{"UserName":"admin","Password":`, nil)
	s.do(t, http.MethodPost, "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", `{"ResetType":"ForceOff"}`, withToken(token))
	s.do(t, http.MethodPost, "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", `{"ResetType":"On","Password":"`+testPassword+`"}`, admin)
	s.do(t, http.MethodDelete, location, "", withToken(token))

	logs := s.logs.String()
	for _, secret := range []string{testPassword, token, token[:16], token[len(token)-16:]} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs hold a secret %q:\n%s", secret, logs)
		}
	}
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if len(lines) != 10 {
		t.Errorf("%d log lines for 10 requests:\n%s", len(lines), logs)
	}
	for _, want := range []string{
		`level=INFO msg="redfish request" method=POST path=/redfish/v1/SessionService/Sessions status=201 remote=192.0.2.1:1234 duration=`,
		`level=DEBUG msg="redfish request" method=GET path=/redfish/v1/Systems/1 status=200 remote=192.0.2.1:1234 duration=`,
		`level=INFO msg="redfish request" method=POST path=/redfish/v1/Systems/1/Actions/ComputerSystem.Reset status=204 remote=192.0.2.1:1234 duration=`,
		`level=DEBUG msg="redfish request" method=GET path=/redfish/v1/Systems/1 status=401`,
		`level=INFO msg="redfish request" method=DELETE path=` + location + ` status=204`,
		` user=admin`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("no log line with %q:\n%s", want, logs)
		}
	}
}
