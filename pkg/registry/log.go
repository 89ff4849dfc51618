package registry

import (
	"context"
	"io"
	"log/slog"
	"sync"

	"github.com/sirupsen/logrus"
)

var bridgeOnce sync.Once

// bridgeLogs sends the distribution registry's logs (logrus's standard
// logger, the only one its handlers use) to slog. Its Info level is one
// "response completed" record per request with a dozen fields, and a
// "response completed with error" at Error for every 404 a client expects
// (a push HEADs each blob before uploading it), so:
//
//   - Info and Debug become Debug;
//   - Error records of requests answered below 500 become Debug too: the
//     client got the error, neco_registry_requests_total counts it;
//   - the rest keep their level.
//
// logrus formats nothing below Warn unless slog is at Debug.
func bridgeLogs() {
	bridgeOnce.Do(func() {
		l := logrus.StandardLogger()
		l.SetOutput(io.Discard)
		l.SetLevel(logrus.WarnLevel)
		if slog.Default().Enabled(context.Background(), slog.LevelDebug) {
			l.SetLevel(logrus.DebugLevel)
		}
		l.AddHook(slogHook{})
	})
}

type slogHook struct{}

func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (slogHook) Fire(e *logrus.Entry) error {
	level := slog.LevelDebug
	switch e.Level {
	case logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel:
		level = slog.LevelError
		if status, ok := e.Data["http.response.status"].(int); ok && status < 500 {
			level = slog.LevelDebug
		}
	case logrus.WarnLevel:
		level = slog.LevelWarn
	}
	ctx := context.Background()
	if !slog.Default().Enabled(ctx, level) {
		return nil
	}
	attrs := make([]slog.Attr, 0, len(e.Data)+1)
	attrs = append(attrs, slog.String("component", "distribution"))
	for k, v := range e.Data {
		if k == "go.version" {
			continue
		}
		attrs = append(attrs, slog.Any(k, v))
	}
	slog.LogAttrs(ctx, level, e.Message, attrs...)
	return nil
}
