package fabrictest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/openneco/neco/pkg/bgp/netconf"
	"github.com/vishvananda/netns"
)

// RunID returns a short random identifier that prefixes every namespace a
// test run creates, so parallel runs never collide.
func RunID() string {
	b := make([]byte, 3)
	rand.Read(b)
	return "bg" + hex.EncodeToString(b)
}

// NS is a named network namespace ("ip netns add").
type NS struct {
	Name string
	Host *netconf.Host
	fd   netns.NsHandle
}

// NewNS creates a namespace with its loopback up.
func NewNS(name string) (*NS, error) {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &NS{Name: name}
	var err error
	if ns.fd, err = netns.GetFromName(name); err != nil {
		ns.Delete()
		return nil, err
	}
	if ns.Host, err = netconf.Named(name); err != nil {
		ns.Delete()
		return nil, err
	}
	lo, err := ns.Host.Netlink().LinkByName("lo")
	if err == nil {
		err = ns.Host.Netlink().LinkSetUp(lo)
	}
	if err != nil {
		ns.Delete()
		return nil, fmt.Errorf("%s: lo up: %w", name, err)
	}
	return ns, nil
}

// Delete removes the namespace and with it every link inside.
func (ns *NS) Delete() error {
	if ns.Host != nil {
		ns.Host.Close()
		ns.Host = nil
	}
	if ns.fd > 0 {
		ns.fd.Close()
		ns.fd = 0
	}
	out, err := exec.Command("ip", "netns", "delete", ns.Name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip netns delete %s: %v: %s", ns.Name, err, out)
	}
	return nil
}

// Command returns a command that runs inside the namespace.
func (ns *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Sysctl sets sysctls ("net.ipv4.ip_forward=1") inside the namespace.
func (ns *NS) Sysctl(settings ...string) error {
	return ns.Do(func() error {
		for _, kv := range settings {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Errorf("sysctl %q: want key=value", kv)
			}
			path := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
				return fmt.Errorf("%s: sysctl %s: %w", ns.Name, kv, err)
			}
		}
		return nil
	})
}

// ReadSysctl reads a sysctl inside the namespace.
func (ns *NS) ReadSysctl(key string) (string, error) {
	var v string
	err := ns.Do(func() error {
		b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
		v = strings.TrimSpace(string(b))
		return err
	})
	return v, err
}

// Do runs f on an OS thread inside the namespace. Sockets f creates belong
// to the namespace for their whole life, wherever they are used later.
func (ns *NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns.fd); err != nil {
			errc <- err
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("back to the original namespace: %w", err)
			return // the thread stays locked and is discarded
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Dial connects from inside the namespace.
func (ns *NS) Dial(ctx context.Context, network, laddr, raddr string) (net.Conn, error) {
	var conn net.Conn
	err := ns.Do(func() error {
		d := net.Dialer{Timeout: 5 * time.Second}
		if laddr != "" {
			a, err := net.ResolveTCPAddr("tcp", laddr)
			if err != nil {
				return err
			}
			d.LocalAddr = a
		}
		var err error
		conn, err = d.DialContext(ctx, network, raddr)
		return err
	})
	return conn, err
}

// Listen opens a TCP listener inside the namespace.
func (ns *NS) Listen(addr string) (net.Listener, error) {
	var ln net.Listener
	err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// ListenUDP opens a UDP socket inside the namespace.
func (ns *NS) ListenUDP(addr string) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := ns.Do(func() error {
		a, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return err
		}
		c, err = net.ListenUDP("udp", a)
		return err
	})
	return c, err
}

// HTTPClient returns a client whose connections start inside the
// namespace.
func (ns *NS) HTTPClient() *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return ns.Dial(ctx, network, "", addr)
			},
			DisableKeepAlives: true,
		},
	}
}

// Ping sends count ICMP echo requests from src to dst inside the namespace
// and reports whether any answer came back.
func (ns *NS) Ping(src, dst string, count int) error {
	out, err := ns.Command(context.Background(), "ping", "-n", "-q", "-c", fmt.Sprint(count), "-i", "0.2", "-W", "1", "-I", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s -> %s in %s: %v: %s", src, dst, ns.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}
