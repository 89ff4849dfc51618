package bootserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/openneco/neco/pkg/fileutil"
	"github.com/openneco/neco/pkg/pki"
)

// CertTTL is the lifetime of the certificates of boot servers.
const CertTTL = 5 * 365 * 24 * time.Hour

// Vault PKI mounts of the boot servers and the role their certificates
// are issued with.
const (
	MountServer     = "ca/server"
	MountEtcdPeer   = "ca/boot-etcd-peer"
	MountEtcdClient = "ca/boot-etcd-client"
	PKIRole         = "system"
)

// Certificate kinds a boot server asks for.
const (
	KindServer      = "server"      // TLS server certificate of etcd and Vault (ca/server)
	KindPeer        = "etcd-peer"   // etcd peer certificate (ca/boot-etcd-peer)
	KindClientRoot  = "etcd-root"   // CN=root etcd client (ca/boot-etcd-client)
	KindClientVault = "etcd-vault"  // CN=vault etcd client, Vault's storage access
	KindClientBack  = "etcd-backup" // CN=backup read-only etcd client
)

// CertSpec is what a boot server's certificate of a kind looks like.
type CertSpec struct {
	Kind        string
	Mount       string // the Vault PKI mount issuing it
	CN          string
	SANs        []string
	Usage       pki.Usage
	Cert, Key   string // files
	CA          string // file of the issuing CA
	Description string
}

// CertSpecs are the certificates of server s, with their files under p.
func CertSpecs(s Server, p Paths) []CertSpec {
	return []CertSpec{
		{KindServer, MountServer, s.Name(), []string{s.Address, s.Name(), "localhost", "127.0.0.1"}, pki.ServerAuth | pki.ClientAuth, p.ServerCert, p.ServerKey, p.ServerCA, "etcd and Vault server"},
		{KindPeer, MountEtcdPeer, s.Name(), []string{s.Address, s.Name()}, pki.ServerAuth | pki.ClientAuth, p.PeerCert, p.PeerKey, p.PeerCA, "etcd peer"},
		{KindClientRoot, MountEtcdClient, "root", nil, pki.ClientAuth, p.ClientCert, p.ClientKey, p.ClientCA, "etcd client (root)"},
		{KindClientVault, MountEtcdClient, "vault", nil, pki.ClientAuth, p.VaultEtcdCert, p.VaultEtcdKey, p.ClientCA, "etcd client of Vault"},
		{KindClientBack, MountEtcdClient, "backup", nil, pki.ClientAuth, p.BackupCert, p.BackupKey, p.ClientCA, "etcd client (backup, read-only)"},
	}
}

// CertSpecOf is the certificate of kind among CertSpecs(s, p).
func CertSpecOf(kind string, s Server, p Paths) (CertSpec, error) {
	for _, c := range CertSpecs(s, p) {
		if c.Kind == kind {
			return c, nil
		}
	}
	return CertSpec{}, fmt.Errorf("unknown certificate kind %q", kind)
}

// CertValid reports whether the certificate and key of spec are present,
// belong together and chain to the CA file.
func CertValid(spec CertSpec) error {
	if _, err := tls.LoadX509KeyPair(spec.Cert, spec.Key); err != nil {
		return err
	}
	caPEM, err := os.ReadFile(spec.CA)
	if err != nil {
		return err
	}
	ca, err := pki.ParseCert(caPEM)
	if err != nil {
		return err
	}
	_, err = pki.CheckFile(spec.Cert, ca, time.Now())
	return err
}

// installCert writes a new key and certificate so that a crash leaves
// either the old pair or the new one (a mismatched pair is detected by
// CertValid and issued again).
func installCert(spec CertSpec, keyPEM, certPEM []byte) error {
	if err := fileutil.WriteAtomic(spec.Key, keyPEM, 0o600); err != nil {
		return err
	}
	return fileutil.WriteAtomic(spec.Cert, certPEM, 0o644)
}

// Issue makes a key and CSR for spec and installs what sign returns.
func Issue(spec CertSpec, sign func(csr []byte) ([]byte, error)) error {
	key, err := pki.NewKey()
	if err != nil {
		return err
	}
	csr, err := pki.NewCSR(key, spec.CN)
	if err != nil {
		return err
	}
	cert, err := sign(csr)
	if err != nil {
		return err
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return err
	}
	if _, err := tls.X509KeyPair(cert, keyPEM); err != nil {
		return fmt.Errorf("%s certificate does not match its key: %w", spec.Kind, err)
	}
	return installCert(spec, keyPEM, cert)
}

// CheckClientCert tells, with advice, why the etcd client certificate of a
// boot server cannot be used (missing, expired, not issued by the CA).
func CheckClientCert(p Paths) error {
	caPEM, err := os.ReadFile(p.ClientCA)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s is missing: this boot server is not set up (run neco setup or neco join)", p.ClientCA)
	}
	if err != nil {
		return err
	}
	ca, err := pki.ParseCert(caPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", p.ClientCA, err)
	}
	for _, f := range []string{p.ClientCert, p.ServerCA} {
		var issuer *x509.Certificate
		if f == p.ClientCert {
			issuer = ca
		}
		if _, err := pki.CheckFile(f, issuer, time.Now()); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%s is missing: this boot server is not set up (run neco setup or neco join)", f)
			}
			return fmt.Errorf("%w; renew this boot server's certificates with: neco certs renew", err)
		}
	}
	return nil
}

// IssueFromVault re-issues every certificate of server s through vc (logged
// in), with new keys made here.
func IssueFromVault(ctx context.Context, vc *vault.Client, s Server, p Paths) error {
	for _, spec := range CertSpecs(s, p) {
		err := Issue(spec, func(csr []byte) ([]byte, error) { return signWithVault(ctx, vc, spec, csr) })
		if err != nil {
			return err
		}
	}
	return nil
}
