// Package necocli is the neco command: the operator's tool on the boot
// servers for bootstrap (setup, join, leave, init), continuous delivery
// (status, config, recover) and Vault. cmd/neco only calls NewRootCommand.
package necocli

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
	"sigs.k8s.io/yaml"

	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/version"
)

type globalOptions struct {
	configFile string
}

// NewRootCommand builds the neco command tree.
func NewRootCommand() *cobra.Command {
	opts := &globalOptions{}
	root := &cobra.Command{
		Use:     "neco",
		Version: version.Version,
		Short:   "bootstrap and operate neco boot servers",
		Long: `neco bootstraps the boot servers of a neco data center (etcd with mTLS,
Vault PKI, the CD daemons) and operates them afterwards: joining and removing
boot servers, preparing per-service etcd users and certificates, and watching
and steering continuous delivery.

Exit codes: 0 success, 1 failure, 2 usage error.`,
	}
	root.PersistentFlags().StringVar(&opts.configFile, "config", storage.DefaultConfigFile, "neco configuration file (etcd endpoints and client certificate)")
	addBootstrapCommands(root, opts)
	root.AddCommand(newStatusCommand(opts), newConfigCommand(opts), newRecoverCommand(opts), newBMCCommand(opts), newPowerCommand(opts), newIdentityCommand())
	return root
}

// etcdClient connects to etcd as the config file says, scoped to /neco/.
func (o *globalOptions) etcdClient() (*clientv3.Client, error) {
	data, err := os.ReadFile(o.configFile)
	if err != nil {
		return nil, fmt.Errorf("read %s (is this boot server set up? run neco setup): %w", o.configFile, err)
	}
	cfg := storage.FileConfig{Etcd: etcdutil.NewConfig(storage.DefaultPrefix)}
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", o.configFile, err)
	}
	return etcdutil.New(cfg.Etcd)
}

// withEtcd runs f with a client from the config file and closes it after.
func (o *globalOptions) withEtcd(ctx context.Context, f func(ctx context.Context, c *clientv3.Client) error) error {
	c, err := o.etcdClient()
	if err != nil {
		return err
	}
	defer c.Close()
	return f(ctx, c)
}
