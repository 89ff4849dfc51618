package bootserver

import (
	"context"
	"fmt"
	"os"
	"regexp"

	vault "github.com/hashicorp/vault/api"
	clientv3 "go.etcd.io/etcd/client/v3"
	"sigs.k8s.io/yaml"

	"github.com/openneco/neco/pkg/fileutil"
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
	spec := CertSpec{
		Kind: "service", Mount: MountEtcdClient, CN: name, Usage: 0,
		Cert: p.ServiceCert(name), Key: p.ServiceKey(name), CA: p.ClientCA,
	}
	if err := Issue(spec, func(csr []byte) ([]byte, error) { return signWithVault(ctx, vc, spec, csr) }); err != nil {
		return "", err
	}
	ca, err := os.ReadFile(p.ServerCA)
	if err != nil {
		return "", err
	}
	if err := fileutil.WriteAtomic(p.ServiceCA(name), ca, 0o644); err != nil {
		return "", err
	}
	_, prefix := ServiceRole(name)
	cfg := EtcdConfig(c, servers, p, prefix)
	cfg.TLSCAFile, cfg.TLSCertFile, cfg.TLSKeyFile = p.ServiceCA(name), p.ServiceCert(name), p.ServiceKey(name)
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	if err := fileutil.WriteAtomic(p.ServiceConfig(name), data, 0o600); err != nil {
		return "", err
	}
	return p.ServiceConfig(name), nil
}

// EnsureService prepares service name on this boot server unless it is
// ready: the etcd user and role (InitService, once for the cluster; safe
// when several servers do it at once) and this server's certificate and
// etcd connection file (InitLocal, with this server's Vault AppRole). It
// is what `neco init NAME` and `neco init-local NAME` do, for the CD worker,
// which prepares sabakan before starting it the first time. A valid
// certificate with its connection file is kept; issued tells whether a new
// one was made.
func EnsureService(ctx context.Context, client *clientv3.Client, c *Cluster, me Server, p Paths, name string) (issued bool, err error) {
	spec := CertSpec{Kind: "service", CN: name, Cert: p.ServiceCert(name), Key: p.ServiceKey(name), CA: p.ClientCA}
	if CertValid(spec) == nil {
		if _, err := os.Stat(p.ServiceConfig(name)); err == nil {
			return false, nil
		}
	}
	if err := InitService(ctx, client, name); err != nil {
		return false, err
	}
	vc, err := NewVaultClient(c.VaultURL(me), p)
	if err != nil {
		return false, err
	}
	if err := Login(ctx, vc, p); err != nil {
		return false, err
	}
	servers := c.Servers
	if len(servers) == 0 {
		servers = []Server{me}
	}
	if _, err := InitLocal(ctx, vc, c, servers, p, name); err != nil {
		return false, err
	}
	return true, nil
}
