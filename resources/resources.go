// Package resources serves the MCP resources, resource templates, prompts
// and argument completions of df-middleware: recent errors (with
// notifications to subscribers when a new one arrives), one event by id,
// the runbooks, health and active alerts, and the runbooks as guided
// procedures (prompts) that call the tools of package tools.
//
// The server must be created with the options of ServerOptions: mcp-go
// takes completion providers and hooks only at construction, and this
// package needs both (completions of ids and names; tracking which
// sessions subscribed to which resource, which mcp-go leaves to the
// application).
package resources

import (
	"context"
	"errors"
	"sync"

	"github.com/mark3labs/mcp-go/server"
	"github.com/rs/zerolog"

	"github.com/df-middleware/df-middleware/internal/health"
	"github.com/df-middleware/df-middleware/internal/queue"
	"github.com/df-middleware/df-middleware/internal/store"
)

// Deps is what the resources read from.
type Deps struct {
	Store    *store.Store
	Health   *health.Service // nil: health://status says checks are not configured
	Registry *queue.Registry // nil: events://{id} cannot say whether a handler exists
	Log      zerolog.Logger
}

// URIs of the static resources.
const (
	URIRecentErrors = "errors://recent"
	URIHealth       = "health://status"
	URIActiveAlerts = "alerts://active"
	URIRunbookIndex = "runbook://index"
)

// URI templates.
const (
	TemplateEvent   = "events://{id}"
	TemplateRunbook = "runbook://{name}"
)

// state is what this package keeps per MCP server: the dependencies (set by
// Register, read by completion providers and hooks, which mcp-go hands
// only the server) and the resource subscriptions of its sessions.
type state struct {
	subs subscriptions

	mu      sync.RWMutex
	deps    *Deps
	hooks   *server.Hooks // the Hooks our subscription hooks were added to
	options bool          // ServerOptions were applied
}

// servers maps *server.MCPServer to its *state.
var servers sync.Map

func stateOf(s *server.MCPServer) *state {
	if v, ok := servers.Load(s); ok {
		return v.(*state)
	}
	v, _ := servers.LoadOrStore(s, &state{subs: newSubscriptions()})
	return v.(*state)
}

func (st *state) depsOrNil() *Deps {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.deps
}

// ServerOptions returns the options the MCP server must be created with,
// appended after the caller's own: the prompt and resource completion
// providers, and hooks that track resources/subscribe and
// subscriptions/listen (added to the server's Hooks, created when the
// server has none).
func ServerOptions() []server.ServerOption {
	return []server.ServerOption{func(s *server.MCPServer) {
		st := stateOf(s)
		server.WithPromptCompletionProvider(completer{st})(s)
		server.WithResourceCompletionProvider(completer{st})(s)
		st.mu.Lock()
		st.options = true
		st.mu.Unlock()
		st.ensureHooks(s)
	}}
}

// ensureHooks adds the subscription hooks to the server's current Hooks,
// once; a WithHooks applied after ServerOptions would have replaced them.
func (st *state) ensureHooks(s *server.MCPServer) {
	st.mu.Lock()
	defer st.mu.Unlock()
	hooks := s.GetHooks()
	if hooks == nil {
		hooks = &server.Hooks{}
		server.WithHooks(hooks)(s)
	}
	if st.hooks == hooks {
		return
	}
	st.hooks = hooks
	st.subs.attach(hooks)
}

// Register adds the resources, resource templates and prompts to s. The
// server must have been created with ServerOptions.
func Register(s *server.MCPServer, d Deps) error {
	if s == nil {
		return errors.New("resources: nil server")
	}
	if d.Store == nil {
		return errors.New("resources: Deps.Store is required")
	}
	st := stateOf(s)
	st.mu.RLock()
	applied := st.options
	st.mu.RUnlock()
	if !applied {
		return errors.New("resources: create the MCP server with resources.ServerOptions() appended to its options " +
			"(mcp-go accepts completion providers and hooks only at construction)")
	}
	st.ensureHooks(s)
	if _, err := runbookIndex(); err != nil {
		return err
	}
	st.mu.Lock()
	st.deps = &d
	st.mu.Unlock()

	h := handlers{d: d}
	s.AddResources(h.staticResources()...)
	s.AddResourceTemplates(h.templates()...)
	s.AddPrompts(h.prompts()...)
	return nil
}

// withTimeout bounds the database work of one resource read or prompt.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, readTimeout)
}
