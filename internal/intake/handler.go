package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/df-middleware/df-middleware/internal/observe"
	"github.com/df-middleware/df-middleware/internal/store"
)

// Settings is what the intake handler needs to know about each source.
type Settings struct {
	GHL            GHLVerifier
	Aloware        AlowareAuth
	AlowareAllowed []string // event names; empty accepts every event
	WebhookSecret  []byte   // VERITY_WEBHOOK_SECRET, for texting and broadcast
	AllowUnsigned  bool     // development only; config refuses it in production
	MaxBodyBytes   int64
	MaxSkew        time.Duration
	// RateLimits is the token bucket of each source (keyed by Source*);
	// a source that is missing or has Limit 0 is not limited.
	RateLimits map[string]RateLimit
	// Now is the clock of the timestamp check and the rate limiters.
	Now func() time.Time
}

// Handler serves POST /api/webhooks/{source}.
type Handler struct {
	set       Settings
	committer *Committer
	log       zerolog.Logger
	allowed   map[string]bool
	limiters  map[string]*sourceLimiter // only the limited sources
	// OnStored is called after a new event is durable (wakes local workers).
	OnStored func()
	// OnOutcome, when set, is called once per delivery to a known source
	// with the parsed event type ("" before parsing), an observe.Webhook*
	// outcome and, for refusals and failures, an observe.Reason* reason.
	OnOutcome func(source, eventType, outcome, reason string)
}

func (h *Handler) outcome(source, eventType, outcome, reason string) {
	if h.OnOutcome != nil {
		h.OnOutcome(source, eventType, outcome, reason)
	}
}

// NewHandler builds the intake handler.
func NewHandler(set Settings, c *Committer, log zerolog.Logger) *Handler {
	if set.MaxBodyBytes <= 0 {
		set.MaxBodyBytes = 1 << 20
	}
	if set.MaxSkew <= 0 {
		set.MaxSkew = DefaultMaxSkew
	}
	if set.Now == nil {
		set.Now = time.Now
	}
	h := &Handler{set: set, committer: c, log: log, limiters: newLimiters(set.RateLimits)}
	if len(set.AlowareAllowed) > 0 {
		h.allowed = map[string]bool{}
		for _, e := range set.AlowareAllowed {
			h.allowed[NormalizeAlowareEvent(e)] = true
		}
	}
	return h
}

// Response is the JSON body of a stored (or duplicate) delivery.
type Response struct {
	ID     string `json:"id"`
	Status string `json:"status"` // accepted, duplicate
	Note   string `json:"note,omitempty"`
}

// ErrorResponse is the JSON body of every refusal.
type ErrorResponse struct {
	Error     string `json:"error"`
	RequestID string `json:"request_id,omitempty"`
}

// WriteJSON writes v with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes an ErrorResponse carrying the request id.
func WriteError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	WriteJSON(w, code, ErrorResponse{Error: msg, RequestID: observe.RequestID(r.Context())})
}

// notConfigured names the variable an operator must set before a source's
// webhooks can be checked; "" when the source is ready.
func (h *Handler) notConfigured(source string) string {
	if h.set.AllowUnsigned {
		return ""
	}
	switch source {
	case SourceAloware:
		a := h.set.Aloware
		if a.BearerToken == "" && (a.BasicUser == "" || a.BasicPass == "") {
			return "Aloware webhooks are not configured: set ALOWARE_WEBHOOK_BEARER_TOKEN or ALOWARE_WEBHOOK_BASIC_USER and ALOWARE_WEBHOOK_BASIC_PASS"
		}
	case SourceTexting, SourceBroadcast:
		if len(h.set.WebhookSecret) == 0 {
			return source + " webhooks are not configured: set VERITY_WEBHOOK_SECRET"
		}
	case SourceGHL:
		if h.set.GHL.Ed25519 == nil && h.set.GHL.RSA == nil {
			return "GHL webhooks are not configured: GHL_WEBHOOK_PUBLIC_KEY is invalid"
		}
	}
	return ""
}

func (h *Handler) verify(source string, r *http.Request, body []byte) error {
	if h.set.AllowUnsigned {
		return nil
	}
	switch source {
	case SourceGHL:
		return h.set.GHL.Verify(r.Header, body)
	case SourceAloware:
		return h.set.Aloware.Verify(r.Header)
	case SourceTexting:
		return VerifyHMAC(r.Header, body, h.set.WebhookSecret, TextingSignatureHeaders...)
	case SourceBroadcast:
		return VerifyHMAC(r.Header, body, h.set.WebhookSecret, BroadcastSignatureHeaders...)
	}
	return ErrUnknownSource
}

// ServeHTTP checks, parses and stores one delivery. Order matters: the
// source's rate limit (before a byte of the body is read), size, then
// signature (nothing unsigned is parsed further or stored), then shape.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	source := r.PathValue("source")
	switch source {
	case SourceGHL, SourceAloware, SourceTexting, SourceBroadcast:
	default:
		WriteError(w, r, http.StatusNotFound, fmt.Sprintf("unknown webhook source %q: use ghl, aloware, texting or broadcast", source))
		return
	}
	// The request logger is built only when a line is written: intake runs
	// at thousands of requests a second and most write none.
	log := func() *zerolog.Logger {
		l := h.log.With().Ctx(r.Context()).Str("source", source).Str("request_id", observe.RequestID(r.Context())).Logger()
		return &l
	}
	if msg := h.notConfigured(source); msg != "" {
		h.outcome(source, "", observe.WebhookRefused, observe.ReasonNotConfigured)
		WriteError(w, r, http.StatusServiceUnavailable, msg)
		return
	}
	if h.rateLimited(w, r, source) {
		return
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.set.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.outcome(source, "", observe.WebhookRefused, observe.ReasonTooLarge)
			WriteError(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", h.set.MaxBodyBytes))
			return
		}
		h.outcome(source, "", observe.WebhookRefused, observe.ReasonUnreadable)
		WriteError(w, r, http.StatusBadRequest, "could not read body: "+err.Error())
		return
	}
	if err := h.verify(source, r, body); err != nil {
		log().Warn().Err(err).Msg("webhook refused: verification failed")
		h.outcome(source, "", observe.WebhookRefused, observe.ReasonUnauthorized)
		WriteError(w, r, http.StatusUnauthorized, err.Error())
		return
	}
	parsed, err := Parse(source, body)
	if err == nil {
		err = CheckStorableJSON(body)
	}
	if err != nil {
		log().Info().Err(err).Msg("webhook refused: malformed body")
		h.outcome(source, "", observe.WebhookRefused, observe.ReasonMalformed)
		WriteError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if source == SourceGHL && !h.set.AllowUnsigned {
		if err := CheckTimestamp(parsed.Timestamp, h.set.Now(), h.set.MaxSkew); err != nil {
			log().Warn().Err(err).Msg("webhook refused: stale timestamp")
			h.outcome(source, parsed.EventType, observe.WebhookRefused, observe.ReasonStaleTimestamp)
			WriteError(w, r, http.StatusUnauthorized, err.Error())
			return
		}
	}

	ev := store.NewEvent{
		Source: source, EventType: parsed.EventType, EntityType: parsed.EntityType,
		EntityID: parsed.EntityID, DedupeKey: parsed.DedupeKey, Payload: body,
		RequestID: observe.RequestID(r.Context()),
	}
	if tp, ts := spanTraceContext(r.Context()); tp != "" {
		// The server span's own context, so the job links to this request
		// even when the caller sent no traceparent.
		ev.TraceParent = tp
		if len(ts) <= 512 && printableASCII(ts) {
			ev.TraceState = ts
		}
	} else if tp := r.Header.Get("traceparent"); validTraceparent(tp) {
		ev.TraceParent = tp
		// Kept only when it is the printable ASCII W3C allows: one bad byte
		// would fail the group commit of every request batched with it.
		if ts := r.Header.Get("tracestate"); len(ts) <= 512 && printableASCII(ts) {
			ev.TraceState = ts
		}
	}
	note := ""
	if source == SourceAloware && h.allowed != nil && !h.allowed[NormalizeAlowareEvent(parsed.EventType)] {
		// Stored, so nothing is lost, but never processed.
		ev.Status = store.StatusSkipped
		ev.ErrorMessage = fmt.Sprintf("event %q is not in ALOWARE_WEBHOOK_ALLOWED_EVENTS", parsed.EventType)
		note = ev.ErrorMessage
	}

	// No timer of its own: the committer's flush has a deadline, and a
	// client that gives up cancels the request's context.
	res, err := h.committer.Submit(r.Context(), ev)
	if err != nil {
		log().Error().Err(err).Str("event_type", parsed.EventType).Msg("webhook not stored")
		h.outcome(source, parsed.EventType, observe.WebhookFailed, observe.ReasonDatabase)
		WriteError(w, r, http.StatusServiceUnavailable, "the event could not be stored (database unavailable); nothing was kept, retry the delivery")
		return
	}
	if res.Duplicate {
		h.outcome(source, parsed.EventType, observe.WebhookDuplicate, "")
		if h.log.GetLevel() <= zerolog.DebugLevel {
			log().Debug().Str("event_id", res.ID).Msg("duplicate delivery")
		}
		WriteJSON(w, http.StatusOK, Response{ID: res.ID, Status: "duplicate"})
		return
	}
	if h.log.GetLevel() <= zerolog.DebugLevel {
		log().Debug().Str("event_id", res.ID).Str("event_type", parsed.EventType).Msg("webhook stored")
	}
	if h.OnStored != nil && ev.Status == "" {
		h.OnStored()
	}
	if ev.Status == "" {
		h.outcome(source, parsed.EventType, observe.WebhookAccepted, "")
	} else {
		h.outcome(source, parsed.EventType, observe.WebhookIgnored, "")
	}
	WriteJSON(w, http.StatusAccepted, Response{ID: res.ID, Status: "accepted", Note: note})
}

// spanTraceContext is the W3C traceparent and tracestate of the span in ctx
// (the otelhttp server span), or "" when ctx carries no valid span.
func spanTraceContext(ctx context.Context) (traceparent, tracestate string) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return "", ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"], c["tracestate"]
}

// validTraceparent accepts the W3C form version-traceid-spanid-flags.
func validTraceparent(s string) bool {
	if len(s) != 55 {
		return false
	}
	parts := strings.Split(s, "-")
	if len(parts) != 4 || len(parts[0]) != 2 || len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 {
		return false
	}
	for _, p := range parts {
		for _, c := range p {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// NormalizeAlowareEvent folds the spellings Aloware uses for one event
// ("Contact Created", "contact-created", "ContactCreated") to one key; the
// allowlist and the handler registry both compare through it.
func NormalizeAlowareEvent(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}
