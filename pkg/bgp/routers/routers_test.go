package routers

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/openneco/neco/pkg/bgp"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func generate(t *testing.T) *Fabric {
	t.Helper()
	f, err := Generate(Config{IPAM: sabakan.ReferenceIPAM(), Racks: []uint{1, 0}, Spines: 2})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestGenerateTopology(t *testing.T) {
	f := generate(t)
	var names []string
	for _, r := range f.Routers {
		names = append(names, r.Name)
	}
	want := []string{"core", "spine1", "spine2", "rack0-tor1", "rack0-tor2", "rack1-tor1", "rack1-tor2"}
	if !slices.Equal(names, want) {
		t.Fatalf("routers = %v, want %v", names, want)
	}
	// ToR addresses are the IPAM gateways of the link sub-ranges.
	for _, tt := range []struct {
		router, addr string
		as           uint32
	}{
		{"rack0-tor1", "10.69.0.65/26", 64600},
		{"rack0-tor2", "10.69.0.129/26", 64600},
		{"rack1-tor1", "10.69.1.1/26", 64601},
		{"rack1-tor2", "10.69.1.65/26", 64601},
	} {
		r := f.Router(tt.router)
		if got := r.Interface("nodes").Address.String(); got != tt.addr || r.AS != tt.as || r.RouterID.String() != tt.addr[:len(tt.addr)-3] {
			t.Errorf("%s: nodes %s AS %d id %s, want %s AS %d", tt.router, got, r.AS, r.RouterID, tt.addr, tt.as)
		}
		if r.Relay == nil || r.Relay.Address != r.RouterID {
			t.Errorf("%s: relay %+v", tt.router, r.Relay)
		}
	}
	// 4 ToRs x 2 spines + 2 spine-core links, all distinct /31s.
	if len(f.Links) != 10 {
		t.Fatalf("%d links, want 10", len(f.Links))
	}
	seen := map[netip.Prefix]bool{}
	for _, l := range f.Links {
		if l.A.Address.Masked() != l.B.Address.Masked() || l.A.Address == l.B.Address || seen[l.A.Address.Masked()] {
			t.Errorf("link %+v: ends not in one fresh /31", l)
		}
		seen[l.A.Address.Masked()] = true
		for _, e := range []Endpoint{l.A, l.B} {
			if i := f.Router(e.Router).Interface(e.Interface); i == nil || i.Address != e.Address || len(e.Interface) > 15 {
				t.Errorf("endpoint %+v does not match its router's interface %+v", e, i)
			}
		}
	}
	if len(f.Segments) != 4 || f.Segments[0].Prefix.String() != "10.69.0.64/26" || f.Segments[0].Gateway.String() != "10.69.0.65" {
		t.Errorf("segments = %+v", f.Segments)
	}
	// Relayed DHCP goes to each rack's boot server (index 3).
	relay := f.Router("rack1-tor2").Relay
	if got := relay.DnsmasqArgs("/run/x.pid"); !slices.Contains(got, "--dhcp-relay=10.69.1.65,10.69.0.3") || !slices.Contains(got, "--dhcp-relay=10.69.1.65,10.69.0.195") {
		t.Errorf("dnsmasq args = %v", got)
	}
}

func TestGenerateGolden(t *testing.T) {
	f := generate(t)
	for _, name := range []string{"rack0-tor1", "spine1", "core"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name+".conf")
			got := f.Router(name).BIRD
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -update creates it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", path, got)
			}
		})
	}
}

// TestConfigsParse has BIRD parse every router's configuration.
func TestConfigsParse(t *testing.T) {
	testutil.RequireCommands(t, "bird")
	f, err := Generate(Config{IPAM: sabakan.ReferenceIPAM(), Racks: []uint{0, 1, 2}, Spines: 2,
		Timers: bgp.ReferenceRouterTimers(), DefaultGateway: netip.MustParseAddr("10.0.1.1")})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, r := range f.Routers {
		path := filepath.Join(dir, r.Name+".conf")
		if err := os.WriteFile(path, r.BIRD, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("bird", "-p", "-c", path).CombinedOutput(); err != nil {
			t.Errorf("%s: %v: %s\n%s", r.Name, err, out, r.BIRD)
		}
	}
}

func TestGenerateInvalid(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no IPAM", func(c *Config) { c.IPAM = nil }, "no IPAM"},
		{"invalid IPAM", func(c *Config) { c.IPAM.NodeRangeMask = 40 }, "range-mask"},
		{"absurd addresses per node", func(c *Config) { c.IPAM.NodeIPPerNode = 1 << 58 }, "node-ip-per-node"},
		{"no racks", func(c *Config) { c.Racks = nil }, "no racks"},
		{"duplicate rack", func(c *Config) { c.Racks = []uint{0, 1, 0} }, "listed twice"},
		{"rack outside the pool", func(c *Config) { c.Racks = []uint{0, 21} }, "rack 21 is outside"},
		{"no spine", func(c *Config) { c.Spines = 0 }, "0 spines"},
		{"spine AS is a rack AS", func(c *Config) { c.AS = bgp.ASPlan{RackBase: 64600, Spine: 64601, Core: 64597} }, "rack 1 would get AS 64601, which is also the spine AS"},
		{"duplicate AS", func(c *Config) { c.AS = bgp.ASPlan{RackBase: 64600, Spine: 64599, Core: 64599} }, "share AS"},
		{"link pool overlaps nodes", func(c *Config) { c.LinkPool = netip.MustParsePrefix("10.69.8.0/24") }, "overlaps"},
		{"link pool too small", func(c *Config) { c.LinkPool = netip.MustParsePrefix("10.0.0.0/30") }, "holds 2 /31 links"},
		{"bad timers", func(c *Config) { c.Timers = bgp.Timers{BFDInterval: 1} }, "timers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{IPAM: sabakan.ReferenceIPAM(), Racks: []uint{0, 1}, Spines: 1}
			tt.mutate(&cfg)
			_, err := Generate(cfg)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}
