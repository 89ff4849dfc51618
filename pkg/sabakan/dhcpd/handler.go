package dhcpd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/openneco/neco/pkg/sabakan"
)

// Boot file paths under the advertised URL.
const (
	IPXEEFIPath    = "/api/v1/boot/ipxe.efi"
	IPXEScriptPath = "/api/v1/boot/coreos/ipxe"
)

// ConfigFunc returns the current IPAM and DHCP configuration. IPAM nil
// means "not configured yet": every request is dropped. DHCP nil means the
// defaults. It is called for every packet, so it should answer from memory
// (netboot.Config, the daemon's, reads a watch-fed view).
type ConfigFunc func(ctx context.Context) (*sabakan.IPAMConfig, *sabakan.DHCPConfig, error)

// Handler decides the answer to one DHCP packet. It holds no socket: the
// Server feeds it, and tests and the fuzz target call it directly.
type Handler struct {
	// Config gives the IPAM and DHCP configuration.
	Config ConfigFunc
	// Leases is the shared lease store.
	Leases LeaseStore
	// AdvertiseURL is this server's HTTP base URL, as nodes reach it
	// (http://10.69.0.3:10080); boot file URLs start with it.
	AdvertiseURL string
	// RelayDelay delays answers to relayed requests so that a boot server
	// on the client's own segment tends to answer first.
	RelayDelay time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Incoming is where a packet arrived.
type Incoming struct {
	// IfIndex is the receiving interface.
	IfIndex int
	// IfAddr is the receiving interface's first IPv4 address.
	IfAddr netip.Addr
	// ServerAddr is the address this server answers as (option 54): the
	// packet's destination when it was unicast to us, else IfAddr.
	ServerAddr netip.Addr
}

// Reply is a packet to send.
type Reply struct {
	Msg *dhcpv4.DHCPv4
	// To is the destination: the relay, the client's address, or the
	// limited broadcast address.
	To netip.AddrPort
	// IfIndex, when not zero, is the interface to send a broadcast out of.
	IfIndex int
	// Delay is how long to wait before sending.
	Delay time.Duration
}

// ErrDropped wraps the reason a packet got no answer where an answer could
// have been expected (malformed, unknown network, no configuration).
var ErrDropped = errors.New("dhcp packet dropped")

func dropped(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrDropped}, args...)...)
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// HandlePacket parses raw and handles it. A nil reply with a nil error is a
// deliberate silence (a REQUEST for another server, a RELEASE).
func (h *Handler) HandlePacket(ctx context.Context, raw []byte, in Incoming) (*Reply, error) {
	req, err := dhcpv4.FromBytes(raw)
	if err != nil {
		return nil, dropped("malformed: %v", err)
	}
	return h.Handle(ctx, req, in)
}

// Handle answers a parsed request.
func (h *Handler) Handle(ctx context.Context, req *dhcpv4.DHCPv4, in Incoming) (*Reply, error) {
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return nil, dropped("not a BOOTREQUEST (op %d)", req.OpCode)
	}
	if n := len(req.ClientHWAddr); n == 0 || n > 16 || isZero(req.ClientHWAddr) {
		return nil, dropped("no client hardware address")
	}
	ipam, dhcp, err := h.Config(ctx)
	if err != nil {
		return nil, fmt.Errorf("dhcpd: read configuration: %w", err)
	}
	if ipam == nil {
		return nil, dropped("IPAM is not configured")
	}
	if dhcp == nil {
		dhcp = &sabakan.DHCPConfig{}
	}
	t := &txn{h: h, ctx: ctx, req: req, in: in, ipam: ipam, dhcp: dhcp, now: h.now()}
	switch mt := req.MessageType(); mt {
	case dhcpv4.MessageTypeDiscover:
		return t.discover()
	case dhcpv4.MessageTypeRequest:
		return t.request()
	case dhcpv4.MessageTypeDecline:
		return nil, t.decline()
	case dhcpv4.MessageTypeRelease:
		return nil, t.release()
	case dhcpv4.MessageTypeInform:
		return t.inform()
	case dhcpv4.MessageTypeNone:
		return nil, dropped("no message type: BOOTP is not served")
	default:
		return nil, dropped("unexpected message type %s", mt)
	}
}

func isZero(b []byte) bool { return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) }

// txn is the handling of one request.
type txn struct {
	h    *Handler
	ctx  context.Context
	req  *dhcpv4.DHCPv4
	in   Incoming
	ipam *sabakan.IPAMConfig
	dhcp *sabakan.DHCPConfig
	now  time.Time
}

func (t *txn) relayed() bool { return ip4(t.req.GatewayIPAddr).IsValid() }

func (t *txn) mac() net.HardwareAddr { return t.req.ClientHWAddr }

// ifaddr is the address that selects the sub-range: the relay's giaddr,
// else the receiving interface's address.
func (t *txn) ifaddr() netip.Addr {
	if g := ip4(t.req.GatewayIPAddr); g.IsValid() {
		return g
	}
	return t.in.IfAddr
}

func (t *txn) leaseRange() (sabakan.LeaseRange, error) {
	a := t.ifaddr()
	r, ok := t.ipam.LeaseRange(a)
	if !ok {
		return r, dropped("%s is outside the node address pool", a)
	}
	return r, nil
}

func (t *txn) leaseTime() time.Duration {
	return time.Duration(t.dhcp.LeaseMinutesOrDefault()) * time.Minute
}

func (t *txn) discover() (*Reply, error) {
	r, err := t.leaseRange()
	if err != nil {
		return nil, err
	}
	a, err := t.h.Leases.Offer(t.ctx, r, t.mac(), t.now)
	if errors.Is(err, ErrNoFreeAddress) {
		return nil, dropped("no free address in %s+%d for %s", r.Key(), r.Count, t.mac())
	}
	if err != nil {
		return nil, fmt.Errorf("dhcpd: offer in %s: %w", r.Key(), err)
	}
	return t.reply(dhcpv4.MessageTypeOffer, a, t.leaseTime())
}

func (t *txn) request() (*Reply, error) {
	sid := ip4(t.req.ServerIdentifier())
	requested := ip4(t.req.RequestedIPAddress())
	ciaddr := ip4(t.req.ClientIPAddr)
	switch {
	case sid.IsValid():
		// SELECTING: the client chose an offer.
		if sid != t.in.ServerAddr {
			return nil, nil // another server's offer
		}
		if !requested.IsValid() {
			requested = ciaddr
		}
		r, err := t.leaseRange()
		if err != nil {
			return nil, err
		}
		if !r.Contains(requested) {
			return t.nak(fmt.Sprintf("%s is not in this network's range", requested))
		}
		return t.acquire(requested)
	case requested.IsValid():
		// INIT-REBOOT: the client remembers an address.
		r, err := t.leaseRange()
		if err != nil {
			return nil, err
		}
		if !r.Contains(requested) {
			return t.nak(fmt.Sprintf("%s is not in this network's range", requested))
		}
		l, ok, err := t.h.Leases.Lookup(t.ctx, requested)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, nil // no record: stay silent (RFC 2131 4.3.2)
		}
		if !l.HeldBy(t.mac()) {
			return t.nak(fmt.Sprintf("%s is leased to another client", requested))
		}
		return t.acquire(requested)
	case ciaddr.IsValid():
		// RENEWING or REBINDING: unicast or broadcast from a bound client;
		// its own address names the range.
		if r, ok := t.ipam.LeaseRange(ciaddr); !ok || !r.Contains(ciaddr) {
			return t.nak(fmt.Sprintf("%s is not in a lease range", ciaddr))
		}
		return t.acquire(ciaddr)
	default:
		return nil, dropped("REQUEST without server id, requested address or ciaddr")
	}
}

func (t *txn) acquire(a netip.Addr) (*Reply, error) {
	l, err := t.h.Leases.Acquire(t.ctx, a, t.mac(), t.now, t.leaseTime())
	if errors.Is(err, ErrTaken) {
		return t.nak(fmt.Sprintf("%s is leased to another client", a))
	}
	if err != nil {
		return nil, fmt.Errorf("dhcpd: lease %s to %s: %w", a, t.mac(), err)
	}
	left := l.Expires.Sub(t.now).Truncate(time.Second)
	return t.reply(dhcpv4.MessageTypeAck, a, left)
}

func (t *txn) decline() error {
	sid := ip4(t.req.ServerIdentifier())
	a := ip4(t.req.RequestedIPAddress())
	if sid.IsValid() && sid != t.in.ServerAddr {
		return nil
	}
	if !a.IsValid() {
		return dropped("DECLINE without a requested address")
	}
	err := t.h.Leases.Decline(t.ctx, a, t.mac(), t.now, t.leaseTime())
	if errors.Is(err, ErrTaken) {
		return dropped("DECLINE of %s, which %s does not hold", a, t.mac())
	}
	return err
}

func (t *txn) release() error {
	a := ip4(t.req.ClientIPAddr)
	if !a.IsValid() {
		return dropped("RELEASE without ciaddr")
	}
	err := t.h.Leases.Release(t.ctx, a, t.mac())
	if errors.Is(err, ErrTaken) {
		return dropped("RELEASE of %s, which %s does not hold", a, t.mac())
	}
	return err
}

func (t *txn) inform() (*Reply, error) {
	a := ip4(t.req.ClientIPAddr)
	if !a.IsValid() {
		return nil, dropped("INFORM without ciaddr")
	}
	if _, ok := t.ipam.LeaseRange(a); !ok {
		return nil, dropped("INFORM from %s, outside the node address pool", a)
	}
	return t.reply(dhcpv4.MessageTypeAck, netip.Addr{}, 0)
}

// reply builds an OFFER or ACK for address a (none for INFORM) with lease
// time d (none when zero).
func (t *txn) reply(mt dhcpv4.MessageType, a netip.Addr, d time.Duration) (*Reply, error) {
	sid := t.in.ServerAddr
	if !sid.IsValid() {
		return nil, dropped("no server address on the receiving interface")
	}
	subject := a
	if !subject.IsValid() {
		subject = ip4(t.req.ClientIPAddr)
	}
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithServerIP(sid.AsSlice()),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(sid.AsSlice())),
		dhcpv4.WithNetmask(net.CIDRMask(int(t.ipam.NodeRangeMask), 32)),
		dhcpv4.WithRouter(t.ipam.NodeGateway(subject).AsSlice()),
	}
	if a.IsValid() {
		mods = append(mods, dhcpv4.WithYourIP(a.AsSlice()))
	}
	if d > 0 {
		mods = append(mods, dhcpv4.WithLeaseTime(uint32(d/time.Second)))
	}
	if dns := t.dnsServers(); len(dns) > 0 {
		mods = append(mods, dhcpv4.WithDNS(dns...))
	}
	resp, err := dhcpv4.NewReplyFromRequest(t.req, mods...)
	if err != nil {
		return nil, err
	}
	t.bootFile(resp)
	return t.send(resp), nil
}

func (t *txn) dnsServers() []net.IP {
	var r []net.IP
	for _, s := range t.dhcp.DNSServers {
		if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
			r = append(r, a.AsSlice())
		}
	}
	return r
}

// bootFile points iPXE at the boot script and UEFI HTTP boot clients at
// ipxe.efi. Legacy PXE gets nothing: there is no TFTP.
func (t *txn) bootFile(resp *dhcpv4.DHCPv4) {
	switch {
	case t.isIPXE():
		resp.BootFileName = t.h.AdvertiseURL + IPXEScriptPath
	case t.isHTTPBoot():
		resp.UpdateOption(dhcpv4.OptClassIdentifier("HTTPClient"))
		resp.BootFileName = t.h.AdvertiseURL + IPXEEFIPath
	}
}

func (t *txn) isIPXE() bool {
	return slices.Contains(t.req.UserClass(), "iPXE") ||
		string(t.req.Options.Get(dhcpv4.OptionUserClassInformation)) == "iPXE"
}

func (t *txn) isHTTPBoot() bool {
	http := slices.ContainsFunc(t.req.ClientArch(), func(a iana.Arch) bool {
		return a == iana.EFI_X86_HTTP || a == iana.EFI_X86_64_HTTP
	})
	return http && strings.HasPrefix(t.req.ClassIdentifier(), "HTTPClient")
}

func (t *txn) nak(why string) (*Reply, error) {
	resp, err := dhcpv4.NewReplyFromRequest(t.req,
		dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(t.in.ServerAddr.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptMessage(why)),
	)
	if err != nil {
		return nil, err
	}
	// A NAK goes to the relay, or is broadcast: the client has no address.
	if t.relayed() {
		resp.SetBroadcast()
	}
	out := t.send(resp)
	if !t.relayed() {
		out.To = netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), dhcpv4.ClientPort)
		out.IfIndex = t.in.IfIndex
	}
	return out, nil
}

// send chooses the destination (RFC 2131 4.1): the relay's server port; a
// bound client's own address; else the limited broadcast address out of the
// receiving interface.
func (t *txn) send(resp *dhcpv4.DHCPv4) *Reply {
	if g := ip4(t.req.GatewayIPAddr); g.IsValid() {
		return &Reply{Msg: resp, To: netip.AddrPortFrom(g, dhcpv4.ServerPort), Delay: t.h.RelayDelay}
	}
	if c := ip4(t.req.ClientIPAddr); c.IsValid() {
		return &Reply{Msg: resp, To: netip.AddrPortFrom(c, dhcpv4.ClientPort)}
	}
	return &Reply{
		Msg:     resp,
		To:      netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), dhcpv4.ClientPort),
		IfIndex: t.in.IfIndex,
	}
}

// ip4 converts an IPv4 address, returning the zero Addr for nil, 0.0.0.0
// and anything that is not IPv4.
func ip4(ip net.IP) netip.Addr {
	v4 := ip.To4()
	if v4 == nil {
		return netip.Addr{}
	}
	a := netip.AddrFrom4([4]byte(v4))
	if a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}
