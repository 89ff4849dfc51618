package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/openneco/neco/pkg/cke/ckevault"
	"github.com/openneco/neco/pkg/cke/units"
)

// roles maps units' role names to ckevault's roles.
var roles = map[string]ckevault.RoleSpec{
	units.RoleServer:  ckevault.RoleServer,
	units.RoleClient:  ckevault.RoleClient,
	units.RolePeer:    ckevault.RolePeer,
	units.RoleAdmin:   ckevault.RoleAdmin,
	units.RoleKubelet: ckevault.RoleKubelet,
}

// issuer issues the units' certificates from a Vault session (op.Issuer).
type issuer struct{ s *ckevault.Session }

func (i issuer) Issue(ctx context.Context, spec units.CertSpec, ttl time.Duration) (cert, key []byte, notAfter time.Time, err error) {
	role, ok := roles[spec.Role]
	if !ok {
		return nil, nil, time.Time{}, fmt.Errorf("unknown role %q", spec.Role)
	}
	c, err := i.s.Issue(ctx, ckevault.IssueRequest{CA: spec.CA, Role: role, CommonName: spec.CommonName,
		Organization: role.Organization, IPSANs: spec.IPSANs, DNSSANs: spec.DNSSANs, TTL: ttl})
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	return c.CertPEM, c.KeyPEM, c.NotAfter, nil
}

func (i issuer) CACert(ctx context.Context, ca string) ([]byte, error) { return i.s.CACert(ctx, ca) }

// secrets are the engine's secrets as the files the units read.
type secrets struct {
	files       map[string][]byte
	fingerprint string
	sshKey      []byte
}

func loadSecrets(ctx context.Context, s *ckevault.Session) (*secrets, error) {
	sec, err := s.Secrets(ctx)
	if err != nil {
		return nil, err
	}
	enc := fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - secretbox:
      keys:
      - name: key1
        secret: %s
  - identity: {}
`, sec.EncryptionKey)
	files := map[string][]byte{
		units.SecretEncryptionConfig:  []byte(enc),
		units.SecretServiceAccountKey: sec.ServiceAccountKey,
		units.SecretServiceAccountPub: sec.ServiceAccountPub,
	}
	h := sha256.New()
	for _, k := range []string{units.SecretEncryptionConfig, units.SecretServiceAccountKey, units.SecretServiceAccountPub} {
		h.Write(files[k])
	}
	return &secrets{files: files, fingerprint: hex.EncodeToString(h.Sum(nil))[:16], sshKey: sec.SSHPrivateKey}, nil
}
