// Package netconf is the node agent's side of the Linux network stack,
// through netlink: the node0 interface with the /32 node address (a dummy
// link, or an ifb link where the kernel lacks dummy), the extra virtual
// addresses of boot servers, link-scoped addresses on the two uplinks, the
// per-interface sysctls, and the routes BIRD installed (for readiness and
// metrics).
//
// A Host works on one network namespace: the current one (the agent) or a
// named one (tests).
package netconf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Host is one network namespace.
type Host struct {
	nl *netlink.Handle
	// ns is the namespace for sysctl writes; -1 for the current one.
	ns netns.NsHandle
}

// Current returns the network namespace the process runs in.
func Current() (*Host, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("netconf: netlink: %w", err)
	}
	return &Host{nl: h, ns: -1}, nil
}

// Named returns the network namespace name (as created by "ip netns add").
func Named(name string) (*Host, error) {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("netconf: namespace %s: %w", name, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("netconf: netlink in %s: %w", name, err)
	}
	return &Host{nl: h, ns: ns}, nil
}

// Close releases the netlink socket.
func (h *Host) Close() {
	h.nl.Close()
	if h.ns >= 0 {
		h.ns.Close()
	}
}

// Netlink returns the namespace's netlink handle.
func (h *Host) Netlink() *netlink.Handle { return h.nl }

// Kind is the link type that holds node0 and the virtual addresses.
type Kind string

const (
	// KindAuto uses dummy and falls back to ifb where the kernel lacks it.
	KindAuto Kind = "auto"
	// KindDummy is the dummy link type of the reference deployment.
	KindDummy Kind = "dummy"
	// KindIFB is the fallback: an Intermediate Functional Block link. Like
	// dummy it is always up (carrier on), has no ARP, and drops whatever is
	// sent through it, so routing treats both the same: the /32 is a local
	// address reachable over any uplink. See docs/bgp-agent.md.
	KindIFB Kind = "ifb"
)

// ParseKind validates a kind name.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case KindAuto, KindDummy, KindIFB:
		return k, nil
	}
	return "", fmt.Errorf("netconf: unknown node0 link type %q: want auto, dummy or ifb", s)
}

// Uplink is a NIC towards a ToR.
type Uplink struct {
	Name string
	// Address is added with scope link: it serves the BGP session and the
	// next hops of ECMP routes only.
	Address netip.Prefix
}

// Virtual is a /32 held by a link of its own (node0, or a boot server's
// virtual address).
type Virtual struct {
	Name    string
	Address netip.Addr
}

// Plan is the network configuration the agent makes true.
type Plan struct {
	Uplinks [2]Uplink
	// Addresses are node0 and the virtual addresses.
	Addresses []Virtual
	// MTU of the uplinks; 0 leaves it alone.
	MTU  int
	Kind Kind
}

// Result tells what Apply did.
type Result struct {
	// Kind is the link type node0 has.
	Kind Kind
	// Changes lists what was changed, empty when everything was in place.
	Changes []string
}

// ErrPrecondition is returned by Check and Apply when the namespace cannot
// take the plan; nothing was changed.
var ErrPrecondition = errors.New("netconf: precondition failed")

func linkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil, nil
	}
	return l, err
}

// Check verifies that the plan can be applied without changing anything:
// both uplinks exist, and node0 and the virtual links either do not exist
// or are dummy or ifb links.
func (h *Host) Check(p *Plan) error {
	if p.MTU != 0 && (p.MTU < 576 || p.MTU > 65535) {
		return fmt.Errorf("%w: MTU %d is outside 576..65535", ErrPrecondition, p.MTU)
	}
	for _, u := range p.Uplinks {
		l, err := linkByName(h.nl, u.Name)
		if err != nil {
			return fmt.Errorf("netconf: %s: %w", u.Name, err)
		}
		if l == nil {
			return fmt.Errorf("%w: uplink %s does not exist", ErrPrecondition, u.Name)
		}
	}
	for _, v := range p.Addresses {
		l, err := linkByName(h.nl, v.Name)
		if err != nil {
			return fmt.Errorf("netconf: %s: %w", v.Name, err)
		}
		if l != nil && l.Type() != "dummy" && l.Type() != "ifb" {
			return fmt.Errorf("%w: %s exists and is a %s link, not dummy or ifb", ErrPrecondition, v.Name, l.Type())
		}
	}
	return nil
}

// Apply makes the plan true and reports what it changed. It is idempotent;
// it checks the preconditions first, so a plan that cannot be applied
// changes nothing.
func (h *Host) Apply(p *Plan) (*Result, error) {
	if err := h.Check(p); err != nil {
		return nil, err
	}
	res := &Result{Kind: p.Kind}
	for _, v := range p.Addresses {
		kind, err := h.ensureVirtual(v, p.Kind, res)
		if err != nil {
			return res, err
		}
		if v.Name == p.Addresses[0].Name {
			res.Kind = kind
		}
	}
	for _, u := range p.Uplinks {
		if err := h.ensureUplink(u, p.MTU, res); err != nil {
			return res, err
		}
	}
	return res, nil
}

func (h *Host) ensureVirtual(v Virtual, kind Kind, res *Result) (Kind, error) {
	l, err := linkByName(h.nl, v.Name)
	if err != nil {
		return "", fmt.Errorf("netconf: %s: %w", v.Name, err)
	}
	if l == nil {
		attrs := netlink.LinkAttrs{Name: v.Name}
		switch kind {
		case KindDummy:
			err = h.nl.LinkAdd(&netlink.Dummy{LinkAttrs: attrs})
		case KindIFB:
			err = h.nl.LinkAdd(&netlink.Ifb{LinkAttrs: attrs})
		default:
			kind = KindDummy
			err = h.nl.LinkAdd(&netlink.Dummy{LinkAttrs: attrs})
			if errors.Is(err, unix.EOPNOTSUPP) {
				kind = KindIFB
				err = h.nl.LinkAdd(&netlink.Ifb{LinkAttrs: attrs})
			}
		}
		if err != nil {
			return "", fmt.Errorf("netconf: create %s (%s): %w", v.Name, kind, err)
		}
		res.Changes = append(res.Changes, fmt.Sprintf("created %s as a %s link", v.Name, kind))
		if l, err = h.nl.LinkByName(v.Name); err != nil {
			return "", fmt.Errorf("netconf: %s: %w", v.Name, err)
		}
	}
	kind = Kind(l.Type())
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.nl.LinkSetUp(l); err != nil {
			return "", fmt.Errorf("netconf: set %s up: %w", v.Name, err)
		}
		res.Changes = append(res.Changes, "set "+v.Name+" up")
	}
	want := netip.PrefixFrom(v.Address, 32)
	if err := h.ensureAddress(l, want, unix.RT_SCOPE_UNIVERSE, true, res); err != nil {
		return "", err
	}
	return kind, nil
}

func (h *Host) ensureUplink(u Uplink, mtu int, res *Result) error {
	l, err := h.nl.LinkByName(u.Name)
	if err != nil {
		return fmt.Errorf("netconf: %s: %w", u.Name, err)
	}
	if mtu != 0 && l.Attrs().MTU != mtu {
		if err := h.nl.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("netconf: MTU of %s: %w", u.Name, err)
		}
		res.Changes = append(res.Changes, fmt.Sprintf("set MTU of %s to %d", u.Name, mtu))
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.nl.LinkSetUp(l); err != nil {
			return fmt.Errorf("netconf: set %s up: %w", u.Name, err)
		}
		res.Changes = append(res.Changes, "set "+u.Name+" up")
	}
	if err := h.ensureAddress(l, u.Address, unix.RT_SCOPE_LINK, false, res); err != nil {
		return err
	}
	// A next hop on a link without carrier is useless: skip it at once,
	// before BIRD withdraws the routes through it.
	return h.sysctl(u.Name, "ignore_routes_with_linkdown", "1", res)
}

// ensureAddress adds want with scope to l. A different prefix length or
// scope of the same address is replaced. With exclusive, every other IPv4
// address of l is removed (node0 and virtual links belong to the agent).
func (h *Host) ensureAddress(l netlink.Link, want netip.Prefix, scope int, exclusive bool, res *Result) error {
	name := l.Attrs().Name
	addrs, err := h.nl.AddrList(l, netlink.FAMILY_V4)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("netconf: addresses of %s: %w", name, err)
	}
	found := false
	for _, a := range addrs {
		p, ok := toPrefix(a.IPNet)
		if !ok {
			continue
		}
		switch {
		case p == want && a.Scope == scope:
			found = true
		case p.Addr() == want.Addr() || exclusive:
			if err := h.nl.AddrDel(l, &a); err != nil {
				return fmt.Errorf("netconf: remove %s from %s: %w", p, name, err)
			}
			res.Changes = append(res.Changes, fmt.Sprintf("removed %s (scope %d) from %s", p, a.Scope, name))
		}
	}
	if found {
		return nil
	}
	addr := &netlink.Addr{IPNet: toIPNet(want), Scope: scope}
	if err := h.nl.AddrAdd(l, addr); err != nil {
		return fmt.Errorf("netconf: add %s to %s: %w", want, name, err)
	}
	res.Changes = append(res.Changes, fmt.Sprintf("added %s to %s", want, name))
	return nil
}

func toPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

func toIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// sysctl sets net.ipv4.conf.<iface>.<key> in the host's namespace.
func (h *Host) sysctl(iface, key, value string, res *Result) error {
	path := filepath.Join("/proc/sys/net/ipv4/conf", iface, key)
	var changed bool
	err := h.inNamespace(func() error {
		old, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(old)) == value {
			return nil
		}
		changed = true
		return os.WriteFile(path, []byte(value), 0o644)
	})
	if err != nil {
		return fmt.Errorf("netconf: sysctl %s: %w", path, err)
	}
	if changed && res != nil {
		res.Changes = append(res.Changes, fmt.Sprintf("set net.ipv4.conf.%s.%s=%s", iface, key, value))
	}
	return nil
}

// SetRPFilter sets strict reverse-path filtering (rp_filter=1) on the
// uplinks, as the reference does once the network is up.
func (h *Host) SetRPFilter(p *Plan) ([]string, error) {
	res := &Result{}
	for _, u := range p.Uplinks {
		if err := h.sysctl(u.Name, "rp_filter", "1", res); err != nil {
			return res.Changes, err
		}
	}
	return res.Changes, nil
}

// inNamespace runs f on a thread inside the host's namespace, for the
// /proc/sys/net files that follow the calling thread's namespace.
func (h *Host) inNamespace(f func() error) error {
	if h.ns < 0 {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(h.ns); err != nil {
			errc <- err
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			// The thread stays locked and dies with the goroutine.
			errc <- errors.Join(ferr, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// RTProtBIRD is the kernel's route protocol number of BIRD's routes.
const RTProtBIRD = 12

// Routes summarises the routes BIRD installed in the main table.
type Routes struct {
	// DefaultPaths is the number of next hops of the default route.
	DefaultPaths int
	// ByPaths counts routes by their number of next hops.
	ByPaths map[int]int
}

// NextHops returns the number of next hops of a route.
func NextHops(r *netlink.Route) int {
	if len(r.MultiPath) > 0 {
		return len(r.MultiPath)
	}
	return 1
}

// BIRDRoutes reads BIRD's routes in the main table.
func (h *Host) BIRDRoutes() (*Routes, error) {
	filter := &netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: RTProtBIRD}
	var routes []netlink.Route
	var err error
	for range 3 {
		routes, err = h.nl.RouteListFiltered(netlink.FAMILY_V4, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("netconf: list routes: %w", err)
	}
	out := &Routes{ByPaths: map[int]int{}}
	for i := range routes {
		r := &routes[i]
		n := NextHops(r)
		out.ByPaths[n]++
		if p, ok := toPrefix(r.Dst); !ok || p.Bits() == 0 {
			out.DefaultPaths = n
		}
	}
	return out, nil
}

// Route returns the main-table route to dst installed by BIRD and its next
// hops' gateways, or nil.
func (h *Host) Route(dst netip.Prefix) ([]netip.Addr, error) {
	filter := &netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: RTProtBIRD, Dst: toIPNet(dst)}
	routes, err := h.nl.RouteListFiltered(netlink.FAMILY_V4, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_DST)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("netconf: route to %s: %w", dst, err)
	}
	if len(routes) == 0 {
		return nil, nil
	}
	var gws []netip.Addr
	add := func(ip net.IP) {
		if a, ok := netip.AddrFromSlice(ip); ok {
			gws = append(gws, a.Unmap())
		}
	}
	r := routes[0]
	if len(r.MultiPath) == 0 {
		add(r.Gw)
	}
	for _, nh := range r.MultiPath {
		add(nh.Gw)
	}
	slices.SortFunc(gws, func(a, b netip.Addr) int { return a.Compare(b) })
	return gws, nil
}
