// Package mcpctx carries who is calling an MCP tool, so mutations can be
// written to audit_log with the interface and, over HTTP, the
// authenticated caller.
package mcpctx

import "context"

// Interfaces as recorded in audit_log.
const (
	Stdio = "mcp-stdio"
	HTTP  = "mcp-http"
)

// Caller is the party behind an MCP request.
type Caller struct {
	Interface string // Stdio or HTTP
	Name      string // "local" over stdio; "token" or "clerk:<user id>" over HTTP
}

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller stored in ctx, or the local stdio user.
func CallerFrom(ctx context.Context) Caller {
	if c, ok := ctx.Value(callerKey{}).(Caller); ok && c.Interface != "" {
		return c
	}
	return Caller{Interface: Stdio, Name: "local"}
}
