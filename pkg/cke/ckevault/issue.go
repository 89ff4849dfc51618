package ckevault

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// IssueRequest asks for a certificate and its key.
type IssueRequest struct {
	CA   string // one of CAs
	Role RoleSpec
	// CommonName is required; it is not copied into the SANs.
	CommonName string
	// Organization, when set, must be Role.Organization (the role fixes it).
	Organization string
	IPSANs       []string
	DNSSANs      []string
	// TTL is the certificate's lifetime: at least a second, at most
	// Role.MaxTTL.
	TTL time.Duration
}

// Certificate is an issued certificate with its key (EC P-256) and the
// certificate of the CA that issued it, in PEM.
type Certificate struct {
	CertPEM  []byte
	KeyPEM   []byte
	CAPEM    []byte
	NotAfter time.Time
	Serial   string // as Vault prints it: hex bytes separated by colons
}

func (r *IssueRequest) validate() error {
	if err := checkCA(r.CA); err != nil {
		return err
	}
	if err := r.Role.validate(); err != nil {
		return err
	}
	switch {
	case r.CommonName == "":
		return fmt.Errorf("%w: no common name", ErrInvalidRequest)
	case r.Organization != "" && r.Organization != r.Role.Organization:
		return fmt.Errorf("%w: organization %q, but role %s issues O=%q (a role fixes the organization: use one with %q)",
			ErrInvalidRequest, r.Organization, r.Role.Name, r.Role.Organization, r.Organization)
	case r.TTL < time.Second:
		return fmt.Errorf("%w: ttl %s: at least 1s", ErrInvalidRequest, r.TTL)
	case r.TTL > r.Role.MaxTTL:
		return fmt.Errorf("%w: ttl %s exceeds the maximum %s of role %s", ErrInvalidRequest, r.TTL, r.Role.MaxTTL, r.Role.Name)
	}
	for _, ip := range r.IPSANs {
		if _, err := netip.ParseAddr(ip); err != nil {
			return fmt.Errorf("%w: IP SAN %q is not an IP address", ErrInvalidRequest, ip)
		}
	}
	for _, n := range r.DNSSANs {
		if n == "" || strings.ContainsAny(n, ", ") {
			return fmt.Errorf("%w: DNS SAN %q", ErrInvalidRequest, n)
		}
	}
	return nil
}

func (r RoleSpec) validate() error {
	switch {
	case r.Name == "" || strings.ContainsAny(r.Name, "/ "):
		return fmt.Errorf("%w: role name %q", ErrInvalidRequest, r.Name)
	case !r.Server && !r.Client:
		return fmt.Errorf("%w: role %s is neither for servers nor for clients", ErrInvalidRequest, r.Name)
	case r.MaxTTL < time.Second || r.MaxTTL > CATTL:
		return fmt.Errorf("%w: role %s: max ttl %s not within 1s and %s", ErrInvalidRequest, r.Name, r.MaxTTL, CATTL)
	}
	return nil
}

// Issue issues a certificate and a new key from req.CA, writing the role
// first if this session has not yet.
func (s *Session) Issue(ctx context.Context, req IssueRequest) (*Certificate, error) {
	if err := req.validate(); err != nil {
		return nil, fmt.Errorf("ckevault: issue %q: %w", req.CommonName, err)
	}
	data := map[string]any{
		"common_name":          req.CommonName,
		"ttl":                  seconds(req.TTL),
		"exclude_cn_from_sans": true,
		"format":               "pem",
	}
	if len(req.IPSANs) > 0 {
		data["ip_sans"] = strings.Join(req.IPSANs, ",")
	}
	if len(req.DNSSANs) > 0 {
		data["alt_names"] = strings.Join(req.DNSSANs, ",")
	}
	path := req.CA + "/issue/" + req.Role.Name
	var sec *vault.Secret
	for attempt := 0; ; attempt++ {
		if err := s.ensureRole(ctx, req.CA, req.Role); err != nil {
			return nil, err
		}
		var err error
		sec, err = s.client.Logical().WriteWithContext(ctx, path, data)
		if err == nil {
			break
		}
		// The role was deleted since this session wrote it: write it again.
		var re *vault.ResponseError
		if attempt == 0 && errors.As(err, &re) && strings.Contains(strings.Join(re.Errors, " "), "unknown role") {
			s.forgetRole(req.CA, req.Role.Name)
			continue
		}
		return nil, fmt.Errorf("ckevault: issue %q from %s: %w", req.CommonName, path, err)
	}
	cert, _ := dataString(sec, "certificate")
	key, _ := dataString(sec, "private_key")
	ca, _ := dataString(sec, "issuing_ca")
	serial, _ := dataString(sec, "serial_number")
	block, _ := pem.Decode([]byte(cert))
	if block == nil || key == "" || ca == "" {
		return nil, fmt.Errorf("ckevault: issue %q from %s: vault answered no certificate, key or CA", req.CommonName, path)
	}
	parsed, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ckevault: issue %q from %s: %w", req.CommonName, path, err)
	}
	return &Certificate{
		CertPEM:  []byte(cert + "\n"),
		KeyPEM:   []byte(key + "\n"),
		CAPEM:    []byte(ca + "\n"),
		NotAfter: parsed.NotAfter,
		Serial:   serial,
	}, nil
}

// ensureRole writes role on ca unless this session did.
func (s *Session) ensureRole(ctx context.Context, ca string, role RoleSpec) error {
	s.mu.Lock()
	defer s.mu.Unlock() // role writes are rare: issuing waits for them
	if have, ok := s.roles[ca][role.Name]; ok {
		if have != role {
			return fmt.Errorf("ckevault: %w: role %s of %s is already %+v in this session, not %+v", ErrInvalidRequest, role.Name, ca, have, role)
		}
		return nil
	}
	data := RoleData(role)
	if _, err := s.client.Logical().WriteWithContext(ctx, ca+"/roles/"+role.Name, data); err != nil {
		return fmt.Errorf("ckevault: write role %s of %s: %w", role.Name, ca, err)
	}
	if s.roles[ca] == nil {
		s.roles[ca] = map[string]RoleSpec{}
	}
	s.roles[ca][role.Name] = role
	return nil
}

// RoleData are the parameters of the Vault PKI role that issues role's
// certificates (for whoever writes the role: the engine's session, ckecli).
func RoleData(role RoleSpec) map[string]any {
	return map[string]any{
		"allow_any_name":              true,
		"allow_ip_sans":               true,
		"allow_localhost":             true,
		"allow_wildcard_certificates": false,
		"enforce_hostnames":           false,
		"require_cn":                  true,
		"server_flag":                 role.Server,
		"client_flag":                 role.Client,
		"code_signing_flag":           false,
		"email_protection_flag":       false,
		"key_type":                    "ec",
		"key_bits":                    256,
		"key_usage":                   []string{"DigitalSignature"},
		"ext_key_usage":               []string{},
		"organization":                role.Organization,
		"max_ttl":                     seconds(role.MaxTTL),
		"ttl":                         seconds(min(role.MaxTTL, time.Hour)),
		// Issued certificates are not kept in Vault's storage: the engine
		// issues many short-lived ones and revokes none.
		"no_store": true,
	}
}

func (s *Session) forgetRole(ca, name string) {
	s.mu.Lock()
	delete(s.roles[ca], name)
	s.mu.Unlock()
}

// CACert is the PEM certificate of ca's root.
func (s *Session) CACert(ctx context.Context, ca string) ([]byte, error) {
	if err := checkCA(ca); err != nil {
		return nil, fmt.Errorf("ckevault: %w", err)
	}
	cert, err := readCACert(ctx, s.client, ca)
	if err != nil {
		return nil, err
	}
	if cert == nil {
		return nil, fmt.Errorf("ckevault: %s has no CA certificate: run ckecli vault init", ca)
	}
	return append(cert, '\n'), nil
}

// Secrets are the engine's secrets in cke/secrets.
type Secrets struct {
	// SSHPrivateKey is an ed25519 key in OpenSSH's PEM format;
	// SSHAuthorizedKey is its public key as an authorized_keys line.
	SSHPrivateKey    []byte
	SSHAuthorizedKey string
	// EncryptionKey is 32 bytes in base64, a key of kube-apiserver's
	// secretbox or aescbc encryption provider.
	EncryptionKey string
	// ServiceAccountKey signs service account tokens (RSA 2048, PKCS #8
	// PEM); ServiceAccountPub verifies them (PKIX PEM).
	ServiceAccountKey []byte
	ServiceAccountPub []byte
}

// Secrets reads the engine's secrets.
func (s *Session) Secrets(ctx context.Context) (*Secrets, error) {
	read := func(path string, fields ...string) ([]string, error) {
		sec, err := s.client.Logical().ReadWithContext(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("ckevault: read %s: %w", path, err)
		}
		if sec == nil {
			return nil, fmt.Errorf("ckevault: %s does not exist: run ckecli vault init", path)
		}
		vals := make([]string, len(fields))
		for i, f := range fields {
			if vals[i], _ = dataString(sec, f); vals[i] == "" {
				return nil, fmt.Errorf("ckevault: %s has no %s", path, f)
			}
		}
		return vals, nil
	}
	ssh, err := read(secretSSH, "private_key", "authorized_key")
	if err != nil {
		return nil, err
	}
	enc, err := read(secretEncryption, "key")
	if err != nil {
		return nil, err
	}
	sa, err := read(secretServiceAccount, "private_key", "public_key")
	if err != nil {
		return nil, err
	}
	return &Secrets{
		SSHPrivateKey:     []byte(ssh[0]),
		SSHAuthorizedKey:  ssh[1],
		EncryptionKey:     enc[0],
		ServiceAccountKey: []byte(sa[0]),
		ServiceAccountPub: []byte(sa[1]),
	}, nil
}
