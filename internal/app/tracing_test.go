package app_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/df-middleware/df-middleware/internal/observe"
	"github.com/df-middleware/df-middleware/internal/store"
)

const intakeSpanName = "POST /api/webhooks/{source}"

// useRecorder installs an SDK tracer provider recording into memory. It is
// registered before the service starts, so its cleanup (back to a no-op
// provider) runs after the service has stopped. Tests using it are not
// parallel: the provider is global, and parallel tests start only after
// every sequential one has finished.
func useRecorder(t *testing.T) *tracetest.SpanRecorder {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(observe.Propagator())
	t.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		_ = tp.Shutdown(context.Background())
	})
	return sr
}

// waitSpans polls the recorder until find succeeds or 10 s pass.
func waitSpans(t *testing.T, sr *tracetest.SpanRecorder, find func([]sdktrace.ReadOnlySpan) bool) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		spans := sr.Ended()
		if find(spans) {
			return spans
		}
		if time.Now().After(deadline) {
			var names []string
			for _, s := range spans {
				names = append(names, s.Name())
			}
			t.Fatalf("spans never matched; ended: %q", names)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTraceIntakeJobUpstreamStructure(t *testing.T) {
	sr := useRecorder(t)
	h, _ := startSynced(t, nil)

	id := h.post("ghl", ghlContactBody("ContactCreate", "ghl-trace-1", "Tina", "(310) 555-0199"))
	ev := h.waitStatus(id, store.StatusDone)

	var intake, job, client sdktrace.ReadOnlySpan
	waitSpans(t, sr, func(spans []sdktrace.ReadOnlySpan) bool {
		intake, job, client = nil, nil, nil
		for _, s := range spans {
			switch {
			case s.Name() == intakeSpanName && s.SpanKind() == trace.SpanKindServer:
				intake = s
			case s.Name() == "job ghl/ContactCreate":
				job = s
			}
		}
		if job == nil {
			return false
		}
		for _, s := range spans {
			if strings.HasPrefix(s.Name(), "aloware POST ") && s.Parent().SpanID() == job.SpanContext().SpanID() {
				client = s
			}
		}
		return intake != nil && client != nil
	})

	// Intake stored the server span's context although the caller sent none.
	isc := intake.SpanContext()
	if !strings.Contains(ev.TraceParent, isc.TraceID().String()+"-"+isc.SpanID().String()) {
		t.Fatalf("event traceparent %q is not the intake span %s/%s", ev.TraceParent, isc.TraceID(), isc.SpanID())
	}
	// The job is a new root that links to the intake span.
	if job.Parent().IsValid() {
		t.Fatalf("job span has a parent %v; want a new root", job.Parent())
	}
	linked := false
	for _, l := range job.Links() {
		linked = linked || (l.SpanContext.TraceID() == isc.TraceID() && l.SpanContext.SpanID() == isc.SpanID())
	}
	if !linked {
		t.Fatalf("job span links %+v; want one to the intake span", job.Links())
	}
	attrs := map[string]string{}
	for _, a := range job.Attributes() {
		attrs[string(a.Key)] = a.Value.String()
	}
	if attrs["df.event.id"] != id || attrs["df.event.source"] != "ghl" || attrs["df.event.type"] != "ContactCreate" || attrs["df.job.attempt"] != "1" {
		t.Fatalf("job span attributes = %v", attrs)
	}
	// The upstream call is a client child of the job span, in its trace.
	if client.SpanKind() != trace.SpanKindClient || client.SpanContext().TraceID() != job.SpanContext().TraceID() {
		t.Fatalf("client span %q kind %v trace %s; want a client span in job trace %s",
			client.Name(), client.SpanKind(), client.SpanContext().TraceID(), job.SpanContext().TraceID())
	}
	hasStatus := false
	for _, a := range client.Attributes() {
		hasStatus = hasStatus || (a.Key == "http.response.status_code" && a.Value.AsInt64() >= 200)
	}
	if !hasStatus {
		t.Fatalf("client span %q has no http.response.status_code: %v", client.Name(), client.Attributes())
	}
	// DB spans (otelpgx) nest under the job.
	db := false
	for _, s := range sr.Ended() {
		db = db || (s.Parent().SpanID() == job.SpanContext().SpanID() && s.SpanKind() == trace.SpanKindClient && !strings.HasPrefix(s.Name(), "aloware ") && !strings.HasPrefix(s.Name(), "ghl "))
	}
	if !db {
		t.Fatal("no database span under the job span")
	}
	// Log lines written inside the spans carry their ids.
	logs := h.logs.String()
	for _, want := range []string{isc.TraceID().String(), job.SpanContext().TraceID().String()} {
		if !strings.Contains(logs, `"trace_id":"`+want+`"`) {
			t.Fatalf("no log line with trace_id %s", want)
		}
	}
}

func TestTraceRequestKeepsCallersTraceAndRequestID(t *testing.T) {
	sr := useRecorder(t)
	h, _ := startSynced(t, nil)
	const callerTrace = "0af7651916cd43dd8448eb211c80319c"
	body := ghlContactBody("ContactCreate", "ghl-trace-2", "Uma", "(310) 555-0198")
	hdr := h.signGHL(body)
	hdr.Set("traceparent", "00-"+callerTrace+"-b7ad6b7169203331-01")
	hdr.Set("X-Request-ID", "req-trace-2")
	req, err := http.NewRequest("POST", h.url+"/api/webhooks/ghl", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("X-Request-ID") != "req-trace-2" {
		t.Fatalf("status %d, X-Request-ID %q", resp.StatusCode, resp.Header.Get("X-Request-ID"))
	}
	spans := waitSpans(t, sr, func(spans []sdktrace.ReadOnlySpan) bool {
		for _, s := range spans {
			if s.Name() == intakeSpanName && s.SpanContext().TraceID().String() == callerTrace {
				return true
			}
		}
		return false
	})
	for _, s := range spans {
		if s.Name() == intakeSpanName && s.Parent().SpanID().String() != "b7ad6b7169203331" {
			t.Fatalf("intake span parent %s; want the caller's span", s.Parent().SpanID())
		}
	}
}

func TestTraceMCPToolContinuesMetaTraceparent(t *testing.T) {
	sr := useRecorder(t)
	s := server.NewMCPServer("t", "0", server.WithToolHandlerMiddleware(observe.MCPToolTracing()))
	var inside trace.SpanContext
	s.AddTool(mcp.NewTool("echo"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		inside = trace.SpanContextFromContext(ctx)
		return mcp.NewToolResultText("ok"), nil
	})
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	msg := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{},"_meta":{"traceparent":"` + tp + `"}}}`
	out, err := json.Marshal(s.HandleMessage(context.Background(), []byte(msg)))
	if err != nil || !strings.Contains(string(out), `"ok"`) {
		t.Fatalf("tools/call answered %s (%v)", out, err)
	}
	spans := sr.Ended()
	if len(spans) != 1 || spans[0].Name() != "mcp tool echo" {
		t.Fatalf("spans = %v; want one \"mcp tool echo\"", spans)
	}
	sp := spans[0]
	if sp.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sp.Parent().SpanID().String() != "00f067aa0ba902b7" || !sp.Parent().IsRemote() {
		t.Fatalf("tool span trace %s parent %s; want the _meta traceparent", sp.SpanContext().TraceID(), sp.Parent().SpanID())
	}
	if inside.SpanID() != sp.SpanContext().SpanID() {
		t.Fatal("the tool handler's context does not carry the tool span")
	}

	// Without _meta the tool span is a new root.
	msg = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{}}}`
	s.HandleMessage(context.Background(), []byte(msg))
	if spans = sr.Ended(); len(spans) != 2 || spans[1].Parent().IsValid() {
		t.Fatalf("second tool span parent = %v; want a root", spans[1].Parent())
	}
}

// otlpReceiver is an OTLP/HTTP trace endpoint that decodes every export.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []otlpSpan
	bad   error
}

type otlpSpan struct {
	service, name     string
	trace, id, parent string
	links             [][2]string // trace, span
	kind              int32
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want POST /v1/traces application/x-protobuf", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(body, &req)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		o.bad = err
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := otlpSpan{service: service, name: s.GetName(), trace: hex.EncodeToString(s.GetTraceId()),
					id: hex.EncodeToString(s.GetSpanId()), parent: hex.EncodeToString(s.GetParentSpanId()), kind: int32(s.GetKind())}
				for _, l := range s.GetLinks() {
					sp.links = append(sp.links, [2]string{hex.EncodeToString(l.GetTraceId()), hex.EncodeToString(l.GetSpanId())})
				}
				o.spans = append(o.spans, sp)
			}
		}
	}
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// connected finds a GHL intake span, a job span linked to it and an Aloware
// client span under that job.
func (o *otlpReceiver) connected() (intake, job, client otlpSpan, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, j := range o.spans {
		if j.name != "job ghl/ContactCreate" {
			continue
		}
		for _, i := range o.spans {
			if i.name != intakeSpanName || i.service != observe.ServiceName {
				continue
			}
			linked := false
			for _, l := range j.links {
				linked = linked || (l[0] == i.trace && l[1] == i.id)
			}
			if !linked {
				continue
			}
			for _, c := range o.spans {
				if strings.HasPrefix(c.name, "aloware POST ") && c.trace == j.trace && c.parent == j.id {
					return i, j, c, true
				}
			}
		}
	}
	return intake, job, client, false
}

func TestTraceExportedOverOTLPHTTP(t *testing.T) {
	rcv := &otlpReceiver{}
	col := httptest.NewServer(rcv)
	t.Cleanup(col.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })
	shutdown, err := observe.SetupTracing(context.Background(), observe.ServiceName, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })
	if !observe.TracingEnabled() {
		t.Fatal("SetupTracing with an endpoint installed no SDK provider")
	}
	h, _ := startSynced(t, nil)

	id := h.post("ghl", ghlContactBody("ContactCreate", "ghl-otlp-1", "Vera", "(310) 555-0197"))
	h.waitStatus(id, store.StatusDone)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if i, j, c, ok := rcv.connected(); ok {
			if i.kind != 2 || j.trace == i.trace || c.kind != 3 { // SERVER, new root, CLIENT
				t.Fatalf("intake %+v job %+v client %+v", i, j, c)
			}
			return
		}
		if time.Now().After(deadline) {
			rcv.mu.Lock()
			defer rcv.mu.Unlock()
			t.Fatalf("no connected intake → job → aloware trace in %d exported spans (decode error: %v)", len(rcv.spans), rcv.bad)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSetupTracingWithoutEndpointInstallsNothing(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	otel.SetTracerProvider(noop.NewTracerProvider())
	shutdown, err := observe.SetupTracing(context.Background(), observe.ServiceName, "test")
	if err != nil {
		t.Fatal(err)
	}
	if observe.TracingEnabled() {
		t.Fatal("a provider was installed with no endpoint")
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := otel.GetTextMapPropagator().(interface{ Fields() []string }); !ok || !strings.Contains(strings.Join(otel.GetTextMapPropagator().Fields(), ","), "traceparent") {
		t.Fatal("the W3C propagator is not installed")
	}
}
