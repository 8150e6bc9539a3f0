package queue

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/df-middleware/df-middleware/internal/store"
)

// BenchmarkJobTracing measures what tracing adds to one job run (span with
// its intake link and attributes, exported over OTLP/HTTP to a sink), with
// a handler that does nothing, against tracing off.
func BenchmarkJobTracing(b *testing.B) {
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer sink.Close()
	reg := NewRegistry()
	reg.Register("texting", "bench.noop", "bench", HandlerFunc(func(context.Context, Job) error { return nil }))
	r := New(nil, reg, Config{}, zerolog.Nop())
	job := claimedJob{Job: Job{LeaseToken: "0190b6c1-4a7e-7c1e-9d2b-3f4a5b6c7d8e", Event: store.Event{
		ID: "0190b6c1-4a7e-7c1e-9d2b-3f4a5b6c7d8f", Source: "texting", EventType: "bench.noop", Attempts: 1,
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}}, leaseEnd: time.Now().Add(time.Hour)}
	run := func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r.executeTraced(context.Background(), job)
			}
		})
	}
	b.Run("off", run)
	b.Run("on", func(b *testing.B) {
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
		run(b)
	})
}
