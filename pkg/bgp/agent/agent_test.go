package agent

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/bgp"
	"github.com/openneco/neco/pkg/config"
	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/client"
	"github.com/openneco/neco/pkg/sabakan/store"
	"github.com/openneco/neco/pkg/sabakan/web"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

// newSabakan runs the real sabakan REST API on an embedded etcd with the
// reference IPAM configuration and two registered machines.
func newSabakan(t *testing.T) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, etcdtest.Client(t), store.Options{Hostname: "boot-0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := httptest.NewServer(web.New(web.Config{Store: st}).Handler())
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetIPAM(ctx, sabakan.ReferenceIPAM()); err != nil {
		t.Fatal(err)
	}
	err = c.Register(ctx, []sabakan.MachineSpec{
		{Serial: "boot-1", Rack: 1, Role: "boot", BMC: sabakan.MachineBMC{Type: "IPMI-2.0"}},
		{Serial: "node-1", Rack: 1, Role: "cs", BMC: sabakan.MachineBMC{Type: "IPMI-2.0"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func TestFetchSabakan(t *testing.T) {
	srv := newSabakan(t)
	ctx := context.Background()
	src, err := FetchSabakan(ctx, http.DefaultClient, srv.URL, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	id, err := src.Identity(bgp.DefaultASPlan())
	if err != nil {
		t.Fatal(err)
	}
	// Rack 1: the boot server has index 3, the first other machine 4.
	if id.Index != 4 || id.AS != 64601 || id.Node.String() != "10.69.0.196" ||
		id.Links[0].Address.String() != "10.69.1.4/26" || id.Links[1].ToR.String() != "10.69.1.65" {
		t.Errorf("identity from sabakan = %+v", id)
	}

	_, err = FetchSabakan(ctx, http.DefaultClient, srv.URL, "no-such-serial")
	if !errors.Is(err, ErrUnknownSerial) {
		t.Errorf("unknown serial: %v, want ErrUnknownSerial", err)
	}
	var te *TransientError
	if errors.As(err, &te) {
		t.Errorf("unknown serial is not transient: %v", err)
	}

	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	_, err = FetchSabakan(ctx, http.DefaultClient, down.URL, "node-1")
	if !errors.As(err, &te) {
		t.Errorf("sabakan down: %v, want a TransientError", err)
	}

	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"status":503,"error":"etcd unreachable"}`, http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	if _, err := FetchSabakan(ctx, http.DefaultClient, failing.URL, "node-1"); !errors.As(err, &te) {
		t.Errorf("sabakan failing: %v, want a TransientError", err)
	}

	if _, err := FetchSabakan(ctx, http.DefaultClient, "ftp://x", "node-1"); !errors.Is(err, bgp.ErrInvalidSettings) {
		t.Errorf("bad URL: %v", err)
	}
}

func newTestAgent(t *testing.T, cfg *Config) *Agent {
	t.Helper()
	return New(cfg, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// TestLoadIdentityCache: once an identity was cached, a restart works while
// sabakan is down; without a cache the agent keeps retrying.
func TestLoadIdentityCache(t *testing.T) {
	srv := newSabakan(t)
	cfg := DefaultConfig()
	cfg.SabakanURL = srv.URL
	cfg.Serial = "node-1"
	cfg.StateDir = t.TempDir()
	a := newTestAgent(t, cfg)
	ctx := context.Background()
	src, err := a.loadIdentity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeCache(cfg.identityCache(), src); err != nil {
		t.Fatal(err)
	}
	srv.Close()

	cached, err := a.loadIdentity(ctx)
	if err != nil || cached.Machine.Spec.Serial != "node-1" || cached.Machine.Spec.IPv4[0] != src.Machine.Spec.IPv4[0] {
		t.Fatalf("with sabakan down: %+v, %v; want the cached identity", cached, err)
	}

	// The cache of another machine does not count.
	cfg.Serial = "node-2"
	tctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	if _, err := a.loadIdentity(tctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("no usable cache: %v, want retries until the context ends", err)
	}
}

func TestReadSerial(t *testing.T) {
	path := filepath.Join(t.TempDir(), "product_serial")
	os.WriteFile(path, []byte("  ABC123\n"), 0o644)
	if s, err := ReadSerial("", path); err != nil || s != "ABC123" {
		t.Errorf("ReadSerial = %q, %v", s, err)
	}
	if s, _ := ReadSerial("override", path); s != "override" {
		t.Errorf("flag does not win: %q", s)
	}
	os.WriteFile(path, []byte("\n"), 0o644)
	if _, err := ReadSerial("", path); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty serial: %v", err)
	}
	if _, err := ReadSerial("", filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing serial file accepted")
	}
}

func TestReadIdentityFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "id.yaml")
	os.WriteFile(good, []byte(`
machine:
  spec: {serial: boot-0, rack: 0, index-in-rack: 3, role: boot}
ipam:
  max-nodes-in-rack: 28
  node-ipv4-pool: 10.69.0.0/20
  node-ipv4-range-size: 6
  node-ipv4-range-mask: 26
  node-ip-per-node: 3
  node-index-offset: 3
  node-gateway-offset: 1
  bmc-ipv4-pool: 10.72.16.0/20
  bmc-ipv4-range-size: 5
  bmc-ipv4-range-mask: 20
  bmc-ipv4-gateway-offset: 1
`), 0o644)
	src, err := ReadIdentityFile(good)
	if err != nil {
		t.Fatal(err)
	}
	id, err := src.Identity(bgp.DefaultASPlan())
	if err != nil || id.Node.String() != "10.69.0.3" {
		t.Errorf("boot server identity = %+v, %v", id, err)
	}
	typo := filepath.Join(dir, "typo.yaml")
	os.WriteFile(typo, []byte("machine: {spec: {serial: x}}\nipam: {node-ipv4-pol: 10.0.0.0/8}\n"), 0o644)
	if _, err := ReadIdentityFile(typo); !errors.Is(err, bgp.ErrInvalidIdentity) || !strings.Contains(err.Error(), "node-ipv4-pol") {
		t.Errorf("unknown key: %v", err)
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "agent.yaml")
	os.WriteFile(file, []byte(`
identity-file: /etc/neco/identity.yaml
interfaces: [enp1s0, enp2s0]
timers:
  bfd-interval: 100ms
  error-wait-max: 30s
virtual-addresses:
  - {name: bastion, address: 10.72.48.3}
graceful-restart: false
`), 0o644)
	cfg := DefaultConfig()
	if !cfg.GracefulRestart {
		t.Error("graceful restart is off by default")
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.AddFlags(fs)
	if err := fs.Parse([]string{"-bfd-multiplier", "4", "-interfaces", "eth2,eth3"}); err != nil {
		t.Fatal(err)
	}
	if err := config.Load(fs, file, cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	fast := bgp.FastTimers()
	switch {
	case cfg.Timers.BFDInterval.D() != 100*time.Millisecond, cfg.Timers.ErrorWaitMax.D() != 30*time.Second:
		t.Errorf("file timers not applied: %+v", cfg.Timers)
	case cfg.Timers.BFDMultiplier != 4:
		t.Errorf("flag did not win over the file: multiplier %d", cfg.Timers.BFDMultiplier)
	case cfg.Timers.HoldTime != fast.HoldTime || cfg.Timers.ConnectDelay != fast.ConnectDelay:
		t.Errorf("timers absent from the file lost their defaults: %+v", cfg.Timers)
	case cfg.Interfaces[0] != "eth2" || cfg.Interfaces[1] != "eth3":
		t.Errorf("interfaces = %v, want the flag's", cfg.Interfaces)
	case len(cfg.VirtualAddresses) != 1 || cfg.VirtualAddresses[0].Address.String() != "10.72.48.3":
		t.Errorf("virtual addresses = %+v", cfg.VirtualAddresses)
	case cfg.GracefulRestart:
		t.Error("graceful-restart: false in the file was not applied")
	}

	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no identity source", func(c *Config) { c.IdentityFile = "" }, "sabakan-url or identity-file"},
		{"one interface", func(c *Config) { c.Interfaces = []string{"eth0"} }, "exactly two"},
		{"bad node0 kind", func(c *Config) { c.Node0Kind = "bridge" }, "unknown node0 link type"},
		{"relative state dir", func(c *Config) { c.StateDir = "state" }, "absolute"},
		{"poll too fast", func(c *Config) { c.PollInterval = bgp.Duration(time.Millisecond) }, "poll-interval"},
		{"bad timers", func(c *Config) { c.Timers.BFDMultiplier = 0 }, "bfd-multiplier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.IdentityFile = "/x"
			tt.mutate(c)
			if err := c.Validate(); !errors.Is(err, bgp.ErrInvalidSettings) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}

// TestHealthAndStatus checks the HTTP endpoints over a status set by hand.
func TestHealthAndStatus(t *testing.T) {
	cfg := DefaultConfig()
	a := newTestAgent(t, cfg)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/health"); code != 500 || !strings.Contains(body, "starting") {
		t.Errorf("/health before the first poll = %d %s", code, body)
	}
	st := &Status{Snapshot: bgp.Snapshot{BIRDRunning: true, DefaultRoutePaths: 1,
		Sessions: []bgp.Session{{Name: "tor1", State: "Established", BFD: "Up"}, {Name: "tor2", State: "Active"}}}}
	st.Readiness = bgp.Decide(st.Snapshot)
	a.updateStatus(func(s *Status) { *s = *st })
	a.m.observe(st)
	if code, body := get("/health"); code != 200 {
		t.Errorf("/health when degraded = %d %s, want 200", code, body)
	}
	if code, body := get("/status"); code != 200 || !strings.Contains(body, `"degraded": true`) || !strings.Contains(body, "tor2 is Active") {
		t.Errorf("/status = %d %s", code, body)
	}
	if _, body := get("/metrics"); !strings.Contains(body, "bgp_node_agent_degraded 1") ||
		!strings.Contains(body, `bgp_node_agent_session_established{peer="invalid IP",session="tor2"} 0`) {
		t.Errorf("/metrics:\n%s", body)
	}
	st.Snapshot.BIRDRunning = false
	st.Readiness = bgp.Decide(st.Snapshot)
	a.updateStatus(func(s *Status) { *s = *st })
	if code, body := get("/health"); code != 500 || !strings.Contains(body, "BIRD is not running") {
		t.Errorf("/health without BIRD = %d %s", code, body)
	}
}
