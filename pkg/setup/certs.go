package setup

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/fileutil"
	"github.com/openneco/neco/pkg/pki"
)

// CATTL is the lifetime of the boot server CAs. The temporary CAs of the
// bootstrap become Vault's CAs, so they live as long as the reference's.
const CATTL = 10 * 365 * 24 * time.Hour

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

// Sign issues a temporary certificate of kind for server s.
func (t *TempCAs) Sign(kind string, s bootserver.Server, csr *x509.CertificateRequest) ([]byte, error) {
	spec, err := bootserver.CertSpecOf(kind, s, bootserver.Paths{})
	if err != nil {
		return nil, err
	}
	ca := map[string]*pki.CA{bootserver.MountServer: t.Server, bootserver.MountEtcdPeer: t.Peer, bootserver.MountEtcdClient: t.Client}[spec.Mount]
	return ca.Sign(csr, spec.CN, spec.SANs, spec.Usage, bootserver.CertTTL)
}
