package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/openneco/neco/pkg/sabakan"
)

// logBody is a POST /api/v1/logs body.
func logBody(category, instance, action, detail string) string {
	data, _ := json.Marshal(map[string]string{"category": category, "instance": instance, "action": action, "detail": detail})
	return string(data)
}

func TestPostLog(t *testing.T) {
	ts := newTestServer(t)
	ts.setup(t)
	r := ts.do(t, "POST", "/api/v1/logs", logBody("power", "2345bcde", "power-cycle", "hung <10m>: \"no heartbeat\""), HeaderUser, "repair")
	if r.status != 201 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("POST logs: %d %s", r.status, r.body)
	}
	var e sabakan.AuditEntry
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatal(err)
	}
	if e.User != "repair" || e.IP != "127.0.0.1" || e.Host != "boot-0" || e.Category != sabakan.AuditPower || e.Instance != "2345bcde" ||
		e.Action != "power-cycle" || e.Detail != `hung <10m>: "no heartbeat"` || e.Revision == 0 || e.Timestamp.IsZero() {
		t.Errorf("entry = %+v", e)
	}
	logs := ts.do(t, "GET", "/api/v1/logs", "")
	lines := strings.Split(strings.TrimSpace(logs.body), "\n")
	var last sabakan.AuditEntry
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last != e {
		t.Errorf("the log's last entry %+v (%v) differs from the answer %+v", last, err, e)
	}
	// An existing machine in any state takes entries.
	ts.do(t, "PUT", "/api/v1/state/3456cdef", "retiring")
	if r := ts.do(t, "POST", "/api/v1/logs", logBody("power", "3456cdef", "power-off", "")); r.status != 201 {
		t.Errorf("POST logs of a retiring machine: %d %s", r.status, r.body)
	}
}

// TestPostLogRefused: every refused POST /api/v1/logs answers 4xx with an
// error body and writes nothing.
func TestPostLogRefused(t *testing.T) {
	ts := newTestServer(t)
	ts.setup(t)
	const m = "2345bcde"
	tests := []struct {
		name, body string
		status     int
		contains   string // in the JSON answer: quotes escaped
	}{
		{"category of sabakan's own", logBody("machines", m, "power-on", ""), 400, `invalid category \"machines\": clients may append entries of [power] only`},
		{"unknown category", logBody("reboot", m, "power-on", ""), 400, "category"},
		{"no category", `{"instance":"` + m + `","action":"power-on"}`, 400, `invalid category \"\"`},
		{"unknown machine", logBody("power", "nobody", "power-on", ""), 404, "machine nobody is not registered"},
		{"no instance", `{"category":"power","action":"power-on"}`, 400, `invalid instance \"\"`},
		{"instance not a serial", logBody("power", "a/b", "power-on", ""), 400, "invalid instance"},
		{"instance too long", logBody("power", strings.Repeat("s", 129), "power-on", ""), 400, "invalid instance"},
		{"no action", `{"category":"power","instance":"` + m + `"}`, 400, `invalid action \"\"`},
		{"uppercase action", logBody("power", m, "PowerOn", ""), 400, "lowercase letter"},
		{"action with space", logBody("power", m, "power on", ""), 400, "invalid action"},
		{"action too long", logBody("power", m, strings.Repeat("a", 33), ""), 400, "invalid action"},
		{"detail too long", logBody("power", m, "power-on", strings.Repeat("d", 1025)), 400, "1025 bytes, at most 1024"},
		{"detail too long in UTF-8", logBody("power", m, "power-on", strings.Repeat("é", 513)), 400, "1026 bytes"},
		{"detail not UTF-8", `{"category":"power","instance":"` + m + `","action":"power-on","detail":"` + "\xff\xfe" + `"}`, 400, "UTF-8"},
		{"unknown field", `{"category":"power","instance":"` + m + `","action":"power-on","user":"root"}`, 400, "unknown field"},
		{"wrong type", `{"category":"power","instance":"` + m + `","action":"power-on","detail":5}`, 400, "invalid JSON"},
		{"not JSON", `power-on`, 400, "invalid JSON"},
		{"empty", ``, 400, "invalid JSON"},
		{"null", `null`, 400, "category"},
		{"array", `[` + logBody("power", m, "power-on", "") + `]`, 400, "invalid JSON"},
		{"two objects", logBody("power", m, "power-on", "") + logBody("power", m, "power-on", ""), 400, "unexpected data"},
		{"too large", logBody("power", m, "power-on", strings.Repeat(" ", 17<<10)), 413, "at most 16384"},
	}
	before := ts.do(t, "GET", "/api/v1/logs", "").body
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(t, "POST", "/api/v1/logs", tt.body)
			if r.status != tt.status || !strings.Contains(r.body, tt.contains) {
				t.Errorf("POST logs: %d %s, want %d containing %q", r.status, r.body, tt.status, tt.contains)
			}
			var e Error
			if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Status != r.status || e.Message == "" {
				t.Errorf("error body %q is not {status, error}", r.body)
			}
			if after := ts.do(t, "GET", "/api/v1/logs", "").body; after != before {
				t.Errorf("the log changed:\n%s\nwas\n%s", after, before)
			}
		})
	}
	if r := ts.do(t, "PATCH", "/api/v1/logs", ""); r.status != 405 || r.header.Get("Allow") != "GET, HEAD, POST" {
		t.Errorf("PATCH logs: %d, Allow %q", r.status, r.header.Get("Allow"))
	}
}

// FuzzPostLog: no body makes POST /api/v1/logs answer 5xx; a refused one
// writes nothing, an accepted one writes exactly its entry.
func FuzzPostLog(f *testing.F) {
	for _, s := range []string{
		logBody("power", "2345bcde", "power-cycle", "hung"),
		logBody("power", "nobody", "power-on", ""),
		logBody("machines", "2345bcde", "x", ""),
		`{"category":"power","instance":"2345bcde","action":"a","detail":"\ud800"}`,
		`{"category":"power","instance":"2345bcde","action":"a","x":1}`,
		`{"Category":"power","INSTANCE":"2345bcde","action":"a"}`,
		`{"category":"power","category":"dhcp"}`,
		`{}`, `null`, `[]`, `"power"`, `{`, "\xff", "",
	} {
		f.Add([]byte(s))
	}
	ts := newTestServer(f)
	if err := ts.store.PutIPAM(f.Context(), mustIPAM(f)); err != nil {
		f.Fatal(err)
	}
	specs, _ := sabakan.DecodeMachineSpecs([]byte(machinesJSON))
	if _, err := ts.store.Register(f.Context(), specs); err != nil {
		f.Fatal(err)
	}
	h := ts.srv.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		count := func() int {
			r := httptest.NewRecorder()
			h.ServeHTTP(r, httptest.NewRequest("GET", "/api/v1/logs", nil))
			return strings.Count(r.Body.String(), "\n")
		}
		before := count()
		req := httptest.NewRequest("POST", "/api/v1/logs", strings.NewReader(string(body)))
		req.RemoteAddr = "127.0.0.1:4242"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		want := before
		switch rec.Code {
		case http.StatusCreated:
			want++
		case http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("body %q: %d %s", body, rec.Code, rec.Body)
		}
		if got := count(); got != want {
			t.Fatalf("body %q: %d, and the log went from %d to %d entries", body, rec.Code, before, got)
		}
	})
}
