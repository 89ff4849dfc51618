package ckevault_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"golang.org/x/crypto/ssh"

	"github.com/openneco/neco/pkg/cke/ckevault"
	"github.com/openneco/neco/pkg/testutil/vaulttest"
)

// env is a dev Vault on which Init ran once.
type env struct {
	addr  string
	root  *vault.Client
	creds ckevault.Credentials
}

func newEnv(t *testing.T) *env {
	t.Helper()
	addr, _, root := vaulttest.Start(t)
	creds, err := ckevault.Init(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	return &env{addr: addr, root: root, creds: creds}
}

func (e *env) login(t *testing.T, creds ckevault.Credentials) *ckevault.Session {
	t.Helper()
	s, err := ckevault.Login(t.Context(), ckevault.LoginConfig{Address: e.addr, RoleID: creds.RoleID, SecretID: creds.SecretID})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawSecrets reads everything in cke/secrets and the CA certificates with
// the root token.
func (e *env) snapshot(t *testing.T) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, p := range []string{"cke/secrets/ssh", "cke/secrets/encryption", "cke/secrets/service-account"} {
		sec, err := e.root.Logical().Read(p)
		if err != nil || sec == nil {
			t.Fatalf("read %s: %v, %v", p, sec, err)
		}
		out[p] = sec.Data
	}
	for _, ca := range ckevault.CAs {
		sec, err := e.root.Logical().Read(ca + "/cert/ca")
		if err != nil || sec == nil {
			t.Fatalf("read %s: %v, %v", ca, sec, err)
		}
		out[ca] = map[string]any{"certificate": sec.Data["certificate"]}
	}
	return out
}

func TestInit(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	before := e.snapshot(t)

	mounts, err := e.root.Sys().ListMounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, ca := range ckevault.CAs {
		if m := mounts[ca+"/"]; m == nil || m.Type != "pki" {
			t.Errorf("mount %s: %+v", ca, m)
		}
		block, _ := pem.Decode([]byte(before[ca]["certificate"].(string)))
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", ca, err)
		}
		key, ok := cert.PublicKey.(*ecdsa.PublicKey)
		if !ok || key.Curve != elliptic.P256() || !cert.IsCA || cert.Subject.CommonName != strings.ReplaceAll(ca, "/", " ")+" CA" {
			t.Errorf("%s: key %T, CA %t, subject %s", ca, cert.PublicKey, cert.IsCA, cert.Subject)
		}
		if d := time.Until(cert.NotAfter); d < ckevault.CATTL-time.Hour || d > ckevault.CATTL+time.Hour {
			t.Errorf("%s: expires in %s", ca, d)
		}
	}
	if m := mounts["cke/secrets/"]; m == nil || m.Type != "kv" || m.Options["version"] != "1" {
		t.Errorf("mount cke/secrets: %+v", m)
	}
	if p, err := e.root.Sys().GetPolicy(ckevault.PolicyName); err != nil || p != ckevault.Policy {
		t.Errorf("policy %s: %q, %v", ckevault.PolicyName, p, err)
	}

	creds2, err := ckevault.Init(ctx, e.root)
	if err != nil {
		t.Fatalf("second init: %v", err)
	}
	if creds2.RoleID != e.creds.RoleID || creds2.SecretID == e.creds.SecretID || creds2.SecretID == "" {
		t.Errorf("credentials of the second init %+v, of the first %+v: want the same role_id, a new secret_id", creds2, e.creds)
	}
	if after := e.snapshot(t); !reflect.DeepEqual(before, after) {
		t.Errorf("the second init changed the secrets or the CAs:\nbefore %v\nafter  %v", before, after)
	}
	// Both secret_ids log in.
	e.login(t, e.creds)
	s := e.login(t, creds2)

	sec, err := s.Secrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkSecrets(t, sec)
	if string(sec.SSHPrivateKey) != before["cke/secrets/ssh"]["private_key"] || sec.EncryptionKey != before["cke/secrets/encryption"]["key"] ||
		string(sec.ServiceAccountKey) != before["cke/secrets/service-account"]["private_key"] {
		t.Error("Secrets does not return what Init stored")
	}
	for _, ca := range ckevault.CAs {
		got, err := s.CACert(ctx, ca)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(got)) != strings.TrimSpace(before[ca]["certificate"].(string)) {
			t.Errorf("CACert(%s) = %s", ca, got)
		}
	}

	t.Run("incomplete secret", func(t *testing.T) {
		if _, err := e.root.Logical().Write("cke/secrets/encryption", map[string]any{"other": "x"}); err != nil {
			t.Fatal(err)
		}
		_, err := ckevault.Init(ctx, e.root)
		if err == nil || !strings.Contains(err.Error(), "cke/secrets/encryption exists without key") {
			t.Errorf("init over an incomplete secret: %v", err)
		}
		sec, err := e.root.Logical().Read("cke/secrets/encryption")
		if err != nil || sec.Data["other"] != "x" || sec.Data["key"] != nil {
			t.Errorf("init changed the incomplete secret: %v, %v", sec, err)
		}
	})
}

func checkSecrets(t *testing.T, sec *ckevault.Secrets) {
	t.Helper()
	priv, err := ssh.ParseRawPrivateKey(sec.SSHPrivateKey)
	if err != nil {
		t.Fatalf("SSH private key: %v", err)
	}
	edPriv, ok := priv.(*ed25519.PrivateKey)
	if !ok {
		t.Fatalf("SSH private key is a %T", priv)
	}
	if !bytes.HasPrefix(sec.SSHPrivateKey, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")) {
		t.Errorf("SSH private key not in OpenSSH's format:\n%s", sec.SSHPrivateKey)
	}
	pub, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(sec.SSHAuthorizedKey))
	if err != nil || len(rest) != 0 || pub.Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("authorized key %q: %v", sec.SSHAuthorizedKey, err)
	}
	signer, err := ssh.NewSignerFromKey(*edPriv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(signer.PublicKey().Marshal(), pub.Marshal()) {
		t.Error("the authorized key is not the private key's")
	}

	key, err := base64.StdEncoding.DecodeString(sec.EncryptionKey)
	if err != nil || len(key) != 32 {
		t.Errorf("encryption key %q: %d bytes, %v", sec.EncryptionKey, len(key), err)
	}

	block, _ := pem.Decode(sec.ServiceAccountKey)
	if block == nil {
		t.Fatalf("service account key:\n%s", sec.ServiceAccountKey)
	}
	saKey, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, ok := saKey.(*rsa.PrivateKey)
	if !ok || rsaKey.N.BitLen() != 2048 {
		t.Fatalf("service account key %T", saKey)
	}
	block, _ = pem.Decode(sec.ServiceAccountPub)
	if block == nil {
		t.Fatalf("service account public key:\n%s", sec.ServiceAccountPub)
	}
	saPub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil || !rsaKey.PublicKey.Equal(saPub) {
		t.Errorf("service account public key does not match: %v", err)
	}
}

// TestPolicy checks that the engine's token can do what it needs and
// nothing else.
func TestPolicy(t *testing.T) {
	e := newEnv(t)
	s := e.login(t, e.creds)
	c := s.Client()

	self, err := c.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatal(err)
	}
	if pols, _ := self.TokenPolicies(); !reflect.DeepEqual(pols, []string{ckevault.PolicyName}) {
		t.Errorf("token policies %v, want only %s", pols, ckevault.PolicyName)
	}
	if _, err := c.Logical().Write("cke/secrets/probe", map[string]any{"x": "y"}); err != nil {
		t.Errorf("write to cke/secrets: %v", err)
	}

	denied := []struct {
		name string
		do   func() error
	}{
		{"read sys/mounts", func() error { _, err := c.Logical().Read("sys/mounts"); return err }},
		{"read sys/auth", func() error { _, err := c.Logical().Read("sys/auth"); return err }},
		{"read its policy", func() error { _, err := c.Logical().Read("sys/policies/acl/" + ckevault.PolicyName); return err }},
		{"write a policy", func() error {
			_, err := c.Logical().Write("sys/policies/acl/x", map[string]any{"policy": `path "*" { capabilities = ["sudo"] }`})
			return err
		}},
		{"read another mount", func() error { _, err := c.Logical().Read("secret/data/x"); return err }},
		{"write another mount", func() error {
			_, err := c.Logical().Write("secret/data/x", map[string]any{"data": map[string]any{"a": "b"}})
			return err
		}},
		{"generate a root CA", func() error {
			_, err := c.Logical().Write(ckevault.CAServer+"/root/generate/internal", map[string]any{"common_name": "evil"})
			return err
		}},
		{"import a CA", func() error {
			_, err := c.Logical().Write(ckevault.CAKubernetes+"/config/ca", map[string]any{"pem_bundle": "x"})
			return err
		}},
		{"delete the root CA", func() error { _, err := c.Logical().Delete(ckevault.CAKubernetes + "/root"); return err }},
		{"sign an intermediate", func() error {
			_, err := c.Logical().Write(ckevault.CAKubernetes+"/root/sign-intermediate", map[string]any{"csr": "x"})
			return err
		}},
		{"sign verbatim", func() error {
			_, err := c.Logical().Write(ckevault.CAKubernetes+"/sign-verbatim", map[string]any{"csr": "x"})
			return err
		}},
		{"create a secret_id", func() error {
			_, err := c.Logical().Write("auth/approle/role/"+ckevault.AppRoleName+"/secret-id", nil)
			return err
		}},
		{"create a token", func() error { _, err := c.Auth().Token().Create(&vault.TokenCreateRequest{}); return err }},
		{"delete a secret", func() error { _, err := c.Logical().Delete("cke/secrets/ssh"); return err }},
	}
	for _, tt := range denied {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			var re *vault.ResponseError
			if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
				t.Errorf("want 403, got %v", err)
			}
		})
	}
}

func TestLoginRefused(t *testing.T) {
	e := newEnv(t)
	_, err := ckevault.Login(t.Context(), ckevault.LoginConfig{Address: e.addr, RoleID: e.creds.RoleID, SecretID: "wrong"})
	var re *vault.ResponseError
	if !errors.As(err, &re) || re.StatusCode < 400 || re.StatusCode >= 500 {
		t.Errorf("login with a wrong secret_id: %v", err)
	}
	_, err = ckevault.Login(context.Background(), ckevault.LoginConfig{Address: e.addr, CACertPEM: []byte("not a certificate"), RoleID: e.creds.RoleID, SecretID: e.creds.SecretID})
	if err == nil {
		t.Error("login with an invalid CA certificate succeeded")
	}
}

func TestLoginTLS(t *testing.T) {
	addr, _, caPEM, root := vaulttest.StartTLS(t)
	creds, err := ckevault.Init(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ckevault.LoginConfig{Address: addr, CACertPEM: caPEM, RoleID: creds.RoleID, SecretID: creds.SecretID}
	s, err := ckevault.Login(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Issue(t.Context(), ckevault.IssueRequest{CA: ckevault.CAEtcdClient, Role: ckevault.RoleClient, CommonName: "cke", TTL: time.Hour}); err != nil {
		t.Error(err)
	}
	// Not with a CA that did not sign Vault's certificate.
	cfg.CACertPEM, err = s.CACert(t.Context(), ckevault.CAServer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ckevault.Login(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("login trusting another CA: %v", err)
	}
}
