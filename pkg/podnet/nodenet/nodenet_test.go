package nodenet

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/testutil"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
)

// The tests run the package in a fresh "node" network namespace (the test
// goroutine is locked to a thread moved into it) with pods in namespaces
// kept by bind mounts under the test's temp dir. Everything is removed at
// cleanup: unmounting a namespace nobody else holds destroys it together
// with its links, routes and rules.

var nodeIP = netip.MustParseAddr("192.0.2.1")

func testConfig() Config {
	c := DefaultConfig()
	c.MTU = 1400
	c.NodeIP = nodeIP
	return c
}

// newNetns creates a network namespace bound to a file and returns the
// file's path; cleanup unmounts it.
func newNetns(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, moved into the new namespace, exits
		// with this goroutine.
		runtime.LockOSThread()
		if err := syscall.Unshare(syscall.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", syscall.Gettid())
		if err := syscall.Mount(src, path, "none", syscall.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind mount %s on %s: %w", src, path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(path, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount netns %s: %v", path, err)
		}
	})
	return path
}

// enterNode moves the test goroutine (locked to its thread) into a new node
// namespace with lo up, and returns a netlink handle in it.
func enterNode(t *testing.T) (string, *netlink.Handle) {
	t.Helper()
	testutil.RequireRoot(t)
	path := newNetns(t, "node")
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// If the thread cannot go back, it stays locked and dies with the
		// test's goroutine.
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		orig.Close()
	})
	h, err := netlink.NewHandle(syscall.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	setUp(t, h, "lo")
	return path, h
}

// newPod creates a pod network namespace and returns its path and a netlink
// handle in it.
func newPod(t *testing.T, name string) (string, *netlink.Handle) {
	t.Helper()
	path := newNetns(t, name)
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, syscall.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return path, h
}

// runIn runs f on a goroutine locked to a thread in the namespace at path.
func runIn(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		ns, err := netns.GetFromPath(path)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

func setUp(t *testing.T, h *netlink.Handle, name string) {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
}

func addVeth(t *testing.T, h *netlink.Handle, name, peer string, mtu int, up bool) {
	t.Helper()
	a := netlink.NewLinkAttrs()
	a.Name = name
	a.MTU = mtu
	v := netlink.NewVeth(a)
	v.PeerName = peer
	if err := h.LinkAdd(v); err != nil {
		t.Fatalf("add veth %s/%s: %v", name, peer, err)
	}
	if up {
		setUp(t, h, name)
		setUp(t, h, peer)
	}
}

func mustSetup(t *testing.T, c Config, nsPath, cid, ifName, pool, ip string) Pod {
	t.Helper()
	p, err := c.Setup(nsPath, cid, ifName, pool, netip.MustParseAddr(ip))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func routesIn(t *testing.T, h *netlink.Handle, table int) []netlink.Route {
	t.Helper()
	var all []netlink.Route
	for _, f := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := h.RouteListFiltered(f, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, rs...)
	}
	return all
}

func linkNames(t *testing.T, h *netlink.Handle) []string {
	t.Helper()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	sort.Strings(names)
	return names
}

// snapshot describes a namespace's links, addresses, routes (all tables)
// and IPv4 rules, to compare before and after a failed call. What the kernel
// changes by itself some time after a link goes up (carrier, IPv6 link-local
// addresses and their routes) is left out.
func snapshot(t *testing.T, h *netlink.Handle) string {
	t.Helper()
	var lines []string
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		a := l.Attrs()
		lines = append(lines, fmt.Sprintf("link %s %s up=%v mtu=%d alias=%q", a.Name, l.Type(), a.Flags&net.FlagUp != 0, a.MTU, a.Alias))
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		for _, ad := range addrs {
			if !ad.IP.IsLinkLocalUnicast() {
				lines = append(lines, fmt.Sprintf("addr %s %s", a.Name, ad.IPNet))
			}
		}
	}
	for _, r := range routesIn(t, h, 0) {
		if r.Dst != nil && (r.Dst.IP.IsLinkLocalUnicast() || r.Dst.IP.IsMulticast()) {
			continue
		}
		lines = append(lines, "route "+r.String())
	}
	rules, err := h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		lines = append(lines, "rule "+r.String())
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestSetup(t *testing.T) {
	_, h := enterNode(t)
	c := testConfig()
	if err := c.Init(); err != nil {
		t.Fatal(err)
	}
	podNS, ph := newPod(t, "pod")
	// A host interface named like the pod's must not collide with its peer.
	addVeth(t, h, "eth0", "eth0p", 0, false)

	p := mustSetup(t, c, podNS, "cid-a", "eth0", "default", "10.100.0.10")
	want := Pod{ContainerID: "cid-a", IfName: "eth0", Pool: "default", IP: netip.MustParseAddr("10.100.0.10"),
		HostVeth: HostVethName("cid-a", "eth0"), HostMAC: p.HostMAC, ContainerMAC: p.ContainerMAC, Netns: podNS}
	if p != want {
		t.Errorf("Setup = %+v, want %+v", p, want)
	}

	// Host end.
	hl, err := h.LinkByName(p.HostVeth)
	if err != nil {
		t.Fatal(err)
	}
	if hl.Type() != "veth" || hl.Attrs().MTU != 1400 || hl.Attrs().Flags&net.FlagUp == 0 ||
		hl.Attrs().Alias != "podnet:default:10.100.0.10:cid-a:eth0" || hl.Attrs().HardwareAddr.String() != p.HostMAC {
		t.Errorf("host veth: type %s, attrs %+v", hl.Type(), *hl.Attrs())
	}
	addrs, err := h.AddrList(hl, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0].IPNet.String() != "192.0.2.1/32" {
		t.Errorf("host veth addresses = %v, want [192.0.2.1/32]", addrs)
	}
	rs := routesIn(t, h, 116)
	if len(rs) != 1 || rs[0].Dst.String() != "10.100.0.10/32" || rs[0].LinkIndex != hl.Attrs().Index ||
		rs[0].Scope != netlink.SCOPE_LINK || rs[0].Protocol != 30 || rs[0].Gw != nil {
		t.Errorf("table 116 = %v, want 10.100.0.10/32 dev %s scope link proto 30", rs, p.HostVeth)
	}
	for _, r := range routesIn(t, h, syscall.RT_TABLE_MAIN) {
		if r.Dst != nil && r.Dst.Contains(net.ParseIP("10.100.0.10")) {
			t.Errorf("main table has %v", r)
		}
	}
	if rs := routesIn(t, h, 119); len(rs) != 0 {
		t.Errorf("table 119 = %v, want empty", rs)
	}
	if n := countPodRules(t, h, c); n != 1 {
		t.Errorf("%d rules pref 2000 lookup 116, want 1", n)
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err != nil || strings.TrimSpace(string(b)) != "1" {
		t.Errorf("ip_forward = %q, %v", b, err)
	}

	// Pod end.
	if got := linkNames(t, ph); !slices.Equal(got, []string{"eth0", "lo"}) {
		t.Errorf("pod links = %v, want [eth0 lo]", got)
	}
	lo, err := ph.LinkByName("lo")
	if err != nil || lo.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("pod lo not up: %v", err)
	}
	pl, err := ph.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if pl.Type() != "veth" || pl.Attrs().MTU != 1400 || pl.Attrs().Flags&net.FlagUp == 0 ||
		pl.Attrs().HardwareAddr.String() != p.ContainerMAC || pl.Attrs().ParentIndex != hl.Attrs().Index {
		t.Errorf("pod eth0: type %s, attrs %+v", pl.Type(), *pl.Attrs())
	}
	addrs, err = ph.AddrList(pl, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0].IPNet.String() != "10.100.0.10/32" {
		t.Errorf("pod addresses = %v, want [10.100.0.10/32]", addrs)
	}
	var got []string
	for _, r := range routesIn(t, ph, syscall.RT_TABLE_MAIN) {
		if r.Family == netlink.FAMILY_V4 {
			got = append(got, fmt.Sprintf("%s gw=%v dev=%d scope=%v proto=%d", r.Dst, r.Gw, r.LinkIndex, r.Scope, r.Protocol))
		}
	}
	sort.Strings(got)
	wantRoutes := []string{
		fmt.Sprintf("0.0.0.0/0 gw=192.0.2.1 dev=%d scope=universe proto=30", pl.Attrs().Index),
		fmt.Sprintf("192.0.2.1/32 gw=<nil> dev=%d scope=link proto=30", pl.Attrs().Index),
	}
	if !slices.Equal(got, wantRoutes) {
		t.Errorf("pod routes:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantRoutes, "\n"))
	}

	if err := c.Check(podNS, "cid-a", "eth0", p.IP); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func countPodRules(t *testing.T, h *netlink.Handle, c Config) int {
	t.Helper()
	rules, err := h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rules {
		if r.Priority == c.RulePriority && r.Table == c.PodTable {
			n++
		}
	}
	return n
}

func TestSetupReplacesStaleVeth(t *testing.T) {
	_, h := enterNode(t)
	c := testConfig()
	podNS, _ := newPod(t, "pod")
	stale := HostVethName("cid-a", "eth0")
	addVeth(t, h, stale, "stalepeer", 0, true)
	p := mustSetup(t, c, podNS, "cid-a", "eth0", "default", "10.100.0.10")
	if got := linkNames(t, h); !slices.Equal(got, []string{"lo", p.HostVeth}) {
		t.Errorf("host links = %v, want [lo %s]", got, p.HostVeth)
	}
}

// TestTwoPods checks pod to pod and pod to node connectivity with TCP.
func TestTwoPods(t *testing.T) {
	_, _ = enterNode(t)
	c := testConfig()
	if err := c.Init(); err != nil {
		t.Fatal(err)
	}
	nsA, _ := newPod(t, "a")
	nsB, _ := newPod(t, "b")
	mustSetup(t, c, nsA, "cid-a", "eth0", "default", "10.100.0.10")
	mustSetup(t, c, nsB, "cid-b", "eth0", "default", "10.100.0.11")

	// The node listens on its own address, on the test's (node) thread.
	nodeLn, err := net.Listen("tcp", "192.0.2.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echo(t, nodeLn)
	var lnA, lnB net.Listener
	if err := runIn(nsA, func() (err error) { lnA, err = net.Listen("tcp", "10.100.0.10:0"); return err }); err != nil {
		t.Fatal(err)
	}
	echo(t, lnA)
	if err := runIn(nsB, func() (err error) { lnB, err = net.Listen("tcp", "10.100.0.11:0"); return err }); err != nil {
		t.Fatal(err)
	}
	echo(t, lnB)

	for _, tt := range []struct {
		name string
		from string
		to   net.Addr
	}{
		{"b to a", nsB, lnA.Addr()},
		{"a to b", nsA, lnB.Addr()},
		{"a to node", nsA, nodeLn.Addr()},
	} {
		if err := runIn(tt.from, func() error { return roundTrip(tt.to.String()) }); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

// echo serves ln until cleanup, echoing what it reads.
func echo(t *testing.T, ln net.Listener) {
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = io.Copy(conn, conn)
			})
		}
	})
}

func roundTrip(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	msg := "hello " + addr
	if _, err := io.WriteString(conn, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("read %q, want %q", buf, msg)
	}
	return nil
}

func TestSetupMissingNetns(t *testing.T) {
	_, h := enterNode(t)
	c := testConfig()
	before := snapshot(t, h)
	notNetns := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notNetns, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(t.TempDir(), "missing"), notNetns, ""} {
		if _, err := c.Setup(path, "cid-a", "eth0", "default", netip.MustParseAddr("10.100.0.10")); err == nil {
			t.Errorf("Setup(%q) succeeded", path)
		} else {
			t.Logf("Setup(%q): %v", path, err)
		}
	}
	if after := snapshot(t, h); after != before {
		t.Errorf("node changed:\n%s\nwant\n%s", after, before)
	}
}

// TestSetupFails checks that a Setup failing at any point leaves the node and
// the pod as they were.
func TestSetupFails(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, c Config, h, ph *netlink.Handle)
		ifName  string
		ip      string
		mtu     int
		wantErr string
	}{
		{
			name:    "invalid ifName",
			ifName:  "bad/name",
			wantErr: "interface name",
		},
		{
			name:    "ifName too long",
			ifName:  "averyveryverylongname",
			wantErr: "interface name",
		},
		{
			name:    "IPv6 address",
			ip:      "2001:db8::1",
			wantErr: "not an IPv4 address",
		},
		{
			name:    "pod address is the node's",
			ip:      "192.0.2.1",
			wantErr: "is the node's",
		},
		{
			name:    "MTU out of range",
			mtu:     70000,
			wantErr: "MTU",
		},
		{
			// Fails after the veth exists, at the rename in the pod.
			name: "ifName exists in the pod",
			prepare: func(t *testing.T, _ Config, _, ph *netlink.Handle) {
				addVeth(t, ph, "eth0", "other", 0, false)
			},
			wantErr: "rename veth peer",
		},
		{
			// Fails at the very last step, the host's table 116 route; the
			// route already there is not touched.
			name: "address already routed on the node",
			prepare: func(t *testing.T, c Config, h, _ *netlink.Handle) {
				addVeth(t, h, "foreign", "foreignp", 0, true)
				l, err := h.LinkByName("foreign")
				if err != nil {
					t.Fatal(err)
				}
				if err := h.RouteAdd(c.podRoute(l.Attrs().Index, netip.MustParseAddr("10.100.0.10"))); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "table 116",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, h := enterNode(t)
			c := testConfig()
			if tt.mtu != 0 {
				c.MTU = tt.mtu
			}
			podNS, ph := newPod(t, "pod")
			setUp(t, ph, "lo") // Setup leaves lo up even when it fails
			if tt.prepare != nil {
				tt.prepare(t, c, h, ph)
			}
			ifName := cmpOr(tt.ifName, "eth0")
			ip := cmpOr(tt.ip, "10.100.0.10")
			nodeBefore, podBefore := snapshot(t, h), snapshot(t, ph)

			_, err := c.Setup(podNS, "cid-a", ifName, "default", netip.MustParseAddr(ip))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Setup error = %v, want one containing %q", err, tt.wantErr)
			}
			t.Log(err)
			if after := snapshot(t, h); after != nodeBefore {
				t.Errorf("node changed:\n%s\nwant\n%s", after, nodeBefore)
			}
			if after := snapshot(t, ph); after != podBefore {
				t.Errorf("pod changed:\n%s\nwant\n%s", after, podBefore)
			}
		})
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func TestTeardown(t *testing.T) {
	_, h := enterNode(t)
	c := testConfig()
	podNS, ph := newPod(t, "pod")
	p := mustSetup(t, c, podNS, "cid-a", "eth0", "default", "10.100.0.10")

	for i, want := range []bool{true, false} {
		found, err := c.Teardown("cid-a", "eth0")
		if err != nil || found != want {
			t.Errorf("Teardown #%d = %v, %v, want %v, nil", i+1, found, err, want)
		}
	}
	if _, err := h.LinkByName(p.HostVeth); err == nil {
		t.Errorf("host veth %s still exists", p.HostVeth)
	}
	if rs := routesIn(t, h, 116); len(rs) != 0 {
		t.Errorf("table 116 = %v, want empty", rs)
	}
	if got := linkNames(t, ph); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("pod links = %v, want [lo]", got)
	}
	if found, err := c.Teardown("never", "eth0"); err != nil || found {
		t.Errorf("Teardown of an unknown pod = %v, %v", found, err)
	}
}

func TestList(t *testing.T) {
	_, h := enterNode(t)
	c := testConfig()
	if pods, err := c.List(); err != nil || len(pods) != 0 {
		t.Fatalf("List of an empty node = %v, %v", pods, err)
	}
	var want []Pod
	for i, pool := range []string{"default", "internet-egress", "default"} {
		ns, _ := newPod(t, fmt.Sprint("pod", i))
		p := mustSetup(t, c, ns, fmt.Sprint("cid-", i), "eth0", pool, fmt.Sprint("10.100.0.", 10+i))
		p.ContainerMAC, p.Netns = "", ""
		want = append(want, p)
	}
	// Not ours: a plain veth, and a veth whose alias looks like ours but
	// is not.
	addVeth(t, h, "plain", "plainp", 0, false)
	addVeth(t, h, "fake", "fakep", 0, false)
	fake, _ := h.LinkByName("fake")
	if err := h.LinkSetAlias(fake, "podnet:default:not-an-ip:cid:eth0"); err != nil {
		t.Fatal(err)
	}

	got, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("List =\n%+v\nwant\n%+v", got, want)
	}
	if _, err := c.Teardown("cid-1", "eth0"); err != nil {
		t.Fatal(err)
	}
	got, err = c.List()
	if err != nil {
		t.Fatal(err)
	}
	if want = slices.Delete(want, 1, 2); !slices.Equal(got, want) {
		t.Errorf("List after a teardown =\n%+v\nwant\n%+v", got, want)
	}
}

func TestSweep(t *testing.T) {
	_, h := enterNode(t)
	c := testConfig()
	if err := c.Init(); err != nil {
		t.Fatal(err)
	}
	var pods []Pod
	for i := range 3 {
		ns, _ := newPod(t, fmt.Sprint("pod", i))
		pods = append(pods, mustSetup(t, c, ns, fmt.Sprint("cid-", i), "eth0", "default", fmt.Sprint("10.100.0.", 10+i)))
	}
	// Strays in table 116: a route through lo, and a second route through
	// pod 0's veth.
	lo, _ := h.LinkByName("lo")
	v0, _ := h.LinkByName(pods[0].HostVeth)
	for _, r := range []*netlink.Route{
		c.podRoute(lo.Attrs().Index, netip.MustParseAddr("10.9.9.9")),
		c.podRoute(v0.Attrs().Index, netip.MustParseAddr("10.100.0.99")),
	} {
		if err := h.RouteAdd(r); err != nil {
			t.Fatal(err)
		}
	}
	// A veth left by a Setup that crashed before setting the alias.
	addVeth(t, h, HostVethName("crashed", "eth0"), "crashedp", 0, false)
	// Keep pod 0, and pod 1 whose netns is gone; pod 2 is not kept.
	gone := pods[1]
	gone.Netns = filepath.Join(t.TempDir(), "gone")
	if err := c.Sweep([]Pod{pods[0], gone}); err != nil {
		t.Fatal(err)
	}
	if got := linkNames(t, h); !slices.Equal(got, []string{"lo", pods[0].HostVeth}) {
		t.Errorf("host links = %v, want [lo %s]", got, pods[0].HostVeth)
	}
	rs := routesIn(t, h, 116)
	if len(rs) != 1 || rs[0].Dst.String() != "10.100.0.10/32" {
		t.Errorf("table 116 = %v, want only 10.100.0.10/32", rs)
	}
	if err := c.Check(pods[0].Netns, pods[0].ContainerID, pods[0].IfName, pods[0].IP); err != nil {
		t.Errorf("kept pod: %v", err)
	}
	// Sweeping again changes nothing.
	before := snapshot(t, h)
	if err := c.Sweep([]Pod{pods[0]}); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, h); after != before {
		t.Errorf("second sweep changed the node:\n%s\nwant\n%s", after, before)
	}
}

func TestSyncExport(t *testing.T) {
	_, h := enterNode(t)
	c := testConfig()
	lo, _ := h.LinkByName("lo")
	// Routes outside table 119 are not ours to sync.
	other := []*netlink.Route{
		{LinkIndex: lo.Attrs().Index, Dst: prefixNet(netip.MustParsePrefix("10.200.0.0/24"))},
		{LinkIndex: lo.Attrs().Index, Dst: prefixNet(netip.MustParsePrefix("10.224.0.0/27")), Table: 116, Protocol: 30},
	}
	for _, r := range other {
		if err := h.RouteAdd(r); err != nil {
			t.Fatal(err)
		}
	}
	mainBefore, podTableBefore := fmt.Sprint(routesIn(t, h, 254)), fmt.Sprint(routesIn(t, h, 116))

	blocks := func(s ...string) []netip.Prefix {
		var ps []netip.Prefix
		for _, p := range s {
			ps = append(ps, netip.MustParsePrefix(p))
		}
		return ps
	}
	// table 119 as "prefix dev proto scope type", sorted.
	table := func() []string {
		var got []string
		for _, r := range routesIn(t, h, 119) {
			dev := fmt.Sprint(r.LinkIndex)
			if r.LinkIndex == lo.Attrs().Index {
				dev = "lo"
			}
			got = append(got, fmt.Sprintf("%s dev %s proto %d scope %v type %d metric %d", r.Dst, dev, r.Protocol, r.Scope, r.Type, r.Priority))
		}
		sort.Strings(got)
		return got
	}
	want := func(s ...string) []string {
		var w []string
		for _, p := range s {
			w = append(w, p+" dev lo proto 30 scope universe type 1 metric 0")
		}
		return w
	}

	syncTo := func(bs []netip.Prefix, w []string) {
		t.Helper()
		if err := c.SyncExport(bs); err != nil {
			t.Fatal(err)
		}
		if got := table(); !slices.Equal(got, w) {
			t.Errorf("table 119 after SyncExport(%v):\n%s\nwant\n%s", bs, strings.Join(got, "\n"), strings.Join(w, "\n"))
		}
	}
	syncTo(blocks("10.224.0.0/27", "10.224.0.32/27"), want("10.224.0.0/27", "10.224.0.32/27"))
	syncTo(blocks("10.224.0.32/27", "10.224.0.0/27", "10.224.0.0/27"), want("10.224.0.0/27", "10.224.0.32/27"))

	// Strays: a blackhole, a wanted block with another protocol, a
	// duplicate of a block with a metric, an IPv6 route.
	strays := []*netlink.Route{
		{Dst: prefixNet(netip.MustParsePrefix("10.9.0.0/16")), Type: syscall.RTN_BLACKHOLE, Table: 119},
		{LinkIndex: lo.Attrs().Index, Dst: prefixNet(netip.MustParsePrefix("10.224.0.64/27")), Protocol: syscall.RTPROT_STATIC, Table: 119},
		{LinkIndex: lo.Attrs().Index, Dst: prefixNet(netip.MustParsePrefix("10.224.0.0/27")), Protocol: 30, Priority: 100, Table: 119},
		{LinkIndex: lo.Attrs().Index, Dst: prefixNet(netip.MustParsePrefix("2001:db8::/64")), Protocol: 30, Table: 119},
	}
	for _, r := range strays {
		if err := h.RouteAdd(r); err != nil {
			t.Fatalf("add %v: %v", r, err)
		}
	}
	before := snapshot(t, h)
	if err := c.SyncExport(blocks("10.224.0.1/27")); err == nil {
		t.Error("SyncExport of a block with host bits succeeded")
	}
	if err := c.SyncExport(blocks("2001:db8::/64")); err == nil {
		t.Error("SyncExport of an IPv6 block succeeded")
	}
	if after := snapshot(t, h); after != before {
		t.Errorf("a failed SyncExport changed the node:\n%s\nwant\n%s", after, before)
	}
	syncTo(blocks("10.224.0.0/27", "10.224.0.64/27"), want("10.224.0.0/27", "10.224.0.64/27"))
	syncTo(nil, nil)

	if got := fmt.Sprint(routesIn(t, h, 254)); got != mainBefore {
		t.Errorf("main table changed: %s, was %s", got, mainBefore)
	}
	if got := fmt.Sprint(routesIn(t, h, 116)); got != podTableBefore {
		t.Errorf("table 116 changed: %s, was %s", got, podTableBefore)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(t *testing.T, c Config, p Pod, h, ph *netlink.Handle)
		ip      string
		want    []string
	}{
		{
			name: "host route missing",
			breakIt: func(t *testing.T, c Config, _ Pod, h, _ *netlink.Handle) {
				if err := h.RouteDel(&routesIn(t, h, c.PodTable)[0]); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"no route 10.100.0.10/32 in table 116"},
		},
		{
			name: "pod default route missing",
			breakIt: func(t *testing.T, c Config, _ Pod, _, ph *netlink.Handle) {
				l, _ := ph.LinkByName("eth0")
				if err := ph.RouteDel(c.defaultRoute(l.Attrs().Index)); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"pod lacks default route via 192.0.2.1"},
		},
		{
			name: "rule missing",
			breakIt: func(t *testing.T, c Config, _ Pod, h, _ *netlink.Handle) {
				if err := h.RuleDel(c.podRule()); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"no rule pref 2000 lookup 116"},
		},
		{
			name: "host veth down",
			breakIt: func(t *testing.T, _ Config, p Pod, h, _ *netlink.Handle) {
				l, _ := h.LinkByName(p.HostVeth)
				if err := h.LinkSetDown(l); err != nil {
					t.Fatal(err)
				}
			},
			// The kernel drops routes through a device that goes down.
			want: []string{"is down", "no route 10.100.0.10/32 in table 116"},
		},
		{
			name: "another address",
			ip:   "10.100.0.11",
			want: []string{"is not for cid-a/eth0 with 10.100.0.11", "no route 10.100.0.11/32", "want [10.100.0.11/32]"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, h := enterNode(t)
			c := testConfig()
			if err := c.Init(); err != nil {
				t.Fatal(err)
			}
			podNS, ph := newPod(t, "pod")
			p := mustSetup(t, c, podNS, "cid-a", "eth0", "default", "10.100.0.10")
			if tt.breakIt != nil {
				tt.breakIt(t, c, p, h, ph)
			}
			err := c.Check(podNS, "cid-a", "eth0", netip.MustParseAddr(cmpOr(tt.ip, "10.100.0.10")))
			if err == nil {
				t.Fatal("Check succeeded")
			}
			t.Log(err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestInit(t *testing.T) {
	_, h := enterNode(t)
	c := testConfig()
	other := netlink.NewRule()
	other.Priority, other.Table = 2000, 200 // not ours: stays
	if err := h.RuleAdd(other); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := c.Init(); err != nil {
			t.Fatal(err)
		}
		if n := countPodRules(t, h, c); n != 1 {
			t.Errorf("%d rules pref 2000 lookup 116, want 1", n)
		}
	}
	// Duplicates are removed. The kernel refuses a duplicate rule only
	// when asked to with NLM_F_EXCL, which netlink.RuleAdd and ip rule add
	// set; another tool may not.
	if err := netlink.RuleAdd(c.podRule()); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("adding a duplicate rule with netlink: %v, want EEXIST", err)
	}
	for range 2 {
		req := nl.NewNetlinkRequest(syscall.RTM_NEWRULE, syscall.NLM_F_CREATE|syscall.NLM_F_ACK)
		msg := nl.NewRtMsg()
		msg.Family = syscall.AF_INET
		msg.Table = uint8(c.PodTable)
		msg.Type = syscall.RTN_UNICAST // FR_ACT_TO_TBL
		req.AddData(msg)
		req.AddData(nl.NewRtAttr(nl.FRA_PRIORITY, nl.Uint32Attr(uint32(c.RulePriority))))
		if _, err := req.Execute(syscall.NETLINK_ROUTE, 0); err != nil {
			t.Fatalf("add a duplicate rule without NLM_F_EXCL: %v", err)
		}
	}
	if n := countPodRules(t, h, c); n != 3 {
		t.Fatalf("%d rules pref 2000 lookup 116 before Init, want 3", n)
	}
	if err := c.Init(); err != nil {
		t.Fatal(err)
	}
	if n := countPodRules(t, h, c); n != 1 {
		t.Errorf("%d rules pref 2000 lookup 116 after Init, want 1", n)
	}
	rules, err := h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(rules, func(r netlink.Rule) bool { return r.Priority == 2000 && r.Table == 200 }) {
		t.Error("Init deleted the rule pref 2000 lookup 200")
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err != nil || strings.TrimSpace(string(b)) != "1" {
		t.Errorf("ip_forward = %q, %v", b, err)
	}
	bad := c
	bad.PodTable = 254
	if err := bad.Init(); err == nil {
		t.Error("Init with PodTable 254 (main) succeeded")
	}
}

// TestCustomConfig runs a pod's life with tables over 255 (the RTA_TABLE
// attribute rather than the header's byte) and other ids.
func TestCustomConfig(t *testing.T) {
	_, h := enterNode(t)
	c := Config{PodTable: 1116, RulePriority: 1500, ExportTable: 1119, Protocol: 200, NodeIP: nodeIP}
	if err := c.Init(); err != nil {
		t.Fatal(err)
	}
	podNS, _ := newPod(t, "pod")
	p := mustSetup(t, c, podNS, "cid-a", "net1", "default", "10.100.0.10")
	if err := c.Check(podNS, "cid-a", "net1", p.IP); err != nil {
		t.Error(err)
	}
	if rs := routesIn(t, h, 1116); len(rs) != 1 || rs[0].Protocol != 200 {
		t.Errorf("table 1116 = %v", rs)
	}
	if err := c.SyncExport([]netip.Prefix{netip.MustParsePrefix("10.100.0.0/27")}); err != nil {
		t.Fatal(err)
	}
	if rs := routesIn(t, h, 1119); len(rs) != 1 || rs[0].Protocol != 200 {
		t.Errorf("table 1119 = %v", rs)
	}
	if found, err := c.Teardown("cid-a", "net1"); !found || err != nil {
		t.Errorf("Teardown = %v, %v", found, err)
	}
	if rs := routesIn(t, h, 1116); len(rs) != 0 {
		t.Errorf("table 1116 after teardown = %v", rs)
	}
}

// TestConcurrentSetup wires pods from several goroutines at once, as the
// daemon does for concurrent CNI ADDs.
func TestConcurrentSetup(t *testing.T) {
	nodeNS, h := enterNode(t)
	c := testConfig()
	const n = 8
	paths := make([]string, n)
	for i := range n {
		paths[i], _ = newPod(t, fmt.Sprint("pod", i))
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = runIn(nodeNS, func() error {
				_, err := c.Setup(paths[i], fmt.Sprint("cid-", i), "eth0", "default", netip.AddrFrom4([4]byte{10, 100, 0, byte(10 + i)}))
				return err
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	pods, err := c.List()
	if err != nil || len(pods) != n {
		t.Fatalf("List = %d pods, %v; want %d", len(pods), err, n)
	}
	if rs := routesIn(t, h, 116); len(rs) != n {
		t.Errorf("table 116 has %d routes, want %d", len(rs), n)
	}
}

func TestDetectMTU(t *testing.T) {
	_, h := enterNode(t)
	if mtu, err := DetectMTU(); err == nil {
		t.Errorf("DetectMTU with only lo = %d, want an error", mtu)
	}
	addVeth(t, h, "up1", "up1p", 1450, true)
	addVeth(t, h, "up2", "up2p", 9000, true)
	addVeth(t, h, "down", "downp", 1200, false)
	c := testConfig()
	c.MTU = 1300
	podNS, _ := newPod(t, "pod")
	mustSetup(t, c, podNS, "cid-a", "eth0", "default", "10.100.0.10")
	if mtu, err := DetectMTU(); err != nil || mtu != 1450 {
		t.Errorf("DetectMTU = %d, %v, want 1450", mtu, err)
	}
}

func TestHostVethName(t *testing.T) {
	for _, tt := range []struct{ cid, ifName, want string }{
		{"abc", "eth0", "pn48b70361303"},              // sha1("abc/eth0") = 48b70361303d…
		{"0123456789abcdef", "net1", "pn7f231eb1e80"}, // sha1("0123456789abcdef/net1") = 7f231eb1e808…
	} {
		if got := HostVethName(tt.cid, tt.ifName); got != tt.want || len(got) != 13 {
			t.Errorf("HostVethName(%q, %q) = %q, want %q", tt.cid, tt.ifName, got, tt.want)
		}
	}
}

func TestParseAlias(t *testing.T) {
	long := strings.Repeat("x", 240)
	tests := []struct {
		alias string
		want  podAlias
		ok    bool
	}{
		{"podnet:default:10.64.0.3:0123abcd:eth0", podAlias{"default", netip.MustParseAddr("10.64.0.3"), "0123abcd", "eth0"}, true},
		{"podnet:internet-egress:172.19.0.1:cid_1.x-y:net1", podAlias{"internet-egress", netip.MustParseAddr("172.19.0.1"), "cid_1.x-y", "net1"}, true},
		{"COIL:default:10.64.0.3:cid:eth0", podAlias{}, false},
		{"podnet:default:10.64.0.3:cid", podAlias{}, false},
		{"podnet:default:10.64.0.3:cid:eth0:extra", podAlias{}, false},
		{"podnet::10.64.0.3:cid:eth0", podAlias{}, false},
		{"podnet:default::cid:eth0", podAlias{}, false},
		{"podnet:default:10.64.0.3::eth0", podAlias{}, false},
		{"podnet:default:10.64.0.3:cid:", podAlias{}, false},
		{"podnet:default:2001:db8::1:cid:eth0", podAlias{}, false},
		{"podnet:default:010.64.0.3:cid:eth0", podAlias{}, false},
		{"podnet:default:10.64.0.256:cid:eth0", podAlias{}, false},
		{"podnet:def ault:10.64.0.3:cid:eth0", podAlias{}, false},
		{"podnet:default:10.64.0.3:cid:eth/0", podAlias{}, false},
		{"podnet:default:10.64.0.3:cid:averyveryverylongname", podAlias{}, false},
		{"podnet:default:10.64.0.3:cid:..", podAlias{}, false},
		{"podnet:" + long + ":10.64.0.3:cid:eth0", podAlias{}, false}, // over IFALIASZ
		{"", podAlias{}, false},
	}
	for _, tt := range tests {
		got, err := parseAlias(tt.alias)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseAlias(%q) = %+v, %v; want %+v, ok %v", tt.alias, got, err, tt.want, tt.ok)
		}
		if err == nil && got.String() != tt.alias {
			t.Errorf("parseAlias(%q).String() = %q", tt.alias, got.String())
		}
	}
}

// FuzzParseAlias: parseAlias never panics and accepts only the aliases
// String produces from a valid podAlias.
func FuzzParseAlias(f *testing.F) {
	f.Add("podnet:default:10.64.0.3:0123abcd:eth0")
	f.Add("podnet:p:1.2.3.4:c:i")
	f.Add("podnet:default:::eth0")
	f.Add("podnet:default:10.64.0.3:cid:eth0:x")
	f.Add("podnet:")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := parseAlias(s)
		if err != nil {
			return
		}
		if a.String() != s {
			t.Errorf("parseAlias(%q) accepted a non-canonical alias (%q)", s, a.String())
		}
		if err := a.validate(); err != nil {
			t.Errorf("parseAlias(%q) accepted an invalid alias: %v", s, err)
		}
		if len(s) > maxAliasLen || strings.Count(s, ":") != 4 {
			t.Errorf("parseAlias(%q) accepted a malformed alias", s)
		}
	})
}
