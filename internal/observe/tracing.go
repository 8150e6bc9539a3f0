package observe

import (
	"context"
	"errors"
	"os"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TracerName is the instrumentation scope of the service's own spans.
const TracerName = "github.com/df-middleware/df-middleware"

// Tracer returns the service's tracer from the global provider. It is looked
// up on every call (cheap) so a provider installed later is honoured.
func Tracer() trace.Tracer { return otel.GetTracerProvider().Tracer(TracerName) }

// Propagator is W3C tracecontext plus baggage: what SetupTracing installs
// globally, and what the service uses to store and read trace context.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// TracingEnabled reports whether an SDK tracer provider is installed, i.e.
// whether spans are recorded at all. Instrumentation that costs something
// even when its spans are dropped (otelhttp, otelpgx) is installed only then.
func TracingEnabled() bool {
	_, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider)
	return ok
}

func nopShutdown(context.Context) error { return nil }

// SetupTracing configures OpenTelemetry tracing from the standard OTEL_*
// environment: OTLP over HTTP to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
// OTEL_EXPORTER_OTLP_ENDPOINT (headers, timeout, compression from the other
// OTEL_EXPORTER_OTLP_* variables), the sampler from OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG, batching from OTEL_BSP_*, and the resource from
// OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES (service and version are the
// defaults they override). With no endpoint set, with OTEL_SDK_DISABLED=true
// or OTEL_TRACES_EXPORTER=none, no provider is installed: the global no-op
// one stays and spans cost nothing. The W3C tracecontext and baggage
// propagator is installed in every case. shutdown flushes pending spans.
func SetupTracing(ctx context.Context, service, version string) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(Propagator())
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") ||
		strings.EqualFold(os.Getenv("OTEL_TRACES_EXPORTER"), "none") ||
		(os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "") {
		return nopShutdown, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nopShutdown, err
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", service), attribute.String("service.version", version)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		_ = exp.Shutdown(ctx)
		return nopShutdown, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// traceHook adds trace_id and span_id to every line logged with a context
// (zerolog's Event.Ctx / Context.Ctx) that carries a valid span.
type traceHook struct{}

func (traceHook) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	ctx := e.GetCtx()
	if ctx == nil {
		return
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		e.Str("trace_id", sc.TraceID().String()).Str("span_id", sc.SpanID().String())
	}
}

// SpanContextOnly returns a context carrying only sc: for a log line written
// after the span ended (the hook only needs the ids).
func SpanContextOnly(sc trace.SpanContext) context.Context {
	return trace.ContextWithSpanContext(context.Background(), sc)
}

// MCPToolTracing returns a tool middleware that runs every tool call in a
// span "mcp tool <name>". A W3C traceparent (and tracestate, baggage) in the
// request's _meta is continued; otherwise the span is a child of whatever
// the context carries (the /mcp server span over HTTP) or a new root.
func MCPToolTracing() server.ToolHandlerMiddleware {
	return func(next server.ToolHandlerFunc) server.ToolHandlerFunc {
		return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if m := req.Params.Meta; m != nil && m.AdditionalFields != nil {
				carrier := propagation.MapCarrier{}
				for _, k := range []string{"traceparent", "tracestate", "baggage"} {
					if s, ok := m.AdditionalFields[k].(string); ok && s != "" {
						carrier[k] = s
					}
				}
				if carrier["traceparent"] != "" {
					ctx = Propagator().Extract(ctx, carrier)
				}
			}
			ctx, span := Tracer().Start(ctx, "mcp tool "+req.Params.Name,
				trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("mcp.tool.name", req.Params.Name)))
			defer span.End()
			res, err := next(ctx, req)
			switch {
			case err != nil:
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			case res != nil && res.IsError:
				span.SetStatus(codes.Error, "tool returned an error result")
			}
			return res, err
		}
	}
}
