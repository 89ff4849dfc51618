package ckecli

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/storage"
	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/images"
)

func newSSHCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ssh",
		Short: "manage the SSH host keys the engine trusts",
		Long: `The engine pins each node's SSH host key the first time it connects and
refuses a node whose key changed. A node that was reinstalled has a new key:
forget the old one so that the engine pins the new one.`,
	}
	forget := &cobra.Command{
		Use:     "forget ADDRESS",
		Short:   "forget the pinned SSH host key of a node (after it was reinstalled)",
		Example: `  ckecli ssh forget 10.69.0.197`,
		Args:    cli.ExactArgs(1),
		ValidArgsFunction: o.completeFromStorage(func(ctx context.Context, st *storage.Storage) ([]string, error) {
			c, err := st.GetCluster(ctx)
			if err != nil {
				return nil, err
			}
			return cke.Addresses(c.Nodes), nil
		}),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := netip.ParseAddr(args[0]); err != nil {
				return cli.UsageError("ADDRESS %q: a node's IP address, as in cluster.yml", args[0])
			}
			return o.withStorage(cmd.Context(), func(ctx context.Context, st *storage.Storage) error {
				found, err := st.ForgetHostKey(ctx, args[0])
				if err != nil {
					return err
				}
				if !found {
					return fmt.Errorf("no host key of %s is pinned: %w", args[0], cke.ErrNotFound)
				}
				return nil
			})
		},
	}
	cmd.AddCommand(forget)
	return cmd
}

func newImagesCommand() *cobra.Command {
	var out cli.Output
	cmd := &cobra.Command{
		Use:   "images",
		Short: "list the container images the engine uses",
		Long: `images lists the container images of this release that the engine has the
nodes run: the pod sandbox (pause) and the cluster DNS (CoreDNS). The boot
servers' registries serve them.`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			list := []string{images.PauseName, images.CoreDNSName}
			w := cmd.OutOrStdout()
			return printData(w, out, list, func() error {
				for _, i := range list {
					fmt.Fprintln(w, i)
				}
				return nil
			})
		},
	}
	addOutputFlag(cmd, &out, outText, outJSON, outYAML)
	return cmd
}
