package bmc

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openneco/neco/pkg/redfish"
)

const (
	testUser     = "admin"
	testPassword = "correct-horse-battery-staple"
)

// fakeSystem is a machine in memory: its power state and the resets it got.
type fakeSystem struct {
	mu     sync.Mutex
	power  redfish.PowerState
	resets []redfish.ResetType
	fail   error
}

func (s *fakeSystem) PowerState(context.Context) (redfish.PowerState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return "", s.fail
	}
	return s.power, nil
}

func (s *fakeSystem) Reset(_ context.Context, t redfish.ResetType) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.resets = append(s.resets, t)
	if t == redfish.ResetForceOff || t == redfish.ResetGracefulShutdown {
		s.power = redfish.PowerOff
	} else {
		s.power = redfish.PowerOn
	}
	return nil
}

func (s *fakeSystem) received() []redfish.ResetType {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.resets)
}

type bmc struct {
	srv *httptest.Server
	sys *fakeSystem
}

// newBMC serves a virtual BMC over TLS for a machine that is on.
func newBMC(t testing.TB, allowed ...redfish.ResetType) *bmc {
	t.Helper()
	sys := &fakeSystem{power: redfish.PowerOn}
	h, err := redfish.NewHandler(redfish.Options{
		Info:       redfish.Info{SerialNumber: "SN0001"},
		System:     sys,
		Username:   testUser,
		Password:   testPassword,
		ResetTypes: allowed,
		Log:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes TestRootCAs fails on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &bmc{srv: srv, sys: sys}
}

// client returns a client for b and b's address.
func (b *bmc) client(t testing.TB) (*Client, string) {
	t.Helper()
	host, port := splitAddr(t, b.srv.Listener.Addr().String())
	return &Client{Credentials: Credentials{testUser, testPassword}, Port: port, Timeout: 5 * time.Second}, host
}

func splitAddr(t testing.TB, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return host, p
}

// sessions counts the BMC's sessions, asking with Basic authentication,
// which opens none.
func (b *bmc) sessions(t *testing.T) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, b.srv.URL+"/redfish/v1/SessionService/Sessions", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(testUser, testPassword)
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c struct {
		Count int `json:"Members@odata.count"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("sessions: %d, %v", resp.StatusCode, err)
	}
	return c.Count
}

func (b *bmc) wantNoSession(t *testing.T) {
	t.Helper()
	if n := b.sessions(t); n != 0 {
		t.Errorf("%d sessions left on the BMC", n)
	}
}

func TestPowerState(t *testing.T) {
	b := newBMC(t)
	c, addr := b.client(t)
	ps, err := c.PowerState(t.Context(), addr)
	if err != nil || ps != redfish.PowerOn {
		t.Fatalf("PowerState = %q, %v", ps, err)
	}
	b.wantNoSession(t)
	b.sys.Reset(t.Context(), redfish.ResetForceOff)
	if ps, err := c.PowerState(t.Context(), addr); err != nil || ps != redfish.PowerOff {
		t.Errorf("after ForceOff: %q, %v", ps, err)
	}
	b.wantNoSession(t)
}

func TestReset(t *testing.T) {
	b := newBMC(t)
	c, addr := b.client(t)
	for _, rt := range redfish.AllResetTypes() {
		if err := c.Reset(t.Context(), addr, rt); err != nil {
			t.Errorf("reset %s: %v", rt, err)
		}
		b.wantNoSession(t)
	}
	if got := b.sys.received(); !slices.Equal(got, redfish.AllResetTypes()) {
		t.Errorf("the system got %v", got)
	}
}

func TestResetNotAllowed(t *testing.T) {
	b := newBMC(t, redfish.ResetOn, redfish.ResetForceOff)
	c, addr := b.client(t)
	err := c.Reset(t.Context(), addr, redfish.ResetPowerCycle)
	if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "On, ForceOff") {
		t.Errorf("err = %v, want ErrNotSupported naming %s and the allowed types", err, addr)
	}
	if got := b.sys.received(); len(got) != 0 {
		t.Errorf("the system got %v", got)
	}
	b.wantNoSession(t)
}

func TestWrongPassword(t *testing.T) {
	b := newBMC(t)
	c, addr := b.client(t)
	c.Credentials.Password = "wrong"
	_, err := c.PowerState(t.Context(), addr)
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), addr) {
		t.Errorf("PowerState: %v, want ErrUnauthorized naming %s", err, addr)
	}
	err = c.Reset(t.Context(), addr, redfish.ResetForceOff)
	if !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Reset: %v, want ErrUnauthorized", err)
	}
	if errors.Is(err, ErrUnreachable) || strings.Contains(err.Error(), "wrong\"") {
		t.Errorf("Reset: %v", err)
	}
	if got := b.sys.received(); len(got) != 0 {
		t.Errorf("the system got %v", got)
	}
	b.wantNoSession(t)
}

func TestSystemFailure(t *testing.T) {
	b := newBMC(t)
	c, addr := b.client(t)
	b.sys.mu.Lock()
	b.sys.fail = errors.New("qemu monitor: connection refused")
	b.sys.mu.Unlock()
	_, err := c.PowerState(t.Context(), addr)
	if err == nil || !strings.Contains(err.Error(), "HTTP 500") || !strings.Contains(err.Error(), "qemu monitor: connection refused") {
		t.Errorf("err = %v", err)
	}
	for _, sentinel := range []error{ErrUnauthorized, ErrUnreachable, ErrNotSupported} {
		if errors.Is(err, sentinel) {
			t.Errorf("err = %v, is %v", err, sentinel)
		}
	}
	b.wantNoSession(t)
}

// silentListener accepts connections and never answers; it counts them.
func silentListener(t *testing.T) (string, int, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	var conns []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	host, port := splitAddr(t, ln.Addr().String())
	return host, port, &accepted
}

func TestUnreachable(t *testing.T) {
	t.Run("never answers", func(t *testing.T) {
		host, port, accepted := silentListener(t)
		c := &Client{Credentials: Credentials{testUser, testPassword}, Port: port, Timeout: time.Second}
		start := time.Now()
		err := c.Reset(t.Context(), host, redfish.ResetForceOff)
		elapsed := time.Since(start)
		if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), net.JoinHostPort(host, strconv.Itoa(port))) {
			t.Errorf("err = %v, want ErrUnreachable naming the address", err)
		}
		if elapsed > c.Timeout+time.Second {
			t.Errorf("gave up after %v with a timeout of %v", elapsed, c.Timeout)
		}
		if n := accepted.Load(); n != 1 {
			t.Errorf("%d connections, want 1 (no retries)", n)
		}
	})
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		host, port := splitAddr(t, ln.Addr().String())
		ln.Close()
		c := &Client{Credentials: Credentials{testUser, testPassword}, Port: port}
		if _, err := c.PowerState(t.Context(), host); !errors.Is(err, ErrUnreachable) {
			t.Errorf("err = %v, want ErrUnreachable", err)
		}
	})
	t.Run("caller gives up", func(t *testing.T) {
		host, port, _ := silentListener(t)
		c := &Client{Credentials: Credentials{testUser, testPassword}, Port: port}
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err := c.PowerState(ctx, host)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnreachable) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

// otherCertificate returns a self-signed certificate for 127.0.0.1 that the
// test server does not have.
func otherCertificate(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "other"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestRootCAs(t *testing.T) {
	b := newBMC(t)
	c, addr := b.client(t)
	c.RootCAs = x509.NewCertPool()
	c.RootCAs.AddCert(b.srv.Certificate())
	if ps, err := c.PowerState(t.Context(), addr); err != nil || ps != redfish.PowerOn {
		t.Errorf("with the BMC's certificate: %q, %v", ps, err)
	}

	c.RootCAs = x509.NewCertPool()
	c.RootCAs.AddCert(otherCertificate(t))
	_, err := c.PowerState(t.Context(), addr)
	if err == nil || !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), addr) {
		t.Errorf("with another certificate: %v", err)
	}
	if errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrUnreachable) {
		t.Errorf("an untrusted certificate is %v", err)
	}
	b.wantNoSession(t)
}

// TestRefusedWithoutIO checks what is refused before any connection.
func TestRefusedWithoutIO(t *testing.T) {
	host, port, accepted := silentListener(t)
	good := Client{Credentials: Credentials{testUser, testPassword}, Port: port, Timeout: time.Second}
	tests := []struct {
		name   string
		modify func(*Client)
		addr   string
		reset  redfish.ResetType
	}{
		{"no address", nil, "", redfish.ResetOn},
		{"blank address", nil, " ", redfish.ResetOn},
		{"address with a port", nil, host + ":" + strconv.Itoa(port), redfish.ResetOn},
		{"URL", nil, "https://" + host, redfish.ResetOn},
		{"address with a path", nil, host + "/redfish", redfish.ResetOn},
		{"address with a user", nil, "root@" + host, redfish.ResetOn},
		{"no user name", func(c *Client) { c.Credentials.Username = "" }, host, redfish.ResetOn},
		{"no password", func(c *Client) { c.Credentials.Password = "" }, host, redfish.ResetOn},
		{"negative port", func(c *Client) { c.Port = -1 }, host, redfish.ResetOn},
		{"port too large", func(c *Client) { c.Port = 65536 }, host, redfish.ResetOn},
		{"no reset type", nil, host, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			if tt.modify != nil {
				tt.modify(&c)
			}
			if err := c.Reset(t.Context(), tt.addr, tt.reset); err == nil || !strings.HasPrefix(err.Error(), "bmc: ") {
				t.Errorf("Reset: %v", err)
			}
			if tt.reset != "" {
				if _, err := c.PowerState(t.Context(), tt.addr); err == nil {
					t.Error("PowerState: no error")
				}
			}
		})
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("%d connections", n)
	}
	if err := (Credentials{Username: "u"}).Validate(); err == nil {
		t.Error("Validate accepted no password")
	}
	if err := (Credentials{Username: "u", Password: "p"}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestAddresses(t *testing.T) {
	tests := []struct {
		addr string
		port int
		want string
	}{
		{"10.72.17.36", 0, "10.72.17.36:443"},
		{"bmc.example", 8443, "bmc.example:8443"},
		{"fd00::1", 0, "[fd00::1]:443"},
		{"[fd00::1]", 0, "[fd00::1]:443"},
	}
	for _, tt := range tests {
		got, err := (&Client{Port: tt.port}).hostPort(tt.addr)
		if err != nil || got != tt.want {
			t.Errorf("hostPort(%q) = %q, %v; want %q", tt.addr, got, err, tt.want)
		}
	}
}

func TestCredentialsAreRedacted(t *testing.T) {
	creds := Credentials{Username: "admin", Password: testPassword}
	c := &Client{Credentials: creds, Timeout: time.Second}
	var out []string
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out = append(out, fmt.Sprintf(format, creds), fmt.Sprintf(format, *c), fmt.Sprintf(format, c))
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("text", "creds", creds, "client", c)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("json", "creds", creds)
	out = append(out, buf.String())
	all := strings.Join(out, "\n")
	if strings.Contains(all, testPassword) {
		t.Errorf("the password shows:\n%s", all)
	}
	for _, want := range []string{"admin:REDACTED", `bmc.Credentials{Username:"admin", Password:"REDACTED"}`, "creds.password=REDACTED", `"password":"REDACTED"`} {
		if !strings.Contains(all, want) {
			t.Errorf("no %q in:\n%s", want, all)
		}
	}
}

// BenchmarkPowerState is one `neco power status` of one machine: TLS
// handshake, session login, service root, systems, the system, logout.
func BenchmarkPowerState(b *testing.B) {
	bm := newBMC(b)
	c, addr := bm.client(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.PowerState(ctx, addr); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReset is one power action (the in-memory system acts at once):
// the same requests plus the Reset POST.
func BenchmarkReset(b *testing.B) {
	bm := newBMC(b)
	c, addr := bm.client(b)
	ctx := context.Background()
	for b.Loop() {
		if err := c.Reset(ctx, addr, redfish.ResetPowerCycle); err != nil {
			b.Fatal(err)
		}
	}
}
