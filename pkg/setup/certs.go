package setup

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/openneco/neco/pkg/fileutil"
	"github.com/openneco/neco/pkg/pki"
)

// CATTL is the lifetime of the boot server CAs. The temporary CAs of the
// bootstrap become Vault's CAs, so they live as long as the reference's.
const CATTL = 10 * 365 * 24 * time.Hour

// CertTTL is the lifetime of the certificates setup issues.
const CertTTL = 5 * 365 * 24 * time.Hour

// Vault PKI mounts of the boot servers and the role setup issues with.
const (
	MountServer     = "ca/server"
	MountEtcdPeer   = "ca/boot-etcd-peer"
	MountEtcdClient = "ca/boot-etcd-client"
	PKIRole         = "system"
)

// TempCAs are the three CAs of a bootstrap before Vault holds them.
type TempCAs struct {
	Server, Peer, Client *pki.CA
}

// LoadOrCreateTempCAs keeps the temporary CAs in dir (keys 0600), so that a
// leader that crashed mid-setup resumes with the CAs its peers already trust.
func LoadOrCreateTempCAs(dir string) (*TempCAs, error) {
	names := []string{"server", "etcd-peer", "etcd-client"}
	cas := make([]*pki.CA, 3)
	for i, n := range names {
		certPath, keyPath := filepath.Join(dir, "ca-"+n+".crt"), filepath.Join(dir, "ca-"+n+".key")
		c, errc := os.ReadFile(certPath)
		k, errk := os.ReadFile(keyPath)
		if errc == nil && errk == nil {
			ca, err := pki.ParseCA(c, k)
			if err != nil {
				return nil, fmt.Errorf("temporary CA %s in %s: %w", n, dir, err)
			}
			cas[i] = ca
			continue
		}
		ca, err := pki.NewCA("neco boot "+n+" CA", CATTL)
		if err != nil {
			return nil, err
		}
		kp, err := ca.KeyPEM()
		if err != nil {
			return nil, err
		}
		if err := fileutil.WriteAtomic(keyPath, kp, 0o600); err != nil {
			return nil, err
		}
		if err := fileutil.WriteAtomic(certPath, ca.CertPEM(), 0o644); err != nil {
			return nil, err
		}
		cas[i] = ca
	}
	return &TempCAs{Server: cas[0], Peer: cas[1], Client: cas[2]}, nil
}

// certSpec is what a boot server's certificate of a kind looks like.
type certSpec struct {
	Kind        string
	Mount       string // the Vault PKI mount issuing it
	CN          string
	SANs        []string
	Usage       pki.Usage
	Cert, Key   string // files
	CA          string // file of the issuing CA
	Description string
}

func certSpecs(s Server, p Paths) []certSpec {
	return []certSpec{
		{KindServer, MountServer, s.Name(), []string{s.Address, s.Name(), "localhost", "127.0.0.1"}, pki.ServerAuth | pki.ClientAuth, p.ServerCert, p.ServerKey, p.ServerCA, "etcd and Vault server"},
		{KindPeer, MountEtcdPeer, s.Name(), []string{s.Address, s.Name()}, pki.ServerAuth | pki.ClientAuth, p.PeerCert, p.PeerKey, p.PeerCA, "etcd peer"},
		{KindClientRoot, MountEtcdClient, "root", nil, pki.ClientAuth, p.ClientCert, p.ClientKey, p.ClientCA, "etcd client (root)"},
		{KindClientVault, MountEtcdClient, "vault", nil, pki.ClientAuth, p.VaultEtcdCert, p.VaultEtcdKey, p.ClientCA, "etcd client of Vault"},
		{KindClientBack, MountEtcdClient, "backup", nil, pki.ClientAuth, p.BackupCert, p.BackupKey, p.ClientCA, "etcd client (backup, read-only)"},
	}
}

func specOf(kind string, s Server, p Paths) (certSpec, error) {
	for _, c := range certSpecs(s, p) {
		if c.Kind == kind {
			return c, nil
		}
	}
	return certSpec{}, fmt.Errorf("unknown certificate kind %q", kind)
}

// Sign issues a temporary certificate of kind for server s.
func (t *TempCAs) Sign(kind string, s Server, csr *x509.CertificateRequest) ([]byte, error) {
	spec, err := specOf(kind, s, Paths{})
	if err != nil {
		return nil, err
	}
	ca := map[string]*pki.CA{MountServer: t.Server, MountEtcdPeer: t.Peer, MountEtcdClient: t.Client}[spec.Mount]
	return ca.Sign(csr, spec.CN, spec.SANs, spec.Usage, CertTTL)
}

// certValid reports whether the certificate and key of spec are present,
// belong together and chain to the CA file.
func certValid(spec certSpec) error {
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
// certValid and issued again).
func installCert(spec certSpec, keyPEM, certPEM []byte) error {
	if err := fileutil.WriteAtomic(spec.Key, keyPEM, 0o600); err != nil {
		return err
	}
	return fileutil.WriteAtomic(spec.Cert, certPEM, 0o644)
}

// issueWith makes a key and CSR for spec and installs what sign returns.
func issueWith(spec certSpec, sign func(csr []byte) ([]byte, error)) error {
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
