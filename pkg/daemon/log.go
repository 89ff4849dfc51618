package daemon

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/cybozu-go/log"
)

// LogHandler is a slog.Handler writing through a cybozu-go/log logger, so
// that slog records and well's access logs share one format, level and file
// as chosen with well's logging flags.
type LogHandler struct {
	logger *log.Logger
	attrs  map[string]any
	group  string
}

// NewLogHandler returns a handler that writes to logger.
func NewLogHandler(logger *log.Logger) *LogHandler {
	return &LogHandler{logger: logger}
}

func severity(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return log.LvError
	case l >= slog.LevelWarn:
		return log.LvWarn
	case l >= slog.LevelInfo:
		return log.LvInfo
	default:
		return log.LvDebug
	}
}

// Enabled implements slog.Handler.
func (h *LogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.logger.Enabled(severity(l))
}

// Handle implements slog.Handler.
func (h *LogHandler) Handle(_ context.Context, r slog.Record) error {
	fields := make(map[string]any, len(h.attrs)+r.NumAttrs())
	for k, v := range h.attrs {
		fields[k] = v
	}
	r.Attrs(func(a slog.Attr) bool {
		addAttr(fields, h.group, a)
		return true
	})
	return h.logger.Log(severity(r.Level), r.Message, fields)
}

// WithAttrs implements slog.Handler.
func (h *LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := &LogHandler{logger: h.logger, group: h.group, attrs: make(map[string]any, len(h.attrs)+len(attrs))}
	for k, v := range h.attrs {
		n.attrs[k] = v
	}
	for _, a := range attrs {
		addAttr(n.attrs, h.group, a)
	}
	return n
}

// WithGroup implements slog.Handler; groups become key prefixes.
func (h *LogHandler) WithGroup(name string) slog.Handler {
	n := *h
	n.group = joinKey(h.group, name)
	return &n
}

func addAttr(fields map[string]any, group string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		for _, ga := range v.Group() {
			addAttr(fields, joinKey(group, a.Key), ga)
		}
		return
	}
	if a.Key == "" {
		return
	}
	key := fieldKey(joinKey(group, a.Key))
	switch v.Kind() {
	case slog.KindDuration:
		fields[key] = v.Duration().Seconds()
	case slog.KindTime:
		fields[key] = v.Time().Format(time.RFC3339Nano)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			fields[key] = err.Error()
			return
		}
		fields[key] = v.Any()
	default:
		fields[key] = v.Any()
	}
}

func joinKey(group, key string) string {
	if group == "" {
		return key
	}
	return group + "_" + key
}

// fieldKey turns key into a valid cybozu-go/log field name: lower case
// letters, digits and underscores, not starting with a digit, not reserved.
func fieldKey(key string) string {
	b := []byte(strings.ToLower(key))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	key = string(b)
	if !log.IsValidKey(key) {
		key = "x_" + key
	}
	return key
}
