package menu

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/testutil"
	"github.com/openneco/neco/pkg/vdc/rootfs"
	"github.com/openneco/neco/pkg/vdc/spec"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		m    Menu
		ok   bool
	}{
		{"default", Default(), true},
		{"small", Small(), true},
		{"no racks", Menu{Racks: 0, Spines: 1}, false},
		{"too many racks", Menu{Racks: MaxRacks + 1, Spines: 1}, false},
		{"no spines", Menu{Racks: 1}, false},
		{"negative workers", Menu{Racks: 1, Spines: 1, WorkersPerRack: -1}, false},
		{"too many workers", Menu{Racks: 1, Spines: 1, WorkersPerRack: MaxWorkers + 1}, false},
		{"too many qemu", Menu{Racks: 1, Spines: 1, QEMUNodes: 5}, false},
		{"largest", Menu{Racks: MaxRacks, Spines: MaxSpines, WorkersPerRack: MaxWorkers, BootServers: true, QEMUNodes: 4}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if !tt.ok {
				return
			}
			if _, err := Generate(tt.m, Options{FilesDir: "/x"}); err != nil {
				t.Fatalf("Generate: %v", err)
			}
		})
	}
}

func TestGenerateDefault(t *testing.T) {
	p, err := Generate(Default(), Options{FilesDir: "/srv/vdc/files"})
	if err != nil {
		t.Fatal(err)
	}
	c := p.Cluster
	// core + 2 spines + 3 racks × 2 ToRs.
	if got := len(c.Namespaces); got != 9 {
		t.Errorf("namespaces = %d, want 9", got)
	}
	// 2 core links + 2 spines × 6 ToRs + 6 node networks.
	if got := len(c.Networks); got != 20 {
		t.Errorf("networks = %d, want 20", got)
	}
	if got := len(c.NspawnNodes); got != 9 {
		t.Errorf("nspawn nodes = %d, want 9 (3 boot + 6 workers)", got)
	}
	if got := len(c.Nodes); got != 1 || !c.Nodes[0].UEFI {
		t.Errorf("qemu nodes = %+v, want one UEFI node", c.Nodes)
	}

	// The reference addresses: rack 0's ToRs and its first worker.
	tests := []struct {
		host string
		want HostPlan
	}{
		{"boot-0", HostPlan{Rack: 0, Role: RoleBoot, IndexInRack: 3, Node0: ip("10.69.0.3"), Eth0: ip("10.69.0.67"), Eth1: ip("10.69.0.131"), BMC: ip("10.72.16.3")}},
		{"rack0-cs1", HostPlan{Rack: 0, Role: RoleWorker, IndexInRack: 4, Node0: ip("10.69.0.4"), Eth0: ip("10.69.0.68"), Eth1: ip("10.69.0.132"), BMC: ip("10.72.16.4")}},
		{"rack1-cs2", HostPlan{Rack: 1, Role: RoleWorker, IndexInRack: 5, Node0: ip("10.69.0.197"), Eth0: ip("10.69.1.5"), Eth1: ip("10.69.1.69"), BMC: ip("10.72.16.37")}},
		{"rack0-vm1", HostPlan{Rack: 0, Role: RoleQEMU, IndexInRack: 6, Node0: ip("10.69.0.6"), Eth0: ip("10.69.0.70"), Eth1: ip("10.69.0.134"), BMC: ip("10.72.16.6")}},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			got, ok := p.Hosts[tt.host]
			if !ok {
				t.Fatalf("no host %s", tt.host)
			}
			tt.want.Serial = got.Serial
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	var tor Router
	for _, r := range p.Routers {
		if r.Name == "rack0-tor2" {
			tor = r
		}
	}
	if tor.NodeAddress != ip("10.69.0.129") || tor.NodeSubnet.String() != "10.69.0.128/26" || tor.AS != 64600 {
		t.Errorf("rack0-tor2 = %+v", tor)
	}
	if len(tor.DHCPServers) != 3 || tor.DHCPServers[1] != ip("10.69.0.195") {
		t.Errorf("relay targets = %v, want the 3 boot servers' node0", tor.DHCPServers)
	}
	if tor.AS != 64600 || len(tor.Interfaces) != 3 || !tor.Interfaces["spine1"].IsValid() || !tor.Interfaces["nodes"].IsValid() {
		t.Errorf("rack0-tor2 interfaces = %+v", tor.Interfaces)
	}
	// Every router interface keeps its generated name and sits on a bridge
	// shared with exactly the peer's interface.
	for _, ns := range c.Namespaces {
		for _, ifc := range ns.Interfaces {
			if ifc.Name == "" || ifc.Network == "" {
				t.Errorf("%s: interface %+v without name or network", ns.Name, ifc)
			}
		}
	}
	if got := p.Cluster.Namespaces[1].Interfaces; got[len(got)-1].Network != "core-s1" || got[0].Network != "s1-r0t1" {
		t.Errorf("spine1 interfaces = %+v", got)
	}

	// Every link is a /31 used exactly twice, never inside the node pool.
	seen := map[string]int{}
	pool := netip.MustParsePrefix(p.IPAM.NodeIPv4Pool)
	for _, ns := range c.Namespaces {
		for _, ifc := range ns.Interfaces {
			for _, a := range ifc.Addresses {
				pf := netip.MustParsePrefix(a)
				if pf.Bits() == 31 {
					seen[pf.Masked().String()]++
					if pool.Contains(pf.Addr()) {
						t.Errorf("%s: link %s inside the node pool", ns.Name, a)
					}
				}
			}
		}
	}
	for l, n := range seen {
		if n != 2 {
			t.Errorf("link %s used %d times", l, n)
		}
	}

	// The inventory is what sabakan accepts, in registration order: a boot
	// server before the workers of its rack.
	if len(p.Machines) != 10 || p.Machines[0].Role != RoleBoot {
		t.Fatalf("machines = %+v", p.Machines)
	}
	for _, m := range p.Machines {
		spec := sabakan.MachineSpec{Serial: m.Serial, Labels: m.Labels, Rack: m.Rack, Role: m.Role, BMC: sabakan.MachineBMC{Type: m.BMC.Type}}
		if err := spec.Validate(); err != nil {
			t.Errorf("machine %s: %v", m.Serial, err)
		}
	}
	b, _ := json.Marshal(p.Machines[0])
	if !strings.Contains(string(b), `"bmc":{"type":"IPMI-2.0"}`) || !strings.Contains(string(b), `"role":"boot"`) {
		t.Errorf("machine JSON = %s", b)
	}

	// Apps refer to files under FilesDir.
	if got := c.Namespaces[0].Apps[0].Command; got[3] != "/srv/vdc/files/bird/core.conf" {
		t.Errorf("core bird command = %v", got)
	}
}

func TestWorkerDHCP(t *testing.T) {
	m := Small()
	m.BootServers = true
	m.WorkerDHCP = true
	p, err := Generate(m, Options{FilesDir: "/x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range p.Cluster.NspawnNodes {
		has := len(n.Interfaces[0].Addresses) > 0
		if want := n.Name == "boot-0"; has != want {
			t.Errorf("%s: static address = %v, want %v", n.Name, has, want)
		}
	}
}

func TestBIRDConfig(t *testing.T) {
	p, err := Generate(Default(), Options{FilesDir: "/x"})
	if err != nil {
		t.Fatal(err)
	}
	conf := string(p.Files["bird/rack2-tor1.conf"])
	for _, want := range []string{
		"local as 64602",
		"neighbor range 10.69.1.192/26 as 64602",
		"rr client",
		"protocol bgp spine2 from spine",
		"interface \"nodes\"",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("rack2-tor1 config lacks %q:\n%s", want, conf)
		}
	}
	if !strings.Contains(string(p.Files["bird/core.conf"]), "route 0.0.0.0/0 blackhole") {
		t.Error("core does not originate the default route")
	}

	// BIRD itself accepts every generated configuration.
	bird, err := exec.LookPath("bird")
	if err != nil {
		testutil.Missing(t, "bird not found (make setup installs bird2)")
	}
	dir := t.TempDir()
	for rel, data := range p.Files {
		if !strings.HasPrefix(rel, "bird/") {
			continue
		}
		f := filepath.Join(dir, filepath.Base(rel))
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bird, "-p", "-c", f).CombinedOutput(); err != nil {
			t.Errorf("bird -p %s: %v\n%s\n%s", rel, err, out, data)
		}
	}
}

func TestRelay(t *testing.T) {
	p, err := Generate(Default(), Options{FilesDir: "/x"})
	if err != nil {
		t.Fatal(err)
	}
	var relay []string
	for _, a := range p.Cluster.Namespaces[3].Apps { // rack0-tor1
		if a.Name == "dhcp-relay" {
			relay = a.Command
		}
	}
	got := strings.Join(relay, " ")
	for _, want := range []string{"dnsmasq ", "--port=0", "--interface=nodes", "--dhcp-relay=10.69.0.65,10.69.0.3",
		"--dhcp-relay=10.69.0.65,10.69.0.195", "--dhcp-relay=10.69.0.65,10.69.1.131", "--pid-file=/x/run/rack0-tor1/dnsmasq.pid"} {
		if !strings.Contains(got, want) {
			t.Errorf("relay command %q lacks %q", got, want)
		}
	}
	// Without boot servers there is nothing to relay to.
	p, err = Generate(Small(), Options{FilesDir: "/x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range p.Cluster.Namespaces {
		for _, a := range ns.Apps {
			if a.Name == "dhcp-relay" {
				t.Errorf("%s runs a relay without boot servers", ns.Name)
			}
		}
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p, err := Generate(Small(), Options{FilesDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Write(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"cluster.yml", "machines.json", "ipam.json", "dhcp.json", "routers.json", "hosts.json", "bird/core.conf", "bird/rack0-tor1.conf"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	var ipam sabakan.IPAMConfig
	b, _ := os.ReadFile(filepath.Join(dir, "ipam.json"))
	if err := json.Unmarshal(b, &ipam); err != nil || ipam.Validate() != nil {
		t.Errorf("ipam.json: %v %v", err, ipam.Validate())
	}
	if _, err := os.Stat(filepath.Join(dir, "run", "core")); err != nil {
		t.Errorf("socket dir: %v", err)
	}
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestAgent(t *testing.T) {
	m := Small()
	m.BootServers = true
	m.Agent = true
	if _, err := Generate(m, Options{FilesDir: "/x"}); err == nil {
		t.Error("agent without executable accepted")
	}
	p, err := Generate(m, Options{FilesDir: "/x", AgentBinary: "/bin/agent"})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range p.Cluster.NspawnNodes {
		for _, ifc := range n.Interfaces {
			if len(ifc.Addresses) > 0 {
				t.Errorf("%s: static address %v although the agent configures it", n.Name, ifc.Addresses)
			}
		}
		if len(n.Binds) != 1 || n.Binds[0].Source != "/bin/agent" || !n.Binds[0].ReadOnly {
			t.Errorf("%s binds = %+v", n.Name, n.Binds)
		}
		if len(n.InitScripts) != 1 || n.InitScripts[0] != "/x/init/"+n.Name+".sh" {
			t.Errorf("%s init scripts = %v", n.Name, n.InitScripts)
		}
		var id struct {
			Machine struct {
				Spec struct {
					Serial string `json:"serial"`
					Rack   uint   `json:"rack"`
					Index  uint   `json:"index-in-rack"`
					Role   string `json:"role"`
				} `json:"spec"`
			} `json:"machine"`
			IPAM sabakan.IPAMConfig `json:"ipam"`
		}
		if err := json.Unmarshal(p.Files["agent/"+n.Name+"/identity.json"], &id); err != nil {
			t.Fatal(err)
		}
		hp := p.Hosts[n.Name]
		if s := id.Machine.Spec; s.Serial != hp.Serial || s.Rack != hp.Rack || s.Index != hp.IndexInRack || s.Role != hp.Role || id.IPAM.Validate() != nil {
			t.Errorf("%s identity = %+v", n.Name, id)
		}
		if !strings.Contains(string(p.Files["init/"+n.Name+".sh"]), "/x/agent/"+n.Name+"/identity.json") {
			t.Errorf("%s init script does not install its identity", n.Name)
		}
	}
	if !strings.Contains(strings.Join(p.Cluster.Rootfses[0].Packages, " "), "bird2") {
		t.Error("no BIRD in the machines' root tree")
	}
}

// With BMCs, every machine's BMC address is on the BMC namespace's one
// interface, each boot server has a third interface on the BMC network,
// and the virtual BMC service's list names every machine.
func TestGenerateBMC(t *testing.T) {
	m := Default()
	m.BMC = true
	p, err := Generate(m, Options{FilesDir: "/srv/dc"})
	if err != nil {
		t.Fatal(err)
	}
	var ns *spec.NetworkNamespace
	for _, n := range p.Cluster.Namespaces {
		if n.Name == BMCHost {
			ns = n
		}
	}
	if ns == nil || len(ns.Interfaces) != 1 || ns.Interfaces[0].Network != BMCNetwork {
		t.Fatalf("BMC namespace = %+v", ns)
	}
	if got := len(ns.Interfaces[0].Addresses); got != 10 {
		t.Errorf("BMC addresses = %d, want 10 (9 nspawn + 1 QEMU)", got)
	}
	if !slices.Contains(ns.Interfaces[0].Addresses, "10.72.16.37/20") {
		t.Errorf("BMC addresses %v lack rack1-cs2's 10.72.16.37/20", ns.Interfaces[0].Addresses)
	}
	for _, n := range p.Cluster.NspawnNodes {
		want := 2
		if p.Hosts[n.Name].Role == RoleBoot {
			want = 3
		}
		if len(n.Interfaces) != want {
			t.Errorf("%s: %d interfaces, want %d", n.Name, len(n.Interfaces), want)
		}
		if n.Name == "boot-2" && (!slices.Equal(n.Interfaces[2].Addresses, []string{"10.72.31.12/20"}) || !n.Interfaces[2].LinkScope) {
			t.Errorf("boot-2 BMC network address %v, want 10.72.31.12/20", n.Interfaces[2].Addresses)
		}
	}
	var list struct {
		Host     string `json:"host"`
		Machines []struct {
			Name    string     `json:"name"`
			Serial  string     `json:"serial"`
			Address netip.Addr `json:"address"`
		} `json:"machines"`
	}
	if err := json.Unmarshal(p.Files[BMCFile], &list); err != nil {
		t.Fatal(err)
	}
	if list.Host != BMCHost || len(list.Machines) != 10 {
		t.Fatalf("%s = %s", BMCFile, p.Files[BMCFile])
	}
	for _, e := range list.Machines {
		if h := p.Hosts[e.Name]; h.BMC != e.Address || h.Serial != e.Serial {
			t.Errorf("%s: %+v, plan %+v", BMCFile, e, h)
		}
	}
}

// TestTreeSpec: the machines boot the tree the boot server's image holds
// (installer/), one cache entry.
func TestTreeSpec(t *testing.T) {
	p, err := Generate(Default(), Options{FilesDir: "/x"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Cluster.Validate(); err != nil {
		t.Fatal(err)
	}
	r := p.Cluster.Rootfses[0]
	got := rootfs.Spec{Suite: r.Suite, Variant: r.Variant, Mirror: r.Mirror, Packages: r.Packages}
	if got.Key() != TreeSpec().Key() {
		t.Errorf("the machines' tree %+v is not the image's %+v", got, TreeSpec())
	}
	for _, pkg := range ImagePackages {
		if !slices.Contains(r.Packages, pkg) {
			t.Errorf("the machines' tree lacks %s", pkg)
		}
	}
}
