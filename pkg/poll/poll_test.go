package poll

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestPollReportsWhyItWaits(t *testing.T) {
	old := reportEvery
	reportEvery = 50 * time.Millisecond
	t.Cleanup(func() { reportEvery = old })
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil)).With("stage", "auth")
	// The condition holds once a report was logged: no timing to miss on a
	// loaded machine.
	ctx, cancel := context.WithTimeout(WithLog(context.Background(), log), time.Minute)
	defer cancel()
	_, err := Until(ctx, "barrier auth", 10*time.Millisecond, func() string { return "boot server(s) 0 not there yet" },
		func(context.Context) (bool, error) {
			return strings.Contains(buf.String(), "waiting_for"), errors.New("connection refused")
		})
	if err != nil {
		t.Fatalf("Until = %v", err)
	}
	out := buf.String()
	for _, want := range []string{"stage=auth", `waiting_for="barrier auth"`, `detail="boot server(s) 0 not there yet"`, `last_error="connection refused"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %s:\n%s", want, out)
		}
	}
}

var errGiveUp = errors.New("the token is wrong")

func TestPollStopsOnPermanentError(t *testing.T) {
	calls := 0
	start := time.Now()
	_, err := Until(context.Background(), "x", time.Second, nil, func(context.Context) (bool, error) {
		calls++
		return false, Permanent(errGiveUp)
	})
	if !errors.Is(err, errGiveUp) || calls != 1 || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("err %v after %d call(s)", err, calls)
	}
}

func TestPollDone(t *testing.T) {
	n := 0
	lastErr, err := Until(context.Background(), "x", time.Millisecond, nil, func(context.Context) (bool, error) {
		n++
		if n < 3 {
			return false, errors.New("not yet")
		}
		return true, nil
	})
	if err != nil || lastErr != nil || n != 3 {
		t.Fatalf("Until = %v, %v after %d", lastErr, err, n)
	}
}
