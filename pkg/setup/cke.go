package setup

import (
	"context"
	"fmt"
	"os"

	vault "github.com/hashicorp/vault/api"

	"github.com/openneco/neco/pkg/bootserver"
	"github.com/openneco/neco/pkg/cke/storage"
	"github.com/openneco/neco/pkg/ckecli"
	"github.com/openneco/neco/pkg/etcdutil"
)

// configureCKE does what `ckecli vault init` does, so that a new data
// center needs no extra step before the Kubernetes engine runs: the
// engine's Vault layout, its login (this server's Vault URL, verified with
// the boot server CA) stored under /cke/, and the engine's CA certificates
// copied there. vc has the root token. A re-run keeps the stored login when
// it still works.
func (r *run) configureCKE(ctx context.Context, vc *vault.Client) error {
	caPEM, err := os.ReadFile(r.Paths.ServerCA)
	if err != nil {
		return err
	}
	client, err := etcdutil.New(bootserver.EtcdConfig(r.Cluster, r.Servers, r.Paths, storage.DefaultPrefix))
	if err != nil {
		return err
	}
	defer client.Close()
	err = ckecli.InitVault(ctx, vc, storage.New(client), ckecli.VaultInitOptions{
		Endpoint: r.Cluster.VaultURL(r.Me), CACert: caPEM, KeepCredentials: true,
	})
	if err != nil {
		return fmt.Errorf("vault for the Kubernetes engine (ckecli vault init): %w", err)
	}
	return nil
}
