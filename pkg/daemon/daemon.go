// Package daemon is the lifecycle every neco daemon shares, built on
// github.com/cybozu-go/well: well's -logfile/-loglevel/-logformat flags for
// both well's and slog's output, signal handling with a graceful stop, HTTP
// servers that drain on shutdown, and the /health and /metrics endpoints.
//
// A daemon's main is flags → config → Run:
//
//	func main() {
//		flag.Parse()
//		daemon.Run(func(ctx context.Context) error { ... })
//	}
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/cybozu-go/log"
	"github.com/cybozu-go/well"
)

// Option tunes Run.
type Option func()

// NoCancellationDelay makes SIGINT/SIGTERM cancel main's context at once.
// By default well waits CANCELLATION_DELAY_SECONDS (5 s) first, with every
// listener still accepting, for a load balancer in front of the daemon to
// take it out of rotation; a daemon with no such balancer stops accepting
// at once and only drains the requests in flight. An explicit
// CANCELLATION_DELAY_SECONDS in the environment still wins.
func NoCancellationDelay() Option {
	return func() {
		if _, set := os.LookupEnv(cancellationDelayEnv); !set {
			// well reads the variable when the signal arrives.
			os.Setenv(cancellationDelayEnv, "0")
		}
	}
}

// cancellationDelayEnv is well's variable for the delay between a signal
// and the cancellation of its environment, in seconds.
const cancellationDelayEnv = "CANCELLATION_DELAY_SECONDS"

// Run configures logging from well's flags, runs main until it returns or a
// SIGINT/SIGTERM cancels its context, waits for everything started with
// well.Go (HTTP servers started with Server.Start(nil) included) to drain and
// stop, and exits: 0 after a signal or a nil return, 1 after an error.
func Run(main func(ctx context.Context) error, opts ...Option) {
	for _, o := range opts {
		o()
	}
	if err := (well.LogConfig{}).Apply(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	slog.SetDefault(slog.New(NewLogHandler(log.DefaultLogger())))

	err := run(nil, main)
	if err != nil && !well.IsSignaled(err) {
		slog.Error("exiting on error", "error", err)
		os.Exit(1)
	}
}

// run runs main in env (the default environment when nil). main may start
// more goroutines in env, such as HTTP servers; when main returns, env is
// cancelled so that they drain and stop, and run returns once all have.
func run(env *well.Environment, main func(ctx context.Context) error) error {
	goFn, cancel, wait := well.Go, well.Cancel, well.Wait
	if env != nil {
		goFn, cancel, wait = env.Go, env.Cancel, env.Wait
	}
	goFn(func(ctx context.Context) error {
		err := main(ctx)
		// The first Cancel wins: after a signal this keeps the signal.
		cancel(err)
		return err
	})
	return wait()
}
