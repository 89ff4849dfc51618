package dhcpd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// maxInFlight bounds the packets handled at once; more are dropped (DHCP
// clients retransmit).
const maxInFlight = 512

// Server reads DHCP packets from a UDP socket, learns the receiving
// interface of each from IP_PKTINFO, and answers through its Handler.
type Server struct {
	// Bind is the listen address, ":67" in production.
	Bind string
	// Handler decides the answers.
	Handler *Handler
	// Log receives one line per dropped packet and per error.
	Log *slog.Logger
	// Metrics, when set, counts packets (see NewMetrics).
	Metrics *Metrics

	mu     sync.Mutex
	conn   *ipv4.PacketConn
	nl     *netlink.Handle // in the socket's network namespace
	ifaces map[int]ifaceAddrs
}

type ifaceAddrs struct {
	prefixes []netip.Prefix
	at       time.Time
}

// Listen opens the socket. It is separate from Serve so that a caller can
// learn the bound address (port 0 in tests) before serving.
func (s *Server) Listen(ctx context.Context) (net.Addr, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", s.Bind)
	if err != nil {
		return nil, fmt.Errorf("dhcpd: listen on %s: %w", s.Bind, err)
	}
	// Interfaces are looked up in the namespace the socket lives in, which
	// is the calling thread's now but not necessarily later.
	nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("dhcpd: netlink: %w", err)
	}
	conn := ipv4.NewPacketConn(pc)
	if err := conn.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true); err != nil {
		pc.Close()
		nl.Close()
		return nil, fmt.Errorf("dhcpd: enable IP_PKTINFO: %w", err)
	}
	s.mu.Lock()
	s.conn = conn
	s.nl = nl
	s.ifaces = map[int]ifaceAddrs{}
	s.mu.Unlock()
	return pc.LocalAddr(), nil
}

// Run listens (unless Listen was called) and serves until ctx ends; it
// returns nil then.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	if conn == nil {
		if _, err := s.Listen(ctx); err != nil {
			return err
		}
		conn = s.conn
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer s.nl.Close()
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, maxInFlight)
	s.Log.Info("dhcp server listening", "bind", conn.LocalAddr().String())
	for {
		buf := make([]byte, 1500)
		n, cm, peer, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			s.Log.Warn("dhcp read", "error", err)
			continue
		}
		in := s.incoming(cm)
		select {
		case sem <- struct{}{}:
		default:
			s.Metrics.drop("overload")
			s.Log.Warn("dhcp packet dropped: too many in flight", "peer", peer.String())
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			s.serve(ctx, conn, buf[:n], in, peer)
		}()
	}
}

// incoming derives the receiving interface and our address from the
// packet's control message.
func (s *Server) incoming(cm *ipv4.ControlMessage) Incoming {
	if cm == nil {
		return Incoming{}
	}
	prefixes := s.prefixes(cm.IfIndex)
	in := Incoming{IfIndex: cm.IfIndex}
	for _, p := range prefixes {
		if p.Addr().Is4() {
			in.IfAddr = p.Addr()
			break
		}
	}
	in.ServerAddr = in.IfAddr
	if d := ip4(cm.Dst); d.IsValid() && !d.IsMulticast() && !isBroadcast(d, prefixes) {
		// The kernel delivers only local addresses and broadcasts: this one
		// was sent to us (by a relay, or by a renewing client).
		in.ServerAddr = d
	}
	return in
}

func isBroadcast(d netip.Addr, prefixes []netip.Prefix) bool {
	if d == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return true
	}
	for _, p := range prefixes {
		if p.Addr().Is4() && p.Bits() < 31 {
			b := p.Masked().Addr().As4()
			host := uint32(1)<<(32-p.Bits()) - 1
			v := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) | host
			if d == netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}) {
				return true
			}
		}
	}
	return false
}

// prefixes returns the addresses of an interface, cached for 10 s.
func (s *Server) prefixes(index int) []netip.Prefix {
	now := time.Now()
	s.mu.Lock()
	c, ok := s.ifaces[index]
	s.mu.Unlock()
	if ok && now.Sub(c.at) < 10*time.Second {
		return c.prefixes
	}
	var found []netip.Prefix
	if link, err := s.nl.LinkByIndex(index); err == nil {
		addrs, _ := s.nl.AddrList(link, netlink.FAMILY_V4)
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && a.IPNet != nil {
				ones, _ := a.IPNet.Mask.Size()
				found = append(found, netip.PrefixFrom(ip, ones))
			}
		}
	}
	s.mu.Lock()
	s.ifaces[index] = ifaceAddrs{prefixes: found, at: now}
	s.mu.Unlock()
	return found
}

func (s *Server) serve(ctx context.Context, conn *ipv4.PacketConn, raw []byte, in Incoming, peer net.Addr) {
	defer func() {
		if p := recover(); p != nil {
			s.Metrics.drop("panic")
			s.Log.Error("dhcp handler panicked; packet dropped", "peer", peer.String(), "panic", fmt.Sprint(p))
		}
	}()
	start := time.Now()
	reply, err := s.Handler.HandlePacket(ctx, raw, in)
	if err != nil {
		if errors.Is(err, ErrDropped) {
			s.Metrics.drop("invalid")
			s.Log.Info("dhcp packet dropped", "peer", peer.String(), "ifindex", in.IfIndex, "reason", err.Error())
		} else {
			s.Metrics.drop("error")
			s.Log.Error("dhcp request failed", "peer", peer.String(), "error", err)
		}
		return
	}
	if reply == nil {
		return
	}
	if reply.Delay > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(reply.Delay):
		}
	}
	cm := &ipv4.ControlMessage{IfIndex: reply.IfIndex}
	if in.ServerAddr.IsValid() && reply.IfIndex != 0 {
		cm.Src = in.ServerAddr.AsSlice()
	}
	dst := net.UDPAddrFromAddrPort(reply.To)
	if _, err := conn.WriteTo(reply.Msg.ToBytes(), cm, dst); err != nil {
		s.Metrics.drop("send")
		s.Log.Warn("dhcp send", "to", dst.String(), "error", err)
		return
	}
	s.Metrics.sent(reply.Msg.MessageType(), time.Since(start))
	s.Log.Debug("dhcp answered", "type", reply.Msg.MessageType().String(), "mac", reply.Msg.ClientHWAddr.String(),
		"yiaddr", reply.Msg.YourIPAddr.String(), "to", dst.String())
}

// Metrics counts what the server does.
type Metrics struct {
	replies *prometheus.CounterVec
	drops   *prometheus.CounterVec
	latency prometheus.Histogram
}

// NewMetrics registers the DHCP metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sabakan", Subsystem: "dhcp", Name: "replies_total", Help: "DHCP replies sent, by message type.",
		}, []string{"type"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sabakan", Subsystem: "dhcp", Name: "dropped_total", Help: "DHCP packets dropped, by reason.",
		}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "sabakan", Subsystem: "dhcp", Name: "handle_seconds", Help: "Time to answer a DHCP packet.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	reg.MustRegister(m.replies, m.drops, m.latency)
	return m
}

func (m *Metrics) drop(reason string) {
	if m != nil {
		m.drops.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) sent(t dhcpv4.MessageType, d time.Duration) {
	if m != nil {
		m.replies.WithLabelValues(t.String()).Inc()
		m.latency.Observe(d.Seconds())
	}
}
