package ckecli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/sabakan"
	"github.com/openneco/neco/pkg/cke/storage"
	"github.com/openneco/neco/pkg/cli"
)

func newSabakanCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sabakan",
		Short: "configure the sabakan integration, which generates cluster.yml from the inventory",
		Long: `The sabakan integration keeps cluster.yml in step with the machines in sabakan:
the leading engine queries sabakan when the cluster is as declared and
generates cluster.yml from a template. It runs once a URL and a template are
set, until disabled.

The rules: control planes (constraint control-plane-count) are spread across
racks; every healthy machine that is no node becomes a worker; a control
plane that is retiring, or unreachable or unhealthy for
wait-seconds-to-replace-control-plane, is replaced by a healthy machine (one
at a time, never when the rest would not keep the etcd quorum); nodes of
unreachable machines get the taint cke.cybozu.com/state=unreachable:NoSchedule,
of retiring and retired ones cke.cybozu.com/state=...:NoExecute (drained);
retired workers leave after wait-seconds-to-remove-retired while the workers
stay at least minimum-workers-rate percent of the machines. What it changed
is in ckecli history (update-cluster) and ckecli status.`,
	}
	setURL := &cobra.Command{
		Use:     "set-url URL",
		Short:   "set sabakan's URL",
		Example: `  ckecli sabakan set-url http://10.69.0.3:10080`,
		Args:    cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withStorage(cmd.Context(), func(ctx context.Context, st *storage.Storage) error {
				err := st.PutSabakanURL(ctx, args[0])
				if errors.Is(err, cke.ErrInvalid) {
					return &invalidError{what: "set-url", err: err}
				}
				return err
			})
		},
	}
	getURL := &cobra.Command{
		Use:   "get-url",
		Short: "print sabakan's URL (exit code 3 when none is set)",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withSettings(cmd, o, func(s *storage.SabakanSettings) error {
				if s.URL == "" {
					return fmt.Errorf("no sabakan URL was set (ckecli sabakan set-url URL): %w", cke.ErrNotFound)
				}
				_, err := fmt.Fprintln(cmd.OutOrStdout(), s.URL)
				return err
			})
		},
	}
	setTemplate := &cobra.Command{
		Use:   "set-template FILE",
		Short: "validate a cluster.yml template and store it (FILE, or - for standard input)",
		Long: `set-template reads a cluster.yml template (YAML or JSON): a cluster.yml whose
nodes have no address. Exactly one node has control_plane: true; it is the
template of every control plane. The others are the workers' templates: one,
or one per machine role, each with the label cke.cybozu.com/role naming its
role. A role label on the control plane's template restricts control planes
to machines of that role. Labels, annotations, taints and the user of a
template are given to every node made from it. Nothing is stored when the
template is invalid (exit code 2).`,
		Example: `  ckecli sabakan set-template template.yml`,
		Args:    cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readInput(cmd, args[0])
			if err != nil {
				return err
			}
			t, err := sabakan.ParseTemplate(data)
			if err != nil {
				return &invalidError{what: "the template is invalid", err: err}
			}
			return o.withStorage(cmd.Context(), func(ctx context.Context, st *storage.Storage) error {
				return st.PutSabakanTemplate(ctx, t)
			})
		},
	}
	var out cli.Output
	getTemplate := &cobra.Command{
		Use:   "get-template",
		Short: "print the template (exit code 3 when none is set)",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withSettings(cmd, o, func(s *storage.SabakanSettings) error {
				if s.Template == nil {
					return fmt.Errorf("no template was set (ckecli sabakan set-template FILE): %w", cke.ErrNotFound)
				}
				return printData(cmd.OutOrStdout(), out, s.Template, nil)
			})
		},
	}
	addOutputFlag(getTemplate, &out, outYAML, outJSON)
	enable := &cobra.Command{
		Use:   "enable",
		Short: "let the integration run (it does once a URL and a template are set)",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withStorage(cmd.Context(), func(ctx context.Context, st *storage.Storage) error {
				return st.SetSabakanDisabled(ctx, false)
			})
		},
	}
	disable := &cobra.Command{
		Use:   "disable",
		Short: "stop the integration; cluster.yml is then the operator's again",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withStorage(cmd.Context(), func(ctx context.Context, st *storage.Storage) error {
				return st.SetSabakanDisabled(ctx, true)
			})
		},
	}
	var sout cli.Output
	show := &cobra.Command{
		Use:   "show",
		Short: "print the integration's settings and whether it runs",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withSettings(cmd, o, func(s *storage.SabakanSettings) error {
				view := struct {
					Enabled  bool   `json:"enabled"`
					Disabled bool   `json:"disabled"`
					URL      string `json:"url,omitempty"`
					Template bool   `json:"template"`
				}{s.Enabled(), s.Disabled, s.URL, s.Template != nil}
				w := cmd.OutOrStdout()
				return printData(w, sout, view, func() error {
					state := "runs"
					switch {
					case s.Disabled:
						state = "disabled (ckecli sabakan enable)"
					case s.URL == "" && s.Template == nil:
						state = "off: no URL and no template"
					case s.URL == "":
						state = "off: no URL (ckecli sabakan set-url)"
					case s.Template == nil:
						state = "off: no template (ckecli sabakan set-template)"
					}
					_, err := fmt.Fprintf(w, "integration: %s\nurl:         %s\n", state, s.URL)
					return err
				})
			})
		},
	}
	addOutputFlag(show, &sout, outText, outJSON, outYAML)
	cmd.AddCommand(setURL, getURL, setTemplate, getTemplate, enable, disable, show)
	return cmd
}

func withSettings(cmd *cobra.Command, o *options, f func(*storage.SabakanSettings) error) error {
	return o.withStorage(cmd.Context(), func(ctx context.Context, st *storage.Storage) error {
		s, err := st.GetSabakanSettings(ctx)
		if err != nil {
			return err
		}
		return f(s)
	})
}
