package fabrictest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/bgp"
	"github.com/openneco/neco/pkg/bgp/netconf"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/yaml"
)

// lonely is a namespace with two NICs (eth0, eth1, each a veth whose peer
// stays in the namespace) and no routers: enough to see what the agent
// changes before it talks BGP.
type lonely struct {
	*NS
	dir, stateDir string
	agent         string
}

func newLonely(t *testing.T, agent string) *lonely {
	t.Helper()
	ns, err := NewNS(RunID() + "-lone")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Delete() })
	for i := 0; i < 2; i++ {
		if err := veth(ns, fmt.Sprintf("eth%d", i), ns, fmt.Sprintf("peer%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	l := &lonely{NS: ns, dir: t.TempDir(), agent: agent}
	l.stateDir = filepath.Join(l.dir, "state")
	return l
}

// untouched fails t if anything of the agent's appears in the namespace.
func (l *lonely) untouched(t *testing.T) {
	t.Helper()
	nl := l.Host.Netlink()
	if _, err := nl.LinkByName("node0"); err == nil {
		t.Error("node0 was created")
	}
	for _, name := range []string{"eth0", "eth1"} {
		link, err := nl.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		addrs, _ := nl.AddrList(link, netlink.FAMILY_V4)
		if len(addrs) > 0 || link.Attrs().Flags&net.FlagUp != 0 {
			t.Errorf("%s was changed: up=%v addresses %v", name, link.Attrs().Flags&net.FlagUp != 0, addrs)
		}
	}
	for _, f := range []string{"bird.conf", "bird.pid", "identity.json"} {
		if _, err := os.Stat(filepath.Join(l.stateDir, f)); err == nil {
			t.Errorf("%s was written", f)
		}
	}
}

// runAgent runs the agent to its exit and returns the exit code and output.
func (l *lonely) runAgent(t *testing.T, cfg map[string]any) (int, string) {
	t.Helper()
	y, _ := yaml.Marshal(cfg)
	path := filepath.Join(l.dir, "agent.yaml")
	if err := os.WriteFile(path, y, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := l.Command(ctx, l.agent, "-config", path)
	out, err := cmd.CombinedOutput()
	var exit interface{ ExitCode() int }
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("agent: %v: %s", err, out)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBadInput starts the agent with invalid or inconsistent identities and
// settings: each time it must exit with a clear error and change nothing.
func TestBadInput(t *testing.T) {
	agentBinary := requirements(t)
	ipam := *sabakan.ReferenceIPAM()
	machine := func(ipv4 ...string) *bgp.Source {
		m := sabakan.NewMachine(sabakan.MachineSpec{Serial: "bad-1", Rack: 0, IndexInRack: 4, Role: "cs"}, time.Now())
		ipam.Assign(m)
		if ipv4 != nil {
			m.Spec.IPv4 = ipv4
			m.Info.Network.IPv4 = nil
		}
		return &bgp.Source{Machine: *m, IPAM: ipam}
	}
	tests := []struct {
		name   string
		source *bgp.Source
		setup  func(t *testing.T, l *lonely, cfg map[string]any)
		code   int
		want   string
	}{
		{name: "address outside the pool", source: machine("10.69.0.4", "192.168.0.68", "10.69.0.132"),
			code: 1, want: "address 192.168.0.68 is outside node-ipv4-pool 10.69.0.0/20"},
		{name: "addresses of another machine", source: machine("10.69.0.5", "10.69.0.69", "10.69.0.133"),
			code: 1, want: "disagree with the IPAM configuration"},
		{name: "duplicate AS", source: machine(),
			setup: func(_ *testing.T, _ *lonely, cfg map[string]any) {
				cfg["as"] = bgp.ASPlan{RackBase: 64600, Spine: 64600, Core: 64597}
			}, code: 1, want: "rack 0 would get AS 64600, which is also the spine AS"},
		{name: "unknown serial in sabakan", source: nil,
			setup: func(t *testing.T, l *lonely, cfg map[string]any) {
				cfg["sabakan-url"] = "http://" + serveSabakan404(t, l)
				cfg["serial"] = "no-such-machine"
			}, code: 1, want: `machine not registered in sabakan: no machine with serial`},
		{name: "missing NIC", source: machine(),
			setup: func(_ *testing.T, _ *lonely, cfg map[string]any) { cfg["interfaces"] = []string{"eth0", "eth9"} },
			code:  1, want: "uplink eth9 does not exist"},
		{name: "node0 taken by another link", source: machine(),
			setup: func(t *testing.T, l *lonely, _ map[string]any) {
				if err := veth(l.NS, "node0", l.NS, "node0peer"); err != nil {
					t.Fatal(err)
				}
			}, code: 1, want: "node0 exists and is a veth link"},
		{name: "BIRD rejects the first configuration", source: machine(),
			setup: func(t *testing.T, l *lonely, cfg map[string]any) {
				extra := filepath.Join(l.dir, "extra.conf")
				os.WriteFile(extra, []byte("protocol nonsense;\n"), 0o644)
				cfg["bird-extra"] = extra
			}, code: 1, want: "BIRD rejects the configuration and there is no previous one"},
		{name: "invalid timers", source: machine(),
			setup: func(_ *testing.T, _ *lonely, cfg map[string]any) {
				cfg["timers"] = map[string]any{"bfd-interval": "0s"}
			}, code: 2, want: "bfd-interval 0s must be whole milliseconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLonely(t, agentBinary)
			cfg := map[string]any{"state-dir": l.stateDir, "listen": "127.0.0.1:0"}
			if tt.source != nil {
				idFile := filepath.Join(l.dir, "identity.json")
				writeJSON(t, idFile, tt.source)
				cfg["identity-file"] = idFile
			}
			if tt.setup != nil {
				tt.setup(t, l, cfg)
			}
			code, out := l.runAgent(t, cfg)
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Errorf("exit code %d, output:\n%s\nwant code %d and %q", code, out, tt.code, tt.want)
			}
			if tt.name == "node0 taken by another link" {
				return // node0 is the test's own veth
			}
			l.untouched(t)
		})
	}
}

// serveSabakan404 serves sabakan's answer for an unknown machine inside
// the namespace and returns its address.
func serveSabakan404(t *testing.T, l *lonely) string {
	t.Helper()
	ln, err := l.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"status":404,"error":"not found: %s"}`, r.URL.Query().Get("serial"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestNode0 applies the agent's link plan with netconf in a namespace:
// node0 is a dummy link where the kernel has one and an ifb link otherwise,
// both behave alike (up, no ARP, the /32), and applying twice changes
// nothing.
func TestNode0(t *testing.T) {
	requirements(t)
	l := newLonely(t, "")
	nl := l.Host.Netlink()
	dummyErr := nl.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "probe0"}})
	hasDummy := dummyErr == nil
	if hasDummy {
		probe, _ := nl.LinkByName("probe0")
		nl.LinkDel(probe)
	} else if !errors.Is(dummyErr, unix.EOPNOTSUPP) {
		t.Fatalf("probing for dummy: %v", dummyErr)
	}
	t.Logf("kernel has dummy links: %v", hasDummy)

	plan := &netconf.Plan{
		Uplinks: [2]netconf.Uplink{
			{Name: "eth0", Address: netip.MustParsePrefix("10.69.0.68/26")},
			{Name: "eth1", Address: netip.MustParsePrefix("10.69.0.132/26")},
		},
		Addresses: []netconf.Virtual{
			{Name: "node0", Address: netip.MustParseAddr("10.69.0.4")},
			{Name: "bastion", Address: netip.MustParseAddr("10.72.48.4")},
		},
		MTU:  1450,
		Kind: netconf.KindAuto,
	}

	if !hasDummy {
		_, err := l.Host.Apply(&netconf.Plan{Uplinks: plan.Uplinks, Addresses: plan.Addresses, Kind: netconf.KindDummy})
		if !errors.Is(err, unix.EOPNOTSUPP) {
			t.Errorf("kind dummy on a kernel without dummy: %v", err)
		}
	}

	res, err := l.Host.Apply(plan)
	if err != nil {
		t.Fatal(err)
	}
	want := netconf.KindIFB
	if hasDummy {
		want = netconf.KindDummy
	}
	if res.Kind != want {
		t.Errorf("node0 kind %s, want %s", res.Kind, want)
	}
	for _, v := range plan.Addresses {
		link, err := nl.LinkByName(v.Name)
		if err != nil {
			t.Fatal(err)
		}
		flags := link.Attrs().RawFlags
		if link.Type() != string(want) || flags&unix.IFF_UP == 0 || flags&unix.IFF_NOARP == 0 || flags&unix.IFF_LOWER_UP == 0 {
			t.Errorf("%s: type %s flags %#x, want %s up, lower up, noarp", v.Name, link.Type(), flags, want)
		}
		addrs, _ := nl.AddrList(link, netlink.FAMILY_V4)
		if len(addrs) != 1 || addrs[0].IPNet.String() != v.Address.String()+"/32" || addrs[0].Scope != unix.RT_SCOPE_UNIVERSE {
			t.Errorf("%s addresses %v, want only %s/32", v.Name, addrs, v.Address)
		}
	}
	for _, u := range plan.Uplinks {
		link, _ := nl.LinkByName(u.Name)
		addrs, _ := nl.AddrList(link, netlink.FAMILY_V4)
		if len(addrs) != 1 || addrs[0].IPNet.String() != u.Address.String() || addrs[0].Scope != unix.RT_SCOPE_LINK {
			t.Errorf("%s addresses %v, want %s scope link", u.Name, addrs, u.Address)
		}
		if link.Attrs().MTU != 1450 || link.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("%s: MTU %d up %v", u.Name, link.Attrs().MTU, link.Attrs().Flags&net.FlagUp != 0)
		}
		if v, _ := l.ReadSysctl("net.ipv4.conf." + u.Name + ".ignore_routes_with_linkdown"); v != "1" {
			t.Errorf("%s ignore_routes_with_linkdown = %s", u.Name, v)
		}
	}
	// The node address is local: a packet to it never leaves the host.
	if err := l.Ping("10.69.0.4", "10.69.0.4", 1); err != nil {
		t.Error(err)
	}

	res, err = l.Host.Apply(plan)
	if err != nil || len(res.Changes) != 0 {
		t.Errorf("second apply changed %v (%v), want nothing", res.Changes, err)
	}
	// Stray addresses on node0 go; a lost node address comes back.
	node0, _ := nl.LinkByName("node0")
	stray, _ := netlink.ParseAddr("192.0.2.1/32")
	nl.AddrAdd(node0, stray)
	mine, _ := netlink.ParseAddr("10.69.0.4/32")
	nl.AddrDel(node0, mine)
	res, err = l.Host.Apply(plan)
	if err != nil || len(res.Changes) != 2 {
		t.Errorf("repair changed %v (%v), want the stray address removed and the node address added", res.Changes, err)
	}
}
