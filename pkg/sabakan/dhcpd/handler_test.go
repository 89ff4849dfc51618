package dhcpd

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil/etcdtest"
	"github.com/openneco/neco/pkg/sabakan"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

// testIPAM is the reference deployment's plan: /26 sub-ranges, lease range
// .32-.62 of each.
func testIPAM() *sabakan.IPAMConfig {
	return &sabakan.IPAMConfig{
		MaxNodesInRack: 28, NodeIPv4Pool: "10.69.0.0/16", NodeRangeSize: 6, NodeRangeMask: 26,
		NodeIPPerNode: 3, NodeIndexOffset: 3, NodeGatewayOffset: 1,
		BMCIPv4Pool: "10.72.16.0/20", BMCIPv4Offset: "0.0.1.0", BMCRangeSize: 5, BMCRangeMask: 20, BMCGatewayOffset: 1,
	}
}

func staticConfig(ipam *sabakan.IPAMConfig, dhcp *sabakan.DHCPConfig) ConfigFunc {
	return func(context.Context) (*sabakan.IPAMConfig, *sabakan.DHCPConfig, error) { return ipam, dhcp, nil }
}

// startLeases runs an EtcdLeases on client until the test ends.
func startLeases(t testing.TB, client *clientv3.Client) *EtcdLeases {
	t.Helper()
	s := NewEtcdLeases(client, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-s.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("lease view not ready")
	}
	return s
}

type fixture struct {
	t      *testing.T
	client *clientv3.Client
	h      *Handler
	now    time.Time
	in     Incoming // a request on rack 0's segment, server 10.69.0.3
}

func newFixture(t *testing.T) *fixture {
	client := etcdtest.Client(t)
	f := &fixture{t: t, client: client, now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	f.h = &Handler{
		Config:       staticConfig(testIPAM(), &sabakan.DHCPConfig{LeaseMinutes: 30, DNSServers: []string{"10.0.0.53"}}),
		Leases:       startLeases(t, client),
		AdvertiseURL: "http://10.69.0.3:10080",
		Now:          func() time.Time { return f.now },
	}
	f.in = Incoming{IfIndex: 7, IfAddr: netip.MustParseAddr("10.69.0.3"), ServerAddr: netip.MustParseAddr("10.69.0.3")}
	return f
}

func mac(i int) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0, 0, byte(i >> 8), byte(i)} }

func (f *fixture) do(req *dhcpv4.DHCPv4) *Reply {
	f.t.Helper()
	r, err := f.h.Handle(context.Background(), req, f.in)
	if err != nil {
		f.t.Fatalf("%s: %v", req.MessageType(), err)
	}
	return r
}

func (f *fixture) rev() int64 {
	f.t.Helper()
	resp, err := f.client.Get(context.Background(), "x")
	if err != nil {
		f.t.Fatal(err)
	}
	return resp.Header.Revision
}

func (f *fixture) leaseKeys() int {
	resp, err := f.client.Get(context.Background(), LeasePrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		f.t.Fatal(err)
	}
	return int(resp.Count)
}

func discover(hw net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	d, err := dhcpv4.NewDiscovery(hw, mods...)
	if err != nil {
		panic(err)
	}
	return d
}

func request(hw net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	r, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(hw), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest)}, mods...)...)
	if err != nil {
		panic(err)
	}
	return r
}

func withSID(a string) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP(a)))
}

func withReq(a string) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP(a)))
}

func TestDiscoverRequest(t *testing.T) {
	f := newFixture(t)
	rev := f.rev()
	offer := f.do(discover(mac(1)))
	if f.rev() != rev {
		t.Error("DISCOVER wrote to etcd")
	}
	m := offer.Msg
	if m.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("got %s, want OFFER", m.MessageType())
	}
	a := ip4(m.YourIPAddr)
	if r, _ := testIPAM().LeaseRange(netip.MustParseAddr("10.69.0.3")); !r.Contains(a) {
		t.Errorf("offered %s, outside the lease range %s+%d", a, r.Start, r.Count)
	}
	for name, tt := range map[string]struct{ got, want string }{
		"mask":     {net.IP(m.SubnetMask()).String(), "255.255.255.192"},
		"router":   {fmt.Sprint(m.Router()), "[10.69.0.1]"},
		"dns":      {fmt.Sprint(m.DNS()), "[10.0.0.53]"},
		"lease":    {m.IPAddressLeaseTime(0).String(), "30m0s"},
		"serverid": {m.ServerIdentifier().String(), "10.69.0.3"},
		"siaddr":   {m.ServerIPAddr.String(), "10.69.0.3"},
		"to":       {offer.To.String(), "255.255.255.255:68"},
		"bootfile": {m.BootFileName, ""},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %s, want %s", name, tt.got, tt.want)
		}
	}
	if offer.IfIndex != 7 {
		t.Errorf("broadcast out of interface %d, want 7", offer.IfIndex)
	}

	// The same client asking again gets the same offer.
	if again := ip4(f.do(discover(mac(1))).Msg.YourIPAddr); again != a {
		t.Errorf("second offer %s, want %s", again, a)
	}
	// Another client gets another address.
	if other := ip4(f.do(discover(mac(2))).Msg.YourIPAddr); other == a {
		t.Errorf("two clients were offered %s", a)
	}

	// REQUEST for another server: silence.
	if r := f.do(request(mac(1), withSID("10.69.0.99"), withReq(a.String()))); r != nil {
		t.Errorf("answered a REQUEST for another server: %s", r.Msg.Summary())
	}
	ack := f.do(request(mac(1), withSID("10.69.0.3"), withReq(a.String())))
	if ack.Msg.MessageType() != dhcpv4.MessageTypeAck || ip4(ack.Msg.YourIPAddr) != a {
		t.Fatalf("got %s", ack.Msg.Summary())
	}
	if f.leaseKeys() != 1 {
		t.Errorf("%d lease keys, want 1", f.leaseKeys())
	}

	// Another client wanting the same address is refused.
	nak := f.do(request(mac(3), withSID("10.69.0.3"), withReq(a.String())))
	if nak.Msg.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("got %s, want NAK", nak.Msg.MessageType())
	}
	// An address outside the range is refused.
	nak = f.do(request(mac(1), withSID("10.69.0.3"), withReq("10.69.0.70")))
	if nak.Msg.MessageType() != dhcpv4.MessageTypeNak || nak.To.String() != "255.255.255.255:68" {
		t.Errorf("got %s to %s, want a broadcast NAK", nak.Msg.MessageType(), nak.To)
	}

	// Renewing early writes nothing and grants the time left.
	f.now = f.now.Add(10 * time.Minute)
	rev = f.rev()
	renew := f.do(request(mac(1), dhcpv4.WithClientIP(a.AsSlice())))
	if renew.Msg.MessageType() != dhcpv4.MessageTypeAck || renew.Msg.IPAddressLeaseTime(0) != 20*time.Minute {
		t.Errorf("early renewal: %s, lease %s, want ACK with 20m", renew.Msg.MessageType(), renew.Msg.IPAddressLeaseTime(0))
	}
	if renew.To.String() != a.String()+":68" {
		t.Errorf("renewal answered to %s, want the client", renew.To)
	}
	if f.rev() != rev {
		t.Error("an early renewal wrote to etcd")
	}
	// Past half of the lease it is extended.
	f.now = f.now.Add(10 * time.Minute)
	renew = f.do(request(mac(1), dhcpv4.WithClientIP(a.AsSlice())))
	if renew.Msg.IPAddressLeaseTime(0) != 30*time.Minute || f.rev() == rev {
		t.Errorf("late renewal: lease %s, want a written 30m", renew.Msg.IPAddressLeaseTime(0))
	}

	// INIT-REBOOT: own address ACK, someone else's NAK, unknown silent.
	if r := f.do(request(mac(1), withReq(a.String()))); r.Msg.MessageType() != dhcpv4.MessageTypeAck {
		t.Errorf("init-reboot of own address: %s", r.Msg.MessageType())
	}
	if r := f.do(request(mac(4), withReq(a.String()))); r.Msg.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("init-reboot of another's address: %s", r.Msg.MessageType())
	}
	if r := f.do(request(mac(4), withReq("10.69.0.40"))); r != nil && ip4(r.Msg.YourIPAddr) != netip.MustParseAddr("10.69.0.40") {
		t.Errorf("init-reboot without record: %s", r.Msg.Summary())
	}

	// After expiry another client may take it.
	f.now = f.now.Add(time.Hour)
	if r := f.do(request(mac(3), withSID("10.69.0.3"), withReq(a.String()))); r.Msg.MessageType() != dhcpv4.MessageTypeAck {
		t.Errorf("expired address: %s, want ACK", r.Msg.MessageType())
	}
}

func TestDeclineReleaseInform(t *testing.T) {
	f := newFixture(t)
	a := ip4(f.do(discover(mac(1))).Msg.YourIPAddr)
	f.do(request(mac(1), withSID("10.69.0.3"), withReq(a.String())))

	// RELEASE by a stranger is ignored; by the holder frees the address.
	dec := func(hw net.HardwareAddr, mt dhcpv4.MessageType, mods ...dhcpv4.Modifier) error {
		req := request(hw, append(mods, dhcpv4.WithMessageType(mt))...)
		_, err := f.h.Handle(context.Background(), req, f.in)
		return err
	}
	if err := dec(mac(2), dhcpv4.MessageTypeRelease, dhcpv4.WithClientIP(a.AsSlice())); err == nil {
		t.Error("a stranger released the address")
	}
	if err := dec(mac(1), dhcpv4.MessageTypeRelease, dhcpv4.WithClientIP(a.AsSlice())); err != nil {
		t.Fatal(err)
	}
	if f.leaseKeys() != 0 {
		t.Error("RELEASE left the lease")
	}

	// DECLINE blocks the address for everyone until it expires.
	f.do(request(mac(1), withSID("10.69.0.3"), withReq(a.String())))
	if err := dec(mac(1), dhcpv4.MessageTypeDecline, withSID("10.69.0.3"), withReq(a.String())); err != nil {
		t.Fatal(err)
	}
	if r := f.do(request(mac(1), withSID("10.69.0.3"), withReq(a.String()))); r.Msg.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("declined address granted: %s", r.Msg.MessageType())
	}
	if again := ip4(f.do(discover(mac(1))).Msg.YourIPAddr); again == a {
		t.Error("declined address offered again")
	}
	f.now = f.now.Add(31 * time.Minute)
	f.h.Leases.(*EtcdLeases).offers = map[netip.Addr]pendingOffer{}
	if r := f.do(request(mac(5), withSID("10.69.0.3"), withReq(a.String()))); r.Msg.MessageType() != dhcpv4.MessageTypeAck {
		t.Errorf("address still blocked after the decline expired: %s", r.Msg.MessageType())
	}

	// INFORM: configuration without a lease.
	r := f.do(request(mac(9), dhcpv4.WithMessageType(dhcpv4.MessageTypeInform), dhcpv4.WithClientIP(net.ParseIP("10.69.0.5"))))
	if r.Msg.MessageType() != dhcpv4.MessageTypeAck || r.Msg.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || ip4(r.Msg.YourIPAddr).IsValid() {
		t.Errorf("INFORM answer: %s", r.Msg.Summary())
	}
	if fmt.Sprint(r.Msg.Router()) != "[10.69.0.1]" {
		t.Errorf("INFORM router %v", r.Msg.Router())
	}
}

func TestRelayAndBootFiles(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name     string
		mods     []dhcpv4.Modifier
		bootfile string
		class    string
	}{
		{"legacy PXE", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)), dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000"))}, "", ""},
		{"UEFI HTTP", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64_HTTP)), dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient:Arch:00016:UNDI:003001"))}, "http://10.69.0.3:10080/api/v1/boot/ipxe.efi", "HTTPClient"},
		{"UEFI PXE", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)), dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007"))}, "", ""},
		{"iPXE", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)), dhcpv4.WithUserClass("iPXE", false)}, "http://10.69.0.3:10080/api/v1/boot/coreos/ipxe", ""},
		{"iPXE RFC 3004", []dhcpv4.Modifier{dhcpv4.WithUserClass("iPXE", true)}, "http://10.69.0.3:10080/api/v1/boot/coreos/ipxe", ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Relayed from rack 1's ToR: the range is 10.69.0.224/27.
			req := discover(mac(100+i), append(tt.mods, dhcpv4.WithRelay(net.ParseIP("10.69.0.193")))...)
			f.h.RelayDelay = 5 * time.Millisecond
			r := f.do(req)
			if r.To.String() != "10.69.0.193:67" || r.Delay != 5*time.Millisecond {
				t.Errorf("relayed answer to %s after %s", r.To, r.Delay)
			}
			a := ip4(r.Msg.YourIPAddr)
			if a.Compare(netip.MustParseAddr("10.69.0.224")) < 0 || a.Compare(netip.MustParseAddr("10.69.0.254")) > 0 {
				t.Errorf("relayed offer %s outside 10.69.0.224-254", a)
			}
			if fmt.Sprint(r.Msg.Router()) != "[10.69.0.193]" {
				t.Errorf("router %v, want 10.69.0.193", r.Msg.Router())
			}
			if r.Msg.BootFileName != tt.bootfile {
				t.Errorf("boot file %q, want %q", r.Msg.BootFileName, tt.bootfile)
			}
			if got := r.Msg.ClassIdentifier(); got != tt.class {
				t.Errorf("class identifier %q, want %q", got, tt.class)
			}
		})
	}
}

func TestDrops(t *testing.T) {
	f := newFixture(t)
	for name, raw := range map[string][]byte{
		"empty":     nil,
		"truncated": discover(mac(1)).ToBytes()[:100],
		"reply":     func() []byte { d := discover(mac(1)); d.OpCode = dhcpv4.OpcodeBootReply; return d.ToBytes() }(),
		"no mac":    discover(net.HardwareAddr{0, 0, 0, 0, 0, 0}).ToBytes(),
		"bootp":     func() []byte { d := discover(mac(1)); d.Options.Del(dhcpv4.OptionDHCPMessageType); return d.ToBytes() }(),
		"foreign":   discover(mac(1), dhcpv4.WithRelay(net.ParseIP("192.0.2.1"))).ToBytes(),
		"offer": func() []byte {
			d := discover(mac(1))
			d.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeOffer))
			return d.ToBytes()
		}(),
	} {
		r, err := f.h.HandlePacket(context.Background(), raw, f.in)
		if r != nil || err == nil {
			t.Errorf("%s: got %v, %v; want a drop", name, r, err)
		}
	}
	// Not configured yet.
	f.h.Config = staticConfig(nil, nil)
	if _, err := f.h.HandlePacket(context.Background(), discover(mac(1)).ToBytes(), f.in); err == nil {
		t.Error("answered without IPAM configuration")
	}
}

// TestSharedLeases runs two servers on two racks plus relayed traffic
// against one etcd: under concurrent clients no address goes to two MACs,
// and a restarted server knows every lease.
func TestSharedLeases(t *testing.T) {
	client := etcdtest.Client(t)
	cfg := staticConfig(testIPAM(), nil)
	servers := []*Handler{
		{Config: cfg, Leases: startLeases(t, client), AdvertiseURL: "http://a"},
		{Config: cfg, Leases: startLeases(t, etcdtest.NewClient(t, t.Name()+"/")), AdvertiseURL: "http://b"},
	}
	ins := []Incoming{
		{IfIndex: 1, IfAddr: netip.MustParseAddr("10.69.0.3"), ServerAddr: netip.MustParseAddr("10.69.0.3")},
		{IfIndex: 1, IfAddr: netip.MustParseAddr("10.69.0.195"), ServerAddr: netip.MustParseAddr("10.69.0.195")},
	}
	// 40 clients in rack 0's segment (31 addresses), each trying both
	// servers' offers: both see every broadcast, like on one L2 segment.
	var mu sync.Mutex
	holders := map[netip.Addr]string{}
	var wg sync.WaitGroup
	for c := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hw := mac(c)
			for range 20 {
				s := c % 2
				off, err := servers[s].Handle(context.Background(), discover(hw), ins[0])
				if err != nil || off == nil {
					return // range exhausted
				}
				a := ip4(off.Msg.YourIPAddr)
				ack, err := servers[s].Handle(context.Background(), request(hw, withSID("10.69.0.3"), withReq(a.String())), ins[0])
				if err != nil {
					t.Error(err)
					return
				}
				if ack.Msg.MessageType() == dhcpv4.MessageTypeAck {
					mu.Lock()
					if h, ok := holders[a]; ok && h != hw.String() {
						t.Errorf("%s leased to %s and %s", a, h, hw)
					}
					holders[a] = hw.String()
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(holders) != 31 {
		t.Errorf("%d addresses leased, want all 31 of the range", len(holders))
	}
	// A server started now sees every lease.
	fresh := startLeases(t, etcdtest.NewClient(t, t.Name()+"/"))
	for a, hw := range holders {
		l, ok, _ := fresh.Lookup(context.Background(), a)
		if !ok || l.MAC != hw {
			t.Errorf("restarted view: %s = %v %v, want %s", a, l, ok, hw)
		}
	}
	_ = ins[1]
}

// FuzzHandlePacket feeds arbitrary bytes to the handler: it must never
// panic, and anything it answers must be a well-formed reply.
func FuzzHandlePacket(f *testing.F) {
	for _, d := range []*dhcpv4.DHCPv4{
		discover(mac(1)),
		discover(mac(2), dhcpv4.WithRelay(net.ParseIP("10.69.0.193")), dhcpv4.WithUserClass("iPXE", false)),
		discover(mac(3), dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64_HTTP)), dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient"))),
		request(mac(1), withSID("10.69.0.3"), withReq("10.69.0.40")),
		request(mac(1), dhcpv4.WithClientIP(net.ParseIP("10.69.0.40"))),
		request(mac(1), dhcpv4.WithMessageType(dhcpv4.MessageTypeInform), dhcpv4.WithClientIP(net.ParseIP("10.69.0.5"))),
	} {
		f.Add(d.ToBytes())
	}
	client := etcdtest.NewClient(f, "FuzzHandlePacket/")
	h := &Handler{Config: staticConfig(testIPAM(), nil), Leases: startLeases(f, client), AdvertiseURL: "http://s"}
	in := Incoming{IfIndex: 1, IfAddr: netip.MustParseAddr("10.69.0.3"), ServerAddr: netip.MustParseAddr("10.69.0.3")}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := h.HandlePacket(context.Background(), raw, in)
		if err != nil || r == nil {
			return
		}
		if _, err := dhcpv4.FromBytes(r.Msg.ToBytes()); err != nil {
			t.Fatalf("answer does not parse: %v", err)
		}
		if r.Msg.OpCode != dhcpv4.OpcodeBootReply {
			t.Fatalf("answer is not a BOOTREPLY")
		}
	})
}
