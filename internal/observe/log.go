// Package observe holds the service's logging contract (and, later, metrics,
// tracing and error grouping). Callers log with plain zerolog; the writer
// installed by NewLogger turns every zerolog line into the contract shape.
package observe

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// ServiceName is the value of the `service` key of every log line.
const ServiceName = "df-middleware"

// defaultComponent names lines logged on a logger that never went through
// Component, so that `component` is never empty.
const defaultComponent = "main"

// timeFormat is RFC 3339 with millisecond precision.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

var globalsOnce sync.Once

// setZerologGlobals configures zerolog's package-level field names and time
// format. They are globals in zerolog, so they are set once; the values are
// the same for every logger this package builds.
func setZerologGlobals() {
	globalsOnce.Do(func() {
		zerolog.TimestampFieldName = "timestamp"
		zerolog.LevelFieldName = "level"
		zerolog.MessageFieldName = "message"
		zerolog.TimeFieldFormat = timeFormat
		zerolog.TimestampFunc = func() time.Time { return time.Now().UTC() }
	})
}

// NewLogger returns the root logger writing contract lines to w (os.Stderr in
// production) at the given level ("debug", "info", "warn", "error").
// secrets are configured secret values scrubbed from every line; empty
// strings are ignored, short values are redacted too.
//
// An invalid level returns an error together with a usable logger at info
// level, so the caller can still report the problem.
func NewLogger(w io.Writer, level string, secrets []string) (zerolog.Logger, error) {
	setZerologGlobals()
	lvl, err := ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	cw := newContractWriter(w, secrets)
	logger := zerolog.New(cw).Level(lvl).Hook(traceHook{}).With().Timestamp().Logger()
	return logger, err
}

// Component returns a child logger whose lines carry component name.
// A later Component call overrides an earlier one (the last key wins when
// the contract writer decodes the line).
func Component(l zerolog.Logger, name string) zerolog.Logger {
	return l.With().Str("component", name).Logger()
}

// ParseLevel parses one of debug, info, warn (or warning) and error,
// ignoring case and surrounding space.
func ParseLevel(s string) (zerolog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return zerolog.DebugLevel, nil
	case "info":
		return zerolog.InfoLevel, nil
	case "warn", "warning":
		return zerolog.WarnLevel, nil
	case "error":
		return zerolog.ErrorLevel, nil
	}
	return zerolog.InfoLevel, fmt.Errorf("log level %q is not one of debug, info, warn, error", s)
}

// contractLevel maps any zerolog level name onto the four contract levels.
func contractLevel(v any) string {
	s, _ := v.(string)
	switch strings.ToLower(s) {
	case "trace", "debug":
		return "debug"
	case "warn", "warning":
		return "warn"
	case "error", "fatal", "panic":
		return "error"
	}
	// "info", events logged without a level (zerolog's Log()), and anything
	// unexpected.
	return "info"
}
