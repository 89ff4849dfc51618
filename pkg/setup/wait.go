package setup

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// waitReport is how often a long wait is reported in the waiting server's
// own log.
var waitReport = 30 * time.Second

type logKey struct{}

// withLog makes log the logger of every wait under ctx: setup's stage
// runner gives each stage one that names the server and the stage.
func withLog(ctx context.Context, log *slog.Logger) context.Context {
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

// permanent marks err as one that waiting longer cannot cure: poll
// returns it at once.
func permanent(err error) error { return permanentError{err} }

// poll calls try every interval until it reports done, returns a
// permanent error (which poll returns as err), or ctx ends, and then
// returns try's last error with ctx's error. A wait that
// lasts longer than waitReport is logged every waitReport: what it waits
// for, since when, try's last error and, when detail is set, what detail
// says (who is missing at a barrier), so that a server that cannot make
// progress says why in its own log, not only in the logs of the servers
// waiting for it.
func poll(ctx context.Context, what string, interval time.Duration, detail func() string, try func(ctx context.Context) (bool, error)) (lastErr, err error) {
	start := time.Now()
	report := start.Add(waitReport)
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
			logOf(ctx).Warn("setup cannot make progress yet", attrs...)
			report = now.Add(waitReport)
		}
		select {
		case <-ctx.Done():
			return lastErr, ctx.Err()
		case <-time.After(interval):
		}
	}
}
