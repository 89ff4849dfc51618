package setup

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/fileutil"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/services"
)

// Vault names setup creates.
const (
	// BootServerRole is the AppRole (and policy) of boot servers; its
	// role_id is this well-known name, the secret_id is the secret.
	BootServerRole = "boot-server"
	// VaultEtcdPath is Vault's storage prefix in etcd.
	VaultEtcdPath = "/vault/"
)

// KubernetesCAs are the PKI mounts the Kubernetes engine (CKE) issues from;
// setup creates them with generated root CAs so that the engine finds them.
var KubernetesCAs = []string{
	"cke/ca-server", "cke/ca-etcd-peer", "cke/ca-etcd-client",
	"cke/ca-kubernetes", "cke/ca-kubernetes-aggregation", "cke/ca-kubernetes-webhook",
}

const bootServerPolicy = `# Boot servers: issue certificates of the boot server CAs and let new boot
# servers in (neco vault issue-join-token).
path "ca/+/sign/system" { capabilities = ["create", "update"] }
path "ca/+/issue/system" { capabilities = ["create", "update"] }
path "ca/+/cert/ca" { capabilities = ["read"] }
path "auth/approle/role/boot-server/secret-id" { capabilities = ["create", "update"] }
path "auth/token/lookup-self" { capabilities = ["read"] }
path "sys/seal-status" { capabilities = ["read"] }
`

// VaultUnit is the Vault service of a boot server.
func VaultUnit(p Paths) (services.Unit, error) {
	cmd, err := services.Command("vault", "server", "-config="+p.VaultConfig, "-log-level=warn")
	if err != nil {
		return services.Unit{}, err
	}
	return services.Unit{Name: "vault", Description: "Vault of the neco boot servers", Command: cmd, StopTimeout: 30 * time.Second}, nil
}

// WriteVaultConfig writes Vault's configuration (JSON, which Vault reads as
// it reads HCL): HA storage in etcd as user vault, TLS on the server's address.
func WriteVaultConfig(c *Cluster, me Server, servers []Server, p Paths) error {
	cfg := map[string]any{
		"storage": map[string]any{"etcd": map[string]string{
			"address":       strings.Join(c.EtcdEndpoints(servers), ","),
			"etcd_api":      "v3",
			"ha_enabled":    "true",
			"path":          VaultEtcdPath,
			"sync":          "false",
			"tls_ca_file":   p.ServerCA,
			"tls_cert_file": p.VaultEtcdCert,
			"tls_key_file":  p.VaultEtcdKey,
		}},
		"listener": map[string]any{"tcp": map[string]string{
			"address":         net.JoinHostPort(me.Address, strconv.Itoa(c.VaultPort)),
			"cluster_address": net.JoinHostPort(me.Address, strconv.Itoa(c.VaultClusterPort)),
			"tls_cert_file":   p.ServerCert,
			"tls_key_file":    p.ServerKey,
		}},
		"api_addr":      c.VaultURL(me),
		"cluster_addr":  c.VaultClusterURL(me),
		"disable_mlock": true,
		"ui":            false,
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return fileutil.WriteAtomic(p.VaultConfig, data, 0o644)
}

// NewVaultClient is a client of the Vault at url that trusts the server CA.
func NewVaultClient(url string, p Paths) (*vault.Client, error) {
	cfg := vault.DefaultConfig()
	cfg.Address = url
	cfg.Timeout = 30 * time.Second
	cfg.MaxRetries = 4
	if err := cfg.ConfigureTLS(&vault.TLSConfig{CACert: p.ServerCA}); err != nil {
		return nil, err
	}
	c, err := vault.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.ClearToken()
	return c, nil
}

// waitVaultAPI waits until Vault answers its seal status.
func waitVaultAPI(ctx context.Context, c *vault.Client) (*vault.SealStatusResponse, error) {
	var st *vault.SealStatusResponse
	lastErr, err := poll(ctx, "vault's API at "+c.Address(), 500*time.Millisecond, nil, func(ctx context.Context) (bool, error) {
		var err error
		st, err = c.Sys().SealStatusWithContext(ctx)
		return err == nil, err
	})
	if err != nil {
		return nil, fmt.Errorf("vault at %s does not answer: %v", c.Address(), cmp.Or(lastErr, err))
	}
	return st, nil
}

// Unseal unseals the Vault of c with key unless it is unsealed, and waits
// until it serves (active or standby).
func Unseal(ctx context.Context, c *vault.Client, key string) error {
	st, err := waitVaultAPI(ctx, c)
	if err != nil {
		return err
	}
	if !st.Initialized {
		return fmt.Errorf("vault at %s is not initialised: run neco setup first", c.Address())
	}
	if st.Sealed {
		st, err = c.Sys().UnsealWithContext(ctx, key)
		if err != nil {
			return fmt.Errorf("unseal vault at %s: %w", c.Address(), err)
		}
		if st.Sealed {
			return fmt.Errorf("vault at %s is still sealed: the unseal key is wrong", c.Address())
		}
	}
	lastErr, err := poll(ctx, "vault at "+c.Address()+" to serve after unsealing", 300*time.Millisecond, nil, func(ctx context.Context) (bool, error) {
		h, err := c.Sys().HealthWithContext(ctx)
		if err != nil {
			return false, err
		}
		switch {
		case !h.Initialized || h.Sealed:
			return false, fmt.Errorf("initialized %t, sealed %t", h.Initialized, h.Sealed)
		case h.Standby && h.ClusterID == "":
			return false, errors.New("a standby without a cluster ID yet")
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("vault at %s did not become ready after unsealing: %v", c.Address(), cmp.Or(lastErr, err))
	}
	return nil
}

// UnsealLocal unseals me's Vault with the unseal key stored in etcd.
func UnsealLocal(ctx context.Context, client *clientv3.Client, c *Cluster, me Server, p Paths) error {
	key, err := storage.New(client).UnsealKey(ctx)
	if err != nil {
		return err
	}
	vc, err := NewVaultClient(c.VaultURL(me), p)
	if err != nil {
		return err
	}
	return Unseal(ctx, vc, key)
}

// configureVault creates, idempotently, the PKI mounts (importing the
// temporary CAs so certificates already issued stay valid), roles, the
// boot-server policy and AppRole, and the Kubernetes CAs. c has a root token.
func configureVault(ctx context.Context, c *vault.Client, cas *TempCAs) error {
	mounts, err := c.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return fmt.Errorf("vault: list mounts: %w", err)
	}
	mount := func(path, desc string) (bool, error) {
		if _, ok := mounts[path+"/"]; ok {
			return false, nil
		}
		err := c.Sys().MountWithContext(ctx, path, &vault.MountInput{
			Type: "pki", Description: desc,
			Config: vault.MountConfigInput{MaxLeaseTTL: "87600h", DefaultLeaseTTL: "43800h"},
		})
		if err != nil {
			return false, fmt.Errorf("vault: mount %s: %w", path, err)
		}
		return true, nil
	}
	for _, m := range []struct {
		path string
		ca   interface {
			CertPEM() []byte
			KeyPEM() ([]byte, error)
		}
		server, client bool
	}{
		{MountServer, cas.Server, true, true},
		{MountEtcdPeer, cas.Peer, true, true},
		{MountEtcdClient, cas.Client, false, true},
	} {
		if _, err := mount(m.path, "neco boot server CA "+m.path); err != nil {
			return err
		}
		sec, err := c.Logical().ReadWithContext(ctx, m.path+"/cert/ca")
		if err != nil || sec == nil || sec.Data["certificate"] == "" {
			key, err := m.ca.KeyPEM()
			if err != nil {
				return err
			}
			if _, err := c.Logical().WriteWithContext(ctx, m.path+"/config/ca", map[string]any{
				"pem_bundle": string(key) + string(m.ca.CertPEM()),
			}); err != nil {
				return fmt.Errorf("vault: import CA into %s: %w", m.path, err)
			}
		}
		if _, err := c.Logical().WriteWithContext(ctx, m.path+"/roles/"+PKIRole, map[string]any{
			"allow_any_name":      true,
			"allow_ip_sans":       true,
			"enforce_hostnames":   false,
			"use_csr_common_name": false,
			"use_csr_sans":        false,
			"server_flag":         m.server,
			"client_flag":         m.client,
			"key_type":            "any",
			"max_ttl":             "43800h",
			"ttl":                 "43800h",
		}); err != nil {
			return fmt.Errorf("vault: role %s/roles/%s: %w", m.path, PKIRole, err)
		}
	}
	for _, path := range KubernetesCAs {
		created, err := mount(path, "Kubernetes engine CA "+path)
		if err != nil {
			return err
		}
		sec, _ := c.Logical().ReadWithContext(ctx, path+"/cert/ca")
		if created || sec == nil || sec.Data["certificate"] == "" {
			if _, err := c.Logical().WriteWithContext(ctx, path+"/root/generate/internal", map[string]any{
				"common_name": strings.ReplaceAll(path, "/", " ") + " CA", "ttl": "87600h", "key_type": "ec", "key_bits": 256,
			}); err != nil {
				return fmt.Errorf("vault: generate CA %s: %w", path, err)
			}
		}
	}
	if err := c.Sys().PutPolicyWithContext(ctx, BootServerRole, bootServerPolicy); err != nil {
		return fmt.Errorf("vault: policy: %w", err)
	}
	auths, err := c.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return fmt.Errorf("vault: list auth methods: %w", err)
	}
	if _, ok := auths["approle/"]; !ok {
		if err := c.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &vault.EnableAuthOptions{Type: "approle"}); err != nil {
			return fmt.Errorf("vault: enable approle: %w", err)
		}
	}
	role := "auth/approle/role/" + BootServerRole
	if _, err := c.Logical().WriteWithContext(ctx, role, map[string]any{
		"token_policies": []string{BootServerRole}, "token_ttl": "1h", "token_max_ttl": "4h",
		"secret_id_ttl": "0", "secret_id_num_uses": 0,
	}); err != nil {
		return fmt.Errorf("vault: approle: %w", err)
	}
	if _, err := c.Logical().WriteWithContext(ctx, role+"/role-id", map[string]any{"role_id": BootServerRole}); err != nil {
		return fmt.Errorf("vault: approle role-id: %w", err)
	}
	return nil
}

// retryVault calls f until it succeeds, fails with a 4xx answer, or 90 s
// pass: while Vault fails over between servers (a restart during setup, a
// lost server), requests get 5xx answers or connection errors for seconds.
func retryVault(ctx context.Context, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	lastErr, err := poll(ctx, "vault to answer", time.Second, nil, func(context.Context) (bool, error) {
		err := f()
		var re *vault.ResponseError
		if errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500 {
			return false, permanent(err)
		}
		return err == nil, err
	})
	if lastErr != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		return lastErr
	}
	return err
}

// errEmptyAnswer is an answer without the data a request has: a standby
// answers so for a moment while the active node it forwards to goes away
// (its restart during setup, a lost server). It is retried like a 5xx.
var errEmptyAnswer = errors.New("vault answered without the expected data (failing over between servers?)")

// writeVault writes data to path and returns Vault's answer, which ok must
// accept (it is never called with nil), retrying as retryVault does, empty
// answers included.
func writeVault(ctx context.Context, c *vault.Client, path string, data map[string]any, ok func(*vault.Secret) bool) (*vault.Secret, error) {
	var sec *vault.Secret
	err := retryVault(ctx, func() error {
		var err error
		sec, err = c.Logical().WriteWithContext(ctx, path, data)
		if err == nil && (sec == nil || !ok(sec)) {
			err = errEmptyAnswer
		}
		return err
	})
	return sec, err
}

// AppRoleCreds are a boot server's Vault credentials (file 0600).
type AppRoleCreds struct {
	RoleID   string `json:"role_id"`
	SecretID string `json:"secret_id"`
}

// newSecretID creates a boot server secret_id; wrapTTL > 0 returns it
// response-wrapped (a single-use token) instead.
func newSecretID(ctx context.Context, c *vault.Client, lrn int, wrapTTL time.Duration) (string, error) {
	path := "auth/approle/role/" + BootServerRole + "/secret-id"
	meta, _ := json.Marshal(map[string]string{"lrn": strconv.Itoa(lrn)})
	if wrapTTL > 0 {
		wc, err := c.Clone()
		if err != nil {
			return "", err
		}
		wc.SetToken(c.Token())
		wc.SetWrappingLookupFunc(func(string, string) string { return wrapTTL.String() })
		c = wc
	}
	sec, err := writeVault(ctx, c, path, map[string]any{"metadata": string(meta)}, func(sec *vault.Secret) bool {
		if wrapTTL > 0 {
			return sec.WrapInfo != nil
		}
		return sec.Data["secret_id"] != nil
	})
	if err != nil {
		return "", fmt.Errorf("vault: new secret_id: %w", err)
	}
	if wrapTTL > 0 {
		return sec.WrapInfo.Token, nil
	}
	id, _ := sec.Data["secret_id"].(string)
	if id == "" {
		return "", errors.New("vault: no secret_id returned")
	}
	return id, nil
}

// Login logs c in with the AppRole credentials file of p.
func Login(ctx context.Context, c *vault.Client, p Paths) error {
	data, err := os.ReadFile(p.AppRole)
	if err != nil {
		return fmt.Errorf("read Vault credentials (is this boot server set up?): %w", err)
	}
	var creds AppRoleCreds
	if err := json.Unmarshal(data, &creds); err != nil {
		return fmt.Errorf("%s: %w", p.AppRole, err)
	}
	return loginWith(ctx, c, creds)
}

func loginWith(ctx context.Context, c *vault.Client, creds AppRoleCreds) error {
	sec, err := writeVault(ctx, c, "auth/approle/login", map[string]any{
		"role_id": creds.RoleID, "secret_id": creds.SecretID,
	}, func(sec *vault.Secret) bool { return sec.Auth != nil && sec.Auth.ClientToken != "" })
	var re *vault.ResponseError
	if errors.As(err, &re) && (re.StatusCode == http.StatusBadRequest || re.StatusCode == http.StatusForbidden) {
		return fmt.Errorf("vault rejected this boot server's AppRole credentials (revoked?): issue new ones with neco vault issue-join-token on another boot server and run neco join again: %w", err)
	}
	if err != nil {
		return fmt.Errorf("vault login: %w", err)
	}
	c.SetToken(sec.Auth.ClientToken)
	return nil
}

// signWithVault has Vault's PKI mount of spec sign csr, retrying while
// Vault fails over between servers.
func signWithVault(ctx context.Context, c *vault.Client, spec certSpec, csr []byte) ([]byte, error) {
	var ips, dns []string
	for _, s := range spec.SANs {
		if net.ParseIP(s) != nil {
			ips = append(ips, s)
		} else {
			dns = append(dns, s)
		}
	}
	req := map[string]any{
		"csr": string(csr), "common_name": spec.CN, "ttl": "43800h",
		"alt_names": strings.Join(dns, ","), "ip_sans": strings.Join(ips, ","),
		"exclude_cn_from_sans": true,
	}
	sec, err := writeVault(ctx, c, spec.Mount+"/sign/"+PKIRole, req, func(sec *vault.Secret) bool {
		cert, _ := sec.Data["certificate"].(string)
		return cert != ""
	})
	if err != nil {
		return nil, fmt.Errorf("vault: sign %s certificate: %w", spec.Kind, err)
	}
	return []byte(sec.Data["certificate"].(string) + "\n"), nil
}
