package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/store"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

const ipamJSON = `{"max-nodes-in-rack":28,"node-ipv4-pool":"10.69.0.0/16","node-ipv4-range-size":6,"node-ipv4-range-mask":26,
"node-ip-per-node":3,"node-index-offset":3,"node-gateway-offset":1,"bmc-ipv4-pool":"10.72.16.0/20","bmc-ipv4-offset":"0.0.1.0",
"bmc-ipv4-range-size":5,"bmc-ipv4-range-mask":20,"bmc-ipv4-gateway-offset":1}`

const machinesJSON = `[
 {"serial":"1234abcd","labels":{"product":"R630","datacenter":"ty3"},"rack":1,"role":"boot","bmc":{"type":"iDRAC-9"}},
 {"serial":"2345bcde","labels":{"product":"R630","datacenter":"ty3"},"rack":1,"role":"worker","bmc":{"type":"iDRAC-9"}},
 {"serial":"3456cdef","labels":{"product":"R740"},"rack":2,"role":"worker","bmc":{"type":"IPMI-2.0"},"retire-date":"2030-01-01T00:00:00Z"}
]`

type testServer struct {
	srv   *Server
	http  *httptest.Server
	https *httptest.Server
	store *store.Store
}

func newTestServer(t testing.TB, allow ...string) *testServer {
	t.Helper()
	st, err := store.Open(context.Background(), etcdtest.Client(t), store.Options{Hostname: "boot-0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := Config{Store: st, Hostname: "boot-0", Version: "1.2.3"}
	if allow != nil {
		cfg.AllowedIPs, err = ParseAllowIPs(allow)
		if err != nil {
			t.Fatal(err)
		}
	}
	srv := New(cfg)
	ts := &testServer{srv: srv, store: st, http: httptest.NewServer(srv.Handler()), https: httptest.NewTLSServer(srv.TLSHandler())}
	t.Cleanup(ts.http.Close)
	t.Cleanup(ts.https.Close)
	return ts
}

type response struct {
	status int
	body   string
	header http.Header
}

func (ts *testServer) do(t *testing.T, method, path, body string, header ...string) response {
	t.Helper()
	base, client := ts.http.URL, ts.http.Client()
	if strings.HasPrefix(path, "tls:") {
		path = strings.TrimPrefix(path, "tls:")
		base, client = ts.https.URL, ts.https.Client()
	}
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, string(data), resp.Header}
}

// setup configures IPAM and registers the three machines.
func (ts *testServer) setup(t *testing.T) {
	t.Helper()
	if r := ts.do(t, "PUT", "/api/v1/config/ipam", ipamJSON); r.status != 200 {
		t.Fatalf("PUT ipam: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "POST", "/api/v1/machines", machinesJSON, HeaderUser, "alice"); r.status != 201 {
		t.Fatalf("POST machines: %d %s", r.status, r.body)
	}
}

func TestAPIStatuses(t *testing.T) {
	ts := newTestServer(t)
	if r := ts.do(t, "GET", "/api/v1/config/ipam", ""); r.status != 404 {
		t.Errorf("GET ipam before PUT: %d", r.status)
	}
	if r := ts.do(t, "POST", "/api/v1/machines", machinesJSON); r.status != 409 || !strings.Contains(r.body, "IPAM") {
		t.Errorf("POST machines before IPAM: %d %s", r.status, r.body)
	}
	ts.setup(t)
	longSerial := strings.Repeat("x", 200)
	tests := []struct {
		name, method, path, body string
		status                   int
		contains                 string
	}{
		{"version", "GET", "/version", "", 200, `"version":"1.2.3"`},
		{"health", "GET", "/health", "", 200, `"healthy"`},
		{"get ipam", "GET", "/api/v1/config/ipam", "", 200, `"node-ipv4-pool":"10.69.0.0/16"`},
		{"ipam locked", "PUT", "/api/v1/config/ipam", ipamJSON, 409, "cannot change"},
		{"ipam invalid", "PUT", "/api/v1/config/ipam", `{"max-nodes-in-rack":0}`, 400, "ipam"},
		{"ipam unknown field", "PUT", "/api/v1/config/ipam", `{"max-node-in-rack":3}`, 400, "unknown field"},
		{"ipam not json", "PUT", "/api/v1/config/ipam", `max-nodes`, 400, "invalid JSON"},
		{"dhcp unset", "GET", "/api/v1/config/dhcp", "", 404, "DHCP"},
		{"dhcp put", "PUT", "/api/v1/config/dhcp", `{"lease-minutes":30,"dns-servers":["10.0.0.53"],"gateway-offset":1}`, 200, ""},
		{"dhcp get", "GET", "/api/v1/config/dhcp", "", 200, `"lease-minutes":30`},
		{"dhcp bad dns", "PUT", "/api/v1/config/dhcp", `{"dns-servers":["x"]}`, 400, "DNS"},
		{"query all", "GET", "/api/v1/machines", "", 200, "3456cdef"},
		{"query rack", "GET", "/api/v1/machines?rack=2", "", 200, "3456cdef"},
		{"query empty", "GET", "/api/v1/machines?rack=7", "", 404, "no machine"},
		{"query both forms", "GET", "/api/v1/machines?role=a&without-role=b", "", 400, "cannot be used together"},
		{"query unknown", "GET", "/api/v1/machines?datacenter=ty3", "", 400, "unknown parameter"},
		{"query bad rack", "GET", "/api/v1/machines?rack=one", "", 400, "rack"},
		{"duplicate serial", "POST", "/api/v1/machines", `[{"serial":"2345bcde","role":"worker","bmc":{"type":"x"}}]`, 409, "2345bcde"},
		{"second boot", "POST", "/api/v1/machines", `[{"serial":"b2","rack":1,"role":"boot","bmc":{"type":"x"}}]`, 409, "boot"},
		{"bad spec", "POST", "/api/v1/machines", `[{"serial":"x","role":"-bad-","bmc":{"type":"x"}}]`, 400, "role"},
		{"empty array", "POST", "/api/v1/machines", `[]`, 400, "non-empty"},
		{"get state", "GET", "/api/v1/state/2345bcde", "", 200, "uninitialized"},
		{"state unknown machine", "GET", "/api/v1/state/nobody", "", 404, "nobody"},
		{"state bad name", "PUT", "/api/v1/state/2345bcde", "sleeping", 400, "sleeping"},
		{"state empty", "PUT", "/api/v1/state/2345bcde", "", 400, "state"},
		{"state too long", "PUT", "/api/v1/state/2345bcde", strings.Repeat("a", 200), 413, "body"},
		{"state forbidden transition", "PUT", "/api/v1/state/2345bcde", "retired", 409, "not allowed"},
		{"state ok", "PUT", "/api/v1/state/2345bcde", "healthy\n", 200, ""},
		{"state serial too long", "PUT", "/api/v1/state/" + longSerial, "healthy", 400, "serial"},
		{"label put", "PUT", "/api/v1/labels/2345bcde/os-release", "1855.4.0", 200, ""},
		{"label bad value", "PUT", "/api/v1/labels/2345bcde/os", "a b", 400, "value"},
		{"label bad name", "PUT", "/api/v1/labels/2345bcde/-os", "x", 400, "label name"},
		{"label unknown machine", "PUT", "/api/v1/labels/nobody/os", "x", 404, "nobody"},
		{"label delete", "DELETE", "/api/v1/labels/2345bcde/os-release", "", 200, ""},
		{"label delete missing", "DELETE", "/api/v1/labels/2345bcde/os-release", "", 404, "os-release"},
		{"retire date rfc3339", "PUT", "/api/v1/retire-date/2345bcde", "2031-02-03T00:00:00Z", 200, ""},
		{"retire date day", "PUT", "/api/v1/retire-date/2345bcde", "2031-02-04", 200, ""},
		{"retire date bad", "PUT", "/api/v1/retire-date/2345bcde", "soon", 400, "retire date"},
		{"delete not retired", "DELETE", "/api/v1/machines/2345bcde", "", 409, "retired"},
		{"delete unknown", "DELETE", "/api/v1/machines/nobody", "", 404, "nobody"},
		{"logs bad since", "GET", "/api/v1/logs?since=yesterday", "", 400, "YYYYMMDD"},
		{"unknown path", "GET", "/api/v1/nothing", "", 404, "no such API"},
		{"unknown method", "PATCH", "/api/v1/machines", "", 405, "allowed: GET, HEAD, POST"},
		{"crypts on http", "GET", "/api/v1/crypts/2345bcde/disk", "", 404, "HTTPS"},
		{"bad user header", "PUT", "/api/v1/state/2345bcde", "healthy", 400, HeaderUser},
		{"graphql empty", "POST", "/graphql", `{}`, 400, "query"},
		{"graphql bad json", "POST", "/graphql", `{`, 400, "JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.name == "bad user header" {
				hdr = []string{HeaderUser, strings.Repeat("u", 300)}
			}
			r := ts.do(t, tt.method, tt.path, tt.body, hdr...)
			if r.status != tt.status || !strings.Contains(r.body, tt.contains) {
				t.Errorf("%s %s: %d %s, want %d containing %q", tt.method, tt.path, r.status, r.body, tt.status, tt.contains)
			}
			if r.status >= 400 {
				var e Error
				if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Status != r.status || e.Message == "" {
					t.Errorf("error body %q is not {status, error}", r.body)
				}
			}
		})
	}
	m, err := ts.store.Machine(context.Background(), "2345bcde")
	if err != nil {
		t.Fatal(err)
	}
	if m.Status.State != sabakan.StateHealthy || m.Spec.RetireDate.Format(time.DateOnly) != "2031-02-04" || m.Spec.Labels["os-release"] != "" {
		t.Errorf("machine after the calls: %+v", m)
	}
}

// TestStatusesDifferFromReference pins the answers that differ from the
// reference's on purpose, one per row of "Differences from the reference"
// in docs/sabakan-api.md: requests both refuse, ours with the status that
// names the cause (the reference answers 500, or 404 for malformed query
// values).
func TestStatusesDifferFromReference(t *testing.T) {
	ts := newTestServer(t)
	if r := ts.do(t, "POST", "/api/v1/machines", machinesJSON); r.status != 409 {
		t.Errorf("POST machines before IPAM: %d %s, want 409 (reference: 500)", r.status, r.body)
	}
	ts.setup(t)
	var full []string
	for i := range 29 {
		full = append(full, fmt.Sprintf(`{"serial":"full%02d","rack":5,"role":"cs","bmc":{"type":"x"}}`, i))
	}
	for _, tt := range []struct {
		name, method, path, body string
		status                   int // reference: 500 unless said
		contains                 string
	}{
		{"forbidden transition", "PUT", "/api/v1/state/2345bcde", "retired", 409, "not allowed"},
		{"delete a machine not retired", "DELETE", "/api/v1/machines/2345bcde", "", 409, "only retired"},
		{"ipam with machines", "PUT", "/api/v1/config/ipam", ipamJSON, 409, "cannot change"},
		{"a serial twice in one body", "POST", "/api/v1/machines", `[{"serial":"d","role":"cs","bmc":{"type":"x"}},{"serial":"d","role":"cs","bmc":{"type":"x"}}]`, 409, "serial d is also"},
		{"a full rack", "POST", "/api/v1/machines", "[" + strings.Join(full, ",") + "]", 409, "rack 5 is full"},
		{"crypts delete of a machine not retiring", "DELETE", "tls:/api/v1/crypts/2345bcde", "", 409, "retiring"},
		{"crypt of an unknown machine", "PUT", "tls:/api/v1/crypts/nobody/disk0", "k", 404, "nobody"},
		{"malformed rack (reference: 404)", "GET", "/api/v1/machines?rack=one", "", 400, "invalid rack"},
		{"malformed state (reference: 404)", "GET", "/api/v1/machines?state=helthy", "", 400, "invalid state"},
		{"malformed label selector (reference: 404 or 500)", "GET", "/api/v1/machines?labels=product", "", 400, "label selector"},
		{"unknown parameter (reference: 404 or ignored)", "GET", "/api/v1/machines?datacenter=ty3", "", 400, "unknown parameter"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(t, tt.method, tt.path, tt.body)
			if r.status != tt.status || !strings.Contains(r.body, tt.contains) {
				t.Errorf("%s %s: %d %s, want %d containing %q", tt.method, tt.path, r.status, r.body, tt.status, tt.contains)
			}
		})
	}
	// A retiring machine takes no new disk key.
	ts.do(t, "PUT", "/api/v1/state/2345bcde", "retiring")
	if r := ts.do(t, "PUT", "tls:/api/v1/crypts/2345bcde/disk0", "k"); r.status != 409 || !strings.Contains(r.body, "retiring") {
		t.Errorf("PUT crypt of a retiring machine: %d %s, want 409 (reference: 500)", r.status, r.body)
	}
}

func TestGetMachinesJSON(t *testing.T) {
	ts := newTestServer(t)
	ts.setup(t)
	r := ts.do(t, "GET", "/api/v1/machines?labels=product=R630&without-role=boot", "")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("got %d machines, want 1", len(got))
	}
	// The reference's shape: spec, status (with duration), info.
	spec := got[0]["spec"].(map[string]any)
	status := got[0]["status"].(map[string]any)
	info := got[0]["info"].(map[string]any)
	if spec["serial"] != "2345bcde" || spec["index-in-rack"] != 4.0 || spec["ipv4"].([]any)[0] != "10.69.0.196" {
		t.Errorf("spec = %v", spec)
	}
	if spec["bmc"].(map[string]any)["ipv4"] != "10.72.17.36" {
		t.Errorf("bmc = %v", spec["bmc"])
	}
	if _, ok := status["duration"].(float64); !ok || status["state"] != "uninitialized" {
		t.Errorf("status = %v", status)
	}
	nic := info["network"].(map[string]any)["ipv4"].([]any)[0].(map[string]any)
	if nic["gateway"] != "10.69.0.193" || nic["maskbits"] != 26.0 || nic["netmask"] != "255.255.255.192" {
		t.Errorf("info = %v", info)
	}
}

// TestRetireDateDefault: a machine registered without a retire date has
// its registration date as retire date, in REST and GraphQL answers (the
// reference's behaviour); one given stays.
func TestRetireDateDefault(t *testing.T) {
	ts := newTestServer(t)
	ts.setup(t)
	r := ts.do(t, "GET", "/api/v1/machines", "")
	var ms []sabakan.Machine
	if err := json.Unmarshal([]byte(r.body), &ms); err != nil || len(ms) != 3 {
		t.Fatalf("GET machines: %v %s", err, r.body)
	}
	if strings.Contains(r.body, "0001-01-01") {
		t.Errorf("a zero date in %s", r.body)
	}
	for _, m := range ms {
		want := m.Spec.RegisterDate
		if m.Spec.Serial == "3456cdef" {
			want = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		}
		if !m.Spec.RetireDate.Equal(want) || m.Spec.RegisterDate.IsZero() {
			t.Errorf("%s: register %s, retire %s; want retire %s", m.Spec.Serial, m.Spec.RegisterDate, m.Spec.RetireDate, want)
		}
	}
	out := gql(t, ts, `{ machine(serial: "2345bcde") { spec { registerDate retireDate } } }`, nil)
	spec := out["data"].(map[string]any)["machine"].(map[string]any)["spec"].(map[string]any)
	reg, err1 := time.Parse(time.RFC3339Nano, spec["registerDate"].(string))
	ret, err2 := time.Parse(time.RFC3339Nano, spec["retireDate"].(string))
	if err1 != nil || err2 != nil || reg.Year() < 2000 || !ret.Equal(reg) {
		t.Errorf("GraphQL spec = %v", spec)
	}
}

func TestAccessControlAndAudit(t *testing.T) {
	ts := newTestServer(t, "10.0.0.0/8") // the test client, 127.0.0.1, is not allowed
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/api/v1/config/ipam", ipamJSON},
		{"POST", "/api/v1/machines", machinesJSON},
		{"PUT", "/api/v1/state/x", "healthy"},
		{"DELETE", "/api/v1/machines/x", ""},
		{"tls:DELETE", "/api/v1/crypts/x", ""},
		{"POST", "/api/v1/logs", `{"category":"power","instance":"x","action":"power-on"}`},
	} {
		method, path := c.method, c.path
		if m, ok := strings.CutPrefix(method, "tls:"); ok {
			method, path = m, "tls:"+path
		}
		if r := ts.do(t, method, path, c.body); r.status != 403 || !strings.Contains(r.body, "allow-ips") {
			t.Errorf("%s %s from a disallowed address: %d %s", method, path, r.status, r.body)
		}
	}
	if r := ts.do(t, "GET", "/api/v1/config/ipam", ""); r.status != 404 {
		t.Errorf("GET from a disallowed address: %d (reads are open)", r.status)
	}
	// Disk keys are written by the machines themselves: PUT is open.
	if err := ts.store.PutIPAM(context.Background(), mustIPAM(t)); err != nil {
		t.Fatal(err)
	}
	specs, _ := sabakan.DecodeMachineSpecs([]byte(machinesJSON))
	if _, err := ts.store.Register(context.Background(), specs); err != nil {
		t.Fatal(err)
	}
	if r := ts.do(t, "PUT", "tls:/api/v1/crypts/2345bcde/pci-0000:00:17.0-ata-1", "key"); r.status != 201 || !strings.Contains(r.body, `"path":"pci-0000:00:17.0-ata-1"`) {
		t.Errorf("PUT crypt from a disallowed address: %d %s", r.status, r.body)
	}
	// GraphQL queries are open, the mutation is not.
	r := ts.do(t, "POST", "/graphql", `{"query":"mutation { setMachineState(serial: \"2345bcde\", state: HEALTHY) { state } }"}`)
	if !strings.Contains(r.body, "FORBIDDEN") {
		t.Errorf("setMachineState from a disallowed address: %s", r.body)
	}
	r = ts.do(t, "POST", "/graphql", `{"query":"{ machine(serial: \"2345bcde\") { spec { serial } } }"}`)
	if !strings.Contains(r.body, `"serial":"2345bcde"`) {
		t.Errorf("query from a disallowed address: %s", r.body)
	}
}

func mustIPAM(t testing.TB) *sabakan.IPAMConfig {
	var c sabakan.IPAMConfig
	if err := json.Unmarshal([]byte(ipamJSON), &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

func TestAuditRecordsActor(t *testing.T) {
	ts := newTestServer(t)
	ts.setup(t)
	ts.do(t, "PUT", "/api/v1/state/2345bcde", "healthy", HeaderUser, "bob")
	r := ts.do(t, "GET", "/api/v1/logs", "")
	lines := strings.Split(strings.TrimSpace(r.body), "\n")
	if r.status != 200 || len(lines) != 3 {
		t.Fatalf("logs: %d %q", r.status, r.body)
	}
	var last sabakan.AuditEntry
	if err := json.Unmarshal([]byte(lines[2]), &last); err != nil {
		t.Fatal(err)
	}
	if last.User != "bob" || last.IP != "127.0.0.1" || last.Host != "boot-0" || last.Action != "set-state" || last.Detail != "uninitialized -> healthy" || last.Revision == 0 {
		t.Errorf("audit entry = %+v", last)
	}
	var reg sabakan.AuditEntry
	json.Unmarshal([]byte(lines[1]), &reg)
	if reg.User != "alice" || reg.Category != "machines" || reg.Action != "register" || reg.Instance != "" {
		t.Errorf("registration entry = %+v", reg)
	}
	today := time.Now().UTC().Format("20060102")
	if r := ts.do(t, "GET", "/api/v1/logs?since="+today, ""); strings.Count(r.body, "\n") != 3 {
		t.Errorf("logs since today: %q", r.body)
	}
	if r := ts.do(t, "GET", "/api/v1/logs?until="+today, ""); r.status != 200 || r.body != "" {
		t.Errorf("logs until today (excluded): %d %q", r.status, r.body)
	}
}

func TestCrypts(t *testing.T) {
	ts := newTestServer(t)
	ts.setup(t)
	const disk = "pci-0000:00:17.0-ata-1"
	checks := []struct {
		method, path, body string
		status             int
		contains           string
	}{
		{"PUT", "/api/v1/crypts/2345bcde/" + disk, "", 400, "key"},
		{"PUT", "/api/v1/crypts/2345bcde/" + disk, strings.Repeat("k", 5000), 413, ""},
		{"PUT", "/api/v1/crypts/nobody/" + disk, "k", 404, "nobody"},
		{"PUT", "/api/v1/crypts/2345bcde/" + disk, "\x00\x01binary", 201, disk},
		{"PUT", "/api/v1/crypts/2345bcde/" + disk, "again", 409, "already"},
		{"GET", "/api/v1/crypts/2345bcde/" + disk, "", 200, "\x00\x01binary"},
		{"GET", "/api/v1/crypts/2345bcde/other", "", 404, "other"},
		{"DELETE", "/api/v1/crypts/2345bcde", "", 409, "retiring"},
	}
	for _, c := range checks {
		r := ts.do(t, c.method, "tls:"+c.path, c.body)
		if r.status != c.status || !strings.Contains(r.body, c.contains) {
			t.Errorf("%s %s: %d %q, want %d containing %q", c.method, c.path, r.status, r.body, c.status, c.contains)
		}
	}
	ts.do(t, "PUT", "/api/v1/state/2345bcde", "retiring")
	if r := ts.do(t, "PUT", "/api/v1/state/2345bcde", "retired"); r.status != 400 || !strings.Contains(r.body, "encryption key") {
		t.Errorf("retiring → retired with keys: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "DELETE", "tls:/api/v1/crypts/2345bcde", ""); r.status != 200 || r.body != `["`+disk+`"]`+"\n" {
		t.Errorf("DELETE crypts: %d %q", r.status, r.body)
	}
	if r := ts.do(t, "PUT", "/api/v1/state/2345bcde", "retired"); r.status != 200 {
		t.Errorf("retiring → retired without keys: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "DELETE", "/api/v1/machines/2345bcde", ""); r.status != 200 {
		t.Errorf("DELETE retired machine: %d %s", r.status, r.body)
	}
}

func gql(t *testing.T, ts *testServer, query string, vars map[string]any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	r := ts.do(t, "POST", "/graphql", string(body))
	if r.status != 200 {
		t.Fatalf("graphql: %d %s", r.status, r.body)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// ckeQuery is the reference Kubernetes engine's query, verbatim in shape.
const ckeQuery = `
query ckeSearch($having: MachineParams = null,
                $notHaving: MachineParams = {
                  roles: ["boot"]
                  states: [RETIRED]
                }) {
  searchMachines(having: $having, notHaving: $notHaving) {
    spec {
      serial
      labels { name value }
      rack
      indexInRack
      role
      ipv4
      registerDate
      retireDate
      bmc { bmcType ipv4 }
    }
    status { state timestamp duration }
    info { network { ipv4 { address netmask maskbits gateway } } bmc { ipv4 { address gateway } } }
  }
}`

func TestGraphQL(t *testing.T) {
	ts := newTestServer(t)
	ts.setup(t)
	out := gql(t, ts, ckeQuery, nil)
	if out["errors"] != nil {
		t.Fatalf("errors: %v", out["errors"])
	}
	ms := out["data"].(map[string]any)["searchMachines"].([]any)
	if len(ms) != 2 {
		t.Fatalf("CKE query found %d machines, want the 2 workers", len(ms))
	}
	first := ms[0].(map[string]any)
	spec := first["spec"].(map[string]any)
	if spec["serial"] != "2345bcde" || spec["indexInRack"] != 4.0 || spec["ipv4"].([]any)[0] != "10.69.0.196" ||
		spec["bmc"].(map[string]any)["bmcType"] != "iDRAC-9" || spec["labels"].([]any)[0].(map[string]any)["name"] != "datacenter" {
		t.Errorf("spec = %v", spec)
	}
	if first["status"].(map[string]any)["state"] != "UNINITIALIZED" {
		t.Errorf("status = %v", first["status"])
	}
	if _, err := time.Parse(time.RFC3339, spec["registerDate"].(string)); err != nil {
		t.Errorf("registerDate: %v", err)
	}

	out = gql(t, ts, `query($h: MachineParams, $n: MachineParams) { searchMachines(having: $h, notHaving: $n) { spec { serial } } }`,
		map[string]any{"h": map[string]any{"labels": []any{map[string]any{"name": "product", "value": "R630"}}}, "n": map[string]any{"racks": []any{2}}})
	if got := fmt.Sprint(out["data"]); got != "map[searchMachines:[map[spec:map[serial:1234abcd]] map[spec:map[serial:2345bcde]]]]" {
		t.Errorf("labels search: %s", got)
	}
	out = gql(t, ts, `{ searchMachines(having: {minDaysBeforeRetire: 100}) { spec { serial } } }`, nil)
	if got := fmt.Sprint(out["data"]); got != "map[searchMachines:[map[spec:map[serial:3456cdef]]]]" {
		t.Errorf("minDaysBeforeRetire search: %s", got)
	}

	out = gql(t, ts, `mutation { setMachineState(serial: "2345bcde", state: HEALTHY) { state duration } }`, nil)
	if got := fmt.Sprint(out["data"]); !strings.Contains(got, "state:HEALTHY") {
		t.Errorf("setMachineState: %v %v", out["data"], out["errors"])
	}
	for _, c := range []struct{ query, typ string }{
		{`mutation { setMachineState(serial: "2345bcde", state: RETIRED) { state } }`, gqlInvalidStateTransition},
		{`mutation { setMachineState(serial: "nobody", state: HEALTHY) { state } }`, gqlMachineNotFound},
		{`{ machine(serial: "nobody") { spec { serial } } }`, gqlMachineNotFound},
	} {
		out := gql(t, ts, c.query, nil)
		errs, _ := out["errors"].([]any)
		if len(errs) != 1 || errs[0].(map[string]any)["extensions"].(map[string]any)["type"] != c.typ {
			t.Errorf("%s: errors = %v, want type %s", c.query, out["errors"], c.typ)
		}
	}
	out = gql(t, ts, `{ nosuchfield }`, nil)
	if out["errors"] == nil {
		t.Error("an invalid query gave no error")
	}
}

func TestMatchMachine(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := &sabakan.Machine{Spec: sabakan.MachineSpec{Serial: "s", Rack: 2, Role: "cs", Labels: map[string]string{"a": "1", "b": "2"}, RetireDate: now.AddDate(0, 0, 10)}}
	m.Status.State = sabakan.StateHealthy
	ints := func(v ...int32) []int32 { return v }
	strs := func(v ...string) []string { return v }
	labels := func(kv ...string) []LabelInput {
		var out []LabelInput
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, LabelInput{kv[i], kv[i+1]})
		}
		return out
	}
	day := func(n int32) *int32 { return &n }
	tests := []struct {
		name  string
		h, nh *MachineParams
		want  bool
	}{
		{"nothing", nil, nil, true},
		{"all labels", &MachineParams{Labels: labels("a", "1", "b", "2")}, nil, true},
		{"one label wrong", &MachineParams{Labels: labels("a", "1", "b", "3")}, nil, false},
		{"rack", &MachineParams{Racks: ints(1, 2)}, nil, true},
		{"other rack", &MachineParams{Racks: ints(1)}, nil, false},
		{"empty racks do not constrain", &MachineParams{Racks: ints()}, nil, true},
		{"state", &MachineParams{States: strs("HEALTHY")}, nil, true},
		{"role", &MachineParams{Roles: strs("ss")}, nil, false},
		{"days enough", &MachineParams{MinDaysBeforeRetire: day(10)}, nil, true},
		{"days too few", &MachineParams{MinDaysBeforeRetire: day(11)}, nil, false},
		{"not any label", nil, &MachineParams{Labels: labels("a", "9", "b", "2")}, false},
		{"not labels absent", nil, &MachineParams{Labels: labels("a", "9")}, true},
		{"not rack", nil, &MachineParams{Racks: ints(2)}, false},
		{"not state", nil, &MachineParams{States: strs("RETIRED")}, true},
		{"not days", nil, &MachineParams{MinDaysBeforeRetire: day(10)}, false},
		{"not days more", nil, &MachineParams{MinDaysBeforeRetire: day(11)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MatchMachine(m, tt.h, tt.nh, now); got != tt.want {
				t.Errorf("MatchMachine = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestExtensionRoutes(t *testing.T) {
	st, err := store.Open(context.Background(), etcdtest.Client(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := New(Config{Store: st, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	srv.HandleFunc("PUT /api/v1/assets/{name}", func(w http.ResponseWriter, r *http.Request) {
		a := sabakan.ActorFrom(r.Context())
		fmt.Fprintf(w, "%s from %s", r.PathValue("name"), a.IP)
	})
	srv.HandleFunc("GET /api/v1/assets/{name}", func(w http.ResponseWriter, r *http.Request) {
		RenderError(w, r, fmt.Errorf("%w: asset %s", sabakan.ErrNotFound, r.PathValue("name")))
	})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	req, _ := http.NewRequest("PUT", ts.URL+"/api/v1/assets/a", bytes.NewReader(nil))
	resp, _ := http.DefaultClient.Do(req)
	if resp.StatusCode != 403 {
		t.Errorf("extension PUT from a disallowed address: %d", resp.StatusCode)
	}
	resp, _ = http.Head(ts.URL + "/api/v1/assets/a")
	if resp.StatusCode != 404 {
		t.Errorf("extension HEAD (served by GET): %d", resp.StatusCode)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a route twice did not panic")
		}
	}()
	srv.HandleFunc("GET /api/v1/assets/{name}", func(http.ResponseWriter, *http.Request) {})
}
