package netboot

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/dhcpd"
	"github.com/openneco/neco/pkg/sabakan/store"
)

// etcdProxy forwards TCP connections to etcd until Cut, standing in for
// the network between a boot server and etcd (the test etcd is shared by
// the package's tests, so it cannot be stopped).
type etcdProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
}

func startProxy(t *testing.T, target string) *etcdProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &etcdProxy{l: l, target: strings.TrimPrefix(target, "http://")}
	go p.serve()
	t.Cleanup(p.Cut)
	return p
}

func (p *etcdProxy) Endpoint() string { return "http://" + p.l.Addr().String() }

func (p *etcdProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			u.Close()
			return
		}
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go func() { io.Copy(u, c); u.Close() }()
		go func() { io.Copy(c, u); c.Close() }()
	}
}

// Cut closes every connection and refuses new ones.
func (p *etcdProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return
	}
	p.cut = true
	p.l.Close()
	for _, c := range p.conns {
		c.Close()
	}
}

// dhcpClient plays relayed machines of rack 0 against a Handler.
type dhcpClient struct {
	t  *testing.T
	h  *dhcpd.Handler
	gw net.IP
	in dhcpd.Incoming
}

func (c *dhcpClient) handle(ctx context.Context, req *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, error) {
	r, err := c.h.Handle(ctx, req, c.in)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errors.New("no answer")
	}
	return r.Msg, nil
}

func (c *dhcpClient) discover(ctx context.Context, hw net.HardwareAddr) (*dhcpv4.DHCPv4, error) {
	d, err := dhcpv4.NewDiscovery(hw, dhcpv4.WithRelay(c.gw))
	if err != nil {
		c.t.Fatal(err)
	}
	return c.handle(ctx, d)
}

// dora leases an address to hw and returns the ACK.
func (c *dhcpClient) dora(ctx context.Context, hw net.HardwareAddr) *dhcpv4.DHCPv4 {
	c.t.Helper()
	off, err := c.discover(ctx, hw)
	if err != nil {
		c.t.Fatalf("DISCOVER of %s: %v", hw, err)
	}
	req, err := dhcpv4.NewRequestFromOffer(off, dhcpv4.WithRelay(c.gw))
	if err != nil {
		c.t.Fatal(err)
	}
	ack, err := c.handle(ctx, req)
	if err != nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		c.t.Fatalf("REQUEST of %s: %v %v", hw, ack, err)
	}
	return ack
}

// answers reports whether m carries the DNS server and lease time of cfg.
func answers(m *dhcpv4.DHCPv4, cfg *sabakan.DHCPConfig) bool {
	dns := m.DNS()
	return len(dns) == 1 && dns[0].String() == cfg.DNSServers[0] &&
		m.IPAddressLeaseTime(0) == time.Duration(cfg.LeaseMinutes)*time.Minute
}

func testMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x52, 0x54, 0, 0, byte(i >> 8), byte(i)}
}

// TestDHCPConfigFromView runs the daemon's DHCP handler (Config from a
// store, leases in etcd, one etcd client as in the daemon) against
// configuration PUT by another boot server: the handler follows each PUT
// within a bound, makes no etcd read per packet, and keeps answering from
// its views while etcd is unreachable (offers, and renewals with more than
// half of their lease left; a new lease needs etcd).
func TestDHCPConfigFromView(t *testing.T) {
	ctx := context.Background()
	prefix := t.Name() + "/"
	proxy := startProxy(t, etcdtest.Endpoint())
	client, reads := countingClient(t, prefix, proxy.Endpoint())
	st, err := store.Open(ctx, client, store.Options{Hostname: "a"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	other, err := store.Open(ctx, etcdtest.NewClient(t, prefix), store.Options{Hostname: "b"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	leases := dhcpd.NewEtcdLeases(client, slog.New(slog.DiscardHandler))
	lctx, cancel := context.WithCancel(ctx)
	leasesDone := make(chan struct{})
	go func() { leases.Run(lctx); close(leasesDone) }()
	t.Cleanup(func() { cancel(); <-leasesDone })
	<-leases.Ready()

	ipam := benchIPAM()
	c := &dhcpClient{t: t, h: &dhcpd.Handler{Config: Config(st), Leases: leases, AdvertiseURL: "http://10.69.0.3:10080"},
		gw: ipam.NodeGateway(ipam.NodeAddresses(0, ipam.NodeIndexOffset)[0]).AsSlice(),
		in: dhcpd.Incoming{IfIndex: 1, IfAddr: netip.MustParseAddr("10.69.0.3"), ServerAddr: netip.MustParseAddr("10.69.0.3")}}

	if _, err := c.discover(ctx, testMAC(0)); !errors.Is(err, dhcpd.ErrDropped) {
		t.Fatalf("DISCOVER before IPAM is set: %v, want dropped", err)
	}

	// A PUT on another server reaches this one's DHCP within the bound.
	const bound = 5 * time.Second
	await := func(what string, cfg *sabakan.DHCPConfig, hw net.HardwareAddr) {
		t.Helper()
		start := time.Now()
		for {
			off, err := c.discover(ctx, hw)
			if err == nil && answers(off, cfg) {
				t.Logf("%s answered with %s after %s", what, off.DNS(), time.Since(start))
				return
			}
			if time.Since(start) > bound {
				t.Fatalf("%s: not answered with %+v within %s: %v %v", what, cfg, bound, off, err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	first := &sabakan.DHCPConfig{LeaseMinutes: 30, DNSServers: []string{"10.69.255.53"}}
	if err := other.PutIPAM(ctx, ipam); err != nil {
		t.Fatal(err)
	}
	if err := other.PutDHCP(ctx, first); err != nil {
		t.Fatal(err)
	}
	await("first configuration", first, testMAC(0))

	// No etcd read per packet: 20 DORAs, 40 packets.
	before := reads.Load()
	for i := range 20 {
		if ack := c.dora(ctx, testMAC(i)); !answers(ack, first) {
			t.Errorf("ACK %d: %s", i, ack.Summary())
		}
	}
	if n := reads.Load() - before; n != 0 {
		t.Errorf("%d etcd reads for 20 DORAs, want 0", n)
	}

	// A change: the next exchanges use it.
	second := &sabakan.DHCPConfig{LeaseMinutes: 45, DNSServers: []string{"10.69.255.54"}}
	if err := other.PutDHCP(ctx, second); err != nil {
		t.Fatal(err)
	}
	await("changed configuration", second, testMAC(100))
	if ack := c.dora(ctx, testMAC(100)); !answers(ack, second) {
		t.Errorf("ACK after the change: %s", ack.Summary())
	}

	// etcd unreachable: offers and early renewals still come from the views.
	bound0 := c.dora(ctx, testMAC(101)).YourIPAddr
	proxy.Cut()
	cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
	defer ccancel()
	off, err := c.discover(cctx, testMAC(200))
	if err != nil || off.MessageType() != dhcpv4.MessageTypeOffer || !answers(off, second) {
		t.Errorf("DISCOVER without etcd: %v %v", off, err)
	}
	renew, err := dhcpv4.New(dhcpv4.WithHwAddr(testMAC(101)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(bound0))
	if err != nil {
		t.Fatal(err)
	}
	if ack, err := c.handle(cctx, renew); err != nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Errorf("renewal without etcd: %v %v", ack, err)
	}
	if off == nil {
		return
	}
	req, _ := dhcpv4.NewRequestFromOffer(off, dhcpv4.WithRelay(c.gw))
	if ack, err := c.handle(cctx, req); err == nil {
		t.Errorf("a new lease without etcd was answered: %s", ack.Summary())
	}
}
