// Package httpapi is the sidecar's HTTP surface: webhook intake, the admin
// API, health and orchestrator probes.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/df-middleware/df-middleware/internal/gateway"
	"github.com/df-middleware/df-middleware/internal/health"
	"github.com/df-middleware/df-middleware/internal/intake"
	"github.com/df-middleware/df-middleware/internal/mcpctx"
	"github.com/df-middleware/df-middleware/internal/observe"
	"github.com/df-middleware/df-middleware/internal/queue"
	"github.com/df-middleware/df-middleware/internal/store"
)

// Deps is what the router serves from.
type Deps struct {
	Store       *store.Store
	Intake      *intake.Handler
	Runner      *queue.Runner
	Health      *health.Service
	AdminSecret string
	Gateway     *gateway.Handler
	// MCP returns the streamable HTTP handler of the MCP server, or nil
	// while none is mounted (the route answers 404 then).
	MCP func() http.Handler
	// MCPToken is DF_MCP_HTTP_TOKEN; MCPVerifier checks Clerk session JWTs.
	// With neither, /mcp is open — app refuses that off loopback.
	MCPToken    string
	MCPVerifier gateway.TokenVerifier
	// MCPAllowedUsers are the Clerk user ids a session JWT may belong to;
	// a valid token of anyone else is refused (the Clerk instance may be a
	// customer-facing one).
	MCPAllowedUsers []string
	Log             zerolog.Logger
	// Ready reports whether the process has finished starting (migrations
	// applied, workers started) and is not shutting down.
	Ready func() bool
	// Metrics, when set, is served at GET /metrics and counts every request;
	// MetricsToken (DF_METRICS_TOKEN), when set, is required as a Bearer
	// token to scrape.
	Metrics      *observe.Metrics
	MetricsToken string
}

// New returns the sidecar's handler.
func New(d Deps) http.Handler {
	a := &api{Deps: d}
	if d.AdminSecret != "" {
		sum := sha256.Sum256([]byte(d.AdminSecret))
		a.adminDigest = sum[:]
	}
	if d.MCPToken != "" {
		sum := sha256.Sum256([]byte(d.MCPToken))
		a.mcpDigest = sum[:]
	}
	mux := http.NewServeMux()
	mux.Handle("POST /api/webhooks/{source}", d.Intake)
	mux.HandleFunc("GET /health", a.health)
	mux.HandleFunc("GET /livez", a.livez)
	mux.HandleFunc("GET /readyz", a.readyz)
	if d.Metrics != nil {
		mux.Handle("GET /metrics", d.Metrics.Handler(d.MetricsToken))
	}

	if d.Gateway != nil {
		mux.HandleFunc("GET /api/verity", d.Gateway.ServeCatalog)
		mux.HandleFunc("POST /api/verity", d.Gateway.ServeProxy)
	}

	mux.Handle("/mcp", a.mcpAuth(http.HandlerFunc(a.mcp)))

	mux.HandleFunc("POST /api/jobs/process-pending", a.admin(a.processPending))
	mux.HandleFunc("GET /api/admin/events", a.admin(a.listEvents))
	mux.HandleFunc("GET /api/admin/events/{id}", a.admin(a.getEvent))
	mux.HandleFunc("POST /api/admin/events/{id}/replay", a.admin(a.transition(store.ActionReplay)))
	mux.HandleFunc("POST /api/admin/events/{id}/quarantine", a.admin(a.transition(store.ActionQuarantine)))
	mux.HandleFunc("POST /api/admin/events/{id}/release", a.admin(a.transition(store.ActionRelease)))
	return withTracing(withRequest(d.Log, d.Metrics, mux))
}

type api struct {
	Deps
	adminDigest []byte
	mcpDigest   []byte
}

func (a *api) mcp(w http.ResponseWriter, r *http.Request) {
	var h http.Handler
	if a.MCP != nil {
		h = a.MCP()
	}
	if h == nil {
		intake.WriteError(w, r, http.StatusNotFound, "MCP over HTTP is not served by this process")
		return
	}
	// JSON-RPC messages of tool calls are small; bound what a client (even
	// an authenticated one) can make the server buffer.
	r.Body = http.MaxBytesReader(w, r.Body, maxMCPBody)
	h.ServeHTTP(w, r)
}

// maxMCPBody bounds one request to /mcp.
const maxMCPBody = 4 << 20

// mcpAuth admits a request bearing DF_MCP_HTTP_TOKEN (compared as SHA-256
// digests in constant time) or a valid Clerk session JWT, and records who it
// is for the audit log. With no auth configured the route is open; app
// refuses to start that way on a non-loopback address.
func (a *api) mcpAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller := mcpctx.Caller{Interface: mcpctx.HTTP}
		token, hasBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		switch {
		case a.mcpDigest == nil && a.MCPVerifier == nil:
			caller.Name = "unauthenticated-loopback"
		case hasBearer && a.mcpDigest != nil && constantTimeEqual(token, a.mcpDigest):
			caller.Name = "token"
		case hasBearer && a.MCPVerifier != nil && strings.Count(token, ".") == 2:
			sub, err := a.MCPVerifier.Verify(r.Context(), token)
			if err != nil {
				a.Log.Info().Err(err).Str("request_id", observe.RequestID(r.Context())).Msg("MCP request refused: invalid Clerk token")
				unauthorizedMCP(w, r, "invalid Clerk session token: "+err.Error())
				return
			}
			if !slices.Contains(a.MCPAllowedUsers, sub) {
				a.Log.Warn().Str("subject", sub).Str("request_id", observe.RequestID(r.Context())).Msg("MCP request refused: Clerk user not in DF_MCP_ALLOWED_USERS")
				intake.WriteError(w, r, http.StatusForbidden, "this Clerk user is not allowed to use the MCP server: add its id to DF_MCP_ALLOWED_USERS")
				return
			}
			caller.Name = "clerk:" + sub
		default:
			unauthorizedMCP(w, r, "missing or wrong credentials: send Authorization: Bearer $DF_MCP_HTTP_TOKEN (or a Clerk session JWT)")
			return
		}
		next.ServeHTTP(w, r.WithContext(mcpctx.WithCaller(r.Context(), caller)))
	})
}

func unauthorizedMCP(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="df-middleware mcp"`)
	intake.WriteError(w, r, http.StatusUnauthorized, msg)
}

func constantTimeEqual(secret string, digest []byte) bool {
	sum := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(sum[:], digest) == 1
}

// admin guards an admin route with Bearer DF_ADMIN_SECRET. Digests of equal
// length are compared in constant time, so neither the secret nor its
// length leaks through timing. With no secret configured the admin API is
// off (503), never open.
func (a *api) admin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.adminDigest == nil {
			intake.WriteError(w, r, http.StatusServiceUnavailable, "the admin API is off: set DF_ADMIN_SECRET to enable it")
			return
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !constantTimeEqual(token, a.adminDigest) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="df-middleware admin"`)
			intake.WriteError(w, r, http.StatusUnauthorized, "missing or wrong admin credentials: send Authorization: Bearer $DF_ADMIN_SECRET")
			return
		}
		next(w, r)
	}
}

func (a *api) actor(r *http.Request) store.Actor {
	who := store.Actor{Name: "admin", Interface: "admin-api", RequestID: observe.RequestID(r.Context())}
	if sc := trace.SpanContextFromContext(r.Context()); sc.IsValid() {
		who.TraceID = sc.TraceID().String()
	}
	return who
}

func (a *api) health(w http.ResponseWriter, r *http.Request) {
	rep := a.Health.Run(r.Context())
	code := http.StatusOK
	if rep.Status == health.Down {
		code = http.StatusServiceUnavailable
	}
	intake.WriteJSON(w, code, rep)
}

func (a *api) livez(w http.ResponseWriter, r *http.Request) {
	intake.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	if a.Ready != nil && !a.Ready() {
		intake.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting or stopping"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.Store.Ping(ctx); err != nil {
		intake.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "database unreachable"})
		return
	}
	intake.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (a *api) processPending(w http.ResponseWriter, r *http.Request) {
	dueNow := r.URL.Query().Get("due_now") == "true"
	rep, err := a.Runner.ProcessPending(r.Context(), dueNow)
	if err != nil {
		a.Log.Error().Err(err).Msg("process-pending failed")
		intake.WriteError(w, r, http.StatusServiceUnavailable, "could not reach the queue: "+err.Error())
		return
	}
	details := map[string]any{"rescued": rep.Rescued, "made_due": rep.MadeDue}
	if err := a.Store.RecordAudit(r.Context(), a.actor(r), "process_pending", "queue", "", details); err != nil {
		a.Log.Error().Err(err).Msg("audit of process-pending failed")
	}
	intake.WriteJSON(w, http.StatusOK, rep)
}

// maxPageSize is the hard cap of one admin listing page.
const maxPageSize = 500

func (a *api) listEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.EventFilter{
		Source: q.Get("source"), Status: q.Get("status"), EventType: q.Get("type"),
		EntityType: q.Get("entity_type"), EntityID: q.Get("entity_id"), Cursor: q.Get("cursor"), Limit: 50,
	}
	var problems []string
	if f.Status != "" && !slices.Contains(store.Statuses, f.Status) {
		problems = append(problems, "status must be one of "+strings.Join(store.Statuses, ", "))
	}
	if f.Source != "" && !slices.Contains([]string{intake.SourceGHL, intake.SourceAloware, intake.SourceTexting, intake.SourceBroadcast}, f.Source) {
		problems = append(problems, "source must be one of ghl, aloware, texting, broadcast")
	}
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				problems = append(problems, name+" must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
			}
			*dst = t
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			problems = append(problems, "limit must be 1.."+strconv.Itoa(maxPageSize))
		}
		f.Limit = n
	}
	if len(problems) > 0 {
		intake.WriteError(w, r, http.StatusBadRequest, strings.Join(problems, "; "))
		return
	}
	page, err := a.Store.ListEvents(r.Context(), f)
	if errors.Is(err, store.ErrBadCursor) {
		intake.WriteError(w, r, http.StatusBadRequest, "cursor is not one this API returned; start again without it")
		return
	}
	if err != nil {
		a.Log.Error().Err(err).Msg("list events failed")
		intake.WriteError(w, r, http.StatusServiceUnavailable, "could not list events: database unavailable")
		return
	}
	intake.WriteJSON(w, http.StatusOK, page)
}

func (a *api) getEvent(w http.ResponseWriter, r *http.Request) {
	ev, err := a.Store.GetEvent(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		intake.WriteError(w, r, http.StatusNotFound, "no event with id "+strconv.Quote(r.PathValue("id")))
		return
	}
	if err != nil {
		a.Log.Error().Err(err).Msg("get event failed")
		intake.WriteError(w, r, http.StatusServiceUnavailable, "could not read the event: database unavailable")
		return
	}
	intake.WriteJSON(w, http.StatusOK, ev)
}

// TransitionResponse answers replay, quarantine and release.
type TransitionResponse struct {
	Action string      `json:"action"`
	Event  store.Event `json:"event"`
}

// ConflictResponse is the 409 body: the event's current status and the
// statuses the action may start from.
type ConflictResponse struct {
	Error         string   `json:"error"`
	CurrentStatus string   `json:"current_status"`
	AllowedFrom   []string `json:"allowed_from"`
	RequestID     string   `json:"request_id,omitempty"`
}

func (a *api) transition(action store.Action) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Reason string `json:"reason"`
		}
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if err != nil {
			intake.WriteError(w, r, http.StatusRequestEntityTooLarge, "body larger than 64 KiB")
			return
		}
		if len(strings.TrimSpace(string(raw))) > 0 {
			if err := json.Unmarshal(raw, &body); err != nil {
				intake.WriteError(w, r, http.StatusBadRequest, `body must be JSON such as {"reason": "duplicate event"}`)
				return
			}
		}
		body.Reason = strings.TrimSpace(body.Reason)
		if action == store.ActionQuarantine && body.Reason == "" {
			intake.WriteError(w, r, http.StatusBadRequest, `quarantine needs a reason: send {"reason": "…"}`)
			return
		}
		if len(body.Reason) > 1000 {
			intake.WriteError(w, r, http.StatusBadRequest, "reason must be at most 1000 characters")
			return
		}
		ev, err := a.Store.TransitionEvent(r.Context(), r.PathValue("id"), action, body.Reason, a.actor(r))
		var te *store.TransitionError
		switch {
		case errors.Is(err, store.ErrNotFound):
			intake.WriteError(w, r, http.StatusNotFound, "no event with id "+strconv.Quote(r.PathValue("id")))
			return
		case errors.As(err, &te):
			intake.WriteJSON(w, http.StatusConflict, ConflictResponse{Error: te.Error(), CurrentStatus: te.Current,
				AllowedFrom: te.Allowed, RequestID: observe.RequestID(r.Context())})
			return
		case err != nil:
			a.Log.Error().Err(err).Str("action", string(action)).Msg("event transition failed")
			intake.WriteError(w, r, http.StatusServiceUnavailable, "could not change the event: database unavailable")
			return
		}
		a.Log.Info().Str("event_id", ev.ID).Str("action", string(action)).Str("request_id", observe.RequestID(r.Context())).Msg("operator changed event")
		if ev.Status == store.StatusPending && a.Runner != nil {
			a.Runner.Wake()
		}
		intake.WriteJSON(w, http.StatusOK, TransitionResponse{Action: string(action), Event: ev})
	}
}
