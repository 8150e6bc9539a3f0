package httpapi

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/df-middleware/df-middleware/internal/observe"
)

// BenchmarkTracingOverhead measures what tracing adds to one request through
// the sidecar's middleware (request id, metrics, access log, server span)
// with the span exported over OTLP/HTTP to a sink, against tracing off.
func BenchmarkTracingOverhead(b *testing.B) {
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer sink.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/webhooks/{source}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"id":"0190b6c1-4a7e-7c1e-9d2b-3f4a5b6c7d8e","status":"accepted"}`))
	})
	body := strings.Repeat("x", 1024)
	run := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r := httptest.NewRequest("POST", "/api/webhooks/texting", strings.NewReader(body))
				r.Header.Set("User-Agent", "loadgen")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
			}
		})
	}
	b.Run("off", func(b *testing.B) {
		run(b, withTracing(withRequest(zerolog.Nop(), nil, mux)))
	})
	for _, mode := range []string{"on", "otelhttp"} {
		b.Run(mode, func(b *testing.B) {
			exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(sink.URL+"/v1/traces"))
			if err != nil {
				b.Fatal(err)
			}
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
			prev := otel.GetTracerProvider()
			otel.SetTracerProvider(tp)
			defer func() {
				_ = tp.Shutdown(context.Background())
				otel.SetTracerProvider(prev)
			}()
			h := withTracing(withRequest(zerolog.Nop(), nil, mux))
			if mode == "otelhttp" {
				h = otelhttp.NewHandler(withRequest(zerolog.Nop(), nil, mux), "http", otelhttp.WithPropagators(observe.Propagator()))
			}
			run(b, h)
		})
	}
}
