// Package fabrictest builds real leaf-spine networks for the BGP node
// agent's tests and benchmarks (it holds test files only, so none of it is
// built into a program): one network namespace per router (BIRD with
// the configuration pkg/bgp/routers generates) and per node (the
// bgp-node-agent binary, which runs its own BIRD). Links are veth pairs
// created straight inside their namespaces; a ToR's node segment is a
// bridge inside the ToR's namespace, so nothing but the namespaces
// themselves is visible on the host. Every namespace name starts with a
// per-run identifier and everything is removed when the test ends.
//
// It needs root, iproute2, BIRD and ping; the tests in this package use
// pkg/testutil, so a missing prerequisite fails them under CI=true.
package fabrictest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/bgp"
	"github.com/openneco/neco/pkg/bgp/agent"
	"github.com/openneco/neco/pkg/bgp/bird"
	"github.com/openneco/neco/pkg/bgp/routers"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/vishvananda/netlink"
	"sigs.k8s.io/yaml"
)

// Options shape a fabric.
type Options struct {
	// Racks, NodesPerRack and Spines size the network (defaults 2, 2, 1).
	Racks, NodesPerRack, Spines int
	// NodeTimers are the agents' timers, RouterTimers the routers'; zero
	// values mean bgp.FastTimers().
	NodeTimers, RouterTimers bgp.Timers
	// Agent is the bgp-node-agent binary.
	Agent string
	// AgentConfig adds or overrides keys of each node's agent config file.
	AgentConfig map[string]any
	// NodeConfig, if set, edits each node's agent config file.
	NodeConfig func(n *Node, cfg map[string]any)
	// Relays starts each ToR's DHCP relay (dnsmasq) towards DHCPServers
	// (default: the node address of the last rack's first node).
	Relays      bool
	DHCPServers []netip.Addr
}

// Fabric is a running leaf-spine network.
type Fabric struct {
	ID      string
	Dir     string
	IPAM    sabakan.IPAMConfig
	Plan    *routers.Fabric
	Routers map[string]*Router
	Nodes   []*Node

	t    testing.TB
	opts Options
	all  []*NS
}

// Router is a router's namespace and BIRD.
type Router struct {
	*NS
	Spec *routers.Router
	BIRD *bird.Daemon
	Proc *bird.Process
	dir  string

	relay *exec.Cmd
}

// Node is a node's namespace and agent.
type Node struct {
	*NS
	Fabric *Fabric
	Source *bgp.Source
	ID     *bgp.Identity
	// Dir holds the node's identity file, agent config and logs; StateDir
	// is the agent's state directory.
	Dir, StateDir, ConfigFile string
	// Ports are the ToR-side ends of the node's links (in ToR 1's and ToR
	// 2's namespaces).
	Ports [2]string

	agent     *exec.Cmd
	agentDone chan struct{}
}

func shortName(router string) string {
	var rack uint
	var tor int
	if n, _ := fmt.Sscanf(router, "rack%d-tor%d", &rack, &tor); n == 2 {
		return fmt.Sprintf("r%dt%d", rack, tor)
	}
	return strings.Replace(router, "spine", "s", 1)
}

// New builds and starts the routers of a fabric and prepares its nodes;
// StartAgents brings the nodes up. Everything is removed at the end of the
// test.
func New(t testing.TB, opts Options) *Fabric {
	t.Helper()
	if opts.Racks == 0 {
		opts.Racks = 2
	}
	if opts.NodesPerRack == 0 {
		opts.NodesPerRack = 2
	}
	if opts.Spines == 0 {
		opts.Spines = 1
	}
	if opts.NodeTimers == (bgp.Timers{}) {
		opts.NodeTimers = bgp.FastTimers()
	}
	if opts.RouterTimers == (bgp.Timers{}) {
		opts.RouterTimers = bgp.FastTimers()
	}
	f := &Fabric{ID: RunID(), IPAM: *sabakan.ReferenceIPAM(), Routers: map[string]*Router{}, t: t, opts: opts}
	dir, err := os.MkdirTemp("", f.ID+"-")
	if err != nil {
		t.Fatal(err)
	}
	f.Dir = dir
	t.Cleanup(f.close)
	if err := f.build(); err != nil {
		t.Fatalf("fabric %s: %v", f.ID, err)
	}
	return f
}

func (f *Fabric) newNS(short string) (*NS, error) {
	ns, err := NewNS(f.ID + "-" + short)
	if err != nil {
		return nil, err
	}
	f.all = append(f.all, ns)
	return ns, nil
}

func (f *Fabric) build() error {
	var racks []uint
	for r := 0; r < f.opts.Racks; r++ {
		racks = append(racks, uint(r))
	}
	servers := f.opts.DHCPServers
	if servers == nil {
		servers = f.IPAM.NodeAddresses(uint(f.opts.Racks-1), f.IPAM.NodeIndexOffset+1)[:1]
	}
	plan, err := routers.Generate(routers.Config{IPAM: &f.IPAM, Racks: racks, Spines: f.opts.Spines,
		Timers: f.opts.RouterTimers, DHCPServers: servers})
	if err != nil {
		return err
	}
	f.Plan = plan
	for _, spec := range plan.Routers {
		ns, err := f.newNS(shortName(spec.Name))
		if err != nil {
			return err
		}
		if err := ns.Sysctl("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
			"net.ipv4.fib_multipath_hash_policy=1"); err != nil {
			return err
		}
		f.Routers[spec.Name] = &Router{NS: ns, Spec: spec, dir: filepath.Join(f.Dir, spec.Name)}
	}
	for _, l := range plan.Links {
		a, b := f.Routers[l.A.Router], f.Routers[l.B.Router]
		if err := veth(a.NS, l.A.Interface, b.NS, l.B.Interface); err != nil {
			return err
		}
		if err := addAddress(a.NS, l.A.Interface, l.A.Address); err != nil {
			return err
		}
		if err := addAddress(b.NS, l.B.Interface, l.B.Address); err != nil {
			return err
		}
	}
	for _, s := range plan.Segments {
		r := f.Routers[s.Router]
		nl := r.Host.Netlink()
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: s.Interface}}
		if err := nl.LinkAdd(br); err != nil {
			return fmt.Errorf("%s: bridge %s: %w", r.Name, s.Interface, err)
		}
		if err := addAddress(r.NS, s.Interface, netip.PrefixFrom(s.Gateway, s.Prefix.Bits())); err != nil {
			return err
		}
	}
	for _, rack := range racks {
		for i := 0; i < f.opts.NodesPerRack; i++ {
			if err := f.addNode(rack, f.IPAM.NodeIndexOffset+1+uint(i)); err != nil {
				return err
			}
		}
	}
	for _, spec := range plan.Routers {
		if err := f.Routers[spec.Name].start(f.opts.Relays); err != nil {
			return err
		}
	}
	return nil
}

func veth(a *NS, aName string, b *NS, bName string) error {
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: aName}, PeerName: bName, PeerNamespace: netlink.NsFd(b.fd)}
	if err := a.Host.Netlink().LinkAdd(v); err != nil {
		return fmt.Errorf("veth %s/%s - %s/%s: %w", a.Name, aName, b.Name, bName, err)
	}
	return nil
}

func addAddress(ns *NS, ifname string, p netip.Prefix) error {
	nl := ns.Host.Netlink()
	l, err := nl.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", ns.Name, ifname, err)
	}
	if p.IsValid() {
		a, err := netlink.ParseAddr(p.String())
		if err != nil {
			return err
		}
		if err := nl.AddrAdd(l, a); err != nil {
			return fmt.Errorf("%s: add %s to %s: %w", ns.Name, p, ifname, err)
		}
	}
	if err := nl.LinkSetUp(l); err != nil {
		return fmt.Errorf("%s: %s up: %w", ns.Name, ifname, err)
	}
	return nil
}

func (f *Fabric) addNode(rack, index uint) error {
	ns, err := f.newNS(fmt.Sprintf("n%d-%d", rack, index))
	if err != nil {
		return err
	}
	m := sabakan.NewMachine(sabakan.MachineSpec{Serial: fmt.Sprintf("%s-r%d-%d", f.ID, rack, index), Rack: rack, IndexInRack: index, Role: "cs"}, time.Now())
	f.IPAM.Assign(m)
	src := &bgp.Source{Machine: *m, IPAM: f.IPAM}
	id, err := src.Identity(bgp.DefaultASPlan())
	if err != nil {
		return err
	}
	n := &Node{NS: ns, Fabric: f, Source: src, ID: id, Dir: filepath.Join(f.Dir, ns.Name)}
	n.StateDir = filepath.Join(n.Dir, "state")
	n.ConfigFile = filepath.Join(n.Dir, "agent.yaml")
	if err := os.MkdirAll(n.StateDir, 0o755); err != nil {
		return err
	}
	for t := 1; t <= 2; t++ {
		tor := f.Routers[routers.ToRName(rack, t)]
		port := fmt.Sprintf("n%d", index)
		n.Ports[t-1] = port
		if err := veth(ns, fmt.Sprintf("eth%d", t-1), tor.NS, port); err != nil {
			return err
		}
		nl := tor.Host.Netlink()
		l, err := nl.LinkByName(port)
		if err != nil {
			return err
		}
		br, err := nl.LinkByName("nodes")
		if err != nil {
			return err
		}
		if err := nl.LinkSetMaster(l, br); err != nil {
			return err
		}
		if err := nl.LinkSetUp(l); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(src, "", "  ")
	if err != nil {
		return err
	}
	idFile := filepath.Join(n.Dir, "identity.json")
	if err := os.WriteFile(idFile, b, 0o644); err != nil {
		return err
	}
	cfg := map[string]any{
		"identity-file":      idFile,
		"state-dir":          n.StateDir,
		"interfaces":         []string{"eth0", "eth1"},
		"listen":             "127.0.0.1:9770",
		"poll-interval":      "100ms",
		"reconcile-interval": "1s",
		"timers":             f.opts.NodeTimers,
	}
	for k, v := range f.opts.AgentConfig {
		cfg[k] = v
	}
	if f.opts.NodeConfig != nil {
		f.opts.NodeConfig(n, cfg)
	}
	if err := n.WriteConfig(cfg); err != nil {
		return err
	}
	f.Nodes = append(f.Nodes, n)
	return nil
}

// WriteConfig writes the node's agent config file.
func (n *Node) WriteConfig(cfg map[string]any) error {
	y, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(n.ConfigFile, y, 0o644)
}

func (r *Router) start(relays bool) error {
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	r.BIRD = &bird.Daemon{
		Prefix:   []string{"ip", "netns", "exec", r.Name},
		Config:   filepath.Join(r.dir, "bird.conf"),
		Socket:   filepath.Join(r.dir, "bird.ctl"),
		PIDFile:  filepath.Join(r.dir, "bird.pid"),
		Output:   filepath.Join(r.dir, "bird.log"),
		Realtime: true,
	}
	if err := os.WriteFile(r.BIRD.Config, r.Spec.BIRD, 0o644); err != nil {
		return err
	}
	p, err := r.BIRD.Start(context.Background())
	var te *bird.TuneError
	if err != nil && !errors.As(err, &te) {
		return fmt.Errorf("%s: %w", r.Spec.Name, err)
	}
	r.Proc = p
	if r.Spec.Relay != nil && relays {
		return r.startRelay()
	}
	return nil
}

// Restart stops the router's BIRD and starts it again.
func (r *Router) Restart() error {
	r.Proc.Stop(5 * time.Second)
	p, err := r.BIRD.Start(context.Background())
	var te *bird.TuneError
	if err != nil && !errors.As(err, &te) {
		return err
	}
	r.Proc = p
	return nil
}

// startRelay runs the ToR's DHCP relay as the generator describes it.
func (r *Router) startRelay() error {
	out, err := os.OpenFile(filepath.Join(r.dir, "dnsmasq.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := r.Command(context.Background(), "dnsmasq", r.Spec.Relay.DnsmasqArgs(filepath.Join(r.dir, "dnsmasq.pid"))...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: dnsmasq: %w", r.Spec.Name, err)
	}
	r.relay = cmd
	return nil
}

// Link returns a ToR-side port of node n: tor is 1 or 2.
func (n *Node) ToR(tor int) *Router {
	return n.Fabric.Routers[routers.ToRName(n.ID.Rack, tor)]
}

// SetLink sets the ToR-side port of the node's link to ToR tor (1 or 2) up
// or down: down is a pulled cable as the node sees it (no carrier).
func (n *Node) SetLink(tor int, up bool) error {
	r := n.ToR(tor)
	nl := r.Host.Netlink()
	l, err := nl.LinkByName(n.Ports[tor-1])
	if err != nil {
		return err
	}
	if up {
		return nl.LinkSetUp(l)
	}
	return nl.LinkSetDown(l)
}

// StartAgent starts the node's bgp-node-agent inside its namespace.
func (n *Node) StartAgent() error {
	if n.agent != nil {
		return fmt.Errorf("%s: agent already running", n.Name)
	}
	out, err := os.OpenFile(filepath.Join(n.Dir, "agent.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := n.Command(context.Background(), n.Fabric.opts.Agent, "-config", n.ConfigFile)
	cmd.Stdout, cmd.Stderr = out, out
	// well delays the reaction to SIGTERM by 5 s by default.
	cmd.Env = append(os.Environ(), "CANCELLATION_DELAY_SECONDS=0")
	if err := cmd.Start(); err != nil {
		return err
	}
	n.agent = cmd
	n.agentDone = make(chan struct{})
	go func(done chan struct{}) {
		cmd.Wait()
		close(done)
	}(n.agentDone)
	return nil
}

// AgentPID returns the agent's process id (0 when not running).
func (n *Node) AgentPID() int {
	if n.agent == nil {
		return 0
	}
	return n.agent.Process.Pid
}

// StopAgent stops the agent with SIGTERM (as systemd does) and waits.
// BIRD keeps running.
func (n *Node) StopAgent() error {
	if n.agent == nil {
		return nil
	}
	n.agent.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.agentDone:
	case <-time.After(10 * time.Second):
		n.agent.Process.Kill()
		<-n.agentDone
		n.agent = nil
		return fmt.Errorf("%s: agent did not stop within 10s", n.Name)
	}
	n.agent = nil
	return nil
}

// WaitAgentExit waits for the agent to exit on its own and returns its
// exit code.
func (n *Node) WaitAgentExit(timeout time.Duration) (int, error) {
	select {
	case <-n.agentDone:
		code := n.agent.ProcessState.ExitCode()
		n.agent = nil
		return code, nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("%s: agent still running after %s", n.Name, timeout)
	}
}

// BIRD returns a client of the node's BIRD.
func (n *Node) BIRD() *bird.Client {
	return &bird.Client{Socket: filepath.Join(n.StateDir, "bird.ctl"), Timeout: 2 * time.Second}
}

// BIRDDaemon describes the node's BIRD as the agent runs it.
func (n *Node) BIRDDaemon() *bird.Daemon {
	return &bird.Daemon{
		Config:  filepath.Join(n.StateDir, "bird.conf"),
		Socket:  filepath.Join(n.StateDir, "bird.ctl"),
		PIDFile: filepath.Join(n.StateDir, "bird.pid"),
	}
}

// Status asks the agent for its /status.
func (n *Node) Status() (*agent.Status, error) {
	resp, err := n.HTTPClient().Get("http://127.0.0.1:9770/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st agent.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Sessions returns the BGP state of tor1 and tor2 as BIRD reports it.
func (n *Node) Sessions(ctx context.Context) (map[string]bird.Protocol, error) {
	protocols, err := n.BIRD().Protocols(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bird.Protocol{}
	for _, p := range protocols {
		if p.Name == "tor1" || p.Name == "tor2" {
			out[p.Name] = p
		}
	}
	return out, nil
}

// Established reports whether both ToR sessions are established.
func (n *Node) Established(ctx context.Context) bool {
	s, err := n.Sessions(ctx)
	return err == nil && s["tor1"].BGPState() == "Established" && s["tor2"].BGPState() == "Established"
}

// NextHops returns the gateways of the node's BIRD route to dst.
func (n *Node) NextHops(dst netip.Addr) ([]netip.Addr, error) {
	return n.Host.Route(netip.PrefixFrom(dst, 32))
}

// Eventually retries f every interval until it succeeds or timeout passes,
// and returns f's last error.
func Eventually(timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
	}
}

// StartAgents starts every node's agent.
func (f *Fabric) StartAgents() error {
	for _, n := range f.Nodes {
		if err := n.StartAgent(); err != nil {
			return err
		}
	}
	return nil
}

// WaitReady waits until every agent reports ready and not degraded.
func (f *Fabric) WaitReady(timeout time.Duration) error {
	for _, n := range f.Nodes {
		err := Eventually(timeout, 50*time.Millisecond, func() error {
			st, err := n.Status()
			if err != nil {
				return err
			}
			if !st.Ready || st.Degraded {
				return fmt.Errorf("%s: ready %v degraded %v: %s", n.Name, st.Ready, st.Degraded, st.Reason)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// StopNode stops the node's agent and BIRD; BIRD removes its routes.
func (n *Node) StopNode() error {
	err := n.StopAgent()
	if p, ferr := n.BIRDDaemon().Find(context.Background()); ferr == nil {
		err = errors.Join(err, p.Stop(5*time.Second))
	}
	return err
}

// RSS returns the resident set size of a process in bytes.
func RSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (f *Fabric) close() {
	if f.t.Failed() {
		for _, n := range f.Nodes {
			f.t.Logf("=== %s agent.log (last lines)\n%s", n.Name, tail(filepath.Join(n.Dir, "agent.log"), 25))
			f.t.Logf("=== %s bird.log (last lines)\n%s", n.Name, tail(filepath.Join(n.StateDir, "bird.log"), 40))
		}
		for _, r := range f.Routers {
			f.t.Logf("=== %s bird.log (last lines)\n%s", r.Spec.Name, tail(filepath.Join(r.dir, "bird.log"), 40))
		}
	}
	for _, n := range f.Nodes {
		n.StopAgent()
		if p, err := n.BIRDDaemon().Find(context.Background()); err == nil {
			p.Stop(5 * time.Second)
		}
	}
	for _, r := range f.Routers {
		if r.relay != nil {
			r.relay.Process.Kill()
			r.relay.Wait()
		}
		if r.Proc != nil {
			r.Proc.Stop(5 * time.Second)
		}
	}
	for _, ns := range f.all {
		if err := ns.Delete(); err != nil {
			f.t.Errorf("cleanup: %v", err)
		}
	}
	os.RemoveAll(f.Dir)
}
