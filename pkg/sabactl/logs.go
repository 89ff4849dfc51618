package sabactl

import (
	"fmt"
	"io"
	"strings"
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
60 days). Each entry is printed on one line as "time user@ip
category/instance action detail:..." with the detail cut at 20 bytes;
--json prints each entry whole as a JSON line.`,
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
			return c.Logs(cmd.Context(), since, until, func(e *sabakan.AuditEntry) error {
				if asJSON {
					return printJSONLine(out, e)
				}
				return printLog(out, e)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print entries as JSON lines (with complete details)")
	return cmd
}

// printLog writes an entry as the reference CLI does, so that scripts
// parsing it keep working: time, user@ip, category/instance, action and the
// first 20 bytes of the detail.
func printLog(w io.Writer, e *sabakan.AuditEntry) error {
	detail := strings.ReplaceAll(e.Detail, "\n", " ")
	if len(detail) > 20 {
		detail = detail[:20]
	}
	_, err := fmt.Fprintf(w, "%s %s@%s %s/%s %s detail:%s\n",
		e.Timestamp.Format("Jan 02 15:04:05.000"), e.User, e.IP, e.Category, e.Instance, e.Action, detail)
	return err
}
