// Package vbmc is the virtual data center's out-of-band management: one
// Redfish service (pkg/redfish) per machine, each on the machine's BMC
// address inside the data center's BMC namespace, over HTTPS with a
// self-signed certificate and one set of credentials per data center, as
// real BMCs have. Power actions act on the machine as vdc does: an nspawn
// machine is stopped and started, a QEMU machine paused and reset (see
// vdc.Instance.PowerOff).
//
// The service runs in the host's namespaces (it starts and stops
// machines, which needs the host's mounts and cgroups) and only opens its
// listening sockets inside the BMC namespace, so nothing of it is
// reachable from the host's network.
package vbmc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/openneco/neco/pkg/bmc"
	"github.com/openneco/neco/pkg/redfish"
	"github.com/openneco/neco/pkg/vdc"
	"github.com/openneco/neco/pkg/vdc/host"
)

// Machine is one machine with a BMC.
type Machine struct {
	Name    string     `json:"name"`
	Serial  string     `json:"serial"`
	Address netip.Addr `json:"address"`
}

// Config is what the service serves: the vdc host (a network namespace)
// holding the BMC addresses and the machines. menu.BMCFile is one.
type Config struct {
	Host     string    `json:"host"`
	Machines []Machine `json:"machines"`
}

// ReadConfig reads and checks a configuration file.
func ReadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("vbmc: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("vbmc: %s: %w", path, err)
	}
	if c.Host == "" || len(c.Machines) == 0 {
		return nil, fmt.Errorf("vbmc: %s: want a host and at least one machine", path)
	}
	seen := map[netip.Addr]bool{}
	for _, m := range c.Machines {
		if m.Name == "" || !m.Address.Is4() || seen[m.Address] {
			return nil, fmt.Errorf("vbmc: %s: machine %+v: want a name and a unique IPv4 address", path, m)
		}
		seen[m.Address] = true
	}
	return &c, nil
}

// ReadCredentials reads the data center's BMC credentials (JSON
// {"username", "password"}).
func ReadCredentials(path string) (bmc.Credentials, error) {
	var c bmc.Credentials
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("vbmc: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("vbmc: %s: %w", path, err)
	}
	return c, c.Validate()
}

// Port is where every virtual BMC listens (HTTPS).
const Port = 443

// Server serves the virtual BMCs of one instance.
type Server struct {
	Names       vdc.Names
	Config      *Config
	Credentials bmc.Credentials
	// CertFile, if set, receives the PEM certificate the BMCs present,
	// for clients that verify it.
	CertFile string
	Log      *slog.Logger
}

// Serve listens on every machine's BMC address and serves until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	cert, err := s.certificate()
	if err != nil {
		return err
	}
	in, err := vdc.Open(s.Names)
	if err != nil {
		return err
	}
	ns := s.Names.Netns(s.Config.Host)
	var servers []*http.Server
	errc := make(chan error, len(s.Config.Machines))
	for _, m := range s.Config.Machines {
		h, err := redfish.NewHandler(redfish.Options{
			Info:     redfish.Info{ID: "1", Name: m.Name, SerialNumber: m.Serial, Manufacturer: "openneco", Model: "vdc"},
			System:   &machine{in: in, name: m.Name},
			Username: s.Credentials.Username, Password: s.Credentials.Password,
			Log: s.Log.With("machine", m.Name),
		})
		if err != nil {
			return err
		}
		var l net.Listener
		addr := netip.AddrPortFrom(m.Address, Port).String()
		if err := host.InNetns(ns, func() (err error) {
			l, err = net.Listen("tcp", addr)
			return err
		}); err != nil {
			return fmt.Errorf("vbmc: %s: listen on %s: %w", m.Name, addr, err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
			ErrorLog:  slog.NewLogLogger(s.Log.Handler(), slog.LevelDebug)}
		servers = append(servers, srv)
		go func() {
			if err := srv.ServeTLS(l, "", ""); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("vbmc: %s: %w", m.Name, err)
			}
		}()
	}
	s.Log.Info("virtual BMCs serving", "machines", len(servers), "namespace", ns, "port", Port)
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		srv.Shutdown(sctx)
	}
	return err
}

// certificate makes the BMCs' self-signed certificate, valid for every
// BMC address, and writes it to CertFile.
func (s *Server) certificate() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "vdc " + s.Names.Instance + " BMC"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	for _, m := range s.Config.Machines {
		tmpl.IPAddresses = append(tmpl.IPAddresses, m.Address.AsSlice())
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if s.CertFile != "" {
		pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if err := os.WriteFile(s.CertFile, pemCert, 0o644); err != nil {
			return tls.Certificate{}, fmt.Errorf("vbmc: %w", err)
		}
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// machine is one machine as its BMC sees it. Actions on it are serialized;
// the instance reads its ledger again for each, so a machine that vdc
// itself started or stopped meanwhile is seen as it is.
type machine struct {
	in   *vdc.Instance
	name string
	mu   sync.Mutex
}

func (m *machine) PowerState(ctx context.Context) (redfish.PowerState, error) {
	on, err := m.in.PowerState(ctx, m.name)
	if err != nil {
		return "", err
	}
	if on {
		return redfish.PowerOn, nil
	}
	return redfish.PowerOff, nil
}

func (m *machine) Reset(ctx context.Context, t redfish.ResetType) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	in := m.in
	switch t {
	case redfish.ResetOn:
		return in.PowerOn(ctx, m.name)
	case redfish.ResetForceOff:
		return in.PowerOff(ctx, m.name, true)
	case redfish.ResetGracefulShutdown:
		return in.PowerOff(ctx, m.name, false)
	case redfish.ResetForceRestart, redfish.ResetPowerCycle:
		if err := in.PowerOff(ctx, m.name, true); err != nil {
			return err
		}
		return in.PowerOn(ctx, m.name)
	case redfish.ResetGracefulRestart:
		if err := in.PowerOff(ctx, m.name, false); err != nil {
			return err
		}
		return in.PowerOn(ctx, m.name)
	}
	return fmt.Errorf("vbmc: reset type %q not supported", t)
}
