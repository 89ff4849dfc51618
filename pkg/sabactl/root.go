// Package sabactl is the sabactl command: the operator's CLI of sabakan's
// REST API (docs/sabactl.md). Commands, flags, output and exit codes follow
// the reference boot server's CLI, so that scripts written for it keep
// working: 0 success, 1 failure, 2 usage error, 4 the server answered 4xx,
// 5 it answered 5xx, 14 not found (404), 19 conflict (409).
//
// Each command group lives in a file of its own and registers its
// constructor with register from an init function.
package sabactl

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/sabakan/client"
	"github.com/openneco/neco/pkg/version"
)

// Options are the global flags.
type Options struct {
	Server    string
	TLSServer string
	Insecure  bool
}

// Client returns a client of the configured server.
func (o *Options) Client() (*client.Client, error) {
	opts := []client.Option{client.WithTLSServer(o.TLSServer)}
	if o.Insecure {
		opts = append(opts, client.WithTLSConfig(&tls.Config{InsecureSkipVerify: true}))
	}
	return client.New(o.Server, opts...)
}

var commands []func(*Options) *cobra.Command

// register adds a command group to the root command.
func register(f func(*Options) *cobra.Command) { commands = append(commands, f) }

// NewRootCommand builds the sabactl command tree.
func NewRootCommand() *cobra.Command {
	o := &Options{}
	root := &cobra.Command{
		Use:   "sabactl",
		Short: "control sabakan, the network boot server and machine inventory",
		Long: `sabactl controls sabakan through its REST API: the IPAM and DHCP
configuration, the machine inventory and its life-cycle, disk encryption
keys and the audit log.

Exit codes: 0 success, 1 failure, 2 usage error, 4 the server answered 4xx,
5 it answered 5xx, 14 not found (404), 19 conflict (409).`,
		Version: version.Version,
	}
	root.PersistentFlags().StringVar(&o.Server, "server", "http://localhost:10080", "URL of the sabakan server")
	root.PersistentFlags().StringVar(&o.TLSServer, "tls-server", "https://localhost:10443", "URL of the sabakan HTTPS server (disk encryption keys)")
	root.PersistentFlags().BoolVar(&o.Insecure, "insecure", false, "do not verify the HTTPS server's certificate")
	for _, f := range commands {
		root.AddCommand(f(o))
	}
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "show the version of sabactl",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), version.Version)
			return err
		},
	})
	wrapErrors(root)
	return root
}

// Main runs sabactl and exits with its exit code.
func Main() { cli.Main(NewRootCommand()) }

// wrapErrors gives every command's errors the exit code of the HTTP status
// they carry.
func wrapErrors(cmd *cobra.Command) {
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error { return withExitCode(run(c, args)) }
	}
	for _, sub := range cmd.Commands() {
		wrapErrors(sub)
	}
}

// withExitCode maps an error to sabactl's exit codes.
func withExitCode(err error) error {
	if err == nil {
		return nil
	}
	var ee *cli.ExitError
	if errors.As(err, &ee) {
		return err
	}
	switch s := client.StatusOf(err); {
	case s == http.StatusNotFound:
		return cli.WithCode(cli.ExitNotFound, err)
	case s == http.StatusConflict:
		return cli.WithCode(cli.ExitConflict, err)
	case s >= 400 && s < 500:
		return cli.WithCode(cli.ExitClient, err)
	case s >= 500:
		return cli.WithCode(cli.ExitServer, err)
	}
	return cli.WithCode(cli.ExitFailure, err)
}

// readInput reads the file named by a -f flag; "-" is standard input.
func readInput(cmd *cobra.Command, path string) ([]byte, error) {
	if path == "" {
		return nil, cli.UsageError("%s needs -f FILE\nUsage: %s", cmd.CommandPath(), cmd.UseLine())
	}
	if path == "-" {
		return io.ReadAll(cmd.InOrStdin())
	}
	return os.ReadFile(path)
}

// completeSerials completes serial numbers by asking the server.
func completeSerials(o *Options) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := o.Client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		ms, err := c.Machines(ctx, nil)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		out := make([]string, 0, len(ms))
		for _, m := range ms {
			out = append(out, m.Spec.Serial)
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// printJSONLine writes v as one line of JSON, as the server sends it.
func printJSONLine(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
