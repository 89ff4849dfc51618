package membership

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
)

// logWriter turns the lines serf and memberlist print ("[WARN] serf: ...")
// into structured records: warnings and errors at their level, the rest at
// debug, so that an operator sees a failed graceful leave or a refused
// packet without the libraries' chatter.
type logWriter struct{ component string }

var libraryLevels = []struct {
	prefix string
	level  slog.Level
}{{"[ERR]", slog.LevelError}, {"[WARN]", slog.LevelWarn}, {"[INFO]", slog.LevelDebug}, {"[DEBUG]", slog.LevelDebug}}

func (w logWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		msg, level := strings.TrimSpace(string(line)), slog.LevelDebug
		for _, l := range libraryLevels {
			if rest, ok := strings.CutPrefix(msg, l.prefix); ok {
				msg, level = strings.TrimSpace(rest), l.level
				break
			}
		}
		if msg != "" {
			slog.Log(context.Background(), level, "membership: "+w.component, "message", msg)
		}
	}
	return len(p), nil
}
