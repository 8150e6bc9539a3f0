package observe

import (
	"context"
	"log/slog"

	"github.com/rs/zerolog"
)

// Slog returns a *slog.Logger that writes through l, for libraries that log
// with log/slog (mcp-go), so their lines keep the service's log contract.
func Slog(l zerolog.Logger) *slog.Logger {
	return slog.New(&slogHandler{l: l})
}

type slogHandler struct {
	l      zerolog.Logger
	attrs  []slog.Attr
	prefix string
}

func zerologLevel(level slog.Level) zerolog.Level {
	switch {
	case level >= slog.LevelError:
		return zerolog.ErrorLevel
	case level >= slog.LevelWarn:
		return zerolog.WarnLevel
	case level >= slog.LevelInfo:
		return zerolog.InfoLevel
	default:
		return zerolog.DebugLevel
	}
}

func (h *slogHandler) Enabled(_ context.Context, level slog.Level) bool {
	return zerologLevel(level) >= h.l.GetLevel() && zerologLevel(level) >= zerolog.GlobalLevel()
}

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	ev := h.l.WithLevel(zerologLevel(r.Level))
	add := func(a slog.Attr) bool {
		ev = ev.Interface(h.prefix+a.Key, a.Value.Resolve().Any())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	ev.Msg(r.Message)
	return nil
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr{}, h.attrs...), attrs...)
	return &n
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	n := *h
	n.prefix = h.prefix + name + "."
	return &n
}

// LineWriter adapts l to an io.Writer for libraries that take a *log.Logger:
// each write becomes one line at the given level.
type LineWriter struct {
	L     zerolog.Logger
	Level zerolog.Level
}

func (w LineWriter) Write(p []byte) (int, error) {
	msg := string(p)
	for len(msg) > 0 && (msg[len(msg)-1] == '\n' || msg[len(msg)-1] == '\r') {
		msg = msg[:len(msg)-1]
	}
	w.L.WithLevel(w.Level).Msg(msg)
	return len(p), nil
}
