package ckecli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/ckevault"
	"github.com/openneco/neco/pkg/cke/storage"
	"github.com/openneco/neco/pkg/cli"
)

func newVaultCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vault",
		Short: "set up the engine's Vault and read what the nodes need from it",
		Long: `The engine issues every certificate of the cluster from Vault and keeps its
secrets there (the SSH key it reaches the nodes with, the encryption key of
Kubernetes secrets, the service account signing key). These commands use
the operator's Vault token (VAULT_TOKEN, or ~/.vault-token).`,
	}
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "create the engine's CAs, secrets, policy and AppRole, and store its login in etcd",
		Long: `init sets up, with a root token (or an admin token allowed to mount, write
policies and manage AppRoles), what the engine needs in Vault: the PKI mounts

  ` + strings.Join(ckevault.CAs, "\n  ") + `

with generated root CAs, the KV mount ` + ckevault.SecretsMount + ` and the secrets in it,
the policy and the AppRole ` + ckevault.AppRoleName + `. It then logs in once as the engine will, stores
the engine's Vault settings in etcd (Vault's address, the CA that verifies
it, the AppRole's role_id and a new secret_id) and copies every CA
certificate into etcd (ckecli ca get).

It is idempotent: what exists is kept (CAs and secrets are never replaced).
Each run stores a new secret_id; earlier ones stay valid, so a running
engine is not disturbed. neco setup runs it when it sets the boot servers up.

Vault's address is --vault-addr, else VAULT_ADDR, else the stored one; the
CA certificate file --vault-ca-cert, else VAULT_CACERT, else the stored one.`,
		Example: `  VAULT_TOKEN=... ckecli vault init --vault-addr https://10.69.0.3:8200 --vault-ca-cert /etc/neco/ca-server.crt`,
		Args:    cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withStorage(cmd.Context(), func(ctx context.Context, st *storage.Storage) error {
				t, err := o.vaultTarget(ctx, st)
				if err != nil {
					return err
				}
				root, err := t.client()
				if err != nil {
					return err
				}
				if err := InitVault(ctx, root, st, VaultInitOptions{Endpoint: t.addr, CACert: t.caPEM}); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "vault %s is set up for the engine; its login and %d CA certificates are stored in etcd\n", t.addr, len(ckevault.CAs))
				return nil
			})
		},
	}
	pubkey := &cobra.Command{
		Use:   "ssh-pubkey",
		Short: "print the engine's SSH public key (an authorized_keys line for the nodes)",
		Long: `ssh-pubkey prints the public key of the SSH key the engine reaches the nodes
with, as an authorized_keys line: give it to the nodes' SSH user (cluster.yml
nodes[].user), for example in their Ignition configuration. It reads
` + ckevault.SecretsMount + ` with the operator's token.`,
		Example: `  ckecli vault ssh-pubkey >> authorized_keys`,
		Args:    cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			vc, err := o.operatorVault(cmd.Context(), nil)
			if err != nil {
				return err
			}
			key, err := sshAuthorizedKey(cmd.Context(), vc)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), key)
			return err
		},
	}
	cmd.AddCommand(initCmd, pubkey)
	return cmd
}

// CAName is the name under which a CA mount's certificate is kept in etcd
// (ckecli ca get): the mount without "cke/ca-", e.g. "etcd-peer".
func CAName(mount string) string { return strings.TrimPrefix(mount, "cke/ca-") }

// caNames are the names of ckevault.CAs.
func caNames() []string {
	out := make([]string, len(ckevault.CAs))
	for i, ca := range ckevault.CAs {
		out[i] = CAName(ca)
	}
	return out
}

func newCACommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "read the engine's CA certificates",
	}
	get := &cobra.Command{
		Use:   "get NAME",
		Short: "print a CA certificate (PEM) of the cluster",
		Long: `get prints the certificate of one of the engine's CAs, as ckecli vault init
copied it into etcd (no Vault token needed). The names:

  server                  the Kubernetes etcd servers (verify them with it)
  etcd-peer               the Kubernetes etcd peers
  etcd-client             the clients of the Kubernetes etcd
  kubernetes              kube-apiserver, its clients and the kubelets
  kubernetes-aggregation  the front proxy of API aggregation
  kubernetes-webhook      admission webhook servers`,
		Example: `  ckecli ca get kubernetes > ca.crt`,
		Args:    cli.ExactArgs(1),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return caNames(), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(caNames(), args[0]) {
				return cli.UsageError("unknown CA %q: the CAs are %s", args[0], strings.Join(caNames(), ", "))
			}
			return o.withStorage(cmd.Context(), func(ctx context.Context, st *storage.Storage) error {
				pem, err := st.GetCA(ctx, args[0])
				if errors.Is(err, cke.ErrNotFound) {
					return fmt.Errorf("CA %s is not in etcd (run ckecli vault init): %w", args[0], cke.ErrNotFound)
				}
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(pem)
				return err
			})
		},
	}
	cmd.AddCommand(get)
	return cmd
}

// VaultInitOptions are the engine's Vault settings InitVault stores.
type VaultInitOptions struct {
	// Endpoint is the Vault URL the engine logs in to.
	Endpoint string
	// CACert verifies Vault's certificate (PEM); empty: the system's roots.
	CACert []byte
	// KeepCredentials keeps the stored role_id and secret_id when they still
	// log in, instead of initialising again with a new secret_id (a re-run
	// of neco setup).
	KeepCredentials bool
}

// InitVault is ckecli vault init, also run by neco setup: ckevault.Init
// with root (a root token's client), a login as the engine will make it
// (so a wrong endpoint or CA fails here, not in the engine), the engine's
// Vault settings stored, and every CA certificate copied into etcd.
func InitVault(ctx context.Context, root *vault.Client, st *storage.Storage, o VaultInitOptions) error {
	var sess *ckevault.Session
	if o.KeepCredentials {
		cfg, err := st.GetVaultConfig(ctx)
		switch {
		case err == nil && cfg.Endpoint == o.Endpoint && cfg.CACert == string(o.CACert):
			// Credentials that no longer log in are replaced below.
			sess, _ = ckevault.Login(ctx, loginConfig(cfg))
		case err != nil && !errors.Is(err, cke.ErrNotFound):
			return err
		}
	}
	if sess == nil {
		creds, err := ckevault.Init(ctx, root)
		if err != nil {
			return err
		}
		cfg := &storage.VaultConfig{Endpoint: o.Endpoint, CACert: string(o.CACert), RoleID: creds.RoleID, SecretID: creds.SecretID}
		if sess, err = ckevault.Login(ctx, loginConfig(cfg)); err != nil {
			return fmt.Errorf("log in to %s as the engine will: %w", o.Endpoint, err)
		}
		if err := st.PutVaultConfig(ctx, cfg); err != nil {
			return err
		}
	}
	// The login's token has no other use; the engine's policy cannot revoke
	// it, root's token can (best effort: it expires anyway).
	defer root.Auth().Token().RevokeTreeWithContext(context.WithoutCancel(ctx), sess.Client().Token()) //nolint:errcheck
	for _, ca := range ckevault.CAs {
		pem, err := sess.CACert(ctx, ca)
		if err != nil {
			return err
		}
		if err := st.PutCA(ctx, CAName(ca), pem); err != nil {
			return err
		}
	}
	// The nodes' set-up (their Ignition, made by neco-worker) takes the
	// public key from etcd.
	key, err := sshAuthorizedKey(ctx, root)
	if err != nil {
		return err
	}
	return st.PutSSHPublicKey(ctx, key)
}

func loginConfig(c *storage.VaultConfig) ckevault.LoginConfig {
	return ckevault.LoginConfig{Address: c.Endpoint, CACertPEM: []byte(c.CACert), RoleID: c.RoleID, SecretID: c.SecretID}
}

// vaultTarget is the Vault an operator's command talks to.
type vaultTarget struct {
	addr  string
	caPEM []byte
}

// vaultTarget finds Vault: --vault-addr, VAULT_ADDR or the engine's stored
// settings (st may be nil), and its CA: --vault-ca-cert, VAULT_CACERT or
// the stored one.
func (o *options) vaultTarget(ctx context.Context, st *storage.Storage) (vaultTarget, error) {
	t := vaultTarget{addr: o.vaultAddr}
	if t.addr == "" {
		t.addr = os.Getenv("VAULT_ADDR")
	}
	caFile := o.vaultCACert
	if caFile == "" {
		caFile = os.Getenv("VAULT_CACERT")
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return t, cli.UsageError("vault CA certificate: %v", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return t, cli.UsageError("vault CA certificate %s: no PEM certificate in it", caFile)
		}
		t.caPEM = pem
	}
	if (t.addr == "" || caFile == "") && st != nil {
		cfg, err := st.GetVaultConfig(ctx)
		switch {
		case err == nil:
			if t.addr == "" {
				t.addr = cfg.Endpoint
			}
			if caFile == "" {
				t.caPEM = []byte(cfg.CACert)
			}
		case !errors.Is(err, cke.ErrNotFound):
			return t, err
		}
	}
	if t.addr == "" {
		return t, cli.UsageError("no Vault address: give --vault-addr or VAULT_ADDR (ckecli vault init stores it for the other commands)")
	}
	return t, nil
}

// client is a client of t with the operator's token.
func (t vaultTarget) client() (*vault.Client, error) {
	token, err := operatorToken()
	if err != nil {
		return nil, err
	}
	cfg := vault.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault client configuration: %w", cfg.Error)
	}
	cfg.Address = t.addr
	cfg.Timeout = 30 * time.Second
	if len(t.caPEM) > 0 {
		if err := cfg.ConfigureTLS(&vault.TLSConfig{CACertBytes: t.caPEM}); err != nil {
			return nil, fmt.Errorf("vault TLS configuration: %w", err)
		}
	}
	c, err := vault.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	c.SetToken(token)
	return c, nil
}

// operatorToken is VAULT_TOKEN, else what vault login saved.
func operatorToken() (string, error) {
	if t := os.Getenv("VAULT_TOKEN"); t != "" {
		return t, nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		if data, err := os.ReadFile(filepath.Join(home, ".vault-token")); err == nil {
			if t := strings.TrimSpace(string(data)); t != "" {
				return t, nil
			}
		}
	}
	return "", cli.UsageError("no Vault token: set VAULT_TOKEN, or log in with vault login")
}

// operatorVault is a Vault client with the operator's token, Vault found
// as vaultTarget says; etcd is asked only for what the flags and the
// environment leave open (st, when not nil, is used for that).
func (o *options) operatorVault(ctx context.Context, st *storage.Storage) (*vault.Client, error) {
	addr := o.vaultAddr
	if addr == "" {
		addr = os.Getenv("VAULT_ADDR")
	}
	caGiven := o.vaultCACert != "" || os.Getenv("VAULT_CACERT") != ""
	needStored := addr == "" || (!caGiven && strings.HasPrefix(addr, "https:"))
	var t vaultTarget
	var err error
	switch {
	case !needStored || st != nil:
		t, err = o.vaultTarget(ctx, st)
	default:
		err = o.withStorage(ctx, func(ctx context.Context, st *storage.Storage) error {
			t, err = o.vaultTarget(ctx, st)
			return err
		})
	}
	if err != nil {
		return nil, err
	}
	return t.client()
}

// sshAuthorizedKey reads the engine's SSH public key.
func sshAuthorizedKey(ctx context.Context, vc *vault.Client) (string, error) {
	path := ckevault.SecretsMount + "/ssh"
	sec, err := vc.Logical().ReadWithContext(ctx, path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if sec == nil {
		return "", fmt.Errorf("%s: %w (run ckecli vault init)", path, cke.ErrNotFound)
	}
	key, _ := sec.Data["authorized_key"].(string)
	if key == "" {
		return "", fmt.Errorf("%s has no authorized_key", path)
	}
	return key, nil
}
