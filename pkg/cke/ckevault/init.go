package ckevault

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"
	"golang.org/x/crypto/ssh"
)

// Credentials are what the engine logs in with (AppRole cke).
type Credentials struct {
	RoleID   string
	SecretID string
}

// Init sets up, idempotently, the engine's Vault layout with root's token:
// the CAs (EnsureCAs), the KV mount and the secrets in it (generated only
// when absent), the policy, the AppRole. It returns the role's role_id and a
// new secret_id; secret_ids returned earlier stay valid.
//
// Two Inits at the same time could both generate a secret (KV version 1 has
// no check-and-set); run one at a time.
func Init(ctx context.Context, root *vault.Client) (Credentials, error) {
	if err := EnsureCAs(ctx, root); err != nil {
		return Credentials{}, err
	}
	if err := ensureMount(ctx, root, SecretsMount, &vault.MountInput{
		Type: "kv", Description: "secrets of the Kubernetes engine", Options: map[string]string{"version": "1"},
	}); err != nil {
		return Credentials{}, err
	}
	if err := ensureSecrets(ctx, root); err != nil {
		return Credentials{}, err
	}
	if err := root.Sys().PutPolicyWithContext(ctx, PolicyName, Policy); err != nil {
		return Credentials{}, fmt.Errorf("ckevault: write policy %s: %w", PolicyName, err)
	}
	auths, err := root.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return Credentials{}, fmt.Errorf("ckevault: list auth methods: %w", err)
	}
	if _, ok := auths["approle/"]; !ok {
		if err := root.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &vault.EnableAuthOptions{Type: "approle"}); err != nil {
			return Credentials{}, fmt.Errorf("ckevault: enable approle: %w", err)
		}
	}
	role := "auth/approle/role/" + AppRoleName
	if _, err := root.Logical().WriteWithContext(ctx, role, map[string]any{
		"token_policies": []string{PolicyName},
		// Not Vault's default policy (cubbyhole, wrapping, ...) either.
		"token_no_default_policy": true,
		"token_ttl":               seconds(TokenTTL),
		"token_max_ttl":           seconds(TokenMaxTTL),
		"token_type":              "service", // batch tokens cannot be renewed
		"secret_id_ttl":           "0",
		"secret_id_num_uses":      0,
	}); err != nil {
		return Credentials{}, fmt.Errorf("ckevault: write approle %s: %w", AppRoleName, err)
	}
	sec, err := root.Logical().ReadWithContext(ctx, role+"/role-id")
	if err != nil {
		return Credentials{}, fmt.Errorf("ckevault: read role_id of %s: %w", AppRoleName, err)
	}
	roleID, _ := dataString(sec, "role_id")
	if roleID == "" {
		return Credentials{}, fmt.Errorf("ckevault: approle %s has no role_id", AppRoleName)
	}
	sec, err = root.Logical().WriteWithContext(ctx, role+"/secret-id", map[string]any{
		"metadata": `{"created_by":"ckevault.Init"}`,
	})
	if err != nil {
		return Credentials{}, fmt.Errorf("ckevault: create secret_id of %s: %w", AppRoleName, err)
	}
	secretID, _ := dataString(sec, "secret_id")
	if secretID == "" {
		return Credentials{}, fmt.Errorf("ckevault: vault answered no secret_id for %s", AppRoleName)
	}
	return Credentials{RoleID: roleID, SecretID: secretID}, nil
}

// EnsureCAs mounts the PKIs of CAs that are missing and generates a root CA
// in each that has none; existing CAs are kept. root has a root token.
func EnsureCAs(ctx context.Context, root *vault.Client) error {
	for _, ca := range CAs {
		if err := ensureMount(ctx, root, ca, &vault.MountInput{
			Type: "pki", Description: "Kubernetes engine CA " + ca,
			Config: vault.MountConfigInput{MaxLeaseTTL: seconds(CATTL), DefaultLeaseTTL: "43800h"},
		}); err != nil {
			return err
		}
		cert, err := readCACert(ctx, root, ca)
		if err != nil {
			return err
		}
		if cert != nil {
			continue
		}
		if _, err := root.Logical().WriteWithContext(ctx, ca+"/root/generate/internal", map[string]any{
			"common_name": strings.ReplaceAll(ca, "/", " ") + " CA",
			"ttl":         seconds(CATTL),
			"key_type":    "ec",
			"key_bits":    256,
		}); err != nil {
			return fmt.Errorf("ckevault: generate root CA of %s: %w", ca, err)
		}
	}
	return nil
}

// ensureMount mounts in at path unless a mount of the same type is there.
func ensureMount(ctx context.Context, root *vault.Client, path string, in *vault.MountInput) error {
	mounts, err := root.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return fmt.Errorf("ckevault: list mounts: %w", err)
	}
	if m, ok := mounts[path+"/"]; ok {
		if m.Type != in.Type {
			return fmt.Errorf("ckevault: %s is a %s mount, not %s", path, m.Type, in.Type)
		}
		if v := in.Options["version"]; v != "" && m.Options["version"] != "" && m.Options["version"] != v {
			return fmt.Errorf("ckevault: %s is a %s mount of version %s, not %s", path, m.Type, m.Options["version"], v)
		}
		return nil
	}
	if err := root.Sys().MountWithContext(ctx, path, in); err != nil {
		return fmt.Errorf("ckevault: mount %s at %s: %w", in.Type, path, err)
	}
	return nil
}

// readCACert is the PEM certificate of ca's root, nil if it has none.
func readCACert(ctx context.Context, c *vault.Client, ca string) ([]byte, error) {
	sec, err := c.Logical().ReadWithContext(ctx, ca+"/cert/ca")
	if err != nil {
		// A mount without an issuer answers 400 in recent versions.
		var re *vault.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
			return nil, nil
		}
		return nil, fmt.Errorf("ckevault: read CA certificate of %s: %w", ca, err)
	}
	cert, _ := dataString(sec, "certificate")
	if cert == "" {
		return nil, nil
	}
	return []byte(cert), nil
}

// ensureSecrets generates each secret of cke/secrets that is absent; an
// incomplete entry is an error, never replaced.
func ensureSecrets(ctx context.Context, root *vault.Client) error {
	for _, s := range []struct {
		path     string
		fields   []string
		generate func() (map[string]any, error)
	}{
		{secretSSH, []string{"private_key", "authorized_key"}, generateSSHKey},
		{secretEncryption, []string{"key"}, generateEncryptionKey},
		{secretServiceAccount, []string{"private_key", "public_key"}, generateServiceAccountKey},
	} {
		sec, err := root.Logical().ReadWithContext(ctx, s.path)
		if err != nil {
			return fmt.Errorf("ckevault: read %s: %w", s.path, err)
		}
		if sec != nil {
			for _, f := range s.fields {
				if v, _ := dataString(sec, f); v == "" {
					return fmt.Errorf("ckevault: %s exists without %s: complete it (or delete it to have a new one generated)", s.path, f)
				}
			}
			continue
		}
		data, err := s.generate()
		if err != nil {
			return fmt.Errorf("ckevault: generate %s: %w", s.path, err)
		}
		if _, err := root.Logical().WriteWithContext(ctx, s.path, data); err != nil {
			return fmt.Errorf("ckevault: write %s: %w", s.path, err)
		}
	}
	return nil
}

// generateSSHKey is an ed25519 key pair: the private key in OpenSSH's PEM
// format, the public key as an authorized_keys line.
func generateSSHKey() (map[string]any, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "cke")
	if err != nil {
		return nil, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " cke"
	return map[string]any{"private_key": string(pem.EncodeToMemory(block)), "authorized_key": line}, nil
}

// generateEncryptionKey is 32 random bytes in base64, a key of
// kube-apiserver's secretbox and aescbc providers.
func generateEncryptionKey() (map[string]any, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return map[string]any{"key": base64.StdEncoding.EncodeToString(key)}, nil
}

// generateServiceAccountKey is the key pair that signs service account
// tokens: RSA 2048 (RS256), which every consumer of the tokens' OIDC keys
// accepts, in PEM (PKCS #8 and PKIX).
func generateServiceAccountKey() (map[string]any, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"public_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
	}, nil
}

// dataString is sec.Data[field] if it is a string.
func dataString(sec *vault.Secret, field string) (string, bool) {
	if sec == nil || sec.Data == nil {
		return "", false
	}
	s, ok := sec.Data[field].(string)
	return s, ok
}

// seconds is d in Vault's duration syntax.
func seconds(d time.Duration) string { return fmt.Sprintf("%ds", int64(d/time.Second)) }
