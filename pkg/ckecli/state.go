package ckecli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/decide"
	"github.com/openneco/neco/pkg/cke/storage"
	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/etcdutil"
)

// errNoLeader: no engine leads.
var errNoLeader = fmt.Errorf("no engine leads (is cke running on the boot servers?): %w", cke.ErrNotFound)

func newLeaderCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "leader",
		Short: "print the name of the engine that leads (the one that acts)",
		Long: `leader prints the name of the cke process that won the election (by default
its boot server's host name); exit code 3 when none leads.`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withStorage(cmd.Context(), func(ctx context.Context, st *storage.Storage) error {
				name, err := etcdutil.CurrentLeader(ctx, st.Client(), storage.LeaderElection)
				if err != nil {
					return err
				}
				if name == "" {
					return errNoLeader
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), name)
				return err
			})
		},
	}
}

// statusReport is what ckecli status prints.
type statusReport struct {
	// CurrentLeader is the engine leading now ("" if none); Status.Leader
	// the one that made the decision.
	CurrentLeader string `json:"current_leader"`
	*storage.Status
	// Running are the operations being run.
	Running []*storage.Record `json:"running,omitempty"`
}

func newStatusCommand(o *options) *cobra.Command {
	var out cli.Output
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show the engine's last decision: phase, operations, unreachable nodes, error",
		Long: `status shows what the leading engine last decided: how far the cluster is
from cluster.yml (the phase), the operations it runs or would run next, what
it waits for, which nodes it could reach, and when it decided. Exit code 1
when the decision records an error, 3 when no engine has decided yet.`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withStorage(cmd.Context(), func(ctx context.Context, st *storage.Storage) error {
				s, err := st.GetStatus(ctx)
				if errors.Is(err, cke.ErrNotFound) {
					return fmt.Errorf("no status: no engine has decided yet (is cke running? ckecli leader): %w", cke.ErrNotFound)
				}
				if err != nil {
					return err
				}
				r := statusReport{Status: s}
				if r.CurrentLeader, err = etcdutil.CurrentLeader(ctx, st.Client(), storage.LeaderElection); err != nil {
					return err
				}
				recs, err := st.Records(ctx, 20)
				if err != nil {
					return err
				}
				for _, rec := range recs {
					if rec.Status == storage.RecordRunning {
						r.Running = append(r.Running, rec)
					}
				}
				w := cmd.OutOrStdout()
				if err := printData(w, out, r, func() error { return printStatus(w, &r, time.Now()) }); err != nil {
					return err
				}
				if s.Error != "" {
					return fmt.Errorf("the engine reports an error: %s", firstLine(s.Error))
				}
				return nil
			})
		},
	}
	addOutputFlag(cmd, &out, outText, outJSON, outYAML)
	return cmd
}

func printStatus(w io.Writer, r *statusReport, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	leader := r.CurrentLeader
	switch {
	case leader == "":
		leader = "none (no engine leads)"
	case r.Status.Leader != "" && r.Status.Leader != leader:
		leader += " (the status below is " + r.Status.Leader + "'s)"
	}
	fmt.Fprintf(tw, "leader:\t%s\n", leader)
	fmt.Fprintf(tw, "phase:\t%s\n", r.Phase)
	fmt.Fprintf(tw, "decided:\t%s (%s ago)\n", r.Time.Local().Format(time.RFC3339), now.Sub(r.Time).Round(time.Second))
	if r.Waiting != "" {
		fmt.Fprintf(tw, "waiting:\t%s\n", r.Waiting)
	}
	if r.Error != "" {
		fmt.Fprintf(tw, "error:\t%s\n", r.Error)
	}
	tw.Flush()
	if len(r.Running) > 0 {
		fmt.Fprintln(w, "running:")
		for _, rec := range r.Running {
			step := ""
			if n := len(rec.Steps); n > 0 {
				step = fmt.Sprintf(" (step %d: %s)", n, rec.Steps[n-1].Name)
			}
			fmt.Fprintf(w, "  #%d %s%s, for %s\n", rec.ID, rec.Op, step, now.Sub(rec.Start).Round(time.Second))
		}
	}
	if len(r.Ops) > 0 {
		fmt.Fprintln(w, "operations:")
		for _, op := range r.Ops {
			fmt.Fprintf(w, "  %s\n", op)
		}
	} else if r.Phase == decide.PhaseCompleted {
		fmt.Fprintln(w, "operations: none, the cluster is as cluster.yml declares")
	}
	if len(r.Nodes) > 0 {
		addrs := slices.Sorted(maps.Keys(r.Nodes))
		var down []string
		for _, a := range addrs {
			if !r.Nodes[a] {
				down = append(down, a)
			}
		}
		fmt.Fprintf(w, "nodes: %d reachable of %d", len(addrs)-len(down), len(addrs))
		if len(down) > 0 {
			fmt.Fprintf(w, "; unreachable: %s", strings.Join(down, ", "))
		}
		fmt.Fprintln(w)
	}
	if sr := r.Sabakan; sr != nil {
		switch {
		case sr.Error != "":
			fmt.Fprintf(w, "sabakan integration: failed: %s\n", sr.Error)
		case len(sr.Changes) > 0:
			fmt.Fprintf(w, "sabakan integration: %d machines; updated cluster.yml:\n", sr.Machines)
			for _, c := range sr.Changes {
				fmt.Fprintf(w, "  %s\n", c)
			}
		default:
			fmt.Fprintf(w, "sabakan integration: %d machines; cluster.yml is up to date\n", sr.Machines)
		}
		for _, wn := range sr.Warnings {
			fmt.Fprintf(w, "  warning: %s\n", wn)
		}
	}
	return nil
}

func newHistoryCommand(o *options) *cobra.Command {
	var out cli.Output
	var n int
	cmd := &cobra.Command{
		Use:   "history",
		Short: "list the engine's operations, newest first",
		Long: `history lists the operations the engine ran (the last ` + fmt.Sprint(storage.MaxRecords) + ` are kept), newest
first: ID, status (running, completed, failed, or cancelled when its leader
went away), phase, operation, start, duration and error. -o json or yaml
prints the full records with their steps.`,
		Example: `  ckecli history -n 5
  ckecli history -o json | jq '.[] | select(.status == "failed")'`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 0 {
				return cli.UsageError("-n %d: give a count, or 0 for every record", n)
			}
			return o.withStorage(cmd.Context(), func(ctx context.Context, st *storage.Storage) error {
				recs, err := st.Records(ctx, n)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				return printData(w, out, recs, func() error { return printHistory(w, recs, time.Now()) })
			})
		},
	}
	cmd.Flags().IntVarP(&n, "number", "n", 20, "how many records, newest first; 0 for all")
	addOutputFlag(cmd, &out, outText, outJSON, outYAML)
	return cmd
}

func printHistory(w io.Writer, recs []*storage.Record, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tPHASE\tOPERATION\tSTART\tDURATION\tERROR")
	for _, r := range recs {
		op := r.Op
		op.Reason = "" // the table's line stays short; -o json has it
		end := r.End
		if end.IsZero() {
			end = now
		}
		dur := end.Sub(r.Start).Round(100 * time.Millisecond).String()
		if r.End.IsZero() {
			dur += "+"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Status, r.Phase, op, r.Start.Local().Format(time.RFC3339), dur, firstLine(r.Error))
	}
	return tw.Flush()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
