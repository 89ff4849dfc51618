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

// Run configures logging from well's flags, runs main until it returns or a
// SIGINT/SIGTERM cancels its context, waits for everything started with
// well.Go (HTTP servers started with Server.Start(nil) included) to drain and
// stop, and exits: 0 after a signal or a nil return, 1 after an error.
func Run(main func(ctx context.Context) error) {
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
