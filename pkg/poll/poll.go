// Package poll waits for a condition, polling it, and says in the waiting
// process's own log why it is still waiting: a boot server that cannot make
// progress explains itself there, not only in the logs of the servers
// waiting for it. pkg/setup's stages and barriers and pkg/bootserver's
// Vault calls wait with it.
package poll

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// reportEvery is how often a long wait is reported in the waiting
// process's own log.
var reportEvery = 30 * time.Second

type logKey struct{}

// WithLog makes log the logger of every wait under ctx: setup's stage
// runner gives each stage one that names the server and the stage.
func WithLog(ctx context.Context, log *slog.Logger) context.Context {
	return context.WithValue(ctx, logKey{}, log)
}

func logOf(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(logKey{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return slog.Default()
}

// permanentError ends a poll at once.
type permanentError struct{ error }

// Permanent marks err as one that waiting longer cannot cure: Until
// returns it at once.
func Permanent(err error) error { return permanentError{err} }

// Until calls try every interval until it reports done, returns a
// Permanent error (which Until returns as err), or ctx ends, and then
// returns try's last error with ctx's error. A wait that lasts longer than
// 30 s is logged every 30 s ("cannot make progress yet"): what it waits for,
// since when, try's last error and, when detail is set, what detail says
// (who is missing at a barrier), so that a server that cannot make progress
// says why in its own log, not only in the logs of the servers waiting for
// it.
func Until(ctx context.Context, what string, interval time.Duration, detail func() string, try func(ctx context.Context) (bool, error)) (lastErr, err error) {
	start := time.Now()
	report := start.Add(reportEvery)
	for {
		done, err := try(ctx)
		if done {
			return nil, nil
		}
		var pe permanentError
		if errors.As(err, &pe) {
			return lastErr, pe.error
		}
		if err != nil {
			lastErr = err
		}
		if now := time.Now(); now.After(report) {
			attrs := []any{"waiting_for", what, "since", start.Format(time.RFC3339), "seconds", int(now.Sub(start).Seconds())}
			if detail != nil {
				if d := detail(); d != "" {
					attrs = append(attrs, "detail", d)
				}
			}
			if lastErr != nil {
				attrs = append(attrs, "last_error", lastErr.Error())
			}
			logOf(ctx).Warn("cannot make progress yet", attrs...)
			report = now.Add(reportEvery)
		}
		select {
		case <-ctx.Done():
			return lastErr, ctx.Err()
		case <-time.After(interval):
		}
	}
}
