// Package menu generates a whole virtual data center from a few numbers
// (racks, spines, workers per rack, a boot server per rack, QEMU nodes):
// the resource documents, the routers' BIRD configurations, the DHCP relays
// on the ToR switches and the sabakan inventory (IPAM configuration and
// machines JSON in the reference format). Generation is a pure function of
// the menu; addresses follow the reference IPAM (10.69.0.0/20, /26 blocks,
// three addresses per node) and stay inside the data center's namespaces.
//
// The routers come from the BGP agent's generator (pkg/bgp/routers): the
// reference's leaf-spine with a core router holding the only default route
// (a blackhole: nothing leaves for the host's network), spines in AS 64599,
// and per rack two ToR switches in AS 64600+rack, each on its own node
// subnet, acting as BGP route reflectors for the rack's nodes and relaying
// DHCP to the boot servers. This package turns that fabric into resource
// documents and adds the machines.
package menu

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/openneco/neco/pkg/bgp"
	"github.com/openneco/neco/pkg/bgp/routers"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/vdc/qemu"
	"github.com/openneco/neco/pkg/vdc/rootfs"
	"github.com/openneco/neco/pkg/vdc/spec"
)

// Menu is the shape of a data center.
type Menu struct {
	Racks          int `json:"racks"`
	Spines         int `json:"spines"`
	WorkersPerRack int `json:"workers-per-rack"`
	// BootServers puts one boot server (an nspawn node) in every rack.
	BootServers bool `json:"boot-servers"`
	// QEMUNodes are UEFI machines placed round-robin over the racks that
	// network-boot from sabakan.
	QEMUNodes int `json:"qemu-nodes"`
	// WorkerDHCP leaves workers' interfaces unaddressed, for DHCP through
	// the ToRs' relays; otherwise they get their IPAM addresses statically.
	// With Agent, workers network-boot (see Netboot): DHCP from sabakan
	// through the relay, then the BGP node agent with their identity from
	// the sabakan that answered.
	WorkerDHCP bool `json:"worker-dhcp"`
	// Agent runs the BGP node agent (cmd/bgp-node-agent, given by
	// Options.AgentBinary) in every nspawn machine, with an identity file
	// from the plan: it configures both uplinks and node0 and peers with
	// both ToRs, so the machines' interfaces get no static addresses.
	Agent bool `json:"agent"`
	// BMC gives every machine a virtual BMC on a BMC network of its own
	// (see BMCNetwork): the namespace BMCHost holds every machine's BMC
	// address from the IPAM's BMC pool, where a virtual BMC service
	// (pkg/vdc/vbmc) answers, and each boot server reaches it through a
	// third interface (BootServerBMCAddress).
	BMC bool `json:"bmc,omitempty"`
	// Suite is the Debian suite of the machines' root trees.
	Suite string `json:"suite"`
	// ExtraPackages are installed in the machines' root trees besides
	// spec.DefaultRootfsPackages.
	ExtraPackages []string `json:"extra-packages,omitempty"`
}

// Default is the default topology: 3 racks × (2 ToRs, a boot server, 2
// workers), 2 spines, a core router and one QEMU UEFI machine.
func Default() Menu {
	return Menu{Racks: 3, Spines: 2, WorkersPerRack: 2, BootServers: true, QEMUNodes: 1, Suite: "bookworm"}
}

// Small is the smallest useful topology: one rack with its two ToRs, one
// spine, the core and one worker.
func Small() Menu {
	return Menu{Racks: 1, Spines: 1, WorkersPerRack: 1, Suite: "bookworm"}
}

// Named returns a predefined menu.
func Named(name string) (Menu, error) {
	switch name {
	case "default":
		return Default(), nil
	case "small":
		return Small(), nil
	case "routers":
		m := Small()
		m.WorkersPerRack = 0
		m.Racks, m.Spines = 2, 2
		return m, nil
	}
	return Menu{}, fmt.Errorf("menu: unknown menu %q (want default, small or routers)", name)
}

// Limits of a menu.
const (
	MaxRacks   = 16
	MaxSpines  = 4
	MaxWorkers = 24 // per rack; sabakan's max-nodes-in-rack is 28
)

// Validate checks the numbers.
func (m Menu) Validate() error {
	switch {
	case m.Racks < 1 || m.Racks > MaxRacks:
		return fmt.Errorf("menu: racks %d: want 1..%d", m.Racks, MaxRacks)
	case m.Spines < 1 || m.Spines > MaxSpines:
		return fmt.Errorf("menu: spines %d: want 1..%d", m.Spines, MaxSpines)
	case m.WorkersPerRack < 0 || m.WorkersPerRack > MaxWorkers:
		return fmt.Errorf("menu: workers-per-rack %d: want 0..%d", m.WorkersPerRack, MaxWorkers)
	case m.QEMUNodes < 0 || m.QEMUNodes > m.Racks*4:
		return fmt.Errorf("menu: qemu-nodes %d: want 0..%d", m.QEMUNodes, m.Racks*4)
	}
	return nil
}

// LinkPool holds the /31 point-to-point links between routers.
var LinkPool = netip.MustParsePrefix("10.72.0.0/22")

// Timers are the routers' BGP and BFD timers: the project's fast BGP start
// and restart, with the reference's BFD (400 ms × 5), which stays quiet
// when the two shared cores are busy.
func Timers() bgp.Timers {
	t := bgp.FastTimers()
	r := bgp.ReferenceNodeTimers()
	t.BFDInterval, t.BFDIdleInterval, t.BFDMultiplier = r.BFDInterval, r.BFDIdleInterval, r.BFDMultiplier
	return t
}

// Router roles.
const (
	RoleCore  = string(routers.Core)
	RoleSpine = string(routers.Spine)
	RoleToR   = string(routers.ToR)
)

// Router summarizes one router of the plan.
type Router struct {
	Name     string     `json:"name"`
	Role     string     `json:"role"`
	AS       uint32     `json:"as"`
	RouterID netip.Addr `json:"router-id"`
	// NodeSubnet is the rack subnet a ToR serves (route reflector for the
	// nodes in it, DHCP relay from it); its address on it is NodeAddress.
	NodeSubnet  netip.Prefix `json:"node-subnet,omitzero"`
	NodeAddress netip.Addr   `json:"node-address,omitzero"`
	// DHCPServers are where a ToR relays DHCP to.
	DHCPServers []netip.Addr `json:"dhcp-servers,omitempty"`
	// Interfaces are the router's interface names with their addresses.
	Interfaces map[string]netip.Prefix `json:"interfaces"`
}

// MachineEntry is one machine of the sabakan inventory, in the format the
// reference's `sabactl machines create -f` reads.
type MachineEntry struct {
	Serial string            `json:"serial"`
	Labels map[string]string `json:"labels,omitempty"`
	Rack   uint              `json:"rack"`
	Role   string            `json:"role"`
	BMC    struct {
		Type string `json:"type"`
	} `json:"bmc"`
}

// Machine roles in the inventory.
const (
	RoleBoot   = sabakan.RoleBoot
	RoleWorker = "cs"
	// RoleQEMU is the QEMU machines': their stand-in OS runs no container
	// runtime, so the data center's cluster template (role cs) leaves
	// them out of Kubernetes.
	RoleQEMU = "ss"
)

// Plan is a generated data center.
type Plan struct {
	Menu     Menu                `json:"menu"`
	Cluster  *spec.Cluster       `json:"-"`
	Fabric   *routers.Fabric     `json:"-"`
	Routers  []Router            `json:"routers"`
	Machines []MachineEntry      `json:"machines"`
	IPAM     sabakan.IPAMConfig  `json:"ipam"`
	DHCP     sabakan.DHCPConfig  `json:"dhcp"`
	Files    map[string][]byte   `json:"-"` // relative path → content
	Hosts    map[string]HostPlan `json:"hosts"`
}

// HostPlan is what the plan expects of one machine.
type HostPlan struct {
	Rack        uint       `json:"rack"`
	Role        string     `json:"role"`
	Serial      string     `json:"serial"`
	IndexInRack uint       `json:"index-in-rack"`
	Node0       netip.Addr `json:"node0"`
	Eth0        netip.Addr `json:"eth0"`
	Eth1        netip.Addr `json:"eth1"`
	// BMC is the machine's BMC address (sabakan's IPAM computes the same).
	BMC netip.Addr `json:"bmc"`
}

// Options of Generate.
type Options struct {
	// FilesDir is the absolute directory the plan's Files will be written
	// to; apps refer to their configuration files there.
	FilesDir string
	// Timers of the routers; Timers() when zero.
	Timers bgp.Timers
	// AgentBinary is the host path of the bgp-node-agent executable, bound
	// read-only into the machines when Menu.Agent is set.
	AgentBinary string
	// HealthAgentBinary is the host path of node-health-agent, bound into
	// network-booting workers (Menu.Agent and Menu.WorkerDHCP), which run
	// it once their network is up. Boot servers run the one of the neco
	// package.
	HealthAgentBinary string
}

// DefaultSuite is the Debian release the machines run.
const DefaultSuite = "bookworm"

// RootfsName is the name of the machines' Rootfs resource.
const RootfsName = "debian"

// Generate builds the plan of menu m.
func Generate(m Menu, o Options) (*Plan, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(o.FilesDir) {
		return nil, fmt.Errorf("menu: files directory %q is not absolute", o.FilesDir)
	}
	if o.Timers == (bgp.Timers{}) {
		o.Timers = Timers()
	}
	if m.Suite == "" {
		m.Suite = DefaultSuite
	}
	if m.Agent && !filepath.IsAbs(o.AgentBinary) {
		return nil, fmt.Errorf("menu: the BGP agent needs the absolute path of its executable (got %q)", o.AgentBinary)
	}
	if o.HealthAgentBinary != "" && (!filepath.IsAbs(o.HealthAgentBinary) || !m.Agent || !m.WorkerDHCP) {
		return nil, fmt.Errorf("menu: node-health-agent (%q) runs in network-booting workers: it needs an absolute path, the agent and worker DHCP", o.HealthAgentBinary)
	}
	ipam := *sabakan.ReferenceIPAM()
	if err := ipam.Validate(); err != nil {
		return nil, err
	}
	p := &Plan{Menu: m, Cluster: &spec.Cluster{}, IPAM: ipam, Files: map[string][]byte{}, Hosts: map[string]HostPlan{},
		DHCP: sabakan.DHCPConfig{LeaseMinutes: 60}}
	c := p.Cluster
	c.Rootfses = append(c.Rootfses, &spec.Rootfs{Name: RootfsName, Suite: m.Suite,
		Packages: append(RootfsPackages(), m.ExtraPackages...)})

	// Machines first, so the ToRs know where to relay DHCP.
	var bootNode0 []netip.Addr
	var machines []machine
	next := make([]uint, m.Racks)
	first, _ := ipam.IndexRange()
	for r := range m.Racks {
		next[r] = first
		if m.BootServers {
			machines = append(machines, machine{fmt.Sprintf("boot-%d", r), uint(r), ipam.NodeIndexOffset, RoleBoot, "nspawn"})
		}
		for w := range m.WorkersPerRack {
			machines = append(machines, machine{fmt.Sprintf("rack%d-cs%d", r, w+1), uint(r), next[r], RoleWorker, "nspawn"})
			next[r]++
		}
	}
	for q := range m.QEMUNodes {
		r := q % m.Racks
		machines = append(machines, machine{fmt.Sprintf("rack%d-vm%d", r, q/m.Racks+1), uint(r), next[r], RoleQEMU, "qemu"})
		next[r]++
	}
	for _, mc := range machines {
		if mc.role == RoleBoot {
			bootNode0 = append(bootNode0, ipam.NodeAddresses(mc.rack, mc.index)[0])
		}
	}
	for _, mc := range machines {
		addrs := ipam.NodeAddresses(mc.rack, mc.index)
		serial := qemu.DefaultSerial(mc.name)
		p.Hosts[mc.name] = HostPlan{Rack: mc.rack, Role: mc.role, Serial: serial, IndexInRack: mc.index,
			Node0: addrs[0], Eth0: addrs[1], Eth1: addrs[2], BMC: ipam.BMCAddress(mc.rack, mc.index)}
		e := MachineEntry{Serial: serial, Rack: mc.rack, Role: mc.role, Labels: map[string]string{"machine-type": mc.kind}}
		e.BMC.Type = "IPMI-2.0"
		p.Machines = append(p.Machines, e)
		nets := [2]string{rackNet(int(mc.rack), 1), rackNet(int(mc.rack), 2)}
		switch mc.kind {
		case "nspawn":
			n := &spec.NspawnNode{Name: mc.name, Rootfs: RootfsName, SMBIOS: spec.SMBIOS{Serial: serial}}
			for i, net := range nets {
				ifc := spec.Interface{Network: net}
				if !m.Agent && (mc.role == RoleBoot || !m.WorkerDHCP) {
					ifc.Addresses = []string{netip.PrefixFrom(addrs[i+1], int(ipam.NodeRangeMask)).String()}
				}
				n.Interfaces = append(n.Interfaces, ifc)
			}
			if m.BMC && mc.role == RoleBoot {
				n.Interfaces = append(n.Interfaces, spec.Interface{Network: BMCNetwork, LinkScope: true,
					Addresses: []string{netip.PrefixFrom(BootServerBMCAddress(&ipam, mc.rack), int(ipam.BMCRangeMask)).String()}})
			}
			switch {
			case m.Agent && m.WorkerDHCP && mc.role != RoleBoot:
				if err := p.addNetboot(n, mc.name, bootNode0, o); err != nil {
					return nil, err
				}
			case m.Agent:
				if err := p.addAgent(n, mc.name, mc.rack, mc.index, mc.role, o); err != nil {
					return nil, err
				}
			}
			c.NspawnNodes = append(c.NspawnNodes, n)
		case "qemu":
			c.Nodes = append(c.Nodes, &spec.Node{Name: mc.name, Interfaces: nets[:], CPU: 1, Memory: "2G", UEFI: true,
				SMBIOS:  spec.SMBIOS{Manufacturer: "openneco", Product: "vdc-qemu", Serial: serial},
				Volumes: []spec.Volume{{Kind: spec.VolumeRaw, Name: "data", Size: "10G"}}})
		}
	}

	racks := make([]uint, m.Racks)
	for r := range racks {
		racks[r] = uint(r)
	}
	servers := bootNode0
	if servers == nil {
		servers = []netip.Addr{} // no boot servers: the ToRs relay nowhere
	}
	f, err := routers.Generate(routers.Config{IPAM: &ipam, Racks: racks, Spines: m.Spines, LinkPool: LinkPool,
		Timers: o.Timers, DHCPServers: servers})
	if err != nil {
		return nil, fmt.Errorf("menu: %w", err)
	}
	p.Fabric = f
	// One bridge per router link and per node segment; each router end
	// keeps the interface name its BIRD configuration uses.
	ends := map[[2]string]string{} // router, interface → network
	for i, l := range f.Links {
		net := linkNetwork(i, l)
		c.Networks = append(c.Networks, &spec.Network{Name: net, Type: spec.NetworkInternal})
		ends[[2]string{l.A.Router, l.A.Interface}] = net
		ends[[2]string{l.B.Router, l.B.Interface}] = net
	}
	for _, sg := range f.Segments {
		net := rackNet(int(sg.Rack), sg.ToR)
		c.Networks = append(c.Networks, &spec.Network{Name: net, Type: spec.NetworkInternal})
		ends[[2]string{sg.Router, sg.Interface}] = net
	}
	for _, rt := range f.Routers {
		ns := &spec.NetworkNamespace{Name: rt.Name}
		sum := Router{Name: rt.Name, Role: string(rt.Role), AS: rt.AS, RouterID: rt.RouterID, Interfaces: map[string]netip.Prefix{}}
		for _, ifc := range rt.Interfaces {
			ns.Interfaces = append(ns.Interfaces, spec.Interface{Network: ends[[2]string{rt.Name, ifc.Name}], Name: ifc.Name,
				Addresses: []string{ifc.Address.String()}})
			sum.Interfaces[ifc.Name] = ifc.Address
		}
		conf := filepath.Join("bird", rt.Name+".conf")
		sockDir := filepath.Join(o.FilesDir, "run", rt.Name)
		p.Files[conf] = rt.BIRD
		p.Files[filepath.Join("run", rt.Name, ".keep")] = nil
		ns.Apps = append(ns.Apps, spec.App{Name: "bird", Command: []string{
			"bird", "-f", "-c", filepath.Join(o.FilesDir, conf), "-s", filepath.Join(sockDir, "bird.ctl"),
			"-P", filepath.Join(sockDir, "bird.pid")}})
		if rt.Relay != nil {
			sum.NodeSubnet = rt.Interface(rt.Relay.Interface).Address.Masked()
			sum.NodeAddress = rt.Relay.Address
			sum.DHCPServers = rt.Relay.Servers
			if len(rt.Relay.Servers) > 0 {
				ns.Apps = append(ns.Apps, spec.App{Name: "dhcp-relay",
					Command: append([]string{"dnsmasq", "--log-dhcp"}, rt.Relay.DnsmasqArgs(filepath.Join(sockDir, "dnsmasq.pid"))...)})
			}
		}
		c.Namespaces = append(c.Namespaces, ns)
		p.Routers = append(p.Routers, sum)
	}
	if m.BMC {
		p.addBMCs(machines)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("menu: generated an invalid cluster: %w", err)
	}
	return p, nil
}

// machine is one machine's place in the plan.
type machine struct {
	name  string
	rack  uint
	index uint
	role  string
	kind  string
}

// The BMC network: one bridge, separate from the fabric as in a real data
// center, where the namespace BMCHost answers for every machine's BMC.
const (
	BMCNetwork = "bmc"
	BMCHost    = "bmc"
	// BMCFile is the virtual BMC service's machine list in the plan's
	// files (vbmc.Config).
	BMCFile = "bmc/vbmc.json"
)

// BootServerBMCAddress is the address a boot server has on the BMC
// network: in the last /24 of the BMC pool, above every rack's BMC range.
func BootServerBMCAddress(ipam *sabakan.IPAMConfig, rack uint) netip.Addr {
	pool := netip.MustParsePrefix(ipam.BMCIPv4Pool)
	last := pool.Addr().As4()
	size := uint32(1) << (32 - pool.Bits())
	base := uint32(last[0])<<24 | uint32(last[1])<<16 | uint32(last[2])<<8 | uint32(last[3])
	a := base + size - 256 + 10 + uint32(rack)
	return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
}

// addBMCs adds the BMC network, the namespace holding every machine's BMC
// address and the virtual BMC service's machine list.
func (p *Plan) addBMCs(machines []machine) {
	p.Cluster.Networks = append(p.Cluster.Networks, &spec.Network{Name: BMCNetwork, Type: spec.NetworkInternal})
	ifc := spec.Interface{Network: BMCNetwork}
	type entry struct {
		Name    string     `json:"name"`
		Serial  string     `json:"serial"`
		Address netip.Addr `json:"address"`
	}
	var list []entry
	for _, mc := range machines {
		h := p.Hosts[mc.name]
		ifc.Addresses = append(ifc.Addresses, netip.PrefixFrom(h.BMC, int(p.IPAM.BMCRangeMask)).String())
		list = append(list, entry{mc.name, h.Serial, h.BMC})
	}
	p.Cluster.Namespaces = append(p.Cluster.Namespaces, &spec.NetworkNamespace{Name: BMCHost, Interfaces: []spec.Interface{ifc}})
	b, _ := json.MarshalIndent(map[string]any{"host": BMCHost, "machines": list}, "", "  ")
	p.Files[BMCFile] = append(b, '\n')
}

func rackNet(rack, tor int) string { return fmt.Sprintf("r%d-node%d", rack, tor) }

// MachinePackages are installed in the machines' root trees besides
// spec.DefaultRootfsPackages: BIRD for the BGP node agent, busybox for
// its DHCP client (udhcpc, used by network-booting workers) and iPXE,
// whose ipxe.efi sabakan serves to UEFI machines from the boot servers,
// and what a Kubernetes node needs: containerd with runc (the container
// runtime, which pulls from the boot servers' registries), the CNI
// plugins, iptables and conntrack (kube-proxy in iptables mode), an SSH
// server (the Kubernetes engine reaches nodes over SSH) and HAProxy (the
// node-local balancer in front of the API servers). Debian enables
// ssh.service and haproxy.service; HAProxy's packaged configuration binds
// nothing.
var MachinePackages = []string{"bird2", "busybox", "ipxe", "containerd", "runc", "containernetworking-plugins",
	"iptables", "conntrack", "openssh-server", "haproxy"}

// ImagePackages make the same tree the boot servers' disk image
// (installer/): the kernel and its initramfs (with udev), systemd-boot,
// fsck for the EFI system partition, chrony for time and sudo for the
// operator. nspawn machines carry them unused, so that the virtual data
// center's boot servers run the tree operators install.
var ImagePackages = []string{"linux-image-amd64", "udev", "systemd-boot-efi", "dosfstools", "chrony", "sudo"}

// RootfsPackages is the package list of the machines' root tree (without a
// menu's extra packages): whoever builds the same list shares the cached
// tree.
func RootfsPackages() []string {
	return slices.Concat(spec.DefaultRootfsPackages, MachinePackages, ImagePackages)
}

// TreeSpec is the data center's Debian tree: what the virtual data
// center's machines boot (without a menu's extra packages) and what the
// boot servers' disk image holds.
func TreeSpec() rootfs.Spec {
	return rootfs.Spec{Suite: DefaultSuite, Variant: "minbase", Packages: RootfsPackages()}
}

// AgentUnit is the systemd unit of the BGP node agent in a machine, as
// docs/bgp-agent.md describes it.
const AgentUnit = `[Unit]
Description=BGP node agent: node address, BIRD with BGP and BFD to both ToRs
Wants=network-pre.target
After=network-pre.target

[Service]
ExecStart=/usr/local/sbin/bgp-node-agent -config /etc/neco/bgp-node-agent.yaml
KillMode=process
Restart=always
RestartSec=1s
Environment=CANCELLATION_DELAY_SECONDS=0
TimeoutStopSec=15s

[Install]
WantedBy=multi-user.target
`

// addAgent prepares the BGP node agent of one machine: its identity file
// and configuration, the unit, and an init script that installs them into
// the machine's root before it boots; the executable is bound in.
func (p *Plan) addAgent(n *spec.NspawnNode, name string, rack, index uint, role string, o Options) error {
	identity := map[string]any{
		"machine": map[string]any{"spec": map[string]any{
			"serial": n.SMBIOS.Serial, "rack": rack, "index-in-rack": index, "role": role}},
		"ipam": p.IPAM,
	}
	idJSON, err := json.MarshalIndent(identity, "", "  ")
	if err != nil {
		return err
	}
	conf := map[string]any{
		"identity-file": "/etc/neco/identity.json",
		"interfaces":    []string{"eth0", "eth1"},
		// No CAP_SYS_RESOURCE in a container here: no oom_score_adj -1000.
		"bird-realtime": false,
	}
	confJSON, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Join("agent", name)
	p.Files[filepath.Join(dir, "identity.json")] = append(idJSON, '\n')
	p.Files[filepath.Join(dir, "bgp-node-agent.yaml")] = append(confJSON, '\n')
	p.Files["agent/bgp-node-agent.service"] = []byte(AgentUnit)
	abs := func(rel string) string { return filepath.Join(o.FilesDir, rel) }
	script := fmt.Sprintf(`#!/bin/sh
# Installs the BGP node agent's files into %[1]s's root ($1) before boot.
set -eu
root="$1"
install -D -m 0644 %[2]s "$root/etc/neco/identity.json"
install -D -m 0644 %[3]s "$root/etc/neco/bgp-node-agent.yaml"
install -D -m 0644 %[4]s "$root/etc/systemd/system/bgp-node-agent.service"
mkdir -p "$root/etc/systemd/system/multi-user.target.wants" "$root/usr/local/sbin"
# The agent runs its own BIRD: the package's daemon stays off.
ln -sf /dev/null "$root/etc/systemd/system/bird.service"
ln -sf ../bgp-node-agent.service "$root/etc/systemd/system/multi-user.target.wants/bgp-node-agent.service"
touch "$root/usr/local/sbin/bgp-node-agent"
`, name, abs(filepath.Join(dir, "identity.json")), abs(filepath.Join(dir, "bgp-node-agent.yaml")), abs("agent/bgp-node-agent.service"))
	initScript := filepath.Join("init", name+".sh")
	p.Files[initScript] = []byte(script)
	n.InitScripts = append(n.InitScripts, abs(initScript))
	n.Binds = append(n.Binds, spec.Bind{Source: o.AgentBinary, Target: "/usr/local/sbin/bgp-node-agent", ReadOnly: true})
	return nil
}

// linkNetwork names the bridge of the i-th router link: "s1-r0t1" for
// spine 1 and ToR 1 of rack 0, "core-s1" for the core and spine 1.
func linkNetwork(i int, l routers.Link) string {
	a, b := l.A, l.B
	switch {
	case strings.HasPrefix(b.Router, "spine") && strings.HasPrefix(a.Router, "rack"):
		return "s" + strings.TrimPrefix(b.Router, "spine") + "-" + b.Interface
	case b.Router == routers.CoreName && strings.HasPrefix(a.Router, "spine"):
		return "core-s" + strings.TrimPrefix(a.Router, "spine")
	}
	return "link" + strconv.Itoa(i)
}

// Write stores the plan under dir: the files, cluster.yml, routers.json,
// the sabakan inventory (machines.json, ipam.json, dhcp.json) and
// hosts.json (what each machine's addresses will be).
func (p *Plan) Write(dir string) error {
	for rel, data := range p.Files {
		full := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if filepath.Base(rel) == ".keep" {
			continue
		}
		mode := os.FileMode(0o644)
		if filepath.Ext(rel) == ".sh" {
			mode = 0o755
		}
		if err := os.WriteFile(full, data, mode); err != nil {
			return err
		}
	}
	doc, err := p.Cluster.Marshal()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cluster.yml"), doc, 0o644); err != nil {
		return err
	}
	for name, v := range map[string]any{"machines.json": p.Machines, "ipam.json": p.IPAM, "dhcp.json": p.DHCP,
		"routers.json": p.Routers, "hosts.json": p.Hosts} {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Machines is the number of nspawn machines the menu makes.
func (m Menu) Machines() int {
	n := m.Racks * m.WorkersPerRack
	if m.BootServers {
		n += m.Racks
	}
	return n
}
