package bgp

import (
	"encoding/json"
	"errors"
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// source returns a machine as sabakan would serve it.
func source(rack, index uint) *Source {
	s := &Source{IPAM: *sabakan.ReferenceIPAM()}
	m := sabakan.NewMachine(sabakan.MachineSpec{Serial: "node-1", Rack: rack, IndexInRack: index, Role: "cs"}, time.Unix(0, 0))
	s.IPAM.Assign(m)
	s.Machine = *m
	return s
}

func TestIdentityReference(t *testing.T) {
	id, err := source(0, 4).Identity(DefaultASPlan())
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{
		Serial: "node-1", Role: "cs", Rack: 0, Index: 4, AS: 64600,
		Node: netip.MustParseAddr("10.69.0.4"),
		Links: [2]Link{
			{Address: netip.MustParsePrefix("10.69.0.68/26"), ToR: netip.MustParseAddr("10.69.0.65")},
			{Address: netip.MustParsePrefix("10.69.0.132/26"), ToR: netip.MustParseAddr("10.69.0.129")},
		},
	}
	if *id != want {
		t.Errorf("identity = %+v\nwant %+v", *id, want)
	}
	id, err = source(2, 5).Identity(DefaultASPlan())
	if err != nil {
		t.Fatal(err)
	}
	if id.AS != 64602 || id.Node.String() != "10.69.1.133" || id.Links[1].ToR.String() != "10.69.2.1" {
		t.Errorf("rack 2 index 5 = %+v", id)
	}
}

func TestIdentityInvalid(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *Source, p *ASPlan)
		want   string
	}{
		{"empty serial", func(s *Source, _ *ASPlan) { s.Machine.Spec.Serial = "" }, "invalid serial"},
		{"invalid IPAM", func(s *Source, _ *ASPlan) { s.IPAM.NodeIPv4Pool = "10.69.0.1/20" }, "host bits"},
		{"two addresses per node", func(s *Source, _ *ASPlan) {
			s.IPAM.NodeIPPerNode = 2
			s.Machine.Spec.IPv4 = nil
			s.Machine.Info.Network.IPv4 = nil
		}, "needs 3 addresses"},
		{"absurd addresses per node", func(s *Source, _ *ASPlan) {
			s.IPAM.NodeIPPerNode = 1 << 58 // 2^6 × 2^58 overflows the rack stride
			s.Machine.Spec.IPv4 = nil
			s.Machine.Info.Network.IPv4 = nil
		}, "node-ip-per-node 288230376151711744 is above 64"},
		{"rack outside the pool", func(s *Source, _ *ASPlan) {
			s.Machine.Spec.Rack = 100
			s.Machine.Spec.IPv4 = nil
			s.Machine.Info.Network.IPv4 = nil
		}, "outside the address pools"},
		{"index outside the rack", func(s *Source, _ *ASPlan) {
			s.Machine.Spec.IndexInRack = 40
			s.Machine.Spec.IPv4 = nil
			s.Machine.Info.Network.IPv4 = nil
		}, "index 40 is outside"},
		{"address outside the pool", func(s *Source, _ *ASPlan) { s.Machine.Spec.IPv4[1] = "192.168.0.68" }, "outside node-ipv4-pool"},
		{"not an address", func(s *Source, _ *ASPlan) { s.Machine.Spec.IPv4[2] = "10.69.0.x" }, "not an IPv4 address"},
		{"addresses of another index", func(s *Source, _ *ASPlan) { s.Machine.Spec.IPv4 = []string{"10.69.0.5", "10.69.0.69", "10.69.0.133"} }, "disagree with the IPAM"},
		{"missing address", func(s *Source, _ *ASPlan) { s.Machine.Spec.IPv4 = s.Machine.Spec.IPv4[:2] }, "disagree with the IPAM"},
		{"wrong gateway", func(s *Source, _ *ASPlan) { s.Machine.Info.Network.IPv4[1].Gateway = "10.69.0.66" }, "gateway 10.69.0.66 disagrees"},
		{"wrong mask", func(s *Source, _ *ASPlan) { s.Machine.Info.Network.IPv4[2].MaskBits = 24 }, "disagrees with the IPAM"},
		{"spine AS is a rack AS", func(_ *Source, p *ASPlan) { p.Spine = 64600 }, "also the spine AS"},
		{"spine and core share an AS", func(_ *Source, p *ASPlan) { p.Core = p.Spine }, "share AS"},
		{"public AS", func(_ *Source, p *ASPlan) { p.RackBase = 3000 }, "private AS"},
		{"rack AS beyond the private range", func(s *Source, p *ASPlan) {
			p.RackBase = 65534
			s.Machine.Spec.Rack = 1
			s.Machine.Spec.IPv4 = nil
			s.Machine.Info.Network.IPv4 = nil
		}, "rack 1 would get AS 65535"},
		{"gateway offset outside the link", func(s *Source, _ *ASPlan) {
			s.IPAM.NodeGatewayOffset = 68
			s.Machine.Info.Network.IPv4 = nil
		}, "outside a /26 network"},
		{"gateway is the node itself", func(s *Source, _ *ASPlan) {
			s.IPAM.NodeGatewayOffset = 4
			s.Machine.Info.Network.IPv4 = nil
		}, "not another address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, p := source(0, 4), DefaultASPlan()
			tt.mutate(s, &p)
			id, err := s.Identity(p)
			if !errors.Is(err, ErrInvalidIdentity) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %+v, %v; want ErrInvalidIdentity containing %q", id, err, tt.want)
			}
		})
	}
}

func TestIdentityFromFileForm(t *testing.T) {
	// An identity file may give only serial, rack, index and role.
	s := &Source{IPAM: *sabakan.ReferenceIPAM(), Machine: sabakan.Machine{Spec: sabakan.MachineSpec{Serial: "boot-0", Rack: 1, IndexInRack: 3, Role: "boot"}}}
	id, err := s.Identity(DefaultASPlan())
	if err != nil {
		t.Fatal(err)
	}
	if id.Node.String() != "10.69.0.195" || id.AS != 64601 || id.Links[0].Address.String() != "10.69.1.3/26" {
		t.Errorf("boot server of rack 1 = %+v", id)
	}
}

func TestASPlanValidate(t *testing.T) {
	tests := []struct {
		name  string
		plan  ASPlan
		racks uint
		want  string
	}{
		{"default, 100 racks", DefaultASPlan(), 100, ""},
		{"spine inside the rack range", ASPlan{RackBase: 64500 + 100, Spine: 64610, Core: 64597}, 20, "spine AS 64610 is also the AS of rack 10"},
		{"core inside the rack range", ASPlan{RackBase: 64600, Spine: 64599, Core: 64601}, 5, "core AS 64601 is also the AS of rack 1"},
		{"too many racks", DefaultASPlan(), 1000, "outside the private AS ranges"},
		{"four-byte private", ASPlan{RackBase: 4200000000, Spine: 4199999999 + 0, Core: 64597}, 3, "spine AS 4199999999 is outside"},
		{"four-byte ok", ASPlan{RackBase: 4200000100, Spine: 4200000000, Core: 4200000001}, 50, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.plan.Validate(tt.racks)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidSettings) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestTimersValidate(t *testing.T) {
	for _, ok := range []Timers{ReferenceNodeTimers(), ReferenceRouterTimers(), FastTimers()} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	tests := []struct {
		name   string
		mutate func(*Timers)
		want   string
	}{
		{"zero BFD interval", func(t *Timers) { t.BFDInterval = 0 }, "bfd-interval"},
		{"sub-millisecond BFD", func(t *Timers) { t.BFDInterval = Duration(1500 * time.Microsecond) }, "whole milliseconds"},
		{"multiplier 0", func(t *Timers) { t.BFDMultiplier = 0 }, "bfd-multiplier"},
		{"fractional hold", func(t *Timers) { t.HoldTime = Duration(1500 * time.Millisecond) }, "whole seconds"},
		{"hold below 3s", func(t *Timers) { t.HoldTime = Duration(2 * time.Second) }, "at least 3s"},
		{"keepalive above half the hold", func(t *Timers) { t.KeepaliveTime = Duration(5 * time.Second) }, "half the hold-time"},
		{"negative connect delay", func(t *Timers) { t.ConnectDelay = Duration(-time.Second) }, "connect-delay"},
		{"error wait inverted", func(t *Timers) { t.ErrorWaitMin = Duration(30 * time.Second) }, "above error-wait-max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm := FastTimers()
			tt.mutate(&tm)
			if err := tm.Validate(); !errors.Is(err, ErrInvalidSettings) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	var tm Timers
	if err := tm.BFDInterval.UnmarshalJSON([]byte(`"50ms"`)); err != nil || tm.BFDInterval.D() != 50*time.Millisecond {
		t.Fatalf("got %v, %v", tm.BFDInterval, err)
	}
	if err := tm.BFDInterval.UnmarshalJSON([]byte(`50`)); err == nil {
		t.Error("a bare number was accepted")
	}
	b, _ := Duration(3 * time.Second).MarshalJSON()
	if string(b) != `"3s"` {
		t.Errorf("marshal = %s", b)
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", name, got)
	}
}

func TestRenderNode(t *testing.T) {
	id, err := source(0, 4).Identity(DefaultASPlan())
	if err != nil {
		t.Fatal(err)
	}
	boot, err := source(1, 3).Identity(DefaultASPlan())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		config NodeConfig
	}{
		{"node-fast.conf", NodeConfig{ID: id, Interfaces: [2]string{"eth0", "eth1"}, PodTable: DefaultPodTable, Timers: FastTimers(),
			LogFile: "/var/lib/bgp-node-agent/bird.log", LogSize: 1 << 20, GracefulRestart: true}},
		{"node-reference.conf", NodeConfig{ID: id, Interfaces: [2]string{"eth0", "eth1"}, PodTable: DefaultPodTable, Timers: ReferenceNodeTimers()}},
		{"boot-server.conf", NodeConfig{ID: boot, Interfaces: [2]string{"enp1s0", "enp2s0"}, Timers: FastTimers(),
			Virtual: []VirtualAddress{{"bastion", netip.MustParseAddr("10.72.48.1")}, {"boot", netip.MustParseAddr("10.71.255.1")}},
			Extra:   "protocol static lb { ipv4; route 10.72.32.0/24 blackhole; }", GracefulRestart: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RenderNode(&tt.config)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, got)
		})
	}
}

func TestRenderNodeInvalid(t *testing.T) {
	id, _ := source(0, 4).Identity(DefaultASPlan())
	tests := []struct {
		name   string
		config NodeConfig
		want   string
	}{
		{"no identity", NodeConfig{Interfaces: [2]string{"eth0", "eth1"}, Timers: FastTimers()}, "no identity"},
		{"same NIC twice", NodeConfig{ID: id, Interfaces: [2]string{"eth0", "eth0"}, Timers: FastTimers()}, "used twice"},
		{"NIC named node0", NodeConfig{ID: id, Interfaces: [2]string{"node0", "eth1"}, Timers: FastTimers()}, "used twice"},
		{"long NIC name", NodeConfig{ID: id, Interfaces: [2]string{"eth0", "a-very-long-name0"}, Timers: FastTimers()}, "invalid"},
		{"quote in NIC name", NodeConfig{ID: id, Interfaces: [2]string{"eth0", `e"1`}, Timers: FastTimers()}, "invalid"},
		{"virtual address reuses node address", NodeConfig{ID: id, Interfaces: [2]string{"eth0", "eth1"}, Timers: FastTimers(),
			Virtual: []VirtualAddress{{"boot", id.Node}}}, "not a distinct"},
		{"main table for pods", NodeConfig{ID: id, Interfaces: [2]string{"eth0", "eth1"}, Timers: FastTimers(), PodTable: 254}, "pod table"},
		{"bad timers", NodeConfig{ID: id, Interfaces: [2]string{"eth0", "eth1"}}, "timers"},
		{"tiny log", NodeConfig{ID: id, Interfaces: [2]string{"eth0", "eth1"}, Timers: FastTimers(), LogFile: "/x", LogSize: 10}, "log size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := RenderNode(&tt.config)
			if !errors.Is(err, ErrInvalidSettings) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	sess := func(name, state, bfd string) Session { return Session{Name: name, State: state, BFD: bfd} }
	tests := []struct {
		name string
		snap Snapshot
		want Readiness
	}{
		{"BIRD down", Snapshot{}, Readiness{Reason: "BIRD is not running"}},
		{"all up", Snapshot{BIRDRunning: true, DefaultRoutePaths: 2,
			Sessions: []Session{sess("tor1", "Established", "Up"), sess("tor2", "Established", "Up")}},
			Readiness{Ready: true}},
		{"no session", Snapshot{BIRDRunning: true,
			Sessions: []Session{sess("tor1", "Active", ""), sess("tor2", "", "")}},
			Readiness{Reason: "no ToR session is established: tor1 is Active, tor2 is unknown"}},
		{"sessions but no default route", Snapshot{BIRDRunning: true,
			Sessions: []Session{sess("tor1", "Established", "Up"), sess("tor2", "Established", "Up")}},
			Readiness{Reason: "no default route from the ToRs in the kernel"}},
		{"one session", Snapshot{BIRDRunning: true, DefaultRoutePaths: 1,
			Sessions: []Session{sess("tor1", "Connect", "Down"), sess("tor2", "Established", "Up")}},
			Readiness{Ready: true, Degraded: true, Reason: "tor1 is Connect"}},
		{"BFD not up", Snapshot{BIRDRunning: true, DefaultRoutePaths: 2,
			Sessions: []Session{sess("tor1", "Established", "Init"), sess("tor2", "Established", "Up")}},
			Readiness{Ready: true, Degraded: true, Reason: "BFD to tor1 is Init"}},
		{"default route on one path", Snapshot{BIRDRunning: true, DefaultRoutePaths: 1,
			Sessions: []Session{sess("tor1", "Established", "Up"), sess("tor2", "Established", "Up")}},
			Readiness{Ready: true, Degraded: true, Reason: "the default route has 1 of 2 paths"}},
		{"no sessions configured", Snapshot{BIRDRunning: true}, Readiness{Reason: "no ToR sessions are configured"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(tt.snap); got != tt.want {
				t.Errorf("Decide = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestGoldenConfigsParse has BIRD itself parse every golden configuration.
func TestGoldenConfigsParse(t *testing.T) {
	testutil.RequireCommands(t, "bird")
	files, _ := filepath.Glob("testdata/*.conf")
	if len(files) == 0 {
		t.Fatal("no golden configurations")
	}
	for _, f := range files {
		out, err := exec.Command("bird", "-p", "-c", f).CombinedOutput()
		if err != nil {
			t.Errorf("bird -p -c %s: %v: %s", f, err, out)
		}
	}
}

// FuzzSourceIdentity feeds arbitrary identity files (the agent reads them
// from disk and from sabakan) through decoding and validation: errors are
// fine, panics are not, and an accepted identity is self-consistent.
func FuzzSourceIdentity(f *testing.F) {
	ref, _ := json.Marshal(source(0, 4))
	f.Add(ref)
	f.Add([]byte(`{"machine":{"spec":{"serial":"b","rack":1,"index-in-rack":3}},"ipam":{"max-nodes-in-rack":28,"node-ipv4-pool":"10.69.0.0/20","node-ipv4-range-size":6,"node-ipv4-range-mask":26,"node-ip-per-node":3,"node-index-offset":3,"node-gateway-offset":1,"bmc-ipv4-pool":"10.72.16.0/20","bmc-ipv4-range-size":5,"bmc-ipv4-range-mask":20,"bmc-ipv4-gateway-offset":1}}`))
	f.Add([]byte(`{"machine":{"spec":{"serial":"b"}},"ipam":{"max-nodes-in-rack":28,"node-ipv4-pool":"10.69.0.0/20","node-ipv4-range-size":6,"node-ipv4-range-mask":26,"node-ip-per-node":288230376151711744,"node-index-offset":3,"node-gateway-offset":1,"bmc-ipv4-pool":"10.72.16.0/20","bmc-ipv4-range-size":5,"bmc-ipv4-range-mask":20,"bmc-ipv4-gateway-offset":1}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var src Source
		if json.Unmarshal(data, &src) != nil {
			return
		}
		id, err := src.Identity(DefaultASPlan())
		if err != nil {
			return
		}
		for _, l := range id.Links {
			if !l.Address.Masked().Contains(l.ToR) || l.Address.Addr() == l.ToR || l.Address.Masked().Contains(id.Node) {
				t.Fatalf("inconsistent identity accepted: %+v", id)
			}
		}
	})
}
