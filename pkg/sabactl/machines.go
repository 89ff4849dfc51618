package sabactl

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/client"
)

func init() { register(machinesCommand) }

// queryFlags are the filters of machines get, each also as --without-NAME.
var queryFlags = []struct{ name, help string }{
	{"serial", "serial numbers"},
	{"rack", "rack numbers"},
	{"role", "roles"},
	{"labels", "labels as NAME=VALUE; all must match"},
	{"ipv4", "IPv4 addresses"},
	{"ipv6", "IPv6 addresses"},
	{"bmc-type", "BMC types"},
	{"state", "states"},
}

var stateNames = func() []string {
	out := make([]string, len(sabakan.AllStates))
	for i, s := range sabakan.AllStates {
		out[i] = string(s)
	}
	return out
}()

func machinesCommand(o *Options) *cobra.Command {
	cmd := &cobra.Command{Use: "machines", Short: "register, query and change machines"}
	cmd.AddCommand(
		machinesCreate(o), machinesGet(o), machinesRemove(o),
		machinesGetState(o), machinesSetState(o),
		machinesGetLabel(o), machinesSetLabel(o), machinesRemoveLabel(o), machinesSetRetireDate(o),
	)
	return cmd
}

func machinesCreate(o *Options) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "create -f FILE",
		Short: "register machines from a JSON array of machine specs, all or none",
		Long: `Register machines from a JSON file holding an array of machine specs:

  [{"serial": "1234abcd", "rack": 1, "role": "boot", "labels": {"product": "R630"},
    "bmc": {"type": "iDRAC-9"}, "retire-date": "2030-01-01T00:00:00Z"}, ...]

sabakan assigns the index in rack and the addresses. Either every machine of
the file is registered or none is (any number of machines per file).`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := readInput(cmd, file)
			if err != nil {
				return err
			}
			specs, err := sabakan.DecodeMachineSpecs(data)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			return c.Register(cmd.Context(), specs)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "JSON file of machine specs (- for standard input)")
	return cmd
}

func machinesGet(o *Options) *cobra.Command {
	values := map[string]*string{}
	var out cli.Output
	cmd := &cobra.Command{
		Use:   "get [--FILTER VALUE[,VALUE...]]... [-o json|simple]",
		Short: "show the machines matching filters",
		Long: `Show the machines matching every given filter. Comma-separated values of one
filter are alternatives; --labels pairs must all match. Each filter also has a
--without- form that excludes the machines matching it. No match exits with
code 14.`,
		Example: `  sabactl machines get --rack 1 --role cs -o simple
  sabactl machines get --labels product=R640,datacenter=ty3 --without-state retired`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := url.Values{}
			for name, p := range values {
				if *p != "" {
					v.Set(name, *p)
				}
			}
			q, err := sabakan.ParseQuery(v)
			if err != nil {
				return cli.WithCode(cli.ExitClient, err)
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			ms, err := c.Machines(cmd.Context(), q)
			if err != nil {
				return err
			}
			if len(ms) == 0 {
				return &client.Error{Status: http.StatusNotFound, Message: "no machine matches the query"}
			}
			if out == cli.OutputSimple {
				return printMachines(cmd, ms)
			}
			return cli.PrintJSON(cmd.OutOrStdout(), ms)
		},
	}
	for _, f := range queryFlags {
		for _, name := range []string{f.name, "without-" + f.name} {
			values[name] = cmd.Flags().String(name, "", f.help)
		}
	}
	for _, name := range []string{"state", "without-state"} {
		cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(stateNames, cobra.ShellCompDirectiveNoFileComp))
	}
	cli.AddOutputFlag(cmd, &out, cli.OutputJSON, cli.OutputSimple)
	return cmd
}

// printMachines writes the reference CLI's table, column for column, so
// that scripts parsing it keep working: serial, rack, role, state, first
// address, BMC type.
func printMachines(cmd *cobra.Command, ms []sabakan.Machine) error {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 1, 1, ' ', 0)
	fmt.Fprint(w, "Serial\tRack\tRole\tState\tIPv4\tBMC\n")
	for _, m := range ms {
		addr := ""
		if len(m.Spec.IPv4) > 0 {
			addr = m.Spec.IPv4[0]
		} else if len(m.Spec.IPv6) > 0 {
			addr = m.Spec.IPv6[0]
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t\n", m.Spec.Serial, m.Spec.Rack, m.Spec.Role, m.Status.State, addr, m.Spec.BMC.Type)
	}
	return w.Flush()
}

func machinesRemove(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:               "remove SERIAL",
		Short:             "delete a retired machine",
		Args:              cli.ExactArgs(1),
		ValidArgsFunction: completeSerials(o),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			return c.RemoveMachine(cmd.Context(), args[0])
		},
	}
}

func machinesGetState(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:               "get-state SERIAL",
		Short:             "show the state of a machine",
		Args:              cli.ExactArgs(1),
		ValidArgsFunction: completeSerials(o),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			st, err := c.State(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), st)
			return err
		},
	}
}

func machinesSetState(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "set-state SERIAL STATE",
		Short: "change the state of a machine",
		Long: `Change the state of a machine. STATE is one of:

  uninitialized  the machine is not yet initialized
  healthy        the machine has no problems
  unhealthy      the machine has some problems
  unreachable    the machine does not communicate with others
  updating       the machine is being updated
  retiring       the machine should soon be retired or repaired
  retired        the machine is retired (only without disk encryption keys)

Allowed transitions are listed in docs/sabakan-api.md; a forbidden one exits
with code 19.`,
		Args: cli.ExactArgs(2),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 1 {
				return stateNames, cobra.ShellCompDirectiveNoFileComp
			}
			return completeSerials(o)(cmd, args, toComplete)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			return c.SetState(cmd.Context(), args[0], sabakan.MachineState(strings.ToLower(args[1])))
		},
	}
}

func machinesGetLabel(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:               "get-label SERIAL NAME",
		Short:             "show the value of a label of a machine",
		Args:              cli.ExactArgs(2),
		ValidArgsFunction: completeSerials(o),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			m, err := c.Machine(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			v, ok := m.Spec.Labels[args[1]]
			if !ok {
				return &client.Error{Status: http.StatusNotFound, Message: fmt.Sprintf("machine %s has no label %s", args[0], args[1])}
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), v)
			return err
		},
	}
}

func machinesSetLabel(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:               "set-label SERIAL NAME VALUE",
		Short:             "add or replace a label of a machine",
		Args:              cli.ExactArgs(3),
		ValidArgsFunction: completeSerials(o),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			return c.SetLabel(cmd.Context(), args[0], args[1], args[2])
		},
	}
}

func machinesRemoveLabel(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:               "remove-label SERIAL NAME",
		Short:             "remove a label of a machine",
		Args:              cli.ExactArgs(2),
		ValidArgsFunction: completeSerials(o),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			return c.RemoveLabel(cmd.Context(), args[0], args[1])
		},
	}
}

func machinesSetRetireDate(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:               "set-retire-date SERIAL YYYY-MM-DD",
		Short:             "set the date a machine is planned to retire",
		Args:              cli.ExactArgs(2),
		ValidArgsFunction: completeSerials(o),
		RunE: func(cmd *cobra.Command, args []string) error {
			date, err := time.Parse(time.DateOnly, args[1])
			if err != nil {
				return cli.UsageError("invalid date %q: want YYYY-MM-DD", args[1])
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			return c.SetRetireDate(cmd.Context(), args[0], date)
		},
	}
}
