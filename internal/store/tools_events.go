package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// EventSearch selects events for the search_events tool. Zero fields do not
// filter.
type EventSearch struct {
	Source          string
	Status          string
	EventType       string
	EntityType      string
	EntityID        string
	Since           time.Time // received_at >= Since
	Until           time.Time // received_at < Until
	PayloadContains string    // case-insensitive text of the payload JSON
	Cursor          string
	Limit           int
	ScanCap         int // rows examined at most; DefaultScanCap when 0
}

// EventSearchPage is one page of a search, newest first.
type EventSearchPage struct {
	Events      []Event
	NextCursor  string
	ScanLimited bool // the scan cap ended the page early; NextCursor resumes the scan
}

// indexedStatuses are the statuses webhook_events_problem_idx serves in
// received_at order.
var indexedStatuses = []string{StatusError, StatusQuarantined, StatusSkipped}

// eventScan builds the capped scan of webhook_events in (received_at, id)
// order. Conditions an index serves together with that order go inside
// (source, the problem statuses, an entity, the time range, the cursor); the
// rest — other statuses, event type, a bare entity id, payload text — are
// applied to the capped scan.
func eventScan(cols string, source, status, eventType, entityType, entityID string, since, until time.Time, payload, cursor string) (*cappedScan, error) {
	c := &cappedScan{table: "webhook_events", cols: cols, order: "received_at DESC, id DESC"}
	if source != "" {
		c.inner = append(c.inner, "source = "+c.arg(source))
	}
	if status != "" {
		cond := "status = " + c.arg(status)
		if slices.Contains(indexedStatuses, status) {
			c.inner = append(c.inner, cond)
		} else {
			c.outer = append(c.outer, cond)
		}
	}
	if eventType != "" {
		c.outer = append(c.outer, "event_type = "+c.arg(eventType))
	}
	switch {
	case entityType != "" && entityID != "":
		c.inner = append(c.inner, "entity_type = "+c.arg(entityType), "entity_id = "+c.arg(entityID))
	case entityType != "":
		c.outer = append(c.outer, "entity_type = "+c.arg(entityType))
	case entityID != "":
		c.outer = append(c.outer, "entity_id = "+c.arg(entityID))
	}
	if !since.IsZero() {
		c.inner = append(c.inner, "received_at >= "+c.arg(since))
	}
	if !until.IsZero() {
		c.inner = append(c.inner, "received_at < "+c.arg(until))
	}
	if payload != "" {
		// strpos rather than ILIKE: no wildcard escaping, and the text is
		// compared as given.
		c.outer = append(c.outer, "strpos(lower(payload_json::text), lower("+c.arg(payload)+")) > 0")
	}
	if cursor != "" {
		t, id, err := decodeCursor(cursor)
		if err != nil {
			return nil, err
		}
		c.inner = append(c.inner, fmt.Sprintf("(received_at, id) < (%s, %s::uuid)", c.arg(t), c.arg(id)))
	}
	return c, nil
}

// SearchEvents pages through events newest first. Each call examines at most
// ScanCap rows, so its cost does not depend on the table's size or on how
// rare the match is.
func (s *Store) SearchEvents(ctx context.Context, f EventSearch) (EventSearchPage, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 20
	}
	scanCap := f.ScanCap
	if scanCap <= 0 {
		scanCap = DefaultScanCap
	}
	c, err := eventScan(eventColumnsNoPayload, f.Source, f.Status, f.EventType, f.EntityType, f.EntityID,
		f.Since, f.Until, f.PayloadContains, f.Cursor)
	if err != nil {
		return EventSearchPage{}, err
	}
	rows, err := s.Pool.Query(ctx, c.sql(limit, scanCap), c.args...)
	if err != nil {
		return EventSearchPage{}, fmt.Errorf("search events: %w", err)
	}
	var (
		events  []Event
		matched []bool
		rns     []int64
	)
	for rows.Next() {
		var e Event
		var payload []byte
		var m bool
		var rn int64
		if err := rows.Scan(&e.ID, &e.Source, &e.EventType, &e.EntityType, &e.EntityID,
			&e.DedupeKey, &payload, &e.ReceivedAt, &e.Status, &e.Attempts, &e.NextAttemptAt,
			&e.LockedBy, &e.LockedUntil, &e.ErrorMessage, &e.ProcessedAt,
			&e.QuarantinedAt, &e.QuarantineReason, &e.TraceParent,
			&e.TraceState, &e.RequestID, &e.UpdatedAt, &m, &rn); err != nil {
			rows.Close()
			return EventSearchPage{}, fmt.Errorf("scan event: %w", err)
		}
		events, matched, rns = append(events, e), append(matched, m), append(rns, rn)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return EventSearchPage{}, fmt.Errorf("search events: %w", err)
	}
	page, next, limited := pageOf(events, matched, rns, limit, scanCap, func(e Event) string {
		return encodeCursor(e.ReceivedAt, e.ID)
	})
	return EventSearchPage{Events: page, NextCursor: next, ScanLimited: limited}, nil
}

// ReplayFilter selects finished events for a bulk replay.
type ReplayFilter struct {
	Source    string    `json:"source,omitempty"`
	Status    string    `json:"status"` // error, skipped or done
	EventType string    `json:"event_type,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Until     time.Time `json:"until,omitzero"`
}

// ReplayPlan is what a bulk replay would do.
type ReplayPlan struct {
	Matched     int      // matching events among the rows examined
	Examined    int      // rows examined (at most the scan cap)
	ScanLimited bool     // the cap was reached: more may match further back
	SampleIDs   []string // the newest matching ids
}

func (f ReplayFilter) scan(cols string) (*cappedScan, error) {
	if !slices.Contains(AllowedFrom(ActionReplay), f.Status) {
		return nil, fmt.Errorf("replay status %q: must be one of %v", f.Status, AllowedFrom(ActionReplay))
	}
	return eventScan(cols, f.Source, f.Status, f.EventType, "", "", f.Since, f.Until, "", "")
}

// PlanReplay counts the events a bulk replay would take among the newest
// scanCap rows of the filter's indexed part, with a sample of their ids.
func (s *Store) PlanReplay(ctx context.Context, f ReplayFilter, scanCap, sample int) (ReplayPlan, error) {
	c, err := f.scan("")
	if err != nil {
		return ReplayPlan{}, err
	}
	matched := "true"
	if len(c.outer) > 0 {
		matched = strings.Join(c.outer, " AND ")
	}
	innerWhere := ""
	if len(c.inner) > 0 {
		innerWhere = " WHERE " + strings.Join(c.inner, " AND ")
	}
	capArg, sampleArg := c.arg(scanCap), c.arg(sample)
	q := fmt.Sprintf(`SELECT count(*) FILTER (WHERE m), count(*),
			coalesce((array_agg(id::text ORDER BY received_at DESC, id DESC) FILTER (WHERE m))[1:%s], '{}')
		FROM (SELECT id, received_at, (%s) AS m FROM webhook_events%s
			ORDER BY received_at DESC, id DESC LIMIT %s) t`, sampleArg, matched, innerWhere, capArg)
	var p ReplayPlan
	if err := s.Pool.QueryRow(ctx, q, c.args...).Scan(&p.Matched, &p.Examined, &p.SampleIDs); err != nil {
		return ReplayPlan{}, fmt.Errorf("plan replay: %w", err)
	}
	p.ScanLimited = p.Examined >= scanCap
	return p, nil
}

// ReplayedEvent is one event a bulk replay put back in the queue.
type ReplayedEvent struct {
	ID             string    `json:"id"`
	PreviousStatus string    `json:"previous_status"`
	PreviousError  string    `json:"previous_error,omitempty"`
	ReceivedAt     time.Time `json:"received_at"`
}

// ReplayMatching replays up to maxEvents matching events (newest first, among the
// newest scanCap rows of the filter's indexed part) in one transaction: the
// status change, one audit row per event, one summary audit row carrying
// summary, and the NOTIFY that wakes the workers of every replica.
func (s *Store) ReplayMatching(ctx context.Context, f ReplayFilter, maxEvents, scanCap int, reason string, actor Actor, summary map[string]any) ([]ReplayedEvent, error) {
	c, err := f.scan("")
	if err != nil {
		return nil, err
	}
	matched := "true"
	if len(c.outer) > 0 {
		matched = strings.Join(c.outer, " AND ")
	}
	innerWhere := ""
	if len(c.inner) > 0 {
		innerWhere = " WHERE " + strings.Join(c.inner, " AND ")
	}
	capArg, maxArg, allowedArg := c.arg(scanCap), c.arg(maxEvents), c.arg(AllowedFrom(ActionReplay))
	// The status condition is checked again on the row being updated, so an
	// event a worker or an operator changed meanwhile is left alone.
	q := fmt.Sprintf(`UPDATE webhook_events e SET status = 'pending', attempts = 0, next_attempt_at = now(),
			error_message = NULL, processed_at = NULL, updated_at = now()
		FROM (SELECT id, status, error_message, received_at FROM (
				SELECT id, status, error_message, received_at, (%s) AS m FROM webhook_events%s
				ORDER BY received_at DESC, id DESC LIMIT %s) t
			WHERE m ORDER BY received_at DESC, id DESC LIMIT %s) p
		WHERE e.id = p.id AND e.status = ANY(%s)
		RETURNING e.id::text, p.status, coalesce(p.error_message, ''), p.received_at`, matched, innerWhere, capArg, maxArg, allowedArg)

	var out []ReplayedEvent
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, q, c.args...)
		if err != nil {
			return fmt.Errorf("replay events: %w", err)
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ReplayedEvent, error) {
			var ev ReplayedEvent
			err := r.Scan(&ev.ID, &ev.PreviousStatus, &ev.PreviousError, &ev.ReceivedAt)
			return ev, err
		})
		if err != nil {
			return fmt.Errorf("replay events: %w", err)
		}
		ids, statuses, errs := make([]string, len(out)), make([]string, len(out)), make([]string, len(out))
		for i, ev := range out {
			ids[i], statuses[i], errs[i] = ev.ID, ev.PreviousStatus, ev.PreviousError
		}
		if _, err := tx.Exec(ctx, `INSERT INTO audit_log (actor, interface, action, target, reason, request_id, trace_id, details)
			SELECT $1, $2, 'replay_event', 'event:' || u.id, $3, $4, $5,
				jsonb_build_object('bulk', true, 'previous_status', u.status, 'previous_error', nullif(left(u.err, 500), ''))
			FROM unnest($6::text[], $7::text[], $8::text[]) AS u(id, status, err)`,
			actor.Name, actor.Interface, nullIfEmpty(reason), nullIfEmpty(actor.RequestID), nullIfEmpty(actor.TraceID),
			ids, statuses, errs); err != nil {
			return fmt.Errorf("write audit log: %w", err)
		}
		if summary == nil {
			summary = map[string]any{}
		}
		summary["replayed"] = len(out)
		if err := insertAudit(ctx, tx, actor, "replay_events", "events", reason, summary); err != nil {
			return err
		}
		if len(out) > 0 {
			if _, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, NotifyChannel); err != nil {
				return fmt.Errorf("notify workers: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EventsForEntities returns the newest events about any of ids (entity_id)
// of one entity type, through webhook_events_entity_idx.
func (s *Store) EventsForEntities(ctx context.Context, entityType string, ids []string, limit int) ([]Event, error) {
	if len(ids) == 0 {
		return []Event{}, nil
	}
	rows, err := s.Pool.Query(ctx, `SELECT `+eventColumnsNoPayload+` FROM webhook_events
		WHERE entity_type = $1 AND entity_id = ANY($2) ORDER BY received_at DESC, id DESC LIMIT $3`, entityType, ids, limit)
	if err != nil {
		return nil, fmt.Errorf("events for entities: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) { return scanEvent(r) })
	if err != nil {
		return nil, fmt.Errorf("events for entities: %w", err)
	}
	return out, nil
}
