package sabactl

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/sabakan/client"
	"github.com/openneco/neco/pkg/sabakan/ignition"
)

func init() { register(ignitionsCommand) }

func ignitionsCommand(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ignitions",
		Short: "manage the Ignition templates of machine roles",
		Long: `Manage Ignition templates. Each machine role has versioned templates;
a booting machine gets the newest one rendered for it. Templates are built
from a YAML tree (docs/network-boot.md, "Ignition templates") of spec 2.2/2.3
or 3.0-3.5, validated by the server, and never overwritten.`,
	}
	get := &cobra.Command{
		Use:   "get ROLE [ID]",
		Short: "list the template ids of ROLE, or show template ID as JSON",
		Args:  cli.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			if len(args) == 1 {
				ids, err := c.IgnitionIDs(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return cli.PrintJSON(cmd.OutOrStdout(), ids)
			}
			t, err := c.Ignition(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return cli.PrintJSON(cmd.OutOrStdout(), t)
		},
	}
	var file string
	var asJSON, dryRun bool
	var meta []string
	set := &cobra.Command{
		Use:   "set -f FILE [--json] [--meta KEY=VALUE]... ROLE ID",
		Short: "build a template from a YAML tree (or take a JSON one) and register it as ROLE/ID",
		Long: `Register a template as ROLE/ID. ID is a version (1.2.3, v2,
2025.03.10-1): a machine boots the newest template of its role. FILE is the
entry point of a YAML tree (include, passwd, files, remote_files, systemd,
networkd; paths relative to the file), or with --json a JSON body
{"version","template","meta"}. --meta adds metadata that templates read with
{{ Metadata "KEY" }}. --dry-run prints the built template instead of
registering it.`,
		Args: cli.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return cli.UsageError("%s needs -f FILE", cmd.CommandPath())
			}
			md := map[string]any{}
			for _, kv := range meta {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return cli.UsageError("--meta %q: want KEY=VALUE", kv)
				}
				md[k] = v
			}
			var t client.IgnitionTemplate
			if asJSON {
				data, err := readInput(cmd, file)
				if err != nil {
					return err
				}
				if err := json.Unmarshal(data, &t); err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
				if t.Meta == nil {
					t.Meta = map[string]any{}
				}
				for k, v := range md {
					t.Meta[k] = v
				}
			} else {
				built, err := ignition.Build(file, md)
				if err != nil {
					return err
				}
				t = client.IgnitionTemplate{Version: built.Version, Template: built.Template, Meta: built.Meta}
			}
			if dryRun {
				return cli.PrintJSON(cmd.OutOrStdout(), t)
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			return c.PutIgnition(cmd.Context(), args[0], args[1], &t)
		},
	}
	set.Flags().StringVarP(&file, "file", "f", "", "entry YAML file of the template tree (or JSON with --json; - for stdin)")
	set.Flags().BoolVar(&asJSON, "json", false, "FILE is a JSON template body, not a YAML tree")
	set.Flags().StringArrayVar(&meta, "meta", nil, "metadata KEY=VALUE (repeatable)")
	set.Flags().BoolVar(&dryRun, "dry-run", false, "print the template instead of registering it")
	del := &cobra.Command{
		Use:   "delete ROLE ID",
		Short: "delete template ROLE/ID",
		Args:  cli.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			return c.DeleteIgnition(cmd.Context(), args[0], args[1])
		},
	}
	cmd.AddCommand(get, set, del)
	return cmd
}
