// Package gateway is the Verity API gateway: POST /api/verity forwards a
// catalogued Verity call for another service that holds
// DF_MIDDLEWARE_API_KEY, GET /api/verity lists the catalogue. Only
// catalogued endpoints and methods are forwarded, and only to
// VERITY_BASE_URL, so the gateway cannot be turned into a proxy to anywhere.
package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/rs/zerolog"

	"github.com/df-middleware/df-middleware/internal/observe"
	"github.com/df-middleware/df-middleware/internal/upstream"
)

// Endpoint is one catalogued Verity call.
type Endpoint struct {
	Method      string `json:"method"`
	Path        string `json:"path"` // template; {id} matches one safe path segment
	Description string `json:"description"`
}

// Catalog is every call the gateway forwards.
var Catalog = []Endpoint{
	{"GET", "/api/comms/broadcasts", "list broadcasts (query: limit, cursor, status)"},
	{"GET", "/api/comms/broadcasts/{id}", "one broadcast"},
	{"GET", "/api/comms/broadcasts/{id}/analytics", "a broadcast's analytics"},
	{"GET", "/api/calls", "list calls (query: limit, cursor)"},
	{"POST", "/api/comms/send-message", "send an SMS (body: to, body, from)"},
}

// segment is what {id} may be: no dots, slashes, percent signs or spaces, so
// no traversal and no re-encoding tricks.
var segment = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// allowedQuery lists the query parameters forwarded; others are refused.
var allowedQuery = map[string]bool{"limit": true, "cursor": true, "status": true}

// ErrNotCatalogued is returned for a method and path the gateway does not forward.
var ErrNotCatalogued = errors.New("endpoint not in the gateway catalogue")

// Resolve checks a requested method and endpoint against the catalogue and
// returns the clean path to call. It refuses absolute URLs, other hosts,
// traversal, encoded characters and anything not catalogued.
func Resolve(method, endpoint string) (string, error) {
	method = normalizeMethod(method)
	if endpoint == "" || endpoint[0] != '/' || strings.HasPrefix(endpoint, "//") {
		return "", fmt.Errorf("%w: endpoint must be a path starting with a single / (got %q)", ErrNotCatalogued, truncate(endpoint, 100))
	}
	if strings.ContainsAny(endpoint, "?#%\\ \t\r\n") || strings.Contains(endpoint, "..") {
		return "", fmt.Errorf("%w: endpoint may not contain a query, fragment, encoded or traversal characters; pass query parameters in \"query\"", ErrNotCatalogued)
	}
	parts := strings.Split(strings.TrimSuffix(endpoint, "/"), "/")
	for _, ep := range Catalog {
		if ep.Method != method {
			continue
		}
		tmpl := strings.Split(ep.Path, "/")
		if len(tmpl) != len(parts) {
			continue
		}
		ok := true
		for i := range tmpl {
			if tmpl[i] == "{id}" {
				ok = ok && segment.MatchString(parts[i])
			} else {
				ok = ok && tmpl[i] == parts[i]
			}
		}
		if ok {
			return strings.Join(parts, "/"), nil
		}
	}
	return "", fmt.Errorf("%w: %s %s; GET /api/verity lists what is forwarded", ErrNotCatalogued, method, truncate(endpoint, 100))
}

// normalizeMethod is the method Resolve checks and ServeProxy sends: one
// function, so the method forwarded is always the one that was checked.
func normalizeMethod(m string) string {
	m = strings.ToUpper(strings.TrimSpace(m))
	if m == "" {
		return http.MethodGet
	}
	return m
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Verity is what the gateway needs of the Verity client.
type Verity interface {
	Raw(ctx context.Context, method, path string, query url.Values, body []byte) (int, string, []byte, error)
}

// TokenVerifier checks a caller's Clerk session JWT.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (subject string, err error)
}

// Handler serves /api/verity.
type Handler struct {
	keyDigest []byte
	verity    Verity
	tokens    TokenVerifier
	log       zerolog.Logger
}

// New returns the gateway. apiKey is DF_MIDDLEWARE_API_KEY; an empty key
// turns the gateway off (503). v may be nil when Verity is not configured.
func New(apiKey string, v Verity, tokens TokenVerifier, log zerolog.Logger) *Handler {
	h := &Handler{verity: v, tokens: tokens, log: log}
	if apiKey != "" {
		sum := sha256.Sum256([]byte(apiKey))
		h.keyDigest = sum[:]
	}
	return h
}

type request struct {
	Endpoint string            `json:"endpoint"`
	Method   string            `json:"method"`
	Query    map[string]string `json:"query"`
	Body     json.RawMessage   `json:"body"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg, "request_id": observe.RequestID(r.Context())})
}

// authorize checks the API key (X-API-Key, or Authorization: Bearer) in
// constant time, and a caller's Clerk token (X-User-Token) when one is sent.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request) (string, bool) {
	if h.keyDigest == nil {
		h.fail(w, r, http.StatusServiceUnavailable, "the Verity gateway is off: set DF_MIDDLEWARE_API_KEY to enable it")
		return "", false
	}
	key := r.Header.Get("X-API-Key")
	if key == "" {
		key, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	sum := sha256.Sum256([]byte(key))
	if key == "" || subtle.ConstantTimeCompare(sum[:], h.keyDigest) != 1 {
		h.fail(w, r, http.StatusUnauthorized, "missing or wrong API key: send X-API-Key: $DF_MIDDLEWARE_API_KEY")
		return "", false
	}
	caller := "api-key"
	if tok := r.Header.Get("X-User-Token"); tok != "" {
		if h.tokens == nil {
			h.fail(w, r, http.StatusUnauthorized, "a user token was sent but Clerk is not configured (CLERK_SECRET_KEY) to verify it")
			return "", false
		}
		sub, err := h.tokens.Verify(r.Context(), tok)
		if err != nil {
			h.fail(w, r, http.StatusUnauthorized, "invalid user token: "+err.Error())
			return "", false
		}
		caller = "clerk:" + sub
	}
	return caller, true
}

// ServeCatalog answers GET /api/verity.
func (h *Handler) ServeCatalog(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.authorize(w, r); !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"endpoints": Catalog})
}

// ServeProxy answers POST /api/verity.
func (h *Handler) ServeProxy(w http.ResponseWriter, r *http.Request) {
	caller, ok := h.authorize(w, r)
	if !ok {
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		h.fail(w, r, http.StatusRequestEntityTooLarge, "request larger than 1 MiB")
		return
	}
	var req request
	if err := json.Unmarshal(raw, &req); err != nil {
		h.fail(w, r, http.StatusBadRequest, `body must be JSON: {"endpoint": "/api/comms/broadcasts", "method": "GET", "query": {}, "body": {}}`)
		return
	}
	path, err := Resolve(req.Method, req.Endpoint)
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	q := url.Values{}
	for k, v := range req.Query {
		if !allowedQuery[k] {
			h.fail(w, r, http.StatusBadRequest, fmt.Sprintf("query parameter %q is not forwarded (allowed: limit, cursor, status)", k))
			return
		}
		q.Set(k, v)
	}
	if h.verity == nil {
		h.fail(w, r, http.StatusServiceUnavailable, "Verity is not configured: set VERITY_BASE_URL and CLERK_SECRET_KEY")
		return
	}
	method := normalizeMethod(req.Method)
	var body []byte
	if method != http.MethodGet && len(req.Body) > 0 {
		body = req.Body
	}
	status, ctype, resp, err := h.verity.Raw(r.Context(), method, path, q, body)
	if err != nil {
		var ue *upstream.Error
		if errors.As(err, &ue) && ue.Status != 0 {
			h.log.Warn().Err(err).Str("caller", caller).Str("endpoint", path).Msg("gateway call refused upstream")
			h.fail(w, r, http.StatusBadGateway, "Verity answered "+fmt.Sprint(ue.Status)+": "+ue.Message)
			return
		}
		h.log.Error().Err(err).Str("caller", caller).Str("endpoint", path).Msg("gateway call failed")
		h.fail(w, r, http.StatusBadGateway, "Verity is unreachable; try again later")
		return
	}
	h.log.Info().Str("caller", caller).Str("method", method).Str("endpoint", path).Int("status", status).Msg("gateway call")
	if ctype == "" {
		ctype = "application/json"
	}
	w.Header().Set("Content-Type", ctype)
	w.WriteHeader(status)
	_, _ = w.Write(resp)
}
