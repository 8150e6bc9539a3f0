package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/df-middleware/df-middleware/internal/observe"
)

// reader reads variables through getenv and collects every problem, so that
// Load can report them all at once.
type reader struct {
	getenv   func(string) string
	problems []error
}

func (r *reader) problem(name, format string, args ...any) {
	r.problems = append(r.problems, &FieldError{Var: name, Reason: fmt.Sprintf(format, args...)})
}

func (r *reader) err() error { return errors.Join(r.problems...) }

// str returns the variable with surrounding space trimmed (a trailing
// newline from a secrets file is never part of the value).
func (r *reader) str(name string) string { return strings.TrimSpace(r.getenv(name)) }

func (r *reader) env() string {
	v := strings.ToLower(r.str("DF_ENV"))
	switch v {
	case "":
		return EnvDevelopment
	case EnvDevelopment, EnvProduction:
		return v
	}
	r.problem("DF_ENV", "must be %q or %q, got %q", EnvDevelopment, EnvProduction, r.str("DF_ENV"))
	return v
}

func (r *reader) logLevel() string {
	v := strings.ToLower(r.str("LOG_LEVEL"))
	if v == "" {
		return DefaultLogLevel
	}
	if _, err := observe.ParseLevel(v); err != nil {
		r.problem("LOG_LEVEL", "must be one of debug, info, warn, error, got %q", v)
	}
	return v
}

// int reads a whole number of at least min.
func (r *reader) int(name string, def, min int) int {
	raw := r.str(name)
	if raw == "" {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < min {
		r.problem(name, "must be a whole number of %d or more, got %q", min, raw)
		return def
	}
	return n
}

// duration reads a positive Go duration such as 30s, 5m or 1h30m.
func (r *reader) duration(name string, def time.Duration) time.Duration {
	raw := r.str(name)
	if raw == "" {
		return def
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d <= 0 {
		r.problem(name, "must be a positive duration such as 30s, 5m or 1h30m, got %q", raw)
		return def
	}
	return d
}

func (r *reader) bool(name string, def bool) bool {
	raw := r.str(name)
	if raw == "" {
		return def
	}
	b, err := strconv.ParseBool(raw)
	if err != nil {
		r.problem(name, "must be true or false, got %q", raw)
		return def
	}
	return b
}

// url reads an absolute http(s) URL. The value is not quoted in problems:
// URLs may carry credentials.
func (r *reader) url(name, def string) string {
	raw := r.str(name)
	if raw == "" {
		return def
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.problem(name, "must be an absolute http or https URL such as https://example.com")
	}
	return raw
}

// list reads a comma-separated list, trimming entries and dropping empty ones.
func (r *reader) list(name string) []string {
	var out []string
	for _, part := range strings.Split(r.str(name), ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func (r *reader) toolsets() []string {
	sets := r.list("DF_MCP_TOOLSETS")
	if len(sets) == 0 {
		return []string{"all"}
	}
	var out, unknown []string
	for _, s := range sets {
		s = strings.ToLower(s)
		switch {
		case !slices.Contains(validToolsets, s):
			unknown = append(unknown, s)
		case !slices.Contains(out, s):
			out = append(out, s)
		}
	}
	if len(unknown) > 0 {
		r.problem("DF_MCP_TOOLSETS", "has unknown toolsets %q; valid names are %s",
			unknown, strings.Join(validToolsets, ", "))
	}
	return out
}

// listenAddr returns DF_LISTEN_ADDR, else 127.0.0.1:PORT. PORT is checked
// even when DF_LISTEN_ADDR wins, so a typo never hides.
func (r *reader) listenAddr() string {
	port := DefaultPort
	if raw := r.str("PORT"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > 65535 {
			r.problem("PORT", "must be a port number from 1 to 65535, got %q", raw)
		} else {
			port = n
		}
	}
	addr := r.str("DF_LISTEN_ADDR")
	if addr == "" {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	_, p, err := net.SplitHostPort(addr)
	if n, perr := strconv.Atoi(p); err != nil || perr != nil || n < 0 || n > 65535 {
		r.problem("DF_LISTEN_ADDR", "must be host:port such as 127.0.0.1:3002 or :3002, got %q", addr)
	}
	return addr
}

// fraction reads a number in (0, 1].
func (r *reader) fraction(name string, def float64) float64 {
	raw := r.str(name)
	if raw == "" {
		return def
	}
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil || !(f > 0 && f <= 1) {
		r.problem(name, "must be a fraction above 0 and at most 1 (0.05 = 5%%), got %q", raw)
		return def
	}
	return f
}

// alerts reads the alert rules' settings.
func (r *reader) alerts() AlertConfig {
	a := AlertConfig{
		EvalInterval:    r.duration("DF_ALERT_EVAL_INTERVAL", 15*time.Second),
		Window:          r.duration("DF_ALERT_WINDOW", 5*time.Minute),
		For:             r.duration("DF_ALERT_FOR", 5*time.Minute),
		DatabaseFor:     r.duration("DF_ALERT_DATABASE_FOR", time.Minute),
		QueueWarning:    r.int("DF_ALERT_QUEUE_WARNING", 500, 1),
		QueueCritical:   r.int("DF_ALERT_QUEUE_CRITICAL", 1000, 1),
		ErrorWarning:    r.fraction("DF_ALERT_ERROR_RATE_WARNING", 0.01),
		ErrorCritical:   r.fraction("DF_ALERT_ERROR_RATE_CRITICAL", 0.05),
		UpstreamFailure: r.fraction("DF_ALERT_UPSTREAM_FAILURE_RATE", 0.10),
		LatencyP95:      r.duration("DF_ALERT_LATENCY_P95", 5*time.Second),
		ProcessingDelay: r.duration("DF_ALERT_PROCESSING_DELAY", 10*time.Minute),
		MinSamples:      r.int("DF_ALERT_MIN_SAMPLES", 10, 1),
		Slot:            r.duration("DF_ALERT_SLOT", 10*time.Second),
		RetryBase:       r.duration("DF_ALERT_RETRY_BASE", time.Second),
	}
	if a.Slot < time.Second || a.Slot > time.Minute {
		r.problem("DF_ALERT_SLOT", "must be between 1s and 1m, got %s", a.Slot)
	}
	if a.Window < a.Slot {
		r.problem("DF_ALERT_WINDOW", "must be at least DF_ALERT_SLOT (%s), got %s", a.Slot, a.Window)
	}
	if a.QueueWarning > a.QueueCritical {
		r.problem("DF_ALERT_QUEUE_WARNING", "must not be above DF_ALERT_QUEUE_CRITICAL (%d), got %d", a.QueueCritical, a.QueueWarning)
	}
	if a.ErrorWarning > a.ErrorCritical {
		r.problem("DF_ALERT_ERROR_RATE_WARNING", "must not be above DF_ALERT_ERROR_RATE_CRITICAL (%g), got %g", a.ErrorCritical, a.ErrorWarning)
	}
	return a
}
