// Package ckecli is the ckecli command: the operator's tool of the
// Kubernetes engine (cke). ckecli and the engine never talk to each other:
// ckecli writes the declaration (cluster.yml, constraints, resources, the
// engine's Vault settings) into the boot servers' etcd under /cke/
// (pkg/cke/storage) and reads back what the elected engine records there
// (leader, status, history). Certificates and secrets come from Vault with
// the operator's own token (VAULT_TOKEN).
//
// Exit codes are decided in one place, the root command (exitError):
// 0 success, 1 failure, 2 usage error or invalid input (cke.ErrInvalid:
// nothing was stored), 3 not found (cke.ErrNotFound).
//
// Files: root.go the root command, the connection to etcd, errors and
// output; cluster.go cluster.yml and constraints; resource.go the users'
// resources; state.go leader, status and history; vault.go vault init
// and ssh-pubkey, ca get, InitVault (also run by neco setup) and the
// operator's Vault client; issue.go kubernetes issue and etcd issue;
// misc.go ssh forget and images; sabakan.go the sabakan integration's
// settings. cmd/ckecli only calls NewRootCommand.
package ckecli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/openneco/neco/pkg/cke"
	"github.com/openneco/neco/pkg/cke/ckevault"
	"github.com/openneco/neco/pkg/cke/storage"
	"github.com/openneco/neco/pkg/cli"
	"github.com/openneco/neco/pkg/etcdutil"
	necostorage "github.com/openneco/neco/pkg/neco/storage"
	"github.com/openneco/neco/pkg/version"
)

// Exit codes of ckecli.
const (
	ExitOK      = cli.ExitOK
	ExitFailure = cli.ExitFailure
	// ExitInvalid: a usage error, or input that does not validate
	// (cke.ErrInvalid); nothing was stored.
	ExitInvalid = cli.ExitUsage
	// ExitNotFound: what was asked for does not exist (cke.ErrNotFound).
	ExitNotFound = 3
)

const exitCodesHelp = `Exit codes: 0 success, 1 failure, 2 usage error or invalid input (nothing
was stored), 3 not found.`

// Output formats of -o.
const (
	outText = cli.Output("text")
	outJSON = cli.OutputJSON
	outYAML = cli.Output("yaml")
)

// options are the global flags and what they lead to.
type options struct {
	configFile string
	etcd       *etcdutil.Config
	flags      *pflag.FlagSet // the root's persistent flags

	vaultAddr   string
	vaultCACert string
}

// NewRootCommand builds the ckecli command tree.
func NewRootCommand() *cobra.Command {
	o := &options{}
	root := &cobra.Command{
		Use:   "ckecli",
		Short: "declare the Kubernetes cluster and watch the engine (cke) build it",
		Long: `ckecli declares the Kubernetes cluster that cke, the Kubernetes engine of the
boot servers, builds and maintains (cluster.yml, constraints, resources), and
shows what the engine does (leader, status, history).

ckecli talks to no daemon. It reads and writes the boot servers' etcd, keys
under ` + storage.DefaultPrefix + `, reached as ` + necostorage.DefaultConfigFile + ` says (as the neco
command does; --config and the --etcd-* flags override it), and the elected
engine picks every change up. Commands that need certificates or secrets
(vault, kubernetes issue, etcd issue) ask Vault with the operator's own
token: VAULT_TOKEN, or the file ~/.vault-token that vault login writes.

` + exitCodesHelp,
		Version: version.Version,
		Example: `  ckecli vault init                    # once, with a root token (neco setup does it)
  ckecli constraints set control-plane-count 3
  ckecli cluster set cluster.yml
  ckecli status
  ckecli kubernetes issue > ~/.kube/config`,
	}
	o.addFlags(root.PersistentFlags())

	root.AddCommand(
		newClusterCommand(o),
		newConstraintsCommand(o),
		newResourceCommand(o),
		newLeaderCommand(o),
		newStatusCommand(o),
		newHistoryCommand(o),
		newVaultCommand(o),
		newCACommand(o),
		newKubernetesCommand(o),
		newEtcdCommand(o),
		newSSHCommand(o),
		newSabakanCommand(o),
		newImagesCommand(),
	)
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return cli.WithCode(ExitInvalid, fmt.Errorf("%w (see '%s --help')", err, c.CommandPath()))
	})
	mapErrors(root)
	return root
}

// addFlags registers the global flags on fs.
func (o *options) addFlags(fs *pflag.FlagSet) {
	o.flags = fs
	o.etcd = etcdutil.NewConfig(storage.DefaultPrefix)
	fs.StringVar(&o.configFile, "config", necostorage.DefaultConfigFile, `file with the boot servers' etcd connection (key "etcd", written by neco setup); "" to use the --etcd-* flags only`)
	o.etcd.AddPFlags(fs)
	fs.StringVar(&o.vaultAddr, "vault-addr", "", "Vault's URL for the commands that use Vault (default: VAULT_ADDR, else the engine's Vault from ckecli vault init)")
	fs.StringVar(&o.vaultCACert, "vault-ca-cert", "", "PEM file of the CA that verifies Vault's certificate (default: VAULT_CACERT, else the one stored by ckecli vault init)")
}

// mapErrors gives every command's errors ckecli's exit codes, and makes
// command groups refuse unknown subcommands with a usage error (cobra
// itself would exit 1).
func mapErrors(cmd *cobra.Command) {
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error { return exitError(run(c, args)) }
	} else if cmd.HasSubCommands() && cmd.Run == nil {
		cmd.Args = cobra.ArbitraryArgs
		cmd.RunE = func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return c.Help()
			}
			if c.SuggestionsMinimumDistance <= 0 {
				c.SuggestionsMinimumDistance = 2
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
			if s := c.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "; did you mean " + strings.Join(s, " or ") + "?"
			}
			return cli.UsageError("%s (see '%s --help')", msg, c.CommandPath())
		}
	}
	for _, sub := range cmd.Commands() {
		mapErrors(sub)
	}
}

// exitError maps an error to ckecli's exit codes (cli.Main exits with it).
func exitError(err error) error {
	if err == nil {
		return nil
	}
	var ee *cli.ExitError
	if errors.As(err, &ee) {
		return err
	}
	switch {
	case errors.Is(err, cke.ErrInvalid), errors.Is(err, ckevault.ErrInvalidRequest), errors.Is(err, ckevault.ErrUnknownCA):
		return cli.WithCode(ExitInvalid, err)
	case errors.Is(err, cke.ErrNotFound):
		return cli.WithCode(ExitNotFound, err)
	}
	return cli.WithCode(ExitFailure, err)
}

// etcdConfig is the etcd connection: the config file's, then the --etcd-*
// flags given explicitly; the prefix is the engine's unless --etcd-prefix
// says otherwise.
func (o *options) etcdConfig() (*etcdutil.Config, error) {
	explicit := map[string]string{}
	// Changed, not Visit: cobra parses a subcommand's copy of the flag set,
	// which shares the flags but not the record of which were set.
	o.flags.VisitAll(func(f *pflag.Flag) {
		if f.Changed && strings.HasPrefix(f.Name, "etcd-") {
			explicit[f.Name] = f.Value.String()
		}
	})
	configSet := o.flags.Changed("config")
	if o.configFile != "" {
		data, err := os.ReadFile(o.configFile)
		switch {
		case errors.Is(err, os.ErrNotExist) && !configSet && explicit["etcd-endpoints"] != "":
			// No neco configuration here, but the endpoints were given.
		case err != nil:
			return nil, fmt.Errorf("read the etcd connection: %w (is this a boot server set up by neco setup? Otherwise give --etcd-endpoints and the --etcd-tls-* flags)", err)
		default:
			file := necostorage.FileConfig{Etcd: o.etcd}
			if err := yaml.UnmarshalStrict(data, &file); err != nil {
				return nil, fmt.Errorf("%s: %w", o.configFile, err)
			}
			if file.Etcd == nil {
				return nil, fmt.Errorf("%s: no etcd connection (key etcd)", o.configFile)
			}
			o.etcd = file.Etcd
			for name, value := range explicit {
				if err := o.flags.Set(name, value); err != nil {
					return nil, fmt.Errorf("--%s: %w", name, err)
				}
			}
		}
	}
	if _, ok := explicit["etcd-prefix"]; !ok {
		o.etcd.Prefix = storage.DefaultPrefix // the file's is neco's
	}
	return o.etcd, nil
}

// connect returns the engine's storage and a function that closes it.
func (o *options) connect() (*storage.Storage, func(), error) {
	cfg, err := o.etcdConfig()
	if err != nil {
		return nil, nil, err
	}
	c, err := etcdutil.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	return storage.New(c), func() { c.Close() }, nil
}

// withStorage runs f with the engine's storage.
func (o *options) withStorage(ctx context.Context, f func(ctx context.Context, st *storage.Storage) error) error {
	st, closeFn, err := o.connect()
	if err != nil {
		return err
	}
	defer closeFn()
	err = f(ctx, st)
	if err != nil && etcdutil.Unavailable(err) && ctx.Err() == nil {
		err = fmt.Errorf("etcd (%s) did not answer: %w", strings.Join(o.etcd.Endpoints, ","), err)
	}
	return err
}

// completeFromStorage completes the first argument with what list returns
// (a short-lived connection; nothing on error).
func (o *options) completeFromStorage(list func(ctx context.Context, st *storage.Storage) ([]string, error)) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var out []string
		err := o.withStorage(ctx, func(ctx context.Context, st *storage.Storage) error {
			var err error
			out, err = list(ctx, st)
			return err
		})
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// addOutputFlag adds -o with formats, the first the default.
func addOutputFlag(cmd *cobra.Command, out *cli.Output, formats ...cli.Output) {
	cli.AddOutputFlag(cmd, out, formats...)
}

// printData writes v as JSON or YAML, or calls text for the text format
// (YAML when there is no text format).
func printData(w io.Writer, out cli.Output, v any, text func() error) error {
	switch {
	case out == outJSON:
		return cli.PrintJSON(w, v)
	case out == outYAML || text == nil:
		data, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	return text()
}

// readInput reads the file named path; "-" is standard input.
func readInput(cmd *cobra.Command, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(cmd.InOrStdin())
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, cli.UsageError("%v", err)
	}
	return data, err
}

// invalidError lists the problems of invalid input, one a line, and says
// that nothing was stored; it wraps the error (cke.ErrInvalid) for the exit
// code.
type invalidError struct {
	what string
	err  error
}

func (e *invalidError) Unwrap() error { return e.err }

func (e *invalidError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s; nothing was stored:", e.what)
	for _, p := range problems(e.err) {
		b.WriteString("\n  - " + p)
	}
	return b.String()
}

// problems are the messages of err's joined errors (errors.Join, found
// through any wrapping), each without the sentinel's prefix; err's own
// message when it joins nothing.
func problems(err error) []string {
	for e := err; e != nil; {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			var out []string
			for _, sub := range j.Unwrap() {
				if _, isJoin := sub.(interface{ Unwrap() []error }); isJoin {
					out = append(out, problems(sub)...)
				} else if sub != cke.ErrInvalid {
					out = append(out, strings.Split(sub.Error(), "\n")...)
				}
			}
			if len(out) > 0 {
				return out
			}
		}
		e = errors.Unwrap(e)
	}
	return []string{err.Error()}
}
