// Package sync holds the handlers that turn stored webhook events into
// upstream writes: GHL contacts to Aloware and back, Aloware calls and SMS
// to GHL notes and conversation messages, texting messages and opt-outs to
// GHL, broadcast analytics to the store. Every operation writes sync_log;
// writes the middleware makes are fingerprinted so their echoes are skipped.
package sync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"github.com/rs/zerolog"

	"github.com/df-middleware/df-middleware/internal/queue"
	"github.com/df-middleware/df-middleware/internal/store"
	"github.com/df-middleware/df-middleware/internal/upstream"
	"github.com/df-middleware/df-middleware/internal/upstream/aloware"
	"github.com/df-middleware/df-middleware/internal/upstream/ghl"
)

// GHL is what the handlers need of the GHL client.
type GHL interface {
	UpsertContact(ctx context.Context, in ghl.ContactInput) (ghl.Contact, bool, error)
	FindDuplicate(ctx context.Context, phone, email string) (*ghl.Contact, error)
	SetDND(ctx context.Context, id string, dnd bool, channel, message string) error
	AddNote(ctx context.Context, contactID, body string) (string, error)
	FindOrCreateConversation(ctx context.Context, contactID string) (string, error)
	AddInboundMessage(ctx context.Context, conversationID, providerID, message string, at time.Time) (string, error)
}

// Aloware is what the handlers need of the Aloware client.
type Aloware interface {
	UpsertContact(ctx context.Context, in aloware.ContactInput) (aloware.Contact, bool, error)
}

// Config tunes the engine.
type Config struct {
	// ConversationProviderID is GHL's conversation provider for SMS the
	// middleware records (GHL_CONVERSATION_PROVIDER_ID). Without it, inbound
	// messages are recorded as contact notes.
	ConversationProviderID string
	// EchoTTL is how long a write's fingerprint suppresses its echo.
	EchoTTL time.Duration
	// DefaultRegion parses numbers written without a country code.
	DefaultRegion string
}

// Engine owns the handlers.
type Engine struct {
	st      *store.Store
	ghl     GHL
	aloware Aloware
	cfg     Config
	log     zerolog.Logger

	// OnOperation, when set, is called once per operation as it is written
	// to sync_log (metrics hook in here); set it before the workers run.
	OnOperation func(direction, entityType, status string, d time.Duration)
	// OnFailure, when set, is called for every failed operation with its
	// error (error grouping hooks in here).
	OnFailure func(direction string, err error, eventID string)
}

// New builds the engine. A nil client disables the handlers that need it
// (events then end skipped with a reason naming the missing configuration).
func New(st *store.Store, g GHL, a Aloware, cfg Config, log zerolog.Logger) *Engine {
	if cfg.EchoTTL <= 0 {
		cfg.EchoTTL = 15 * time.Minute
	}
	if cfg.DefaultRegion == "" {
		cfg.DefaultRegion = "US"
	}
	return &Engine{st: st, ghl: g, aloware: a, cfg: cfg, log: log}
}

// Directions recorded in sync_log.
const (
	GHLToAloware     = "ghl_to_aloware"
	AlowareToGHL     = "aloware_to_ghl"
	TextingToGHL     = "texting_to_ghl"
	GHLToStore       = "ghl_to_store"
	TextingToStore   = "texting_to_store"
	BroadcastToStore = "broadcast_to_store"
)

// skipped is an operation that had nothing to do.
type skipped struct{ reason string }

func (s *skipped) Error() string { return s.reason }

func skip(format string, args ...any) error { return &skipped{fmt.Sprintf(format, args...)} }

// op describes one sync operation for sync_log.
type op struct {
	direction, entityType, entityID, sourceID string
}

// run performs one operation, records it in sync_log and turns its error
// into the queue's vocabulary: upstream refusals are permanent with a
// sentence saying what to fix, transient failures are retried (honouring
// Retry-After), skips end the event skipped.
func (e *Engine) run(ctx context.Context, job queue.Job, o op, f func() (targetID string, err error)) error {
	started := time.Now()
	target, err := f()
	finished := time.Now()
	entry := store.SyncLogEntry{
		Direction: o.direction, EntityType: o.entityType, EntityID: o.entityID, SourceID: o.sourceID,
		TargetID: target, StartedAt: started, FinishedAt: &finished, CorrelationID: job.ID, Status: store.SyncSuccess,
	}
	var sk *skipped
	switch {
	case err == nil:
	case errors.As(err, &sk):
		entry.Status, entry.ErrorMessage = store.SyncSkipped, sk.reason
	default:
		entry.Status, entry.ErrorMessage = store.SyncError, err.Error()
	}
	if e.OnOperation != nil {
		e.OnOperation(o.direction, o.entityType, entry.Status, finished.Sub(started))
	}
	if entry.Status == store.SyncError && e.OnFailure != nil {
		e.OnFailure(o.direction, err, job.ID)
	}
	if lerr := e.st.InsertSyncLog(context.WithoutCancel(ctx), entry); lerr != nil {
		e.log.Error().Ctx(ctx).Err(lerr).Str("event_id", job.ID).Msg("could not write sync_log")
	}
	return classify(err, job)
}

func classify(err error, job queue.Job) error {
	if err == nil {
		return nil
	}
	var sk *skipped
	if errors.As(err, &sk) {
		return queue.Skip(sk.reason)
	}
	// The conflict wraps an upstream error: check it first so its advice,
	// with the existing id, is the one given.
	var ce *aloware.ConflictError
	if errors.As(err, &ce) {
		return queue.Permanent(fmt.Errorf("%w — the contact already exists in Aloware (id %s); link or merge it there, then replay event %s", err, ce.ExistingID, job.ID))
	}
	var ue *upstream.Error
	if errors.As(err, &ue) {
		if ue.Retryable {
			return queue.RetryAfter(err, ue.RetryAfter)
		}
		return queue.Permanent(fmt.Errorf("%w — %s", err, remedy(ue, job)))
	}
	var perm *permanentError
	if errors.As(err, &perm) {
		return queue.Permanent(err)
	}
	return err // database hiccups and the like: retry
}

// remedy is the sentence an operator acts on for a refused upstream call.
func remedy(ue *upstream.Error, job queue.Job) string {
	switch {
	case ue.Status == 401 || ue.Status == 403:
		return fmt.Sprintf("check the %s credentials (%s), then replay event %s", ue.Upstream, credentialVar(ue.Upstream), job.ID)
	case ue.Status == 404:
		return fmt.Sprintf("the %s record no longer exists; fix the data, then replay event %s or quarantine it", ue.Upstream, job.ID)
	default:
		return fmt.Sprintf("%s refused the data; correct it at the source, then replay event %s", ue.Upstream, job.ID)
	}
}

func credentialVar(upstreamName string) string {
	switch upstreamName {
	case "ghl":
		return "GHL_API_KEY, GHL_LOCATION_ID"
	case "aloware":
		return "ALOWARE_API_TOKEN"
	case "verity":
		return "VERITY_API_KEY, CLERK_SECRET_KEY"
	}
	return "its API credentials"
}

// permanentError marks a payload problem no retry can fix.
type permanentError struct{ msg string }

func (p *permanentError) Error() string { return p.msg }

func permanent(format string, args ...any) error {
	return &permanentError{fmt.Sprintf(format, args...)}
}

// E164 normalises a phone number with libphonenumber's rules; "" when the
// input is not a possible number.
func (e *Engine) E164(raw string) string {
	return NormalizePhone(raw, e.cfg.DefaultRegion)
}

// NormalizePhone returns raw in E.164 form, or "" when it is not a valid number.
func NormalizePhone(raw, region string) string {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return ""
	}
	num, err := phonenumbers.Parse(raw, region)
	if err != nil || !phonenumbers.IsPossibleNumber(num) {
		return ""
	}
	return phonenumbers.Format(num, phonenumbers.E164)
}

// contactFingerprint identifies the content of a contact write, so an echo
// with the same content can be recognised and a real edit cannot.
func contactFingerprint(first, last, email, phoneE164 string) string {
	norm := func(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
	sum := sha256.Sum256([]byte(norm(first) + "\x00" + norm(last) + "\x00" + norm(email) + "\x00" + phoneE164))
	return hex.EncodeToString(sum[:16])
}
