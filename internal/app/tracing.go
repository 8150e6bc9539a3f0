package app

import (
	"context"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/df-middleware/df-middleware/internal/observe"
	"github.com/df-middleware/df-middleware/internal/upstream"
)

// tracingObserver starts a client span for every upstream attempt, named
// "<upstream> <METHOD> <endpoint template>", and injects its W3C trace
// context into the attempt's headers; ObserveCall ends it with the status.
type tracingObserver struct{}

type attemptSpanKey struct{}

func clientSpanName(up, method, endpoint string) string { return up + " " + method + " " + endpoint }

func (tracingObserver) StartAttempt(ctx context.Context, up, endpoint, method string, header http.Header) context.Context {
	ctx, span := observe.Tracer().Start(ctx, clientSpanName(up, method, endpoint),
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("http.request.method", method),
			attribute.String("url.template", endpoint),
			attribute.String("df.upstream", up),
		))
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(header))
	return context.WithValue(ctx, attemptSpanKey{}, span)
}

func (tracingObserver) ObserveCall(ctx context.Context, up, endpoint, method string, status int, _ time.Duration, err error) {
	span, ok := ctx.Value(attemptSpanKey{}).(trace.Span)
	if !ok {
		// No attempt was started (the breaker refused the call): record the
		// refusal as an instant span, but only inside a recorded trace.
		if !trace.SpanFromContext(ctx).IsRecording() {
			return
		}
		_, span = observe.Tracer().Start(ctx, clientSpanName(up, method, endpoint),
			trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("http.request.method", method),
				attribute.String("url.template", endpoint), attribute.String("df.upstream", up)))
	}
	if status > 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	switch {
	case err != nil:
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	case status >= 400:
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// StartAttempt forwards an attempt start to every observer that wants one,
// threading the context through them.
func (o observers) StartAttempt(ctx context.Context, up, endpoint, method string, header http.Header) context.Context {
	for _, x := range o {
		if s, ok := x.(upstream.AttemptStarter); ok {
			ctx = s.StartAttempt(ctx, up, endpoint, method, header)
		}
	}
	return ctx
}

var _ upstream.AttemptStarter = observers(nil)
