package sabactl

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/cli"
)

func init() { register(kernelParamsCommand) }

func kernelParamsCommand(o *Options) *cobra.Command {
	var osName string
	cmd := &cobra.Command{
		Use:   "kernel-params",
		Short: "get or set the kernel parameters booting machines get",
	}
	cmd.PersistentFlags().StringVar(&osName, "os", "coreos", "OS of the images")
	get := &cobra.Command{
		Use:   "get",
		Short: "show the kernel parameters",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			p, err := c.KernelParams(cmd.Context(), osName)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), p)
			return err
		},
	}
	set := &cobra.Command{
		Use:   "set PARAMS...",
		Short: `set the kernel parameters ("console=ttyS0 quiet"; printable ASCII, at most 4 KiB)`,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			return c.SetKernelParams(cmd.Context(), osName, strings.Join(args, " "))
		},
	}
	cmd.AddCommand(get, set)
	return cmd
}
