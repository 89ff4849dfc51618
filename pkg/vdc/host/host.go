// Package host makes and removes the virtual data center's network parts on
// this machine: named network namespaces (the iproute2 way, so `ip netns
// exec` works on them), Linux bridges, veth pairs with one end moved into a
// namespace, and tap devices for QEMU. Every remove is idempotent: removing
// what is already gone succeeds, so teardown can run again after a crash.
package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// NetnsDir is where iproute2 keeps named network namespaces.
const NetnsDir = "/run/netns"

// NetnsPath is the bind-mounted namespace file of a named namespace.
func NetnsPath(name string) string { return filepath.Join(NetnsDir, name) }

func run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// AddNetns creates a named network namespace with its loopback up.
func AddNetns(ctx context.Context, name string) error {
	if err := run(ctx, "ip", "netns", "add", name); err != nil {
		return err
	}
	return InNetns(name, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
}

// DeleteNetns removes a named network namespace; a missing one is fine.
func DeleteNetns(ctx context.Context, name string) error {
	if _, err := os.Stat(NetnsPath(name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return run(ctx, "ip", "netns", "delete", name)
}

// ListNetns returns the named namespaces whose names start with prefix.
func ListNetns(prefix string) ([]string, error) {
	ents, err := os.ReadDir(NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// InNetns runs fn on an OS thread switched into the named namespace. fn
// must not start goroutines that expect to be in that namespace.
func InNetns(name string, fn func() error) error {
	target, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("netns %s: %w", name, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", name, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread stays in the wrong namespace: keep it locked so that
		// Go discards it when this goroutine ends.
		return errors.Join(ferr, fmt.Errorf("leave netns %s: %w", name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// AddBridge creates an up Linux bridge without STP whose frames bypass the
// host's iptables even where br_netfilter is loaded (a host firewall's
// FORWARD policy must not decide the data center's traffic).
func AddBridge(ctx context.Context, name string) error {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := netlink.LinkAdd(br); err != nil {
		return fmt.Errorf("add bridge %s: %w", name, err)
	}
	if err := disableIPv6(name); err != nil {
		return err
	}
	if _, err := os.Stat("/proc/sys/net/bridge"); err == nil {
		if err := run(ctx, "ip", "link", "set", "dev", name, "type", "bridge",
			"nf_call_iptables", "0", "nf_call_ip6tables", "0", "nf_call_arptables", "0"); err != nil {
			return err
		}
	}
	return netlink.LinkSetUp(br)
}

// disableIPv6 keeps the host from autoconfiguring link-local addresses and
// sending router solicitations on the data center's links.
func disableIPv6(dev string) error {
	p := filepath.Join("/proc/sys/net/ipv6/conf", dev, "disable_ipv6")
	if _, err := os.Stat(p); err != nil {
		return nil // IPv6 disabled in the kernel
	}
	return os.WriteFile(p, []byte("1"), 0o644)
}

// AddAddress assigns cidr (an address with prefix length) to a host link.
func AddAddress(dev, cidr string) error {
	link, err := netlink.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("link %s: %w", dev, err)
	}
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		return fmt.Errorf("address %s: %w", cidr, err)
	}
	return netlink.AddrAdd(link, addr)
}

// AddVeth creates a veth pair: hostName stays on the host, enslaved to
// bridge and up; its peer is moved into the named namespace as peerName,
// given addrs (scope link with linkScope) and brought up.
func AddVeth(hostName, bridge, nsName, peerName string, addrs []string, linkScope bool) error {
	ns, err := netns.GetFromName(nsName)
	if err != nil {
		return fmt.Errorf("netns %s: %w", nsName, err)
	}
	defer ns.Close()
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", bridge, err)
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostName, MasterIndex: br.Attrs().Index},
		PeerName:      peerName,
		PeerNamespace: netlink.NsFd(ns),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth %s/%s:%s: %w", hostName, nsName, peerName, err)
	}
	if err := disableIPv6(hostName); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		return err
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	peer, err := h.LinkByName(peerName)
	if err != nil {
		return fmt.Errorf("netns %s: link %s: %w", nsName, peerName, err)
	}
	for _, a := range addrs {
		addr, err := netlink.ParseAddr(a)
		if err != nil {
			return fmt.Errorf("address %s: %w", a, err)
		}
		if linkScope {
			addr.Scope = int(netlink.SCOPE_LINK)
		}
		if err := h.AddrAdd(peer, addr); err != nil {
			return fmt.Errorf("netns %s: add %s to %s: %w", nsName, a, peerName, err)
		}
	}
	return h.LinkSetUp(peer)
}

// AddTap creates a persistent tap device with a virtio-net header, enslaved
// to bridge and up, for QEMU to open by name.
func AddTap(name, bridge string) error {
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", bridge, err)
	}
	tap := &netlink.Tuntap{
		LinkAttrs: netlink.LinkAttrs{Name: name, MasterIndex: br.Attrs().Index},
		Mode:      netlink.TUNTAP_MODE_TAP,
		Flags:     netlink.TUNTAP_DEFAULTS | netlink.TUNTAP_VNET_HDR,
	}
	if err := netlink.LinkAdd(tap); err != nil {
		return fmt.Errorf("add tap %s: %w", name, err)
	}
	for _, f := range tap.Fds {
		f.Close()
	}
	if err := disableIPv6(name); err != nil {
		return err
	}
	return netlink.LinkSetUp(tap)
}

// DeleteLink removes a host link; a missing one is fine.
func DeleteLink(name string) error {
	link, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// ListLinks returns the host links whose names start with prefix.
func ListLinks(prefix string) ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, prefix) {
			names = append(names, l.Attrs().Name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// RouterSysctls are the settings of a namespace that routes: IPv4
// forwarding on, reverse-path filtering off (routes are asymmetric under
// ECMP). IPv6 is on for link-local addresses only (no forwarding, no router
// advertisements accepted): the ToRs' BIRD runs a babel instance on a spine
// link as a clock (docs/bgp-agent.md, "Graceful restart"), and babel speaks
// from a link-local address.
var RouterSysctls = map[string]string{
	"net/ipv4/ip_forward":                "1",
	"net/ipv4/conf/all/rp_filter":        "0",
	"net/ipv4/conf/default/rp_filter":    "0",
	"net/ipv4/conf/all/forwarding":       "1",
	"net/ipv6/conf/all/disable_ipv6":     "0",
	"net/ipv6/conf/default/disable_ipv6": "0",
	"net/ipv6/conf/all/forwarding":       "0",
	"net/ipv6/conf/all/accept_ra":        "0",
	"net/ipv6/conf/default/accept_ra":    "0",
}

// SetSysctls writes /proc/sys values inside the named namespace.
func SetSysctls(nsName string, values map[string]string) error {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return InNetns(nsName, func() error {
		for _, k := range keys {
			p := filepath.Join("/proc/sys", k)
			if _, err := os.Stat(p); err != nil && strings.Contains(k, "ipv6") {
				continue
			}
			if err := os.WriteFile(p, []byte(values[k]), 0o644); err != nil {
				return fmt.Errorf("netns %s: sysctl %s: %w", nsName, k, err)
			}
		}
		return nil
	})
}
