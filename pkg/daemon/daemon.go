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
// well.Go (HTTP servers included) to stop, and exits: 0 after a signal or a
// nil return, 1 after an error.
func Run(main func(ctx context.Context) error) {
	if err := (well.LogConfig{}).Apply(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	slog.SetDefault(slog.New(NewLogHandler(log.DefaultLogger())))

	well.Go(main)
	well.Stop()
	err := well.Wait()
	if err != nil && !well.IsSignaled(err) {
		slog.Error("exiting on error", "error", err)
		os.Exit(1)
	}
}
