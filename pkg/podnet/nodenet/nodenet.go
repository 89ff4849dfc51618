// Package nodenet is the node-local plumbing of the pod network: the netlink
// work a CNI daemon does on each Kubernetes node to wire a pod, the same
// routed design as cybozu-go/coil (no bridge, no overlay, no encapsulation).
// Addresses come from an allocator elsewhere; this package only configures
// links, addresses, routes and one policy rule.
//
// A pod gets one end of a veth pair, renamed to the CNI interface name, with
// its address as a /32, a scope-link route to the node's own address
// (Config.NodeIP, "node0") and a default route via that address. The host end
// (named HostVethName) carries NodeIP/32 too, so it answers the pod's ARP for
// its gateway and no link needs a pod subnet. The host reaches the pod through
//
//	<podIP>/32 dev <hostveth> scope link proto <Protocol> table <PodTable>
//
// looked up via the rule "pref <RulePriority> lookup <PodTable>" (Init). Per-pod
// /32s never go to the main table or the export table: the node's BIRD
// announces only the address blocks the node owns, which SyncExport keeps in
// ExportTable as one "dev lo proto <Protocol>" route each (BIRD's kernel
// protocol learns that table). The defaults, 116/2000/119/30, are coil's and
// match the BIRD configuration of the node agent.
//
// Each host veth's alias, "podnet:<pool>:<ip>:<containerID>:<ifName>", records
// its pod: List rebuilds the daemon's state from the aliases after a restart,
// Sweep removes what no pod owns any more. Setup undoes everything it did when
// a step fails, so a failed ADD leaves neither a link, an address nor a route.
//
// Only IPv4 is supported. "The node" is the network namespace of the calling
// thread: a daemon in the host network namespace calls this package from any
// goroutine; a caller in another namespace (tests) must lock its goroutine to
// a thread in that namespace. Pod namespaces are reached with netlink handles
// opened in them (netlink.NewHandleAt), never by switching the caller's thread.
package nodenet

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Config is the node-wide configuration. Its zero value is not usable: start
// from DefaultConfig.
type Config struct {
	// PodTable holds the per-pod /32 routes (never the main or export table).
	PodTable int
	// RulePriority is the priority of the rule "from all lookup PodTable".
	RulePriority int
	// ExportTable holds one route per address block the node owns, dev lo,
	// proto Protocol: the node's BIRD learns this table and announces it.
	ExportTable int
	// Protocol is the route protocol id of every route this package writes.
	Protocol int
	// MTU of both veth ends; 0 leaves the kernel's default. The daemon passes
	// DetectMTU's result when none is configured.
	MTU int
	// NodeIP is the node's own address (node0), the pods' gateway. Setup and
	// Check need it.
	NodeIP netip.Addr
}

// Pod describes a wired pod.
type Pod struct {
	ContainerID string
	IfName      string // interface name in the pod's network namespace
	Pool        string
	IP          netip.Addr
	HostVeth    string // host end of the veth pair
	HostMAC     string
	// ContainerMAC and Netns are those given to and seen by Setup; List
	// cannot know them and leaves them empty.
	ContainerMAC string
	Netns        string
}

// DefaultConfig returns coil's defaults: PodTable 116, RulePriority 2000,
// ExportTable 119, Protocol 30.
func DefaultConfig() Config {
	return Config{PodTable: 116, RulePriority: 2000, ExportTable: 119, Protocol: 30}
}

// dumpRetries bounds the retries of a netlink dump the kernel reports as
// interrupted (NLM_F_DUMP_INTR: the table changed while it was being read).
const dumpRetries = 5

func (c Config) validate() error {
	var errs []error
	table := func(name string, t int) {
		switch {
		case t <= 0 || int64(t) > math.MaxUint32:
			errs = append(errs, fmt.Errorf("%s %d: out of range", name, t))
		case t == syscall.RT_TABLE_DEFAULT || t == syscall.RT_TABLE_MAIN || t == syscall.RT_TABLE_LOCAL || t == syscall.RT_TABLE_COMPAT:
			errs = append(errs, fmt.Errorf("%s %d: a table the kernel reserves", name, t))
		}
	}
	table("pod table", c.PodTable)
	table("export table", c.ExportTable)
	if c.PodTable == c.ExportTable {
		errs = append(errs, fmt.Errorf("pod table and export table are both %d", c.PodTable))
	}
	// 0 is the local table's rule, 32766 and 32767 those of main and default.
	if c.RulePriority <= 0 || c.RulePriority >= 32766 {
		errs = append(errs, fmt.Errorf("rule priority %d: not in 1..32765", c.RulePriority))
	}
	if c.Protocol <= syscall.RTPROT_STATIC || c.Protocol > math.MaxUint8 {
		errs = append(errs, fmt.Errorf("protocol %d: not in 5..255 (0-4 are the kernel's)", c.Protocol))
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
		errs = append(errs, fmt.Errorf("MTU %d: not in 68..65535", c.MTU))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid config: %w", err)
	}
	return nil
}

func (c Config) validateNodeIP() error {
	if !c.NodeIP.Is4() {
		return fmt.Errorf("invalid config: node address %s: not an IPv4 address", c.NodeIP)
	}
	return nil
}

func (c Config) proto() netlink.RouteProtocol { return netlink.RouteProtocol(c.Protocol) }

// hostHandle opens a netlink handle in the calling thread's namespace.
func hostHandle() (*netlink.Handle, error) {
	h, err := netlink.NewHandle(syscall.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	return h, nil
}

// Init prepares the node: it makes sure the rule "pref RulePriority lookup
// PodTable" exists exactly once (removing duplicates) and that IPv4
// forwarding is on in the current network namespace. It is idempotent; the
// daemon calls it at start (and may call it periodically, since tools such
// as systemd-networkd can remove foreign rules).
func (c Config) Init() error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("nodenet: init: %w", err)
	}
	h, err := hostHandle()
	if err != nil {
		return fmt.Errorf("nodenet: init: %w", err)
	}
	defer h.Close()

	rules, err := dump(func() ([]netlink.Rule, error) { return h.RuleList(netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("nodenet: init: list rules: %w", err)
	}
	var ours []netlink.Rule
	for _, r := range rules {
		if c.isPodRule(r) {
			ours = append(ours, r)
		}
	}
	if len(ours) == 0 {
		if err := h.RuleAdd(c.podRule()); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("nodenet: init: add rule pref %d lookup %d: %w", c.RulePriority, c.PodTable, err)
		}
	}
	for i := 1; i < len(ours); i++ {
		if err := h.RuleDel(&ours[i]); err != nil {
			return fmt.Errorf("nodenet: init: delete duplicate rule pref %d lookup %d: %w", c.RulePriority, c.PodTable, err)
		}
	}
	if err := enableForwarding(); err != nil {
		return fmt.Errorf("nodenet: init: %w", err)
	}
	return nil
}

func (c Config) podRule() *netlink.Rule {
	r := netlink.NewRule()
	r.Family = netlink.FAMILY_V4
	r.Priority = c.RulePriority
	r.Table = c.PodTable
	return r
}

// isPodRule reports whether r is "from all lookup PodTable" at RulePriority
// with no other selector.
func (c Config) isPodRule(r netlink.Rule) bool {
	return r.Priority == c.RulePriority && r.Table == c.PodTable && r.Family == netlink.FAMILY_V4 &&
		r.Src == nil && r.Dst == nil && r.IifName == "" && r.OifName == "" && r.Mark == 0 && r.Mask == nil &&
		!r.Invert && r.Tos == 0 && r.TunID == 0 && r.Goto == -1 && r.Flow == -1 && r.IPProto == 0 &&
		r.Sport == nil && r.Dport == nil && r.UIDRange == nil && r.SuppressIfgroup == -1 && r.SuppressPrefixlen == -1
}

const ipForwardPath = "/proc/sys/net/ipv4/ip_forward"

// enableForwarding turns IPv4 forwarding on, writing only when it is off
// (so that a read-only /proc/sys with forwarding already on is fine).
// /proc/sys/net resolves to the calling thread's network namespace.
func enableForwarding() error {
	b, err := os.ReadFile(ipForwardPath)
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(b)) == "1" {
		return nil
	}
	if err := os.WriteFile(ipForwardPath, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	return nil
}

// Setup wires the pod whose network namespace is netnsPath: a veth pair
// whose host end is HostVethName(containerID, ifName) and whose other end is
// ifName in the pod with ip/32, plus the routes described in the package
// comment. A stale host veth of the same name (from an ADD that crashed) is
// deleted first. On any failure Setup deletes the host veth it created (which
// removes the pod end with its address and routes, and the PodTable route) and
// returns an error naming the failed step. It only leaves the pod's lo up.
//
// The kernel ignores an alias in the request that creates a link, so the
// alias is set right after: a veth left by a crash in between has none, and
// Sweep recognizes it by its name alone.
func (c Config) Setup(netnsPath, containerID, ifName, pool string, ip netip.Addr) (Pod, error) {
	fail := func(err error) (Pod, error) {
		return Pod{}, fmt.Errorf("nodenet: setup %s/%s: %w", containerID, ifName, err)
	}
	if err := errors.Join(c.validate(), c.validateNodeIP()); err != nil {
		return fail(err)
	}
	alias := podAlias{Pool: pool, IP: ip, ContainerID: containerID, IfName: ifName}
	if err := alias.validate(); err != nil {
		return fail(err)
	}
	if ip == c.NodeIP {
		return fail(fmt.Errorf("pod address %s is the node's", ip))
	}
	if netnsPath == "" {
		return fail(errors.New("empty network namespace path"))
	}

	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return fail(fmt.Errorf("open pod netns: %w", err))
	}
	defer ns.Close()
	ph, err := netlink.NewHandleAt(ns, syscall.NETLINK_ROUTE)
	if err != nil {
		return fail(fmt.Errorf("netlink socket in pod netns %s: %w", netnsPath, err))
	}
	defer ph.Close()
	h, err := hostHandle()
	if err != nil {
		return fail(err)
	}
	defer h.Close()

	hostName := HostVethName(containerID, ifName)
	if _, err := deleteLink(h, hostName); err != nil {
		return fail(fmt.Errorf("delete stale host veth %s: %w", hostName, err))
	}
	tmpName, err := tempName()
	if err != nil {
		return fail(err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = hostName
	attrs.MTU = c.MTU // also the peer's (netlink uses it when PeerMTU is 0)
	veth := netlink.NewVeth(attrs)
	veth.PeerName = tmpName
	// The peer is born in the pod's namespace under a random name, so no
	// interface of the host can collide with it; it is renamed there.
	veth.PeerNamespace = netlink.NsFd(ns)
	if err := h.LinkAdd(veth); err != nil {
		return fail(fmt.Errorf("create veth %s (peer %s in %s): %w", hostName, tmpName, netnsPath, err))
	}

	// The kernel ignores IFLA_IFALIAS in the request that creates a link, so
	// the alias is set by the first step of wire.
	pod, err := c.wire(h, ph, hostName, tmpName, alias)
	if err != nil {
		if _, derr := deleteLink(h, hostName); derr != nil {
			err = errors.Join(err, fmt.Errorf("undo: delete host veth %s: %w", hostName, derr))
		}
		return fail(err)
	}
	pod.Netns = netnsPath
	return pod, nil
}

// wire configures both ends of a freshly created veth pair.
func (c Config) wire(h, ph *netlink.Handle, hostName, tmpName string, a podAlias) (Pod, error) {
	host, err := h.LinkByName(hostName)
	if err != nil {
		return Pod{}, fmt.Errorf("look up host veth %s: %w", hostName, err)
	}
	if err := h.LinkSetAlias(host, a.String()); err != nil {
		return Pod{}, fmt.Errorf("set alias of host veth %s: %w", hostName, err)
	}
	host.Attrs().Alias = a.String()
	peer, err := ph.LinkByName(tmpName)
	if err != nil {
		return Pod{}, fmt.Errorf("look up veth peer %s in pod netns: %w", tmpName, err)
	}

	// Pod side.
	lo, err := ph.LinkByName("lo")
	if err != nil {
		return Pod{}, fmt.Errorf("look up lo in pod netns: %w", err)
	}
	if err := ph.LinkSetUp(lo); err != nil {
		return Pod{}, fmt.Errorf("set lo up in pod netns: %w", err)
	}
	if err := ph.LinkSetName(peer, a.IfName); err != nil {
		return Pod{}, fmt.Errorf("rename veth peer %s to %s in pod netns: %w", tmpName, a.IfName, err)
	}
	if err := ph.AddrAdd(peer, &netlink.Addr{IPNet: hostPrefix(a.IP)}); err != nil {
		return Pod{}, fmt.Errorf("add %s/32 to %s in pod netns: %w", a.IP, a.IfName, err)
	}
	if err := ph.LinkSetUp(peer); err != nil {
		return Pod{}, fmt.Errorf("set %s up in pod netns: %w", a.IfName, err)
	}
	if err := ph.RouteAdd(c.gatewayRoute(peer.Attrs().Index)); err != nil {
		return Pod{}, fmt.Errorf("add route %s/32 dev %s scope link in pod netns: %w", c.NodeIP, a.IfName, err)
	}
	if err := ph.RouteAdd(c.defaultRoute(peer.Attrs().Index)); err != nil {
		return Pod{}, fmt.Errorf("add default route via %s dev %s in pod netns: %w", c.NodeIP, a.IfName, err)
	}

	// Host side.
	if err := h.AddrAdd(host, &netlink.Addr{IPNet: hostPrefix(c.NodeIP)}); err != nil {
		return Pod{}, fmt.Errorf("add %s/32 to host veth %s: %w", c.NodeIP, hostName, err)
	}
	if err := h.LinkSetUp(host); err != nil {
		return Pod{}, fmt.Errorf("set host veth %s up: %w", hostName, err)
	}
	if err := h.RouteAdd(c.podRoute(host.Attrs().Index, a.IP)); err != nil {
		return Pod{}, fmt.Errorf("add route %s/32 dev %s table %d: %w", a.IP, hostName, c.PodTable, err)
	}

	return Pod{
		ContainerID:  a.ContainerID,
		IfName:       a.IfName,
		Pool:         a.Pool,
		IP:           a.IP,
		HostVeth:     hostName,
		HostMAC:      host.Attrs().HardwareAddr.String(),
		ContainerMAC: peer.Attrs().HardwareAddr.String(),
	}, nil
}

// podRoute is "<ip>/32 dev <hostveth> scope link proto <Protocol> table <PodTable>".
func (c Config) podRoute(hostIndex int, ip netip.Addr) *netlink.Route {
	return &netlink.Route{
		LinkIndex: hostIndex,
		Dst:       hostPrefix(ip),
		Scope:     netlink.SCOPE_LINK,
		Protocol:  c.proto(),
		Table:     c.PodTable,
	}
}

// gatewayRoute is the pod's "<NodeIP>/32 dev <ifName> scope link".
func (c Config) gatewayRoute(podIndex int) *netlink.Route {
	return &netlink.Route{LinkIndex: podIndex, Dst: hostPrefix(c.NodeIP), Scope: netlink.SCOPE_LINK, Protocol: c.proto()}
}

// defaultRoute is the pod's "default via <NodeIP> dev <ifName>".
func (c Config) defaultRoute(podIndex int) *netlink.Route {
	return &netlink.Route{
		LinkIndex: podIndex,
		Dst:       &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
		Gw:        c.NodeIP.AsSlice(),
		Protocol:  c.proto(),
	}
}

// Teardown deletes the pod's host veth, which removes the pod end and every
// route through it (its PodTable route included). It is idempotent: found is
// false, with a nil error, when there was nothing to delete.
func (c Config) Teardown(containerID, ifName string) (found bool, err error) {
	fail := func(err error) (bool, error) {
		return false, fmt.Errorf("nodenet: teardown %s/%s: %w", containerID, ifName, err)
	}
	h, err := hostHandle()
	if err != nil {
		return fail(err)
	}
	defer h.Close()
	name := HostVethName(containerID, ifName)
	l, err := h.LinkByName(name)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return fail(fmt.Errorf("look up host veth %s: %w", name, err))
	}
	if a, err := parseAlias(l.Attrs().Alias); err == nil && (a.ContainerID != containerID || a.IfName != ifName) {
		return fail(fmt.Errorf("host veth %s belongs to %s/%s", name, a.ContainerID, a.IfName))
	}
	if err := h.LinkDel(l); err != nil {
		if isNotFound(err) {
			return false, nil // deleted meanwhile (the pod's netns went away)
		}
		return fail(fmt.Errorf("delete host veth %s: %w", name, err))
	}
	return true, nil
}

// Check verifies that the pod's wiring is as Setup left it: the host veth
// with its alias, address, state, MTU and PodTable route, the rule, and in the
// pod's namespace ifName (the veth's other end) with exactly ip/32, its routes
// and lo up. The error lists every difference found.
func (c Config) Check(netnsPath, containerID, ifName string, ip netip.Addr) error {
	fail := func(err error) error {
		return fmt.Errorf("nodenet: check %s/%s: %w", containerID, ifName, err)
	}
	if err := errors.Join(c.validate(), c.validateNodeIP()); err != nil {
		return fail(err)
	}
	h, err := hostHandle()
	if err != nil {
		return fail(err)
	}
	defer h.Close()

	var bad []string
	add := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }

	hostName := HostVethName(containerID, ifName)
	host, err := h.LinkByName(hostName)
	if err != nil {
		return fail(fmt.Errorf("host veth %s: %w", hostName, err))
	}
	c.checkHost(h, host, podAlias{IP: ip, ContainerID: containerID, IfName: ifName}, add)

	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		add("open pod netns: %v", err)
		return fail(errors.New(strings.Join(bad, "; ")))
	}
	defer ns.Close()
	ph, err := netlink.NewHandleAt(ns, syscall.NETLINK_ROUTE)
	if err != nil {
		add("netlink socket in pod netns %s: %v", netnsPath, err)
		return fail(errors.New(strings.Join(bad, "; ")))
	}
	defer ph.Close()
	c.checkPod(ph, host, ifName, ip, add)

	if len(bad) > 0 {
		return fail(errors.New(strings.Join(bad, "; ")))
	}
	return nil
}

func (c Config) checkHost(h *netlink.Handle, host netlink.Link, want podAlias, add func(string, ...any)) {
	at := host.Attrs()
	if host.Type() != "veth" {
		add("host link %s is a %s, not a veth", at.Name, host.Type())
	}
	if a, err := parseAlias(at.Alias); err != nil {
		add("host veth %s: %v", at.Name, err)
	} else if a.IP != want.IP || a.ContainerID != want.ContainerID || a.IfName != want.IfName {
		add("host veth %s: alias %q is not for %s/%s with %s", at.Name, at.Alias, want.ContainerID, want.IfName, want.IP)
	}
	if at.Flags&net.FlagUp == 0 {
		add("host veth %s is down", at.Name)
	}
	if c.MTU != 0 && at.MTU != c.MTU {
		add("host veth %s: MTU %d, want %d", at.Name, at.MTU, c.MTU)
	}
	addrs, err := dump(func() ([]netlink.Addr, error) { return h.AddrList(host, netlink.FAMILY_V4) })
	if err != nil {
		add("list addresses of host veth %s: %v", at.Name, err)
	} else if !slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return prefixOf(a.IPNet) == netip.PrefixFrom(c.NodeIP, 32) }) {
		add("host veth %s lacks %s/32", at.Name, c.NodeIP)
	}

	routes, err := c.tableRoutes(h, c.PodTable, netlink.FAMILY_V4)
	if err != nil {
		add("list table %d: %v", c.PodTable, err)
	} else {
		wantDst := netip.PrefixFrom(want.IP, 32)
		var found *netlink.Route
		for i, r := range routes {
			if prefixOf(r.Dst) == wantDst {
				found = &routes[i]
				break
			}
		}
		switch {
		case found == nil:
			add("no route %s in table %d", wantDst, c.PodTable)
		case found.LinkIndex != at.Index || found.Gw != nil || found.Scope != netlink.SCOPE_LINK || found.Protocol != c.proto():
			add("route %s in table %d is %q, want dev %s scope link proto %d", wantDst, c.PodTable, found.String(), at.Name, c.Protocol)
		}
	}

	rules, err := dump(func() ([]netlink.Rule, error) { return h.RuleList(netlink.FAMILY_V4) })
	if err != nil {
		add("list rules: %v", err)
	} else if !slices.ContainsFunc(rules, c.isPodRule) {
		add("no rule pref %d lookup %d", c.RulePriority, c.PodTable)
	}
}

func (c Config) checkPod(ph *netlink.Handle, host netlink.Link, ifName string, ip netip.Addr, add func(string, ...any)) {
	if lo, err := ph.LinkByName("lo"); err != nil {
		add("pod lo: %v", err)
	} else if lo.Attrs().Flags&net.FlagUp == 0 {
		add("pod lo is down")
	}
	l, err := ph.LinkByName(ifName)
	if err != nil {
		add("pod interface %s: %v", ifName, err)
		return
	}
	at := l.Attrs()
	if l.Type() != "veth" || at.Index != host.Attrs().ParentIndex || at.ParentIndex != host.Attrs().Index {
		add("pod interface %s is not the peer of host veth %s", ifName, host.Attrs().Name)
	}
	if at.Flags&net.FlagUp == 0 {
		add("pod interface %s is down", ifName)
	}
	if c.MTU != 0 && at.MTU != c.MTU {
		add("pod interface %s: MTU %d, want %d", ifName, at.MTU, c.MTU)
	}
	addrs, err := dump(func() ([]netlink.Addr, error) { return ph.AddrList(l, netlink.FAMILY_V4) })
	if err != nil {
		add("list addresses of pod interface %s: %v", ifName, err)
	} else {
		var have []string
		for _, a := range addrs {
			have = append(have, prefixOf(a.IPNet).String())
		}
		if want := netip.PrefixFrom(ip, 32).String(); len(have) != 1 || have[0] != want {
			add("pod interface %s has addresses [%s], want [%s]", ifName, strings.Join(have, " "), want)
		}
	}
	routes, err := dump(func() ([]netlink.Route, error) { return ph.RouteList(l, netlink.FAMILY_V4) })
	if err != nil {
		add("list pod routes: %v", err)
		return
	}
	var gw, def bool
	for _, r := range routes {
		switch p := prefixOf(r.Dst); {
		case p == netip.PrefixFrom(c.NodeIP, 32) && r.Gw == nil && r.Scope == netlink.SCOPE_LINK:
			gw = true
		case p.Bits() == 0 && addrOf(r.Gw) == c.NodeIP:
			def = true
		}
	}
	if !gw {
		add("pod lacks route %s/32 dev %s scope link", c.NodeIP, ifName)
	}
	if !def {
		add("pod lacks default route via %s dev %s", c.NodeIP, ifName)
	}
}

// List returns every pod this package wired in the current network
// namespace, read back from the host veths' aliases, sorted by container ID
// and interface name. ContainerMAC and Netns are empty.
func (c Config) List() ([]Pod, error) {
	h, err := hostHandle()
	if err != nil {
		return nil, fmt.Errorf("nodenet: list: %w", err)
	}
	defer h.Close()
	links, err := dump(h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("nodenet: list: links: %w", err)
	}
	var pods []Pod
	for _, l := range links {
		if l.Type() != "veth" {
			continue
		}
		a, err := parseAlias(l.Attrs().Alias)
		if err != nil {
			continue
		}
		pods = append(pods, Pod{
			ContainerID: a.ContainerID,
			IfName:      a.IfName,
			Pool:        a.Pool,
			IP:          a.IP,
			HostVeth:    l.Attrs().Name,
			HostMAC:     l.Attrs().HardwareAddr.String(),
		})
	}
	slices.SortFunc(pods, func(a, b Pod) int {
		return cmp.Or(cmp.Compare(a.ContainerID, b.ContainerID), cmp.Compare(a.IfName, b.IfName))
	})
	return pods, nil
}

// Sweep removes what no live pod owns. A host veth with this package's alias
// is deleted unless keep has a pod with the same container ID, interface
// name and IP whose Netns is empty or still exists; so is a veth named like
// HostVethName without an alias (Setup crashed before setting it). Then every
// PodTable route that is not "<ip>/32 dev <kept veth>" for a kept veth is
// deleted (the table is ours). It is best effort: it goes on after a failure
// and returns every failure joined. A veth whose alias starts with "podnet:"
// but does not parse is left alone and reported.
//
// keep is the daemon's list of live pods (List's result filtered by what the
// container runtime still runs). Sweep must not run concurrently with Setup,
// whose veth it would delete: the daemon runs it at start, before serving,
// or under the lock its ADDs take.
func (c Config) Sweep(keep []Pod) error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("nodenet: sweep: %w", err)
	}
	h, err := hostHandle()
	if err != nil {
		return fmt.Errorf("nodenet: sweep: %w", err)
	}
	defer h.Close()

	byVeth := make(map[string]Pod, len(keep))
	for _, p := range keep {
		byVeth[HostVethName(p.ContainerID, p.IfName)] = p
	}
	links, err := dump(h.LinkList)
	if err != nil {
		return fmt.Errorf("nodenet: sweep: links: %w", err)
	}
	var errs []error
	kept := map[int]netip.Addr{} // host veth index → pod address
	for _, l := range links {
		at := l.Attrs()
		if l.Type() != "veth" {
			continue
		}
		if at.Alias == "" && isHostVethName(at.Name) {
			if err := h.LinkDel(l); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("delete host veth %s without alias: %w", at.Name, err))
			}
			continue
		}
		if !strings.HasPrefix(at.Alias, aliasPrefix) {
			continue
		}
		a, err := parseAlias(at.Alias)
		if err != nil {
			errs = append(errs, fmt.Errorf("host veth %s left alone: %w", at.Name, err))
			continue
		}
		p, ok := byVeth[at.Name]
		if ok && p.ContainerID == a.ContainerID && p.IfName == a.IfName && p.IP == a.IP {
			if p.Netns == "" {
				kept[at.Index] = a.IP
				continue
			}
			_, err := os.Stat(p.Netns)
			if err == nil {
				kept[at.Index] = a.IP
				continue
			}
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("host veth %s left alone: pod netns: %w", at.Name, err))
				kept[at.Index] = a.IP
				continue
			}
		}
		if err := h.LinkDel(l); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("delete host veth %s (%s/%s): %w", at.Name, a.ContainerID, a.IfName, err))
		}
	}

	routes, err := c.tableRoutes(h, c.PodTable, netlink.FAMILY_ALL)
	if err != nil {
		errs = append(errs, fmt.Errorf("list table %d: %w", c.PodTable, err))
	}
	for _, r := range routes {
		if ip, ok := kept[r.LinkIndex]; ok && prefixOf(r.Dst) == netip.PrefixFrom(ip, 32) {
			continue
		}
		if err := h.RouteDel(&r); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("delete route %s from table %d: %w", r.Dst, c.PodTable, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nodenet: sweep: %w", err)
	}
	return nil
}

// DetectMTU returns the smallest MTU among the current namespace's links
// that are up, not loopback and not pod veths of this package (on a node,
// its uplinks), for the pods' veths. It fails when there is no such link.
func DetectMTU() (int, error) {
	h, err := hostHandle()
	if err != nil {
		return 0, fmt.Errorf("nodenet: detect MTU: %w", err)
	}
	defer h.Close()
	links, err := dump(h.LinkList)
	if err != nil {
		return 0, fmt.Errorf("nodenet: detect MTU: links: %w", err)
	}
	mtu := 0
	for _, l := range links {
		at := l.Attrs()
		if at.Flags&net.FlagUp == 0 || at.Flags&net.FlagLoopback != 0 || strings.HasPrefix(at.Alias, aliasPrefix) {
			continue
		}
		if mtu == 0 || at.MTU < mtu {
			mtu = at.MTU
		}
	}
	if mtu == 0 {
		return 0, errors.New("nodenet: detect MTU: no link is up but loopback and pod veths")
	}
	return mtu, nil
}

// tableRoutes lists the routes of one table (family FAMILY_V4, FAMILY_V6 or
// FAMILY_ALL for both).
func (c Config) tableRoutes(h *netlink.Handle, table, family int) ([]netlink.Route, error) {
	families := []int{family}
	if family == netlink.FAMILY_ALL {
		families = []int{netlink.FAMILY_V4, netlink.FAMILY_V6}
	}
	var all []netlink.Route
	for _, f := range families {
		rs, err := dump(func() ([]netlink.Route, error) {
			return h.RouteListFiltered(f, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			return nil, err
		}
		all = append(all, rs...)
	}
	return all, nil
}

// dump runs a netlink dump again while the kernel reports it interrupted.
func dump[T any](f func() ([]T, error)) ([]T, error) {
	for i := 0; ; i++ {
		v, err := f()
		if errors.Is(err, netlink.ErrDumpInterrupted) && i < dumpRetries {
			continue
		}
		return v, err
	}
}

// deleteLink deletes the named link if it exists.
func deleteLink(h *netlink.Handle, name string) (bool, error) {
	l, err := h.LinkByName(name)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := h.LinkDel(l); err != nil && !isNotFound(err) {
		return false, err
	}
	return true, nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, syscall.ENODEV)
}

// tempName is a random interface name for a veth peer before its rename.
func tempName() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random peer name: %w", err)
	}
	return "pnt" + hex.EncodeToString(b), nil
}

func hostPrefix(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// prefixOf converts a netlink destination; nil or malformed gives the zero
// Prefix.
func prefixOf(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.Prefix{}
	}
	a := addrOf(n.IP)
	ones, bits := n.Mask.Size()
	if !a.IsValid() || bits != a.BitLen() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(a, ones)
}

func addrOf(ip net.IP) netip.Addr {
	if v4 := ip.To4(); v4 != nil {
		return netip.AddrFrom4([4]byte(v4))
	}
	a, _ := netip.AddrFromSlice(ip)
	return a
}
