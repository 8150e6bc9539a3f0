package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Event statuses.
const (
	StatusPending     = "pending"
	StatusProcessing  = "processing"
	StatusDone        = "done"
	StatusSkipped     = "skipped"
	StatusError       = "error"
	StatusQuarantined = "quarantined"
)

// Statuses lists every status in lifecycle order.
var Statuses = []string{StatusPending, StatusProcessing, StatusDone, StatusSkipped, StatusError, StatusQuarantined}

// Event is one row of webhook_events.
type Event struct {
	ID               string          `json:"id"`
	Source           string          `json:"source"`
	EventType        string          `json:"event_type"`
	EntityType       string          `json:"entity_type,omitempty"`
	EntityID         string          `json:"entity_id,omitempty"`
	DedupeKey        string          `json:"dedupe_key"`
	Payload          json.RawMessage `json:"payload,omitempty"`
	ReceivedAt       time.Time       `json:"received_at"`
	Status           string          `json:"status"`
	Attempts         int             `json:"attempts"`
	NextAttemptAt    time.Time       `json:"next_attempt_at"`
	LockedBy         string          `json:"locked_by,omitempty"`
	LockedUntil      *time.Time      `json:"locked_until,omitempty"`
	ErrorMessage     string          `json:"error_message,omitempty"`
	ProcessedAt      *time.Time      `json:"processed_at,omitempty"`
	QuarantinedAt    *time.Time      `json:"quarantined_at,omitempty"`
	QuarantineReason string          `json:"quarantine_reason,omitempty"`
	TraceParent      string          `json:"traceparent,omitempty"`
	TraceState       string          `json:"tracestate,omitempty"`
	RequestID        string          `json:"request_id,omitempty"`
	UpdatedAt        time.Time       `json:"updated_at"`
}

// eventColumns is the select list that scanEvent reads, in order.
const eventColumns = `id::text, source, event_type, coalesce(entity_type, ''), coalesce(entity_id, ''),
	dedupe_key, payload_json, received_at, status, attempts, next_attempt_at,
	coalesce(locked_by, ''), locked_until, coalesce(error_message, ''), processed_at,
	quarantined_at, coalesce(quarantine_reason, ''), coalesce(traceparent, ''),
	coalesce(tracestate, ''), coalesce(request_id, ''), updated_at`

// eventColumnsNoPayload is eventColumns with a NULL payload, for listings.
var eventColumnsNoPayload = strings.Replace(eventColumns, "payload_json", "NULL::jsonb", 1)

func scanEvent(row pgx.Row) (Event, error) {
	var e Event
	var payload []byte
	err := row.Scan(&e.ID, &e.Source, &e.EventType, &e.EntityType, &e.EntityID,
		&e.DedupeKey, &payload, &e.ReceivedAt, &e.Status, &e.Attempts, &e.NextAttemptAt,
		&e.LockedBy, &e.LockedUntil, &e.ErrorMessage, &e.ProcessedAt,
		&e.QuarantinedAt, &e.QuarantineReason, &e.TraceParent,
		&e.TraceState, &e.RequestID, &e.UpdatedAt)
	if payload != nil {
		e.Payload = payload
	}
	return e, err
}

// NewEvent is an accepted delivery about to be stored.
type NewEvent struct {
	Source       string
	EventType    string
	EntityType   string
	EntityID     string
	DedupeKey    string
	Payload      []byte // valid JSON, checked by intake before batching
	Status       string // "" means pending; intake may store straight to skipped
	ErrorMessage string // reason for a status other than pending
	TraceParent  string
	TraceState   string
	RequestID    string
}

// InsertResult says where a NewEvent ended up.
type InsertResult struct {
	ID        string
	Duplicate bool  // an event with the same dedupe key was already stored
	Err       error // set only for a duplicate whose stored id could not be read
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// InsertEvents stores a batch of events in one statement (group commit): a
// multi-row INSERT … ON CONFLICT DO NOTHING, then, only when some were
// duplicates, a lookup of the rows that already existed. Results are in
// input order. The NOTIFY is part of the insert's transaction, so workers
// woken by it see the rows.
func (s *Store) InsertEvents(ctx context.Context, evs []NewEvent) ([]InsertResult, error) {
	n := len(evs)
	if n == 0 {
		return nil, nil
	}
	var (
		sources, types, keys, statuses      = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		entityTypes, entityIDs, errMessages = make([]*string, n), make([]*string, n), make([]*string, n)
		traceParents, traceStates, reqIDs   = make([]*string, n), make([]*string, n), make([]*string, n)
		payloads                            = make([]string, n)
	)
	for i, e := range evs {
		sources[i], types[i], keys[i] = e.Source, e.EventType, e.DedupeKey
		statuses[i] = e.Status
		if statuses[i] == "" {
			statuses[i] = StatusPending
		}
		entityTypes[i], entityIDs[i], errMessages[i] = nullIfEmpty(e.EntityType), nullIfEmpty(e.EntityID), nullIfEmpty(e.ErrorMessage)
		traceParents[i], traceStates[i], reqIDs[i] = nullIfEmpty(e.TraceParent), nullIfEmpty(e.TraceState), nullIfEmpty(e.RequestID)
		payloads[i] = string(e.Payload)
	}

	// One statement in autocommit: the insert, and the NOTIFY that wakes
	// idle workers only when something new was stored. A single round trip
	// per batch keeps the commit — the WAL flush — the only wait.
	rows, err := s.Pool.Query(ctx, `
		WITH ins AS (
			INSERT INTO webhook_events (source, event_type, entity_type, entity_id, dedupe_key,
				payload_json, status, error_message, processed_at, traceparent, tracestate, request_id)
			SELECT u.source, u.event_type, u.entity_type, u.entity_id, u.dedupe_key,
				u.payload::jsonb, u.status, u.error_message,
				CASE WHEN u.status = 'pending' THEN NULL ELSE now() END,
				u.traceparent, u.tracestate, u.request_id
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
				$6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
				AS u(source, event_type, entity_type, entity_id, dedupe_key,
				     payload, status, error_message, traceparent, tracestate, request_id)
			ON CONFLICT (dedupe_key) DO NOTHING
			RETURNING id, dedupe_key, status
		), wake AS (
			SELECT pg_notify($12, '') FROM (SELECT 1 FROM ins WHERE status = 'pending' LIMIT 1) AS any_new
		)
		SELECT ins.id::text, ins.dedupe_key FROM ins LEFT JOIN wake ON true`,
		sources, types, entityTypes, entityIDs, keys, payloads, statuses, errMessages,
		traceParents, traceStates, reqIDs, NotifyChannel)
	if err != nil {
		return nil, fmt.Errorf("insert events: %w", err)
	}
	inserted := make(map[string]string, n)
	for rows.Next() {
		var id, key string
		if err := rows.Scan(&id, &key); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan inserted event: %w", err)
		}
		inserted[key] = id
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("insert events: %w", err)
	}

	results := make([]InsertResult, n)
	var missing []string
	claimed := make(map[string]bool, n)
	for i, e := range evs {
		// The first request carrying a key gets the new row; later ones in
		// the same batch are duplicates of it.
		if id, ok := inserted[e.DedupeKey]; ok && !claimed[e.DedupeKey] {
			claimed[e.DedupeKey] = true
			results[i] = InsertResult{ID: id}
			continue
		}
		results[i].Duplicate = true
		if _, ok := inserted[e.DedupeKey]; !ok {
			missing = append(missing, e.DedupeKey)
		}
	}
	if len(missing) > 0 {
		// Duplicates of rows stored earlier (committed, so visible now). The
		// new rows of this batch are already durable: a failure here fails
		// only the duplicates, never a request whose row was committed.
		if err := s.lookupDuplicates(ctx, missing, inserted); err != nil {
			for i := range results {
				if results[i].Duplicate && inserted[evs[i].DedupeKey] == "" {
					results[i].Err = err
				}
			}
		}
	}
	for i := range results {
		if results[i].Duplicate && results[i].Err == nil {
			if results[i].ID = inserted[evs[i].DedupeKey]; results[i].ID == "" {
				results[i].Err = fmt.Errorf("duplicate of %q not found", evs[i].DedupeKey)
			}
		}
	}
	return results, nil
}

func (s *Store) lookupDuplicates(ctx context.Context, keys []string, into map[string]string) error {
	rows, err := s.Pool.Query(ctx, `SELECT id::text, dedupe_key FROM webhook_events WHERE dedupe_key = ANY($1)`, keys)
	if err != nil {
		return fmt.Errorf("look up duplicates: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, key string
		if err := rows.Scan(&id, &key); err != nil {
			return fmt.Errorf("scan duplicate: %w", err)
		}
		into[key] = id
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("look up duplicates: %w", err)
	}
	return nil
}

// ValidID reports whether s is a well-formed event id.
func ValidID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil && len(s) == 36
}

// GetEvent returns one event with its payload.
func (s *Store) GetEvent(ctx context.Context, id string) (Event, error) {
	if !ValidID(id) {
		return Event{}, ErrNotFound
	}
	e, err := scanEvent(s.Pool.QueryRow(ctx, `SELECT `+eventColumns+` FROM webhook_events WHERE id = $1::uuid`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Event{}, ErrNotFound
	}
	if err != nil {
		return Event{}, fmt.Errorf("get event: %w", err)
	}
	return e, nil
}

// EventFilter selects events for ListEvents. Zero fields do not filter.
type EventFilter struct {
	Source      string
	Status      string
	EventType   string
	EntityType  string
	EntityID    string
	Since       time.Time // received_at >= Since
	Until       time.Time // received_at < Until
	Cursor      string    // next_cursor of the previous page
	Limit       int
	WithPayload bool
}

// EventPage is one page of events, newest first.
type EventPage struct {
	Events     []Event `json:"events"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

// ErrBadCursor is returned for a cursor this store did not produce.
var ErrBadCursor = errors.New("invalid cursor")

func encodeCursor(t time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t.UnixMicro(), 10) + "|" + id))
}

func decodeCursor(c string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", ErrBadCursor
	}
	ts, id, ok := strings.Cut(string(raw), "|")
	if !ok || !ValidID(id) {
		return time.Time{}, "", ErrBadCursor
	}
	us, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, "", ErrBadCursor
	}
	return time.UnixMicro(us), id, nil
}

// ListEvents pages through events newest first with keyset pagination on
// (received_at, id), so a page costs the same on page 1 and page 10,000.
func (s *Store) ListEvents(ctx context.Context, f EventFilter) (EventPage, error) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Source != "" {
		add("source = $%d", f.Source)
	}
	if f.Status != "" {
		add("status = $%d", f.Status)
	}
	if f.EventType != "" {
		add("event_type = $%d", f.EventType)
	}
	if f.EntityType != "" {
		add("entity_type = $%d", f.EntityType)
	}
	if f.EntityID != "" {
		add("entity_id = $%d", f.EntityID)
	}
	if !f.Since.IsZero() {
		add("received_at >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		add("received_at < $%d", f.Until)
	}
	if f.Cursor != "" {
		t, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return EventPage{}, err
		}
		args = append(args, t, id)
		where = append(where, fmt.Sprintf("(received_at, id) < ($%d, $%d::uuid)", len(args)-1, len(args)))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	args = append(args, limit+1)
	cols := eventColumnsNoPayload
	if f.WithPayload {
		cols = eventColumns
	}
	q := `SELECT ` + cols + ` FROM webhook_events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += fmt.Sprintf(` ORDER BY received_at DESC, id DESC LIMIT $%d`, len(args))

	rows, err := s.Pool.Query(ctx, q, args...)
	if err != nil {
		return EventPage{}, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	page := EventPage{Events: []Event{}}
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return EventPage{}, fmt.Errorf("scan event: %w", err)
		}
		page.Events = append(page.Events, e)
	}
	if err := rows.Err(); err != nil {
		return EventPage{}, fmt.Errorf("list events: %w", err)
	}
	if len(page.Events) > limit {
		page.Events = page.Events[:limit]
		last := page.Events[limit-1]
		page.NextCursor = encodeCursor(last.ReceivedAt, last.ID)
	}
	return page, nil
}
