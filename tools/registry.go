// Package tools is the MCP tool surface of df-middleware: one registry of
// toolsets (ops, events, sync, broadcasts) drives registration, toolset
// selection, read-only filtering, the server's instructions and the
// generated docs/tools.md. Each tool is a typed handler over a params struct
// and a result struct; the result is returned both as structured content
// (described by the tool's output schema) and as a compact text summary.
//
// Every SQL statement a tool needs lives in internal/store; this package
// validates arguments, calls the store and the clients, and shapes results.
package tools

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/df-middleware/df-middleware/internal/health"
	"github.com/df-middleware/df-middleware/internal/mcpctx"
	"github.com/df-middleware/df-middleware/internal/observe"
	"github.com/df-middleware/df-middleware/internal/queue"
	"github.com/df-middleware/df-middleware/internal/store"
	"github.com/df-middleware/df-middleware/internal/upstream/verity"
)

// Deps is what the tools call.
type Deps struct {
	Store    *store.Store
	Runner   *queue.Runner // nil: process_pending reports that no workers run here
	Health   *health.Service
	Verity   Broadcasts // nil when Verity is not configured
	Registry *queue.Registry
	Log      zerolog.Logger
}

// Broadcasts is what the broadcast tools need of the Verity client.
type Broadcasts interface {
	ListBroadcasts(ctx context.Context, status string, limit int, cursor string) ([]verity.Broadcast, string, error)
	GetBroadcast(ctx context.Context, id string) (verity.Broadcast, error)
	GetAnalytics(ctx context.Context, id string) (verity.Analytics, error)
}

// Options selects the tools to register.
type Options struct {
	Toolsets []string // empty or ["all"]: every toolset
	ReadOnly bool     // register no tool that changes anything
}

// toolDef is one tool of the registry: its definition, whether it changes
// anything, and how to build its handler over the dependencies.
type toolDef struct {
	tool     mcp.Tool
	mutating bool
	bind     func(d *Deps) server.ToolHandlerFunc
}

// toolset is a named group of tools, selected as a whole.
type toolset struct {
	name        string
	description string
	tools       []toolDef
}

// registry is the one list of toolsets; everything else reads it.
var registry = sync.OnceValue(func() []toolset {
	return []toolset{opsToolset(), eventsToolset(), syncToolset(), broadcastsToolset()}
})

// ToolsetNames lists the valid toolset names, in registry order.
func ToolsetNames() []string {
	var names []string
	for _, ts := range registry() {
		names = append(names, ts.name)
	}
	return names
}

// selected resolves Options.Toolsets to the toolsets to expose.
func selected(o Options) ([]toolset, error) {
	want := map[string]bool{}
	all := len(o.Toolsets) == 0
	var unknown []string
	for _, raw := range o.Toolsets {
		name := strings.ToLower(strings.TrimSpace(raw))
		switch {
		case name == "":
		case name == "all":
			all = true
		case slices.Contains(ToolsetNames(), name):
			want[name] = true
		default:
			unknown = append(unknown, raw)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("unknown toolset %s: valid toolsets are %s, or all",
			quoteList(unknown), strings.Join(ToolsetNames(), ", "))
	}
	if !all && len(want) == 0 {
		all = true // only blanks: same as nothing chosen
	}
	var out []toolset
	for _, ts := range registry() {
		if all || want[ts.name] {
			out = append(out, ts)
		}
	}
	return out, nil
}

// enabledTools lists the tools the options expose, in registry order.
func enabledTools(o Options) ([]toolDef, error) {
	sets, err := selected(o)
	if err != nil {
		return nil, err
	}
	var out []toolDef
	for _, ts := range sets {
		for _, t := range ts.tools {
			if o.ReadOnly && t.mutating {
				continue
			}
			out = append(out, t)
		}
	}
	return out, nil
}

// Register adds the selected tools to s and returns their names. An unknown
// toolset is an error naming the valid ones.
func Register(s *server.MCPServer, d Deps, o Options) ([]string, error) {
	defs, err := enabledTools(o)
	if err != nil {
		return nil, err
	}
	if v, ok := d.Verity.(*verity.Client); ok && v == nil {
		d.Verity = nil // a typed nil is "not configured", not a client to call
	}
	deps := &d
	var names []string
	var tools []server.ServerTool
	for _, t := range defs {
		tools = append(tools, server.ServerTool{Tool: t.tool, Handler: t.bind(deps)})
		names = append(names, t.tool.Name)
	}
	s.AddTools(tools...)
	return names, nil
}

// spec declares a tool. annotations must set Title and all four hints
// explicitly: the annotation policy test fails on any nil hint.
type spec struct {
	name        string
	title       string
	description string
	annotations mcp.ToolAnnotation
	mutating    bool
	params      []mcp.ToolOption
}

// result is a tool's structured output; text renders it for a reader.
type result interface {
	text() string
}

// define builds a tool from its spec and typed handler: input schema from
// the params (additionalProperties false), output schema from R.
func define[P any, R result](s spec, h func(ctx context.Context, d *Deps, p P) (R, error)) toolDef {
	opts := append([]mcp.ToolOption{mcp.WithDescription(s.description)}, s.params...)
	opts = append(opts,
		mcp.WithSchemaAdditionalProperties(false),
		mcp.WithOutputSchema[R](),
		mcp.WithToolAnnotation(s.annotations),
	)
	t := mcp.NewTool(s.name, opts...)
	t.Title = s.title
	return toolDef{tool: t, mutating: s.mutating, bind: func(d *Deps) server.ToolHandlerFunc {
		return handle(t, d, h)
	}}
}

// handle adapts a typed handler: arguments are checked against the tool's
// input schema and bound to P; the result becomes structured content plus
// its text; every failure becomes an isError result with a next step.
func handle[P any, R result](t mcp.Tool, d *Deps, h func(ctx context.Context, d *Deps, p P) (R, error)) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		start := time.Now()
		var p P
		if err := bindArgs(t, req, &p); err != nil {
			return mcp.NewToolResultError(err.Error()), nil
		}
		r, err := h(ctx, d, p)
		elapsed := time.Since(start)
		if err != nil {
			return d.failure(ctx, t.Name, err, elapsed), nil
		}
		d.Log.Debug().Str("tool", t.Name).Dur("elapsed", elapsed).Msg("tool call")
		return &mcp.CallToolResult{
			Content:           []mcp.Content{mcp.NewTextContent(r.text())},
			StructuredContent: r,
		}, nil
	}
}

// toolError is a failure the caller can act on; its message says what to do.
type toolError struct{ msg string }

func (e *toolError) Error() string { return e.msg }

// fail returns a toolError with a formatted message.
func fail(format string, args ...any) error { return &toolError{fmt.Sprintf(format, args...)} }

// failure turns a handler error into an isError result. Errors the handler
// did not phrase for the caller (database, context) are logged and reported
// with a generic next step.
func (d *Deps) failure(ctx context.Context, tool string, err error, elapsed time.Duration) *mcp.CallToolResult {
	var te *toolError
	if errors.As(err, &te) {
		d.Log.Debug().Str("tool", tool).Dur("elapsed", elapsed).Str("reason", te.msg).Msg("tool call refused")
		return mcp.NewToolResultError(te.msg)
	}
	caller := mcpctx.CallerFrom(ctx)
	d.Log.Error().Err(err).Str("tool", tool).Str("interface", caller.Interface).Dur("elapsed", elapsed).Msg("tool call failed")
	msg := fmt.Sprintf("%s failed: %s. ", tool, clean(err.Error(), maxMessageBytes))
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		msg += "The call ran out of time or was cancelled; retry it, with narrower filters if it keeps happening."
	default:
		msg += "The database may be unavailable: call check_health, then retry."
	}
	return mcp.NewToolResultError(msg)
}

// actor is who a mutation is recorded as in audit_log.
// actor is who the audit row names: the caller, and the request id and
// trace id the call ran under (empty when there were none), so an audit row
// leads to the access log line and the trace.
func actor(ctx context.Context) store.Actor {
	c := mcpctx.CallerFrom(ctx)
	a := store.Actor{Name: c.Name, Interface: c.Interface, RequestID: observe.RequestID(ctx)}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		a.TraceID = sc.TraceID().String()
	}
	return a
}

// Annotation values, so that each tool spells out all four hints.
func yes() *bool { b := true; return &b }
func no() *bool  { b := false; return &b }

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
