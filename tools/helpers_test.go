package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/rs/zerolog"

	"github.com/df-middleware/df-middleware/internal/health"
	"github.com/df-middleware/df-middleware/internal/mcpctx"
	"github.com/df-middleware/df-middleware/internal/queue"
	"github.com/df-middleware/df-middleware/internal/store"
	"github.com/df-middleware/df-middleware/internal/testdb"
	"github.com/df-middleware/df-middleware/internal/upstream"
	"github.com/df-middleware/df-middleware/internal/upstream/verity"
)

// harness is a real MCP server with the tools registered over a fresh
// database, and an in-process client talking to it.
type harness struct {
	t      *testing.T
	st     *store.Store
	deps   Deps
	names  []string
	client *client.Client
	verity *fakeVerity
}

type harnessOpt func(*Deps, *Options)

func withOptions(o Options) harnessOpt { return func(_ *Deps, opts *Options) { *opts = o } }
func withoutRunner() harnessOpt        { return func(d *Deps, _ *Options) { d.Runner = nil } }
func withoutVerity() harnessOpt        { return func(d *Deps, _ *Options) { d.Verity = nil } }

func newHarness(t *testing.T, opts ...harnessOpt) *harness {
	t.Helper()
	st := testdb.New(t)
	return newHarnessOn(t, st, opts...)
}

func newHarnessOn(t *testing.T, st *store.Store, opts ...harnessOpt) *harness {
	t.Helper()
	reg := queue.NewRegistry()
	reg.Register("ghl", "ContactCreate", "GHL contact created → Aloware contact", queue.HandlerFunc(func(context.Context, queue.Job) error { return nil }))
	fv := &fakeVerity{}
	d := Deps{
		Store:    st,
		Runner:   queue.New(st, reg, queue.Config{Workers: 0, InstanceID: "test-instance"}, zerolog.Nop()),
		Health:   &health.Service{Checkers: []health.Checker{health.Database(st), health.Static("verity_api", health.NotConfigured, "VERITY_BASE_URL is not set")}},
		Verity:   fv,
		Registry: reg,
		Log:      zerolog.Nop(),
	}
	var o Options
	for _, f := range opts {
		f(&d, &o)
	}
	// Output validation on, as a strict client would check: every
	// structured result must match its tool's output schema.
	s := server.NewMCPServer("df-middleware-test", "0.0.0", server.WithToolCapabilities(false), server.WithOutputSchemaValidation())
	names, err := Register(s, d, o)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	c, err := client.NewInProcessClient(s)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "tools-test", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &harness{t: t, st: st, deps: d, names: names, client: c, verity: fv}
}

// ctxAs returns a context carrying an MCP caller, as the transports set it.
func ctxAs(iface, name string) context.Context {
	return mcpctx.WithCaller(context.Background(), mcpctx.Caller{Interface: iface, Name: name})
}

// call invokes a tool; a protocol error fails the test.
func (h *harness) call(ctx context.Context, name string, args any) *mcp.CallToolResult {
	h.t.Helper()
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	res, err := h.client.CallTool(ctx, req)
	if err != nil {
		h.t.Fatalf("%s: protocol error: %v", name, err)
	}
	return res
}

// ok calls a tool that must succeed and decodes its structured content.
func (h *harness) ok(name string, args any, out any) string {
	h.t.Helper()
	return h.okCtx(context.Background(), name, args, out)
}

func (h *harness) okCtx(ctx context.Context, name string, args any, out any) string {
	h.t.Helper()
	res := h.call(ctx, name, args)
	text := resultText(res)
	if res.IsError {
		h.t.Fatalf("%s(%v): unexpected isError: %s", name, args, text)
	}
	if res.StructuredContent == nil {
		h.t.Fatalf("%s: no structured content", name)
	}
	if text == "" || strings.HasPrefix(strings.TrimSpace(text), "{") {
		h.t.Fatalf("%s: text content should be a readable summary, got %q", name, text)
	}
	if out != nil {
		b, err := json.Marshal(res.StructuredContent)
		if err != nil {
			h.t.Fatal(err)
		}
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s: decode structured content: %v\n%s", name, err, b)
		}
	}
	return text
}

// fails calls a tool that must return isError and returns its message.
func (h *harness) fails(name string, args any) string {
	h.t.Helper()
	return h.failsCtx(context.Background(), name, args)
}

func (h *harness) failsCtx(ctx context.Context, name string, args any) string {
	h.t.Helper()
	res := h.call(ctx, name, args)
	text := resultText(res)
	if !res.IsError {
		h.t.Fatalf("%s(%v): expected isError, got: %s", name, args, text)
	}
	return text
}

func resultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// exec runs setup SQL in the test database.
func (h *harness) exec(sql string, args ...any) {
	h.t.Helper()
	if _, err := h.st.Pool.Exec(context.Background(), sql, args...); err != nil {
		h.t.Fatalf("setup %q: %v", sql, err)
	}
}

// insertEvents stores n events and returns their ids in insertion order.
func (h *harness) insertEvents(n int, mk func(i int) store.NewEvent) []string {
	h.t.Helper()
	var ids []string
	for start := 0; start < n; start += 500 {
		var batch []store.NewEvent
		for i := start; i < min(n, start+500); i++ {
			batch = append(batch, mk(i))
		}
		res, err := h.st.InsertEvents(context.Background(), batch)
		if err != nil {
			h.t.Fatal(err)
		}
		for _, r := range res {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

func textingEvent(i int) store.NewEvent {
	return store.NewEvent{Source: "texting", EventType: "message.received", EntityType: "message", EntityID: fmt.Sprintf("m%d", i),
		DedupeKey: fmt.Sprintf("texting:m%d", i), Payload: []byte(fmt.Sprintf(`{"messageId":"m%d","body":"hello %d"}`, i, i))}
}

// fakeVerity stands in for the Verity client.
type fakeVerity struct {
	mu         sync.Mutex
	broadcasts []verity.Broadcast
	analytics  map[string]verity.Analytics
	err        error
	lastLimit  int
	lastCursor string
	lastStatus string
}

func (f *fakeVerity) ListBroadcasts(_ context.Context, status string, limit int, cursor string) ([]verity.Broadcast, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastStatus, f.lastLimit, f.lastCursor = status, limit, cursor
	if f.err != nil {
		return nil, "", f.err
	}
	start := 0
	if cursor != "" {
		fmt.Sscanf(cursor, "c%d", &start)
	}
	end := min(len(f.broadcasts), start+limit)
	next := ""
	if end < len(f.broadcasts) {
		next = fmt.Sprintf("c%d", end)
	}
	return f.broadcasts[start:end], next, nil
}

func (f *fakeVerity) GetBroadcast(_ context.Context, id string) (verity.Broadcast, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return verity.Broadcast{}, f.err
	}
	for _, b := range f.broadcasts {
		if b.ID == id {
			return b, nil
		}
	}
	return verity.Broadcast{}, notFound()
}

func (f *fakeVerity) GetAnalytics(_ context.Context, id string) (verity.Analytics, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return verity.Analytics{}, f.err
	}
	a, ok := f.analytics[id]
	if !ok {
		return verity.Analytics{}, notFound()
	}
	return a, nil
}

func (f *fakeVerity) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func notFound() error {
	return &upstream.Error{Upstream: "verity", Endpoint: "GET /api/comms/broadcasts/{id}", Status: 404, Message: "broadcast not found"}
}
