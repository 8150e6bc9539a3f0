package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Actor says who did a mutating action and through which interface; every
// mutation writes it to audit_log in the same transaction as the change.
type Actor struct {
	Name      string // e.g. "admin", a Clerk user id, "mcp-client"
	Interface string // admin-api, mcp-stdio, mcp-http
	RequestID string
	TraceID   string
}

// TransitionError is returned when an event is not in a status the action
// may start from.
type TransitionError struct {
	Action  string
	Current string
	Allowed []string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot %s an event in status %q (allowed from: %v)", e.Action, e.Current, e.Allowed)
}

// Action is an operator's change of an event's status.
type Action string

// The operator actions on an event.
const (
	ActionReplay     Action = "replay"
	ActionQuarantine Action = "quarantine"
	ActionRelease    Action = "release"
)

// transition is the one statement each action runs: $1 is the id, $2 the
// legal starting statuses and, where the action keeps one, $3 the reason.
type transition struct {
	from       []string
	sql        string
	usesReason bool
}

var transitions = map[Action]transition{
	// Replay starts the event over: fresh attempts, due now.
	ActionReplay: {
		from: []string{StatusDone, StatusSkipped, StatusError},
		sql: `UPDATE webhook_events SET status = 'pending', attempts = 0, next_attempt_at = now(),
			error_message = NULL, processed_at = NULL, updated_at = now()
			WHERE id = $1::uuid AND status = ANY($2) RETURNING ` + eventColumns,
	},
	// Quarantine parks an event that is not leased; it is never claimed
	// until released.
	ActionQuarantine: {
		from: []string{StatusPending, StatusDone, StatusSkipped, StatusError},
		sql: `UPDATE webhook_events SET status = 'quarantined', quarantined_at = now(),
			quarantine_reason = $3, updated_at = now()
			WHERE id = $1::uuid AND status = ANY($2) RETURNING ` + eventColumns,
		usesReason: true,
	},
	// Release puts a quarantined event back in the queue with fresh attempts.
	ActionRelease: {
		from: []string{StatusQuarantined},
		sql: `UPDATE webhook_events SET status = 'pending', attempts = 0, next_attempt_at = now(),
			quarantined_at = NULL, quarantine_reason = NULL, error_message = NULL,
			processed_at = NULL, updated_at = now()
			WHERE id = $1::uuid AND status = ANY($2) RETURNING ` + eventColumns,
	},
}

// AllowedFrom lists the statuses an action may start from.
func AllowedFrom(a Action) []string { return transitions[a].from }

// TransitionEvent applies an operator action to one event and writes the
// audit row in the same transaction. It returns ErrNotFound or a
// *TransitionError when the action does not apply.
func (s *Store) TransitionEvent(ctx context.Context, id string, action Action, reason string, actor Actor) (Event, error) {
	t, ok := transitions[action]
	if !ok {
		return Event{}, fmt.Errorf("unknown action %q", action)
	}
	if !ValidID(id) {
		return Event{}, ErrNotFound
	}
	var ev Event
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		args := []any{id, t.from}
		if t.usesReason {
			args = append(args, reason)
		}
		var err error
		ev, err = scanEvent(tx.QueryRow(ctx, t.sql, args...))
		if errors.Is(err, pgx.ErrNoRows) {
			var current string
			err := tx.QueryRow(ctx, `SELECT status FROM webhook_events WHERE id = $1::uuid`, id).Scan(&current)
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrNotFound
			}
			if err != nil {
				return fmt.Errorf("read event status: %w", err)
			}
			return &TransitionError{Action: string(action), Current: current, Allowed: t.from}
		}
		if err != nil {
			return fmt.Errorf("%s event: %w", action, err)
		}
		return insertAudit(ctx, tx, actor, string(action)+"_event", "event:"+id, reason, nil)
	})
	return ev, err
}

func insertAudit(ctx context.Context, tx pgx.Tx, a Actor, action, target, reason string, details any) error {
	var detailsJSON []byte
	if details != nil {
		var err error
		if detailsJSON, err = json.Marshal(details); err != nil {
			return fmt.Errorf("encode audit details: %w", err)
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO audit_log (actor, interface, action, target, reason, request_id, trace_id, details)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		a.Name, a.Interface, action, target, nullIfEmpty(reason), nullIfEmpty(a.RequestID), nullIfEmpty(a.TraceID), detailsJSON)
	if err != nil {
		return fmt.Errorf("write audit log: %w", err)
	}
	return nil
}

// RecordAudit writes an audit row for an action that is not an event
// transition (for example a manual process-pending).
func (s *Store) RecordAudit(ctx context.Context, a Actor, action, target, reason string, details any) error {
	return pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		return insertAudit(ctx, tx, a, action, target, reason, details)
	})
}

// AuditEntry is one audit_log row.
type AuditEntry struct {
	ID        int64           `json:"id"`
	At        string          `json:"at"`
	Actor     string          `json:"actor"`
	Interface string          `json:"interface"`
	Action    string          `json:"action"`
	Target    string          `json:"target"`
	Reason    string          `json:"reason,omitempty"`
	RequestID string          `json:"request_id,omitempty"`
	Details   json.RawMessage `json:"details,omitempty"`
}

// ListAudit returns the newest audit rows for a target ("" for all).
func (s *Store) ListAudit(ctx context.Context, target string, limit int) ([]AuditEntry, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
			actor, interface, action, target, coalesce(reason, ''), coalesce(request_id, ''), details
		FROM audit_log WHERE ($1 = '' OR target = $1) ORDER BY at DESC, id DESC LIMIT $2`, target, limit)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	out := []AuditEntry{}
	for rows.Next() {
		var e AuditEntry
		var details []byte
		if err := rows.Scan(&e.ID, &e.At, &e.Actor, &e.Interface, &e.Action, &e.Target, &e.Reason, &e.RequestID, &details); err != nil {
			return nil, fmt.Errorf("scan audit: %w", err)
		}
		e.Details = details
		out = append(out, e)
	}
	return out, rows.Err()
}
