package necocli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openneco/neco/pkg/bmc"
	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/redfish"
	"github.com/openneco/neco/pkg/sabakan"
	"github.com/openneco/neco/pkg/sabakan/client"
)

func newBMCCommand(opts *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bmc",
		Short: "the credentials of the machines' BMCs",
		Long: `bmc stores the user name and password every machine's BMC accepts, once for
the whole data center (etcd, /neco/bmc/credentials). neco power and the
repair loop of sabakan-state-setter use them. The password is never printed
or logged.`,
	}
	var user, passwordFile string
	set := &cobra.Command{
		Use:   "set-credentials --username NAME [--password-file FILE]",
		Short: "store the BMCs' user name and password",
		Long: `Stores the BMCs' credentials. The password is read from --password-file, or
from standard input when no file is given (its first line), never from the
command line.`,
		Example: `  neco bmc set-credentials --username admin --password-file /root/bmc-password
  read -rs PW && echo "$PW" | neco bmc set-credentials --username admin`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := cmd.InOrStdin()
			if passwordFile != "" {
				f, err := os.Open(passwordFile)
				if err != nil {
					return cli.UsageError("--password-file: %v", err)
				}
				defer f.Close()
				in = f
			}
			pw, err := firstLine(in)
			if err != nil {
				return cli.UsageError("the password: %v", err)
			}
			c := bmc.Credentials{Username: user, Password: pw}
			if err := c.Validate(); err != nil {
				return cli.UsageError("%v", err)
			}
			return opts.withEtcd(cmd.Context(), func(ctx context.Context, ec *clientv3.Client) error {
				if err := storage.New(ec).SetBMCCredentials(ctx, c); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "stored the BMC credentials of user %s\n", c.Username)
				return nil
			})
		},
	}
	set.Flags().StringVar(&user, "username", "", "the BMCs' user name (required)")
	set.Flags().StringVar(&passwordFile, "password-file", "", "file whose first line is the password (default: standard input)")
	set.MarkFlagRequired("username")

	var out cli.Output
	show := &cobra.Command{
		Use:   "show-credentials",
		Short: "show the stored BMC user name (never the password)",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return opts.withEtcd(cmd.Context(), func(ctx context.Context, ec *clientv3.Client) error {
				c, err := storage.New(ec).GetBMCCredentials(ctx)
				if errors.Is(err, storage.ErrNoBMCCredentials) {
					return cli.WithCode(cli.ExitNotFound, err)
				}
				if err != nil {
					return err
				}
				if out == cli.OutputJSON {
					return cli.PrintJSON(cmd.OutOrStdout(), map[string]any{"username": c.Username, "password-set": c.Password != ""})
				}
				fmt.Fprintf(cmd.OutOrStdout(), "username: %s\npassword: (set; never shown)\n", c.Username)
				return nil
			})
		},
	}
	cli.AddOutputFlag(show, &out, cli.OutputSimple, cli.OutputJSON)
	cmd.AddCommand(set, show)
	return cmd
}

// firstLine reads the first line of r, without its line ending.
func firstLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty")
	}
	return line, nil
}

// powerFlags are what every neco power command shares.
type powerFlags struct {
	sabakanURL string
	timeout    time.Duration
	out        cli.Output
}

// powerTarget is a machine resolved from the command line.
type powerTarget struct {
	Arg    string `json:"target"`
	Serial string `json:"serial"`
	Rack   uint   `json:"rack"`
	Role   string `json:"role"`
	Node   string `json:"node"`
	BMC    string `json:"bmc"`
	State  string `json:"state"`
	Power  string `json:"power,omitempty"`
	Action string `json:"action,omitempty"`
	Error  string `json:"error,omitempty"`
}

func newPowerCommand(opts *globalOptions) *cobra.Command {
	f := &powerFlags{}
	cmd := &cobra.Command{
		Use:   "power",
		Short: "power machines on, off and cycle them through their BMCs",
		Long: `power acts on machines through their BMCs (Redfish over HTTPS), with the
credentials stored by 'neco bmc set-credentials'. A TARGET is a machine's
serial, one of its node addresses or its BMC address, as sabakan knows it.
Every action is recorded in sabakan's audit log (category power) before it is
taken; a failed one is recorded too.

Exit codes: 0 every target done, 1 a BMC failed, 2 usage error, 14 a target is
not a machine in sabakan.`,
	}
	cmd.PersistentFlags().StringVar(&f.sabakanURL, "sabakan-url", "http://127.0.0.1:10080", "sabakan's REST API")
	cmd.PersistentFlags().DurationVar(&f.timeout, "timeout", 30*time.Second, "bound of each BMC operation")
	status := &cobra.Command{
		Use:   "status [TARGET...]",
		Short: "show machines' power state (every machine without TARGET)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, opts, args, "")
		},
	}
	cli.AddOutputFlag(status, &f.out, cli.OutputSimple, cli.OutputJSON)
	cmd.AddCommand(status)
	var force bool
	for _, a := range []struct{ use, short string }{
		{"start", "power machines on (those on are left alone)"},
		{"stop", "shut machines down (--force: power off at once)"},
		{"restart", "restart machines (--force: a power cycle)"},
	} {
		c := &cobra.Command{
			Use:   a.use + " TARGET...",
			Short: a.short,
			Args:  cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return f.run(cmd, opts, args, resetType(a.use, force))
			},
		}
		if a.use != "start" {
			c.Flags().BoolVar(&force, "force", false, "do not wait for the operating system: cut the power")
		}
		cli.AddOutputFlag(c, &f.out, cli.OutputSimple, cli.OutputJSON)
		cmd.AddCommand(c)
	}
	return cmd
}

// resetType is the Redfish reset a power command asks for.
func resetType(action string, force bool) redfish.ResetType {
	switch {
	case action == "start":
		return redfish.ResetOn
	case action == "stop" && force:
		return redfish.ResetForceOff
	case action == "stop":
		return redfish.ResetGracefulShutdown
	case force:
		return redfish.ResetPowerCycle
	}
	return redfish.ResetGracefulRestart
}

// auditAction names a reset in sabakan's audit log.
func auditAction(t redfish.ResetType) string {
	return "power-" + strings.ToLower(string(t))
}

func (f *powerFlags) run(cmd *cobra.Command, opts *globalOptions, args []string, reset redfish.ResetType) error {
	ctx := cmd.Context()
	sc, err := client.New(f.sabakanURL, client.WithUser(operator()))
	if err != nil {
		return cli.UsageError("--sabakan-url: %v", err)
	}
	machines, err := sc.Machines(ctx, nil)
	if err != nil {
		return err
	}
	targets, err := resolveTargets(machines, args)
	if err != nil {
		return cli.WithCode(cli.ExitNotFound, err)
	}
	var creds bmc.Credentials
	if err := opts.withEtcd(ctx, func(ctx context.Context, ec *clientv3.Client) error {
		creds, err = storage.New(ec).GetBMCCredentials(ctx)
		return err
	}); err != nil {
		return err
	}
	bc := &bmc.Client{Credentials: creds, Timeout: f.timeout}
	failed := 0
	for i := range targets {
		t := &targets[i]
		if err := f.act(ctx, sc, bc, t, reset); err != nil {
			t.Error = err.Error()
			failed++
		}
	}
	if err := f.print(cmd.OutOrStdout(), targets, reset); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d machines failed", failed, len(targets))
	}
	return nil
}

// act reads the power state, or takes the reset: audited first, and its
// failure audited too.
func (f *powerFlags) act(ctx context.Context, sc *client.Client, bc *bmc.Client, t *powerTarget, reset redfish.ResetType) error {
	if t.BMC == "" {
		return errors.New("the machine has no BMC address in sabakan")
	}
	if reset == "" {
		ps, err := bc.PowerState(ctx, t.BMC)
		t.Power = string(ps)
		return err
	}
	t.Action = string(reset)
	if _, err := sc.AddLog(ctx, sabakan.AuditPower, t.Serial, auditAction(reset), "neco power: "+string(reset)+" through BMC "+t.BMC); err != nil {
		return fmt.Errorf("not done: the audit log refused it: %w", err)
	}
	err := bc.Reset(ctx, t.BMC, reset)
	if err != nil {
		if _, aerr := sc.AddLog(ctx, sabakan.AuditPower, t.Serial, auditAction(reset)+"-failed", truncate(err.Error(), 1000)); aerr != nil {
			err = errors.Join(err, fmt.Errorf("audit log: %w", aerr))
		}
	}
	return err
}

func (f *powerFlags) print(w io.Writer, targets []powerTarget, reset redfish.ResetType) error {
	if f.out == cli.OutputJSON {
		return cli.PrintJSON(w, targets)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	last := "POWER"
	if reset != "" {
		last = "ACTION"
	}
	fmt.Fprintf(tw, "SERIAL\tRACK\tROLE\tNODE\tBMC\tSTATE\t%s\n", last)
	for _, t := range targets {
		v := t.Power
		if reset != "" {
			v = t.Action + " done"
		}
		if t.Error != "" {
			v = "error: " + t.Error
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", t.Serial, t.Rack, t.Role, t.Node, t.BMC, t.State, v)
	}
	return tw.Flush()
}

// resolveTargets finds each argument's machine by serial, node address or
// BMC address; no argument means every machine.
func resolveTargets(machines []sabakan.Machine, args []string) ([]powerTarget, error) {
	target := func(arg string, m sabakan.Machine) powerTarget {
		t := powerTarget{Arg: arg, Serial: m.Spec.Serial, Rack: m.Spec.Rack, Role: m.Spec.Role, BMC: m.Spec.BMC.IPv4,
			State: string(m.Status.State)}
		if len(m.Spec.IPv4) > 0 {
			t.Node = m.Spec.IPv4[0]
		}
		return t
	}
	var out []powerTarget
	if len(args) == 0 {
		for _, m := range machines {
			out = append(out, target(m.Spec.Serial, m))
		}
		return out, nil
	}
	var missing []string
	for _, a := range args {
		found := false
		for _, m := range machines {
			if m.Spec.Serial == a || m.Spec.BMC.IPv4 == a || slices.Contains(m.Spec.IPv4, a) {
				out = append(out, target(a, m))
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, a)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("not a machine in sabakan (serial, node or BMC address): %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// truncate cuts s to at most n bytes at a character boundary (sabakan
// refuses a detail that is not valid UTF-8).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// operator is who runs the command, for sabakan's audit log.
func operator() string {
	for _, v := range []string{"SUDO_USER", "USER"} {
		if u := os.Getenv(v); u != "" {
			return "neco-power:" + u
		}
	}
	return "neco-power"
}
