package setup

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/cke/ckevault"
	"github.com/openneco/neco/pkg/fileutil"
	"github.com/openneco/neco/pkg/services"
)

// VaultEtcdPath is Vault's storage prefix in etcd.
const VaultEtcdPath = "/vault/"

const bootServerPolicy = `# Boot servers: issue certificates of the boot server CAs and let new boot
# servers in (neco vault issue-join-token); issue the Kubernetes cluster's
# admin certificates (ckecli kubernetes issue with neco vault login's token:
# a boot server's root already commands the cluster through etcd).
path "ca/+/sign/system" { capabilities = ["create", "update"] }
path "ca/+/issue/system" { capabilities = ["create", "update"] }
path "ca/+/cert/ca" { capabilities = ["read"] }
path "auth/approle/role/boot-server/secret-id" { capabilities = ["create", "update"] }
path "auth/token/lookup-self" { capabilities = ["read"] }
path "sys/seal-status" { capabilities = ["read"] }
path "cke/ca-kubernetes/issue/admin" { capabilities = ["create", "update"] }
path "cke/ca-kubernetes/roles/admin" { capabilities = ["read"] }
`

// VaultUnit is the Vault service of a boot server.
func VaultUnit(p bootserver.Paths) (services.Unit, error) {
	cmd, err := services.Command("vault", "server", "-config="+p.VaultConfig, "-log-level=warn")
	if err != nil {
		return services.Unit{}, err
	}
	return services.Unit{Name: "vault", Description: "Vault of the neco boot servers", Command: cmd, StopTimeout: 30 * time.Second}, nil
}

// WriteVaultConfig writes Vault's configuration (JSON, which Vault reads as
// it reads HCL): HA storage in etcd as user vault, TLS on the server's address.
func WriteVaultConfig(c *bootserver.Cluster, me bootserver.Server, servers []bootserver.Server, p bootserver.Paths) error {
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

// configureVault creates, idempotently, the PKI mounts (importing the
// temporary CAs so certificates already issued stay valid), roles, the
// boot-server policy and AppRole, and the Kubernetes engine's CAs. c has a
// root token.
func configureVault(ctx context.Context, c *vault.Client, cas *TempCAs) error {
	mounts, err := c.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return fmt.Errorf("vault: list mounts: %w", err)
	}
	mount := func(path, desc string) error {
		if _, ok := mounts[path+"/"]; ok {
			return nil
		}
		err := c.Sys().MountWithContext(ctx, path, &vault.MountInput{
			Type: "pki", Description: desc,
			Config: vault.MountConfigInput{MaxLeaseTTL: "87600h", DefaultLeaseTTL: "43800h"},
		})
		if err != nil {
			return fmt.Errorf("vault: mount %s: %w", path, err)
		}
		return nil
	}
	for _, m := range []struct {
		path string
		ca   interface {
			CertPEM() []byte
			KeyPEM() ([]byte, error)
		}
		server, client bool
	}{
		{bootserver.MountServer, cas.Server, true, true},
		{bootserver.MountEtcdPeer, cas.Peer, true, true},
		{bootserver.MountEtcdClient, cas.Client, false, true},
	} {
		if err := mount(m.path, "neco boot server CA "+m.path); err != nil {
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
		if _, err := c.Logical().WriteWithContext(ctx, m.path+"/roles/"+bootserver.PKIRole, map[string]any{
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
			return fmt.Errorf("vault: role %s/roles/%s: %w", m.path, bootserver.PKIRole, err)
		}
	}
	// The Kubernetes engine's CAs (ckevault.CAs), with generated roots, so
	// that the engine finds them.
	if err := ckevault.EnsureCAs(ctx, c); err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	if err := c.Sys().PutPolicyWithContext(ctx, bootserver.BootServerRole, bootServerPolicy); err != nil {
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
	role := "auth/approle/role/" + bootserver.BootServerRole
	if _, err := c.Logical().WriteWithContext(ctx, role, map[string]any{
		"token_policies": []string{bootserver.BootServerRole}, "token_ttl": "1h", "token_max_ttl": "4h",
		"secret_id_ttl": "0", "secret_id_num_uses": 0,
	}); err != nil {
		return fmt.Errorf("vault: approle: %w", err)
	}
	if _, err := c.Logical().WriteWithContext(ctx, role+"/role-id", map[string]any{"role_id": bootserver.BootServerRole}); err != nil {
		return fmt.Errorf("vault: approle role-id: %w", err)
	}
	return nil
}
