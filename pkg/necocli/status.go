package necocli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/etcdutil"
	"github.com/openneco/neco/pkg/neco"
	"github.com/openneco/neco/pkg/neco/storage"
)

// cdStatus is `neco status -o json`.
type cdStatus struct {
	Latest        string                        `json:"latest_release"`
	Request       *neco.UpdateRequest           `json:"request"`
	Statuses      map[string]*neco.UpdateStatus `json:"statuses"`
	BootServers   []int                         `json:"boot_servers"`
	UpdaterLeader string                        `json:"updater_leader"`
	Env           neco.Env                      `json:"env"`
	InvalidConfig []string                      `json:"invalid_config,omitempty"`
	Malformed     []string                      `json:"malformed_keys,omitempty"`
}

func newStatusCommand(opts *globalOptions) *cobra.Command {
	var out cli.Output
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show the continuous delivery state: latest release, update request, each boot server's progress",
		Long: `status shows what neco-updater and the neco-workers are doing: the latest
release found, the current update request (version, boot servers, whether it
is stopped and why), the updater's leader, and for every boot server of the
request its step and condition (running, aborted with a message, completed).

A stopped update waits for "neco recover" after the cause is fixed.`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return opts.withEtcd(cmd.Context(), func(ctx context.Context, c *clientv3.Client) error {
				st, err := readStatus(ctx, c)
				if err != nil {
					return err
				}
				if out == cli.OutputJSON {
					return cli.PrintJSON(cmd.OutOrStdout(), st)
				}
				return printStatus(cmd.OutOrStdout(), st)
			})
		},
	}
	cli.AddOutputFlag(cmd, &out, cli.OutputSimple, cli.OutputJSON)
	return cmd
}

func readStatus(ctx context.Context, c *clientv3.Client) (*cdStatus, error) {
	snap, err := storage.New(c).Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	leader, err := etcdutil.CurrentLeader(ctx, c, storage.LeaderUpdater)
	if err != nil {
		return nil, err
	}
	st := &cdStatus{Latest: snap.Latest, Request: snap.Request, Statuses: map[string]*neco.UpdateStatus{},
		BootServers: snap.BootServers, UpdaterLeader: leader, Env: snap.Config.Env, InvalidConfig: snap.Config.Invalid, Malformed: snap.Malformed}
	for lrn, s := range snap.CurrentStatuses() {
		st.Statuses[strconv.Itoa(lrn)] = s
	}
	if st.BootServers == nil {
		st.BootServers = []int{}
	}
	return st, nil
}

func printStatus(w io.Writer, st *cdStatus) error {
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	fmt.Fprintf(w, "environment:     %s\n", st.Env)
	fmt.Fprintf(w, "latest release:  %s\n", or(st.Latest, "(none found yet)"))
	fmt.Fprintf(w, "updater leader:  %s\n", or(st.UpdaterLeader, "(none: is neco-updater running?)"))
	fmt.Fprintf(w, "boot servers:    %v\n", st.BootServers)
	for _, k := range st.InvalidConfig {
		fmt.Fprintf(w, "warning: config %s holds an invalid value; the default applies (neco config set %s ...)\n", k, k)
	}
	req := st.Request
	if req == nil {
		fmt.Fprintln(w, "update request:  (none)")
		return nil
	}
	state := "running"
	if req.Stop {
		state = "STOPPED: " + req.StopReason + "\n                 fix the cause, then run: neco recover"
	}
	fmt.Fprintf(w, "update request:  #%d version %s on %v, started %s (%s ago)\n", req.ID, req.Version, req.Servers,
		req.StartedAt.Local().Format(time.RFC3339), time.Since(req.StartedAt).Round(time.Second))
	fmt.Fprintf(w, "                 %s\n\n", state)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LRN\tVERSION\tSTEP\tCONDITION\tUPDATED\tMESSAGE")
	for _, lrn := range req.Servers {
		s := st.Statuses[strconv.Itoa(lrn)]
		if s == nil {
			fmt.Fprintf(tw, "%d\t-\t-\tnot started\t-\t\n", lrn)
			continue
		}
		fmt.Fprintf(tw, "%d\t%s\t%d %s\t%s\t%s\t%s\n", lrn, s.Version, s.Step, s.StepName, s.Cond, s.UpdatedAt.Local().Format(time.TimeOnly), s.Message)
	}
	return tw.Flush()
}
