package httpapi

import (
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/df-middleware/df-middleware/internal/intake"
	"github.com/df-middleware/df-middleware/internal/observe"
)

// maxRequestIDLen bounds an incoming X-Request-ID; longer or odd values are
// replaced rather than logged.
const maxRequestIDLen = 128

func validRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLen {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// withRequest gives every request an id (the caller's X-Request-ID when it
// is sane), echoes it, recovers panics as 500s and writes one access log
// line: debug for successes (intake runs at thousands a second), info for
// client errors, error for server errors. m (nil-safe) counts and times it.
func withRequest(log zerolog.Logger, m *observe.Metrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if !validRequestID(id) {
			id = observe.NewRequestID()
		}
		w.Header().Set("X-Request-ID", id)
		r = r.WithContext(observe.WithRequestID(r.Context(), id))
		rec := &statusRecorder{ResponseWriter: w}
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				log.Error().Str("request_id", id).Interface("panic", p).Str("stack", string(debug.Stack())).Msg("handler panic")
				if rec.status == 0 {
					intake.WriteError(rec, r, http.StatusInternalServerError, "internal error")
				}
			}
			// r.Pattern is the route the mux matched, never the raw path.
			// otelhttp named the server span before routing: name it now.
			if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
				name := r.Pattern
				if name == "" {
					name = r.Method // unmatched: never the raw path
				} else {
					span.SetAttributes(attribute.String("http.route", routeOf(r.Pattern)))
				}
				span.SetName(name)
				span.SetAttributes(attribute.String("http.request.header.x-request-id", id))
			}
			m.ObserveHTTP(r.Method, r.Pattern, rec.status, time.Since(start))
			var ev *zerolog.Event
			switch {
			case rec.status >= 500:
				ev = log.Error()
			case rec.status >= 400:
				ev = log.Info()
			default:
				ev = log.Debug()
			}
			ev.Ctx(r.Context()).Str("request_id", id).Str("method", r.Method).Str("route", r.Pattern).
				Int("status", rec.status).Int("bytes", rec.bytes).
				Float64("duration_ms", float64(time.Since(start).Microseconds())/1000).
				Msg("http request")
		}()
		next.ServeHTTP(rec, r)
	})
}

// routeOf strips the method from a ServeMux pattern ("POST /x/{id}" → "/x/{id}").
func routeOf(pattern string) string {
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		return pattern[i+1:]
	}
	return pattern
}

// withTracing wraps h in an otelhttp server span (W3C context extracted from
// the request) when a tracer provider is installed; withRequest renames the
// span to the matched route pattern. With tracing off h is returned as is.
func withTracing(h http.Handler) http.Handler {
	if !observe.TracingEnabled() {
		return h
	}
	return otelhttp.NewHandler(h, "http",
		otelhttp.WithPropagators(observe.Propagator()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if r.Pattern != "" {
				return r.Pattern
			}
			return r.Method
		}))
}

// Flush lets streaming handlers (MCP's SSE responses) flush through the
// recorder.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
