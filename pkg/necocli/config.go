package necocli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/neco/storage"
)

func configKeysHelp() string {
	var b strings.Builder
	for _, k := range neco.ConfigKeys {
		def := k.Default
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(&b, "  %-22s %s (default %s)\n", k.Name, k.Help, def)
	}
	return b.String()
}

func completeConfigKeys(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, k := range neco.ConfigKeys {
		names = append(names, k.Name+"\t"+k.Help)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

func newConfigCommand(opts *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "get and set the continuous delivery configuration",
		Long: `config reads and changes the settings neco-updater and neco-worker follow,
stored in etcd under /neco/config/. The daemons pick changes up at once.

Keys:
` + configKeysHelp(),
	}
	var out cli.Output
	var showSecrets bool
	get := &cobra.Command{
		Use:               "get [KEY]",
		Short:             "show one setting, or all with their defaults",
		Args:              cli.RangeArgs(0, 1),
		ValidArgsFunction: completeConfigKeys,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if _, ok := neco.LookupConfigKey(args[0]); !ok {
					return cli.UsageError("unknown config key %q; the keys are:\n%s", args[0], configKeysHelp())
				}
			}
			return opts.withEtcd(cmd.Context(), func(ctx context.Context, c *clientv3.Client) error {
				snap, err := storage.New(c).Snapshot(ctx)
				if err != nil {
					return err
				}
				type entry struct {
					Key     string `json:"key"`
					Value   string `json:"value"`
					Default bool   `json:"default"`
				}
				var entries []entry
				for _, k := range neco.ConfigKeys {
					if len(args) == 1 && k.Name != args[0] {
						continue
					}
					v, set := snap.ConfigValues[k.Name]
					if !set {
						v = k.Default
					}
					if k.Secret && len(args) == 0 && !showSecrets && v != "" {
						v = "(hidden; --show-secrets)"
					}
					entries = append(entries, entry{Key: k.Name, Value: v, Default: !set})
				}
				if out == cli.OutputJSON {
					return cli.PrintJSON(cmd.OutOrStdout(), entries)
				}
				if len(args) == 1 {
					fmt.Fprintln(cmd.OutOrStdout(), entries[0].Value)
					return nil
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				for _, e := range entries {
					mark := ""
					if e.Default {
						mark = "(default)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Key, e.Value, mark)
				}
				return tw.Flush()
			})
		},
	}
	cli.AddOutputFlag(get, &out, cli.OutputSimple, cli.OutputJSON)
	get.Flags().BoolVar(&showSecrets, "show-secrets", false, "show secret values (github-token) when listing all")

	set := &cobra.Command{
		Use:   "set KEY VALUE",
		Short: "change a setting (validated before it is stored)",
		Example: `  neco config set env prod
  neco config set release-time "* 9-16 * * 1-5"
  neco config set release-timezone Asia/Tokyo
  neco config set github-api-url https://ghe.example.com/api/v3/`,
		Args:              cli.ExactArgs(2),
		ValidArgsFunction: completeConfigKeys,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := neco.ValidateConfig(args[0], args[1]); err != nil {
				return configError(err)
			}
			return opts.withEtcd(cmd.Context(), func(ctx context.Context, c *clientv3.Client) error {
				return configError(storage.New(c).SetConfig(ctx, args[0], args[1]))
			})
		},
	}
	unset := &cobra.Command{
		Use:               "unset KEY",
		Short:             "remove a setting so that its default applies",
		Args:              cli.ExactArgs(1),
		ValidArgsFunction: completeConfigKeys,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, ok := neco.LookupConfigKey(args[0]); !ok {
				return cli.UsageError("unknown config key %q; the keys are:\n%s", args[0], configKeysHelp())
			}
			return opts.withEtcd(cmd.Context(), func(ctx context.Context, c *clientv3.Client) error {
				return configError(storage.New(c).UnsetConfig(ctx, args[0]))
			})
		},
	}
	cmd.AddCommand(get, set, unset)
	return cmd
}

// configError turns a rejected key or value into a usage error.
func configError(err error) error {
	if errors.Is(err, neco.ErrBadConfig) {
		return cli.UsageError("%v\nThe keys are:\n%s", err, configKeysHelp())
	}
	return err
}
