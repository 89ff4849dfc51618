package netboottest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/iana"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/sabakan/dhcpd"
	"github.com/openneco/neco/pkg/testutil"
)

// racks builds two racks and a third, relayed segment:
//
//	c0 --(10.69.0.0/26)-- A 10.69.0.3          rack 0, A on the segment
//	c1 --(10.69.0.192/26)-- B 10.69.0.195      rack 1, B on the segment
//	c2 x N --br 10.69.1.129/26-- tor --10.100.0.0/30-- A
//	                                 --10.100.0.4/30-- B   rack 2, relayed to both
//
// A and B are sabakan DHCP servers sharing one etcd prefix; the ToR runs
// dnsmasq --dhcp-relay towards both.
type racks struct {
	e                *netenv
	a, b, tor        string
	c0, c1, c2       string
	leasesA, leasesB *dhcpd.EtcdLeases
	client           *clientv3.Client
}

func newRacks(t *testing.T, clients int) *racks {
	e := newNetenv(t)
	testutil.RequireCommands(t, "busybox", "dnsmasq")
	r := &racks{e: e, a: e.ns("a"), b: e.ns("b"), tor: e.ns("tor"), c0: e.ns("c0"), c1: e.ns("c1"), c2: e.ns("c2")}
	e.link(r.a, "eth0", "10.69.0.3/26", r.c0, "eth0", "")
	e.link(r.b, "eth0", "10.69.0.195/26", r.c1, "eth0", "")
	e.link(r.a, "up0", "10.100.0.1/30", r.tor, "toa", "10.100.0.2/30")
	e.link(r.b, "up0", "10.100.0.5/30", r.tor, "tob", "10.100.0.6/30")
	e.in(r.a, "ip", "route", "add", "10.69.1.128/26", "via", "10.100.0.2")
	e.in(r.b, "ip", "route", "add", "10.69.1.128/26", "via", "10.100.0.6")
	e.in(r.tor, "ip", "link", "add", "br0", "type", "bridge")
	e.in(r.tor, "ip", "addr", "add", "10.69.1.129/26", "dev", "br0")
	e.in(r.tor, "ip", "link", "set", "br0", "up")
	for i := range clients {
		e.link(r.tor, fmt.Sprintf("p%d", i), "", r.c2, fmt.Sprintf("eth%d", i), "")
		e.in(r.tor, "ip", "link", "set", fmt.Sprintf("p%d", i), "master", "br0")
	}
	pid := t.TempDir() + "/dnsmasq.pid"
	e.start(r.tor, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--user=root", "--pid-file="+pid,
		"--log-dhcp", "--log-facility=-", "--interface=br0", "--interface=toa", "--interface=tob",
		"--dhcp-relay=10.69.1.129,10.100.0.1", "--dhcp-relay=10.69.1.129,10.100.0.5")

	r.client = etcdtest.Client(t)
	r.leasesA = startDHCP(t, r.a, r.client, "http://10.69.0.3:10080")
	r.leasesB = startDHCP(t, r.b, etcdtest.NewClient(t, t.Name()+"/"), "http://10.69.0.195:10080")
	return r
}

func TestUdhcpc(t *testing.T) {
	r := newRacks(t, 1)
	for _, tt := range []struct {
		name, ns, ifname string
		args             []string
		want             map[string]string
		in               [2]string // lease range
	}{
		{
			name: "direct on rack 0", ns: r.c0, ifname: "eth0",
			want: map[string]string{"mask": "26", "router": "10.69.0.1", "serverid": "10.69.0.3", "dns": "10.69.255.53", "lease": "600", "boot_file": ""},
			in:   [2]string{"10.69.0.32", "10.69.0.62"},
		},
		{
			name: "UEFI HTTP boot on rack 1", ns: r.c1, ifname: "eth0",
			args: []string{"-V", "HTTPClient:Arch:00016:UNDI:003001", "-x", "0x5d:0010"},
			want: map[string]string{"router": "10.69.0.193", "serverid": "10.69.0.195", "boot_file": "http://10.69.0.195:10080/api/v1/boot/ipxe.efi"},
			in:   [2]string{"10.69.0.224", "10.69.0.254"},
		},
		{
			name: "iPXE relayed to rack 2", ns: r.c2, ifname: "eth0",
			args: []string{"-x", "0x4d:69505845"}, // user class "iPXE"
			want: map[string]string{"router": "10.69.1.129", "mask": "26"},
			in:   [2]string{"10.69.1.160", "10.69.1.190"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := r.e.udhcpc(tt.ns, tt.ifname, tt.args...)
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
				}
			}
			ip := netip.MustParseAddr(got["ip"])
			if ip.Less(netip.MustParseAddr(tt.in[0])) || netip.MustParseAddr(tt.in[1]).Less(ip) {
				t.Errorf("leased %s, outside %s-%s", ip, tt.in[0], tt.in[1])
			}
			if tt.ns == r.c2 {
				if s := got["serverid"]; s != "10.100.0.1" && s != "10.100.0.5" {
					t.Errorf("relayed lease from %q", s)
				}
				if b := got["boot_file"]; b != "http://10.69.0.3:10080/api/v1/boot/coreos/ipxe" && b != "http://10.69.0.195:10080/api/v1/boot/coreos/ipxe" {
					t.Errorf("iPXE boot file %q", b)
				}
			}
		})
	}
}

// nclient4Lease obtains a lease with insomniacslk's client on ifname in ns.
func nclient4Lease(t *testing.T, ns, ifname string, mods ...dhcpv4.Modifier) (*nclient4.Lease, error) {
	var c *nclient4.Client
	var err error
	made := make(chan struct{})
	if err := inNS(ns, func() {
		c, err = nclient4.New(ifname, nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(5))
		close(made)
	}); err != nil {
		return nil, err
	}
	<-made
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.Request(ctx, mods...)
}

func TestNclient4(t *testing.T) {
	r := newRacks(t, 1)
	lease, err := nclient4Lease(t, r.c0, "eth0",
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64_HTTP)),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient:Arch:00016")))
	if err != nil {
		t.Fatal(err)
	}
	ack := lease.ACK
	if ack.BootFileName != "http://10.69.0.3:10080/api/v1/boot/ipxe.efi" || ack.ClassIdentifier() != "HTTPClient" {
		t.Errorf("boot file %q class %q", ack.BootFileName, ack.ClassIdentifier())
	}
	if fmt.Sprint(ack.Router()) != "[10.69.0.1]" || ack.IPAddressLeaseTime(0) != 10*time.Minute {
		t.Errorf("router %v lease %s", ack.Router(), ack.IPAddressLeaseTime(0))
	}
	// The lease is in etcd and both servers' views know it.
	a := netip.MustParseAddr(ack.YourIPAddr.String())
	deadline := time.Now().Add(5 * time.Second)
	for _, v := range []*dhcpd.EtcdLeases{r.leasesA, r.leasesB} {
		for {
			l, ok, _ := v.Lookup(context.Background(), a)
			if ok && l.MAC == ack.ClientHWAddr.String() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a server's view lacks the lease of %s", a)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// A client on rack 0 renewing with its address keeps it (RFC 2131
	// RENEWING, unicast to the server).
	lease2, err := nclient4Lease(t, r.c0, "eth0", dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ack.YourIPAddr)))
	if err != nil || !lease2.ACK.YourIPAddr.Equal(ack.YourIPAddr) {
		t.Errorf("second request got %v, %v; want %s again", lease2, err, ack.YourIPAddr)
	}
}

// TestConcurrentRelayedClients has many clients DHCP at once on the segment
// that both servers serve through the relay: each client gets offers from
// both, and no address may end up with two clients.
func TestConcurrentRelayedClients(t *testing.T) {
	const n = 24 // of 31 addresses
	r := newRacks(t, n)
	var mu sync.Mutex
	got := map[string]string{} // address -> MAC
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ifname := fmt.Sprintf("eth%d", i)
			var ip, mac string
			if i%3 == 0 {
				lease := r.e.udhcpc(r.c2, ifname)
				ip = lease["ip"]
				mac = ifaceMAC(t, r, ifname)
			} else {
				// Both servers offer; when two offered one address to two
				// clients, the second commit loses and is NAKed, and the
				// client starts over (RFC 2131; udhcpc does so by itself).
				var lease *nclient4.Lease
				var err error
				for range 5 {
					if lease, err = nclient4Lease(t, r.c2, ifname); err == nil || !strings.Contains(err.Error(), "Nak") {
						break
					}
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", ifname, err)
					return
				}
				ip, mac = lease.ACK.YourIPAddr.String(), lease.ACK.ClientHWAddr.String()
			}
			mu.Lock()
			defer mu.Unlock()
			if other, dup := got[ip]; dup {
				errs <- fmt.Errorf("%s leased to %s and %s", ip, other, mac)
			}
			got[ip] = mac
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(got) != n {
		t.Errorf("%d distinct addresses for %d clients", len(got), n)
	}
	// etcd agrees: one key per address, each naming the client that has it.
	resp, err := r.client.Get(context.Background(), dhcpd.LeasePrefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != n {
		t.Errorf("%d lease keys, want %d", len(resp.Kvs), n)
	}
	for ip, mac := range got {
		l, ok, _ := r.leasesA.Lookup(context.Background(), netip.MustParseAddr(ip))
		if !ok || l.MAC != mac {
			t.Errorf("etcd lease of %s = %+v, want %s", ip, l, mac)
		}
	}
}

func ifaceMAC(t *testing.T, r *racks, ifname string) string {
	var mac net.HardwareAddr
	done := make(chan struct{})
	inNS(r.c2, func() {
		if ifi, err := net.InterfaceByName(ifname); err == nil {
			mac = ifi.HardwareAddr
		}
		close(done)
	})
	<-done
	return mac.String()
}
