package netboottest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/dhcpd"
	"github.com/openneco/neco/pkg/testutil"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

// testIPAM is the reference plan: rack r's node block is 10.69.0.0 +
// 192·r, /26, leases from .32 of each block.
func testIPAM() *sabakan.IPAMConfig {
	return &sabakan.IPAMConfig{
		MaxNodesInRack: 28, NodeIPv4Pool: "10.69.0.0/16", NodeRangeSize: 6, NodeRangeMask: 26,
		NodeIPPerNode: 3, NodeIndexOffset: 3, NodeGatewayOffset: 1,
		BMCIPv4Pool: "10.72.16.0/20", BMCIPv4Offset: "0.0.1.0", BMCRangeSize: 5, BMCRangeMask: 20, BMCGatewayOffset: 1,
	}
}

// netenv is a set of network namespaces made for one test; every name
// carries a random suffix so that parallel runs and teammates never
// collide, and everything is removed when the test ends.
type netenv struct {
	t      *testing.T
	prefix string
}

func newNetenv(t *testing.T) *netenv {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireCommands(t, "ip")
	b := make([]byte, 3)
	rand.Read(b)
	return &netenv{t: t, prefix: "nb" + hex.EncodeToString(b)}
}

// ns returns the full name of namespace short, creating it once.
func (e *netenv) ns(short string) string {
	e.t.Helper()
	name := e.prefix + "-" + short
	if _, err := os.Stat("/run/netns/" + name); err == nil {
		return name
	}
	e.run("ip", "netns", "add", name)
	e.t.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
	e.in(name, "ip", "link", "set", "lo", "up")
	e.in(name, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	return name
}

func (e *netenv) run(args ...string) string {
	e.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// in runs a command inside namespace ns.
func (e *netenv) in(ns string, args ...string) string {
	e.t.Helper()
	return e.run(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// link connects namespace a (interface ifa, address addrA) with b (ifb,
// addrB) by a veth pair; an empty address leaves the side unnumbered.
func (e *netenv) link(a, ifa, addrA, b, ifb, addrB string) {
	e.t.Helper()
	e.run("ip", "link", "add", ifa, "netns", a, "type", "veth", "peer", "name", ifb, "netns", b)
	for _, s := range [][3]string{{a, ifa, addrA}, {b, ifb, addrB}} {
		if s[2] != "" {
			e.in(s[0], "ip", "addr", "add", s[2], "dev", s[1])
		}
		e.in(s[0], "ip", "link", "set", s[1], "up")
	}
}

// inNS runs f on an OS thread switched into namespace ns. Sockets f
// creates belong to ns for good. The thread is never switched back: it
// ends with f's goroutine (LockOSThread without Unlock).
func inNS(ns string, f func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		errc <- nil
		f()
	}()
	return <-errc
}

// startDHCP runs a sabakan DHCP server in namespace ns against the shared
// etcd prefix; it stops when the test ends.
func startDHCP(t *testing.T, ns string, client *clientv3.Client, advertise string) *dhcpd.EtcdLeases {
	t.Helper()
	return startDHCPWith(t, ns, client, advertise, func(context.Context) (*sabakan.IPAMConfig, *sabakan.DHCPConfig, error) {
		return testIPAM(), &sabakan.DHCPConfig{LeaseMinutes: 10, DNSServers: []string{"10.69.255.53"}}, nil
	})
}

// startDHCPWith is startDHCP with the configuration from config.
func startDHCPWith(t *testing.T, ns string, client *clientv3.Client, advertise string, config dhcpd.ConfigFunc) *dhcpd.EtcdLeases {
	t.Helper()
	leases := dhcpd.NewEtcdLeases(client, slog.Default())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { leases.Run(ctx); done <- struct{}{} }()
	<-leases.Ready()
	srv := &dhcpd.Server{
		Bind: "0.0.0.0:67",
		Handler: &dhcpd.Handler{
			Config:       config,
			Leases:       leases,
			AdvertiseURL: advertise,
		},
		Log: slog.Default().With("ns", ns),
	}
	listening := make(chan error, 1)
	if err := inNS(ns, func() {
		if _, err := srv.Listen(ctx); err != nil {
			listening <- err
			return
		}
		listening <- nil
		srv.Run(ctx) // stays on this thread: interface lookups happen in ns
		done <- struct{}{}
	}); err != nil {
		t.Fatal(err)
	}
	if err := <-listening; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-done; <-done })
	return leases
}

// listenIn opens a TCP listener inside namespace ns.
func listenIn(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	done := make(chan struct{})
	if err := inNS(ns, func() { ln, err = net.Listen("tcp4", addr); close(done) }); err != nil {
		t.Fatal(err)
	}
	<-done
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serveIn serves h inside namespace ns on addr until the test ends.
func serveIn(t *testing.T, ns, addr string, h http.Handler) {
	t.Helper()
	ln := listenIn(t, ns, addr)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// process is a background command whose output is kept for the test log.
type process struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{} // closed when the command ended
	err    error         // its exit status, once exited is closed
}

func (e *netenv) start(ns string, args ...string) *process {
	e.t.Helper()
	p := &process{out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	testutil.DieWithTest(p.cmd)
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	e.t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if e.t.Failed() {
			e.t.Logf("%s output:\n%s", args[0], p.out.String())
		}
	})
	return p
}

// syncBuffer is a bytes.Buffer safe for a writer and readers at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// udhcpc runs busybox udhcpc once in ns on ifname and returns the values
// its script saw on "bound".
func (e *netenv) udhcpc(ns, ifname string, extra ...string) map[string]string {
	e.t.Helper()
	script := e.t.TempDir() + "/script"
	os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] && echo \"BOUND ip=$ip mask=$mask router=$router dns=$dns serverid=$serverid lease=$lease boot_file=$boot_file\"\nexit 0\n"), 0o755)
	args := append([]string{"busybox", "udhcpc", "-f", "-q", "-n", "-t", "10", "-T", "1", "-A", "1", "-i", ifname, "-s", script}, extra...)
	out := e.in(ns, args...)
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "BOUND "); ok {
			got := map[string]string{}
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				got[k] = v
			}
			return got
		}
	}
	e.t.Fatalf("udhcpc in %s got no lease:\n%s", ns, out)
	return nil
}
