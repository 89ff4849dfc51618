// Package cli holds what the project's command-line tools (neco, sabactl,
// the virtual data center tool) share: exit codes that mean something, an
// -o/--output flag for json or human output, and Main, which runs a cobra
// root command and turns its error into the exit code.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes shared by every CLI of the project. They follow the reference
// boot server's CLI so that scripts written for it keep working.
const (
	ExitOK       = 0
	ExitFailure  = 1
	ExitUsage    = 2
	ExitClient   = 4  // the server answered 4xx
	ExitServer   = 5  // the server answered 5xx
	ExitNotFound = 14 // 404
	ExitConflict = 19 // 409
)

// ExitError carries the exit code a command should end with.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// WithCode wraps err so that Main exits with code.
func WithCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &ExitError{Code: code, Err: err}
}

// UsageError reports a wrong invocation (exit code 2).
func UsageError(format string, args ...any) error {
	return WithCode(ExitUsage, fmt.Errorf(format, args...))
}

// Main executes root with a context cancelled by SIGINT/SIGTERM, prints the
// error, if any, on stderr and exits with its code: an ExitError's code,
// ExitUsage for flag and argument errors, else ExitFailure.
func Main(root *cobra.Command) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return WithCode(ExitUsage, fmt.Errorf("%w (see '%s --help')", err, c.CommandPath()))
	})
	err := root.ExecuteContext(ctx)
	stop()
	if err == nil {
		return
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", root.Name(), err)
	os.Exit(Code(err))
}

// Code is the exit code for err.
func Code(err error) int {
	if err == nil {
		return ExitOK
	}
	var e *ExitError
	if errors.As(err, &e) {
		return e.Code
	}
	return ExitFailure
}

// ExactArgs is cobra.ExactArgs with a usage exit code and a clearer message.
func ExactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return UsageError("%s takes %d argument(s), got %d\nUsage: %s", cmd.CommandPath(), n, len(args), cmd.UseLine())
		}
		return nil
	}
}

// RangeArgs is cobra.RangeArgs with a usage exit code.
func RangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return UsageError("%s takes %d to %d arguments, got %d\nUsage: %s", cmd.CommandPath(), lo, hi, len(args), cmd.UseLine())
		}
		return nil
	}
}

// Output is the value of an -o/--output flag.
type Output string

// Output formats.
const (
	OutputJSON   Output = "json"
	OutputSimple Output = "simple"
)

// AddOutputFlag adds -o/--output to cmd with the allowed formats, the first
// being the default, and shell completion of the values.
func AddOutputFlag(cmd *cobra.Command, out *Output, formats ...Output) {
	*out = formats[0]
	names := make([]string, len(formats))
	for i, f := range formats {
		names[i] = string(f)
	}
	cmd.Flags().VarP(&outputValue{out: out, allowed: names}, "output", "o", fmt.Sprintf("output format: one of %v", names))
	cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(names, cobra.ShellCompDirectiveNoFileComp))
}

type outputValue struct {
	out     *Output
	allowed []string
}

func (v *outputValue) String() string { return string(*v.out) }
func (v *outputValue) Type() string   { return "format" }

func (v *outputValue) Set(s string) error {
	for _, a := range v.allowed {
		if s == a {
			*v.out = Output(s)
			return nil
		}
	}
	return fmt.Errorf("unknown output format %q (want one of %v)", s, v.allowed)
}

// PrintJSON writes v as indented JSON followed by a newline.
func PrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
