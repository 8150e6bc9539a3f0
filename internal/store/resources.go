package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The statements behind the MCP resources and prompts (package resources).
// Each reads a bounded slice through an index, so its cost does not grow
// with the tables.

// RecentFailure is one entry of errors://recent: an event that ended in
// error, or a sync operation that failed.
type RecentFailure struct {
	Kind       string    `json:"kind"` // "event" or "sync"
	ID         string    `json:"id"`   // event uuid, or the sync_log id
	At         time.Time `json:"at"`   // when it failed
	Source     string    `json:"source,omitempty"`
	Direction  string    `json:"direction,omitempty"`
	Type       string    `json:"type"` // event_type, or the sync entity_type
	EntityID   string    `json:"entity_id,omitempty"`
	Attempts   int       `json:"attempts,omitempty"`
	ReceivedAt time.Time `json:"received_at,omitzero"`
	EventID    string    `json:"event_id,omitempty"` // the event (for sync rows, its correlation id)
	Error      string    `json:"error"`
}

// RecentFailureWindow is how many of the most recently received failed
// events RecentFailures orders by failure time. The partial index on problem
// statuses is ordered by received_at; an event received earlier than the
// newest RecentFailureWindow failed events but failing only now is left out
// (its retries' sync_log errors still show).
const RecentFailureWindow = 500

// RecentFailures returns the newest failed events and sync_log errors,
// merged and newest first, at most limit of them. Failed events are ordered
// by the time they failed, among the RecentFailureWindow most recently
// received; sync errors by started_at through their partial index.
func (s *Store) RecentFailures(ctx context.Context, limit int) ([]RecentFailure, error) {
	if limit <= 0 {
		limit = 50
	}
	rows, err := s.Pool.Query(ctx, `
		SELECT 'event', w.id::text, coalesce(w.processed_at, w.updated_at), w.source, '', w.event_type,
			coalesce(w.entity_id, ''), w.attempts, w.received_at, w.id::text, coalesce(w.error_message, '')
		FROM (SELECT id FROM webhook_events WHERE status = 'error'
			ORDER BY received_at DESC, id DESC LIMIT $2) recent
		JOIN webhook_events w ON w.id = recent.id AND w.status = 'error'
		UNION ALL
		(SELECT 'sync', l.id::text, coalesce(l.finished_at, l.started_at), '', l.direction, l.entity_type,
			coalesce(l.entity_id, ''), 0, NULL::timestamptz, coalesce(l.correlation_id::text, ''), coalesce(l.error_message, '')
		FROM sync_log l WHERE l.status = 'error'
		ORDER BY l.started_at DESC, l.id DESC LIMIT $1)`, limit, RecentFailureWindow)
	if err != nil {
		return nil, fmt.Errorf("recent failures: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (RecentFailure, error) {
		var f RecentFailure
		var received *time.Time
		err := r.Scan(&f.Kind, &f.ID, &f.At, &f.Source, &f.Direction, &f.Type, &f.EntityID,
			&f.Attempts, &received, &f.EventID, &f.Error)
		if received != nil {
			f.ReceivedAt = *received
		}
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("recent failures: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.After(out[j].At)
		}
		return out[i].Kind+out[i].ID > out[j].Kind+out[j].ID
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// RecentEventIDs returns ids of recent events that start with prefix, for
// argument completion: failed events first (the ones operators investigate),
// then the newest events of any status. Only the newest scan rows of each
// kind are looked at, so a keystroke costs the same on any table size.
// prefix may hold only hex digits and dashes; anything else matches nothing.
func (s *Store) RecentEventIDs(ctx context.Context, prefix string, scan, limit int) ([]string, error) {
	prefix = strings.ToLower(prefix)
	if strings.Trim(prefix, "0123456789abcdef-") != "" {
		return []string{}, nil
	}
	rows, err := s.Pool.Query(ctx, `
		SELECT id FROM (
			(SELECT id::text AS id, 0 AS rank, received_at FROM webhook_events WHERE status = 'error'
				ORDER BY received_at DESC, id DESC LIMIT $2)
			UNION ALL
			(SELECT id::text, 1, received_at FROM webhook_events
				ORDER BY received_at DESC, id DESC LIMIT $2)
		) c
		WHERE id LIKE $1 || '%'
		ORDER BY rank, received_at DESC, id DESC`, prefix, scan)
	if err != nil {
		return nil, fmt.Errorf("recent event ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("recent event ids: %w", err)
	}
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, min(len(ids), limit))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if len(out) < limit {
			out = append(out, id)
		}
	}
	return out, nil
}

// ActiveAlertState is one alert_state row that is pending or firing.
type ActiveAlertState struct {
	Fingerprint     string          `json:"fingerprint"`
	Rule            string          `json:"rule"`
	Severity        string          `json:"severity"`
	State           string          `json:"state"`
	Labels          json.RawMessage `json:"labels"`
	Value           *float64        `json:"value,omitempty"`
	ActiveSince     *time.Time      `json:"active_since,omitempty"`
	FiredAt         *time.Time      `json:"fired_at,omitempty"`
	LastEvaluatedAt time.Time       `json:"last_evaluated_at"`
}

// ActiveAlertStates returns the alerts that are pending or firing, firing
// and critical first.
func (s *Store) ActiveAlertStates(ctx context.Context) ([]ActiveAlertState, error) {
	rows, err := s.Pool.Query(ctx, `
		SELECT fingerprint, rule, severity, state, labels, value, active_since, fired_at, last_evaluated_at
		FROM alert_state WHERE state IN ('pending', 'firing')
		ORDER BY state = 'firing' DESC, severity = 'critical' DESC, active_since NULLS LAST, fingerprint
		LIMIT 200`)
	if err != nil {
		return nil, fmt.Errorf("active alerts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ActiveAlertState, error) {
		var a ActiveAlertState
		var labels []byte
		err := r.Scan(&a.Fingerprint, &a.Rule, &a.Severity, &a.State, &labels, &a.Value,
			&a.ActiveSince, &a.FiredAt, &a.LastEvaluatedAt)
		a.Labels = labels
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("active alerts: %w", err)
	}
	return out, nil
}

// SyncErrorCount is the number of failed sync operations of one direction
// and entity type in a window.
type SyncErrorCount struct {
	Direction  string    `json:"direction"`
	EntityType string    `json:"entity_type"`
	Errors     int64     `json:"errors"`
	Last       time.Time `json:"last"`
	Sample     string    `json:"sample_error"`
}

// SyncErrorCounts groups the sync errors that started since `since` by
// direction and entity type, most errors first. It reads the partial index
// on error rows, so its cost follows the errors in the window, not the log.
func (s *Store) SyncErrorCounts(ctx context.Context, since time.Time) ([]SyncErrorCount, error) {
	rows, err := s.Pool.Query(ctx, `
		SELECT g.direction, g.entity_type, g.n, g.last,
			coalesce((SELECT l.error_message FROM sync_log l
				WHERE l.direction = g.direction AND l.entity_type = g.entity_type
					AND l.started_at = g.last AND l.status = 'error'
				LIMIT 1), '')
		FROM (SELECT direction, entity_type, count(*) AS n, max(started_at) AS last
			FROM sync_log WHERE status = 'error' AND started_at >= $1
			GROUP BY direction, entity_type) g
		ORDER BY g.n DESC, g.direction, g.entity_type
		LIMIT 50`, since)
	if err != nil {
		return nil, fmt.Errorf("sync error counts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SyncErrorCount, error) {
		var c SyncErrorCount
		err := r.Scan(&c.Direction, &c.EntityType, &c.Errors, &c.Last, &c.Sample)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("sync error counts: %w", err)
	}
	return out, nil
}

// RecentSyncDirections returns the directions seen among the newest scan
// sync_log rows, for argument completion.
func (s *Store) RecentSyncDirections(ctx context.Context, scan int) ([]string, error) {
	rows, err := s.Pool.Query(ctx, `
		SELECT DISTINCT direction FROM (SELECT direction FROM sync_log ORDER BY started_at DESC, id DESC LIMIT $1) r
		ORDER BY direction`, scan)
	if err != nil {
		return nil, fmt.Errorf("recent sync directions: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("recent sync directions: %w", err)
	}
	return out, nil
}
