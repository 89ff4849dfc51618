package bootserver

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/openneco/neco/pkg/pki"
)

// neco-registry, the OCI registry of every boot server (docs/registry.md):
// where it listens, for the programs that talk to it. cmd/neco-registry's
// defaults and etc/neco-registry.yml name the same addresses (a test in
// pkg/registry keeps them equal).
const (
	// RegistryPort is the public, read-only TLS listener nodes pull from,
	// on every address of the boot server.
	RegistryPort = 5000
	// RegistryWriteAddr is the plain HTTP listener pushes go through; it
	// is on loopback, so only processes on the boot server can write.
	RegistryWriteAddr = "127.0.0.1:5001"
	// RegistryWriteURL is RegistryWriteAddr as a URL.
	RegistryWriteURL = "http://" + RegistryWriteAddr
	// RegistryMetricsPort serves /health and /metrics.
	RegistryMetricsPort = 5002
	// RegistryHealthURL is the registry's /health on this boot server.
	RegistryHealthURL = "http://127.0.0.1:5002/health"
	// RegistryConfigFile is the configuration neco-worker renders from
	// the package's /usr/share/neco/neco-registry.yml.
	RegistryConfigFile = "/etc/neco-registry/config.yml"
)

// KindRegistry is the TLS server certificate of neco-registry's public
// listener (ca/server, like KindServer). It is not among CertSpecs: setup
// and `neco certs renew` do not need it; neco-worker makes sure it exists
// (EnsureRegistryCert) before it starts the registry.
const KindRegistry = "registry"

// RegistryRenewBefore is how long before its expiry EnsureRegistryCert
// replaces the registry's certificate.
const RegistryRenewBefore = 30 * 24 * time.Hour

// RegistryHost is host:port of s's registry, the registry part of an image
// reference that nodes pull (for example 10.69.0.3:5000/neco/etcd:3.6).
func RegistryHost(s Server) string {
	return net.JoinHostPort(s.Address, strconv.Itoa(RegistryPort))
}

// RegistryURL is the base URL of s's public registry listener.
func RegistryURL(s Server) string { return "https://" + RegistryHost(s) }

// RegistryCertSpec is the certificate of s's registry: CN and SANs the
// server's name and address (what nodes dial), issued by ca/server; nodes
// verify it with the server CA, p.ServerCA (/etc/neco/ca-server.crt).
func RegistryCertSpec(s Server, p Paths) CertSpec {
	return CertSpec{
		Kind: KindRegistry, Mount: MountServer, CN: s.Name(), SANs: []string{s.Address, s.Name()},
		Usage: pki.ServerAuth, Cert: p.RegistryCert, Key: p.RegistryKey, CA: p.ServerCA,
		Description: "neco-registry's public listener",
	}
}

// RegistryCertCurrent tells why the registry certificate of spec must be
// issued again, or nil: missing, not matching its key, not issued by the
// CA, expiring within RegistryRenewBefore of now, or without one of the
// SANs (the server's address changed).
func RegistryCertCurrent(spec CertSpec, now time.Time) error {
	if err := CertValid(spec); err != nil {
		return err
	}
	c, err := pki.CheckFile(spec.Cert, nil, now.Add(RegistryRenewBefore))
	if err != nil {
		return fmt.Errorf("expires within %s: %w", RegistryRenewBefore, err)
	}
	for _, san := range spec.SANs {
		if !hasSAN(c, san) {
			return fmt.Errorf("%s: certificate lacks the name %s", spec.Cert, san)
		}
	}
	return nil
}

func hasSAN(c *x509.Certificate, san string) bool {
	if ip := net.ParseIP(san); ip != nil {
		return slices.ContainsFunc(c.IPAddresses, ip.Equal)
	}
	return slices.Contains(c.DNSNames, san)
}

// EnsureRegistryCert makes sure this boot server's registry certificate
// is usable for another RegistryRenewBefore, and otherwise issues a new
// one (new key made here) through the boot server's Vault with its AppRole.
// issued tells whether it did; the registry reads the new files at its
// next TLS handshake.
func EnsureRegistryCert(ctx context.Context, c *Cluster, me Server, p Paths) (issued bool, err error) {
	spec := RegistryCertSpec(me, p)
	if RegistryCertCurrent(spec, time.Now()) == nil {
		return false, nil
	}
	if err := os.MkdirAll(p.NecoDir, 0o755); err != nil {
		return false, err
	}
	vc, err := NewVaultClient(c.VaultURL(me), p)
	if err != nil {
		return false, err
	}
	if err := Login(ctx, vc, p); err != nil {
		return false, err
	}
	if err := Issue(spec, func(csr []byte) ([]byte, error) { return signWithVault(ctx, vc, spec, csr) }); err != nil {
		return false, fmt.Errorf("registry certificate: %w", err)
	}
	return true, nil
}
