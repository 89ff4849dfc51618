package necocli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/neco/storage"
)

func newRecoverCommand(opts *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "recover",
		Short: "clear a stopped update so that neco-updater requests the latest release again",
		Long: `recover clears an update that was stopped because a boot server aborted a
step or did not finish in time. It deletes the update request and every boot
server's status in one transaction; neco-updater then requests the latest
release anew and the workers start again from the first step (every step is
idempotent). Fix the cause first: "neco status" shows which boot server
stopped the update and why.

Exits 1 without changing anything when no update is stopped.`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return opts.withEtcd(cmd.Context(), func(ctx context.Context, c *clientv3.Client) error {
				req, err := storage.New(c).Recover(ctx)
				if errors.Is(err, storage.ErrNotStopped) || errors.Is(err, storage.ErrNoRequest) {
					return cli.WithCode(cli.ExitFailure, err)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "cleared update #%d to %s (stopped: %s); neco-updater will request the latest release again\n",
					req.ID, req.Version, req.StopReason)
				return nil
			})
		},
	}
}
