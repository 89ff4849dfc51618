package setup

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/services"
)

// RestartAndUnseal restarts etcd and Vault of me, waiting for etcd's
// quorum and unsealing Vault, so that they use renewed certificates. etcd
// restarts only when the other members keep a quorum without it.
func RestartAndUnseal(ctx context.Context, svc services.Manager, client *clientv3.Client, c *bootserver.Cluster, me bootserver.Server, servers []bootserver.Server, p bootserver.Paths, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := waitQuorumWithout(wctx, client, me); err != nil {
		return err
	}
	if err := svc.Restart(wctx, "etcd"); err != nil {
		return err
	}
	// Ask this member directly: it must serve again before Vault restarts.
	local, err := etcdutil.New(bootserver.EtcdConfig(c, []bootserver.Server{me}, p, storage.DefaultPrefix))
	if err != nil {
		return err
	}
	defer local.Close()
	if err := waitEtcd(wctx, local, 1); err != nil {
		return err
	}
	if err := svc.Restart(wctx, "vault"); err != nil {
		return err
	}
	return bootserver.UnsealLocal(wctx, client, c, me, p)
}
