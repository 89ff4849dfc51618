package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// loadOrCreateCert loads the HTTPS certificate. When neither file exists it
// creates a self-signed certificate for the host of advertise-url-https,
// localhost and the loopback addresses, so that a fresh server works; real
// deployments install a certificate issued by their CA.
func loadOrCreateCert(cfg *Config) (*tls.Config, error) {
	_, errCert := os.Stat(cfg.ServerCert)
	_, errKey := os.Stat(cfg.ServerKey)
	if errors.Is(errCert, fs.ErrNotExist) && errors.Is(errKey, fs.ErrNotExist) {
		if err := createSelfSigned(cfg); err != nil {
			return nil, fmt.Errorf("create a self-signed HTTPS certificate: %w", err)
		}
		slog.Warn("sabakan: created a self-signed HTTPS certificate", "cert", cfg.ServerCert, "key", cfg.ServerKey)
	}
	pair, err := tls.LoadX509KeyPair(cfg.ServerCert, cfg.ServerKey)
	if err != nil {
		return nil, fmt.Errorf("HTTPS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}, nil
}

func createSelfSigned(cfg *Config) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	hosts := []string{"localhost"}
	if u, err := url.Parse(cfg.AdvertiseURLHTTPS); err == nil && u.Hostname() != "" {
		hosts = append(hosts, u.Hostname())
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "sabakan"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path string
		typ  string
		der  []byte
		perm os.FileMode
	}{{cfg.ServerKey, "EC PRIVATE KEY", keyDER, 0o600}, {cfg.ServerCert, "CERTIFICATE", der, 0o644}} {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), f.perm); err != nil {
			return err
		}
	}
	return nil
}
