package setup

import (
	"context"
	"fmt"
	"os"
	"regexp"

	vault "github.com/hashicorp/vault/api"
	clientv3 "go.etcd.io/etcd/client/v3"
	"sigs.k8s.io/yaml"
)

var serviceName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)

// reserved are users setup owns; a service cannot take their names.
var reserved = map[string]bool{EtcdRootUser: true, EtcdVaultUser: true, EtcdBackupUser: true, "neco": true}

// CheckServiceName validates a service name for init and init-local.
func CheckServiceName(name string) error {
	if !serviceName.MatchString(name) {
		return fmt.Errorf("service name %q: use lower-case letters, digits and dashes (e.g. sabakan, cke)", name)
	}
	if reserved[name] {
		return fmt.Errorf("%q is reserved for neco itself", name)
	}
	return nil
}

// InitService creates the etcd user and role of a service: readwrite on
// /NAME/ and nothing else. Idempotent.
func InitService(ctx context.Context, client *clientv3.Client, name string) error {
	if err := CheckServiceName(name); err != nil {
		return err
	}
	_, prefix := ServiceRole(name)
	return EnsureEtcdUser(ctx, client, name, prefix, false)
}

// InitLocal issues this server's etcd client certificate for service name
// (CN=name, from Vault; the key is made here, 0600) and writes the
// service's etcd connection file. It returns that file's path.
func InitLocal(ctx context.Context, vc *vault.Client, c *Cluster, servers []Server, p Paths, name string) (string, error) {
	if err := CheckServiceName(name); err != nil {
		return "", err
	}
	spec := certSpec{
		Kind: "service", Mount: MountEtcdClient, CN: name, Usage: 0,
		Cert: p.ServiceCert(name), Key: p.ServiceKey(name), CA: p.ClientCA,
	}
	if err := issueWith(spec, func(csr []byte) ([]byte, error) { return signWithVault(ctx, vc, spec, csr) }); err != nil {
		return "", err
	}
	ca, err := os.ReadFile(p.ServerCA)
	if err != nil {
		return "", err
	}
	if err := writeFileAtomic(p.ServiceCA(name), ca, 0o644); err != nil {
		return "", err
	}
	_, prefix := ServiceRole(name)
	cfg := EtcdConfig(c, servers, p, prefix)
	cfg.TLSCAFile, cfg.TLSCertFile, cfg.TLSKeyFile = p.ServiceCA(name), p.ServiceCert(name), p.ServiceKey(name)
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	if err := writeFileAtomic(p.ServiceConfig(name), data, 0o600); err != nil {
		return "", err
	}
	return p.ServiceConfig(name), nil
}
