package sabactl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/cli"
)

func init() { register(cryptsCommand) }

func cryptsCommand(o *Options) *cobra.Command {
	cmd := &cobra.Command{Use: "crypts", Short: "manage disk encryption keys (over HTTPS, --tls-server)"}
	var force bool
	del := &cobra.Command{
		Use:   "delete --force SERIAL",
		Short: "delete every disk encryption key of a retiring machine",
		Long: `Delete every disk encryption key of a machine, which makes its disks
unreadable. The machine must be retiring; afterwards it may become retired.
--force is required. The deleted disk paths are printed.`,
		Args:              cli.ExactArgs(1),
		ValidArgsFunction: completeSerials(o),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force {
				return cli.UsageError("deleting disk encryption keys destroys the data on the disks: add --force")
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			paths, err := c.DeleteCrypts(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			for _, p := range paths {
				fmt.Fprintln(cmd.OutOrStdout(), p)
			}
			return nil
		},
	}
	del.Flags().BoolVar(&force, "force", false, "confirm the deletion")
	cmd.AddCommand(del)
	return cmd
}
