package sabactl

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/sabakan"
)

func init() { register(logsCommand) }

func logsCommand(o *Options) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "logs [--json] [START_DATE [END_DATE]]",
		Short: "show the audit log",
		Long: `Show the audit log: who changed what, when. Dates are YYYYMMDD in UTC.
With START_DATE alone, the entries of that day; with both, those from
START_DATE up to END_DATE, END_DATE excluded; with none, all entries (kept for
60 days). The table shortens long details; --json prints each entry whole as
a JSON line.`,
		Args: cli.RangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var dates []time.Time
			for _, a := range args {
				d, err := time.Parse("20060102", a)
				if err != nil {
					return cli.UsageError("invalid date %q: want YYYYMMDD", a)
				}
				dates = append(dates, d)
			}
			var since, until time.Time
			switch len(dates) {
			case 1:
				since, until = dates[0], dates[0].AddDate(0, 0, 1)
			case 2:
				since, until = dates[0], dates[1]
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			err = c.Logs(cmd.Context(), since, until, func(e *sabakan.AuditEntry) error {
				if asJSON {
					return printJSONLine(out, e)
				}
				who := e.User
				if who == "" {
					who = "-"
				}
				_, err := fmt.Fprintf(tw, "%s\t%s@%s\t%s\t%s\t%s\t%s\t%s\n", e.Timestamp.UTC().Format(time.RFC3339),
					who, e.IP, e.Host, e.Category, e.Instance, e.Action, shorten(e.Detail, maxDetail))
				return err
			})
			if err != nil {
				return err
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print entries as JSON lines (with complete details)")
	return cmd
}

// maxDetail bounds the details shown in the table; --json shows them whole.
const maxDetail = 100

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
