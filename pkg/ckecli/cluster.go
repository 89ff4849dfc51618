package ckecli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/storage"
	"github.com/openneco/neco/pkg/cli"
)

func newClusterCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "set and show cluster.yml, the declaration of the Kubernetes cluster",
		Long: `cluster.yml declares the Kubernetes cluster: its name, its nodes (address,
SSH user, control plane or not, labels, annotations, taints), the service
subnet, the upstream DNS servers and the components' options. The engine
makes the nodes run what it declares; a change is picked up at once.`,
	}
	set := &cobra.Command{
		Use:   "set FILE",
		Short: "validate cluster.yml and store it (FILE, or - for standard input)",
		Long: `set reads cluster.yml (YAML or JSON), validates it and checks it against the
constraints in force (ckecli constraints show), and stores it in one
transaction. It prints nothing on success. When the file is invalid or breaks
the constraints, it lists every problem and stores nothing (exit code 2).`,
		Example: `  ckecli cluster set cluster.yml
  ckecli cluster get | sed 's/10.0.0.4/10.0.0.5/' | ckecli cluster set -`,
		Args: cli.ExactArgs(1),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return []string{"yml", "yaml", "json"}, cobra.ShellCompDirectiveFilterFileExt
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if name == "-" {
				name = "cluster.yml (standard input)"
			}
			data, err := readInput(cmd, args[0])
			if err != nil {
				return err
			}
			c, err := cke.ParseCluster(data)
			if err == nil {
				err = c.Validate()
			}
			if err != nil {
				return &invalidError{what: name + " is invalid", err: err}
			}
			return o.withStorage(cmd.Context(), func(ctx context.Context, st *storage.Storage) error {
				err := st.PutCluster(ctx, c)
				if errors.Is(err, cke.ErrInvalid) {
					return &invalidError{what: name + " breaks the constraints in force (ckecli constraints show)", err: err}
				}
				return err
			})
		},
	}
	var out cli.Output
	get := &cobra.Command{
		Use:   "get",
		Short: "print the stored cluster.yml",
		Long: `get prints cluster.yml as stored (YAML unless -o json). Exit code 3 when none
was set.`,
		Example: `  ckecli cluster get > cluster.yml`,
		Args:    cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withStorage(cmd.Context(), func(ctx context.Context, st *storage.Storage) error {
				c, err := st.GetCluster(ctx)
				if errors.Is(err, cke.ErrNotFound) {
					return fmt.Errorf("no cluster.yml was set (ckecli cluster set FILE): %w", cke.ErrNotFound)
				}
				if err != nil {
					return err
				}
				return printData(cmd.OutOrStdout(), out, c, nil)
			})
		},
	}
	addOutputFlag(get, &out, outYAML, outJSON)
	cmd.AddCommand(set, get)
	return cmd
}

// constraint is one constraint ckecli can set.
type constraint struct {
	name  string
	help  string
	field func(*cke.Constraints) *int
}

var constraints = []constraint{
	{"control-plane-count", "the number of control planes cluster.yml must have (default 1)",
		func(c *cke.Constraints) *int { return &c.ControlPlaneCount }},
	{"minimum-workers-rate", "the sabakan integration removes a retired worker only while the workers stay at least this percentage of the machines (default 80)",
		func(c *cke.Constraints) *int { return &c.MinimumWorkersRate }},
	{"maximum-workers", "the most workers cluster.yml may have; 0 for no limit (default 0)",
		func(c *cke.Constraints) *int { return &c.MaximumWorkers }},
	{"wait-seconds-to-replace-control-plane", "how long the sabakan integration lets a control plane be unreachable or unhealthy before it replaces it (default 300)",
		func(c *cke.Constraints) *int { return &c.WaitSecondsToReplaceControlPlane }},
	{"wait-seconds-to-remove-retired", "how long the sabakan integration keeps a retired worker in the cluster (default 300)",
		func(c *cke.Constraints) *int { return &c.WaitSecondsToRemoveRetired }},
}

func constraintsHelp() string {
	var b strings.Builder
	for _, c := range constraints {
		fmt.Fprintf(&b, "  %s\n      %s\n", c.name, c.help)
	}
	return b.String()
}

func lookupConstraint(name string) (constraint, bool) {
	for _, c := range constraints {
		if c.name == name {
			return c, true
		}
	}
	return constraint{}, false
}

func newConstraintsCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "constraints",
		Short: "set and show the constraints that guard cluster.yml",
		Long: `Constraints guard cluster.yml against mistakes: a cluster.yml that breaks
them is refused, whoever writes it.

Constraints:
` + constraintsHelp(),
	}
	set := &cobra.Command{
		Use:   "set NAME VALUE",
		Short: "change one constraint",
		Long: `set changes one constraint. It is refused (exit code 2, nothing stored) when
the value is out of range. When the stored cluster.yml breaks the new
constraints, set says so: the engine then does nothing until a cluster.yml
that satisfies them is set. That is how the number of control planes
changes: first control-plane-count, then cluster.yml.

Constraints:
` + constraintsHelp(),
		Example: `  ckecli constraints set control-plane-count 3
  ckecli constraints set minimum-workers-rate 90
  ckecli constraints set maximum-workers 0`,
		Args: cli.ExactArgs(2),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []string
			for _, c := range constraints {
				names = append(names, c.name+"\t"+c.help)
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ok := lookupConstraint(args[0])
			if !ok {
				return cli.UsageError("unknown constraint %q; the constraints are:\n%s", args[0], constraintsHelp())
			}
			v, err := strconv.Atoi(args[1])
			if err != nil {
				return cli.UsageError("%s: %q is not an integer", c.name, args[1])
			}
			return o.withStorage(cmd.Context(), func(ctx context.Context, st *storage.Storage) error {
				cur, err := st.GetConstraints(ctx)
				if err != nil {
					return err
				}
				*c.field(cur) = v
				if err := cur.Validate(); err != nil {
					return &invalidError{what: "constraint " + c.name + " " + args[1] + " is invalid", err: err}
				}
				if err := st.PutConstraints(ctx, cur); err != nil {
					return err
				}
				cluster, err := st.GetCluster(ctx)
				if errors.Is(err, cke.ErrNotFound) {
					return nil
				} else if err != nil {
					return err
				}
				if err := cur.Check(cluster); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "ckecli: the stored cluster.yml breaks the new constraints: the engine waits for a cluster.yml that satisfies them\n%v\n", err)
				}
				return nil
			})
		},
	}
	var out cli.Output
	show := &cobra.Command{
		Use:   "show",
		Short: "print the constraints in force (the defaults until set)",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withStorage(cmd.Context(), func(ctx context.Context, st *storage.Storage) error {
				cur, err := st.GetConstraints(ctx)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				return printData(w, out, cur, func() error {
					tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
					for _, c := range constraints {
						fmt.Fprintf(tw, "%s\t%d\n", c.name, *c.field(cur))
					}
					return tw.Flush()
				})
			})
		},
	}
	addOutputFlag(show, &out, outText, outJSON, outYAML)
	cmd.AddCommand(set, show)
	return cmd
}
