package bootserver

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/etcdutil"
)

// EtcdConfig is how a boot server's root user reaches etcd: every member's
// client URL, the server CA, the CN=root client certificate.
func EtcdConfig(c *Cluster, servers []Server, p Paths, prefix string) *etcdutil.Config {
	cfg := etcdutil.NewConfig(prefix)
	cfg.Endpoints = c.EtcdEndpoints(servers)
	cfg.TLSCAFile = p.ServerCA
	cfg.TLSCertFile = p.ClientCert
	cfg.TLSKeyFile = p.ClientKey
	return cfg
}

// etcd users and roles made by setup.
const (
	EtcdRootUser   = "root"   // boot servers: the neco CLI and the CD daemons
	EtcdVaultUser  = "vault"  // Vault's storage: readwrite /vault/
	EtcdBackupUser = "backup" // backups: read-only everything
)

// ServiceRole is what `neco init NAME` grants: readwrite on /NAME/.
func ServiceRole(name string) (role, prefix string) { return name, "/" + name + "/" }

// EnsureEtcdUser creates user (certificate authentication: no password)
// with a role of the same name that may readwrite prefix, or read all
// keys when readOnlyAll. It is idempotent.
func EnsureEtcdUser(ctx context.Context, client *clientv3.Client, user, prefix string, readOnlyAll bool) error {
	if _, err := client.RoleAdd(ctx, user); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
		return fmt.Errorf("etcd role %s: %w", user, err)
	}
	var err error
	if readOnlyAll {
		_, err = client.RoleGrantPermission(ctx, user, "\x00", "\x00", clientv3.PermissionType(clientv3.PermRead))
	} else {
		_, err = client.RoleGrantPermission(ctx, user, prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite))
	}
	if err != nil {
		return fmt.Errorf("etcd role %s: grant: %w", user, err)
	}
	if _, err := client.UserAddWithOptions(ctx, user, "", &clientv3.UserAddOptions{NoPassword: true}); err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		return fmt.Errorf("etcd user %s: %w", user, err)
	}
	if _, err := client.UserGrantRole(ctx, user, user); err != nil {
		return fmt.Errorf("etcd user %s: grant role: %w", user, err)
	}
	return nil
}
