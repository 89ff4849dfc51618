package bootserver

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

	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/poll"
)

// BootServerRole is the AppRole (and policy) of boot servers; its role_id
// is this well-known name, the secret_id is the secret.
const BootServerRole = "boot-server"

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

// WaitVaultAPI waits until Vault answers its seal status.
func WaitVaultAPI(ctx context.Context, c *vault.Client) (*vault.SealStatusResponse, error) {
	var st *vault.SealStatusResponse
	lastErr, err := poll.Until(ctx, "vault's API at "+c.Address(), 500*time.Millisecond, nil, func(ctx context.Context) (bool, error) {
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
	st, err := WaitVaultAPI(ctx, c)
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
	lastErr, err := poll.Until(ctx, "vault at "+c.Address()+" to serve after unsealing", 300*time.Millisecond, nil, func(ctx context.Context) (bool, error) {
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

// RetryVault calls f until it succeeds, fails with a 4xx answer, or 90 s
// pass: while Vault fails over between servers (a restart during setup, a
// lost server), requests get 5xx answers or connection errors for seconds.
func RetryVault(ctx context.Context, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	lastErr, err := poll.Until(ctx, "vault to answer", time.Second, nil, func(context.Context) (bool, error) {
		err := f()
		var re *vault.ResponseError
		if errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500 {
			return false, poll.Permanent(err)
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
// accept (it is never called with nil), retrying as RetryVault does, empty
// answers included.
func writeVault(ctx context.Context, c *vault.Client, path string, data map[string]any, ok func(*vault.Secret) bool) (*vault.Secret, error) {
	var sec *vault.Secret
	err := RetryVault(ctx, func() error {
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

// NewSecretID creates a boot server secret_id; wrapTTL > 0 returns it
// response-wrapped (a single-use token) instead.
func NewSecretID(ctx context.Context, c *vault.Client, lrn int, wrapTTL time.Duration) (string, error) {
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
func signWithVault(ctx context.Context, c *vault.Client, spec CertSpec, csr []byte) ([]byte, error) {
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
