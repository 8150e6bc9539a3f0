package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// SyncStatsRow is one (direction, entity type, status) of a window, with
// the histogram of its durations.
type SyncStatsRow struct {
	Direction  string
	EntityType string
	Status     string
	Count      int64
	Histogram  Histogram
}

// SyncStats reads sync_log_rollup for the last hours whole hours (counting
// the current one) and returns the window's start with one row per
// direction, entity type and status. Its cost is the number of rollup rows
// in the window — a few per hour and key — whatever the size of sync_log.
func (s *Store) SyncStats(ctx context.Context, hours int, direction, entityType string) (time.Time, []SyncStatsRow, error) {
	var start time.Time
	if err := s.Pool.QueryRow(ctx, `SELECT date_trunc('hour', now()) - make_interval(hours => $1 - 1)`, hours).Scan(&start); err != nil {
		return start, nil, fmt.Errorf("sync stats: %w", err)
	}
	q := `SELECT direction, entity_type, status, bucket, sum(n), sum(sum_ms), max(max_ms)
		FROM sync_log_rollup WHERE hour >= $1`
	args := []any{start}
	if direction != "" {
		args = append(args, direction)
		q += ` AND direction = $` + strconv.Itoa(len(args))
	}
	if entityType != "" {
		args = append(args, entityType)
		q += ` AND entity_type = $` + strconv.Itoa(len(args))
	}
	q += ` GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3`
	rows, err := s.Pool.Query(ctx, q, args...)
	if err != nil {
		return start, nil, fmt.Errorf("sync stats: %w", err)
	}
	defer rows.Close()
	var out []SyncStatsRow
	for rows.Next() {
		var dir, ent, status string
		var bucket int
		var n int64
		var sumMS, maxMS float64
		if err := rows.Scan(&dir, &ent, &status, &bucket, &n, &sumMS, &maxMS); err != nil {
			return start, nil, fmt.Errorf("sync stats: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].Direction != dir || out[len(out)-1].EntityType != ent || out[len(out)-1].Status != status {
			out = append(out, SyncStatsRow{Direction: dir, EntityType: ent, Status: status, Histogram: NewHistogram()})
		}
		last := &out[len(out)-1]
		last.Count += n
		last.Histogram.Add(bucket, n, sumMS, maxMS)
	}
	return start, out, rows.Err()
}

// SyncErrorSearch selects sync_log errors. Zero fields do not filter.
type SyncErrorSearch struct {
	Direction  string
	EntityType string
	EntityID   string
	Since      time.Time
	Until      time.Time
	Cursor     string
	Limit      int
	ScanCap    int
}

// SyncLogPage is one page of sync_log rows, newest first.
type SyncLogPage struct {
	Entries     []SyncLogEntry
	NextCursor  string
	ScanLimited bool
}

const syncLogColumns = `id, direction, entity_type, coalesce(entity_id, ''), coalesce(source_id, ''),
	coalesce(target_id, ''), status, started_at, finished_at, coalesce(error_message, ''), coalesce(correlation_id::text, '')`

// ListSyncErrors pages through failed sync operations newest first, through
// sync_log_errors_idx; direction, entity and time filters are applied to a
// capped scan of it.
func (s *Store) ListSyncErrors(ctx context.Context, f SyncErrorSearch) (SyncLogPage, error) {
	limit, scanCap := f.Limit, f.ScanCap
	if limit <= 0 {
		limit = 20
	}
	if scanCap <= 0 {
		scanCap = DefaultScanCap
	}
	c := &cappedScan{table: "sync_log", cols: syncLogColumns, order: "started_at DESC, id DESC"}
	c.inner = append(c.inner, "status = 'error'")
	if f.Direction != "" {
		c.outer = append(c.outer, "direction = "+c.arg(f.Direction))
	}
	if f.EntityType != "" {
		c.outer = append(c.outer, "entity_type = "+c.arg(f.EntityType))
	}
	if f.EntityID != "" {
		c.outer = append(c.outer, "entity_id = "+c.arg(f.EntityID))
	}
	if !f.Since.IsZero() {
		c.inner = append(c.inner, "started_at >= "+c.arg(f.Since))
	}
	if !f.Until.IsZero() {
		c.inner = append(c.inner, "started_at < "+c.arg(f.Until))
	}
	if f.Cursor != "" {
		t, tie, err := decodeKeyset(f.Cursor)
		if err != nil {
			return SyncLogPage{}, err
		}
		id, err := strconv.ParseInt(tie, 10, 64)
		if err != nil {
			return SyncLogPage{}, ErrBadCursor
		}
		c.inner = append(c.inner, fmt.Sprintf("(started_at, id) < (%s, %s)", c.arg(t), c.arg(id)))
	}
	rows, err := s.Pool.Query(ctx, c.sql(limit, scanCap), c.args...)
	if err != nil {
		return SyncLogPage{}, fmt.Errorf("list sync errors: %w", err)
	}
	var (
		entries []SyncLogEntry
		matched []bool
		rns     []int64
	)
	for rows.Next() {
		var e SyncLogEntry
		var m bool
		var rn int64
		if err := rows.Scan(&e.ID, &e.Direction, &e.EntityType, &e.EntityID, &e.SourceID, &e.TargetID, &e.Status,
			&e.StartedAt, &e.FinishedAt, &e.ErrorMessage, &e.CorrelationID, &m, &rn); err != nil {
			rows.Close()
			return SyncLogPage{}, fmt.Errorf("scan sync_log: %w", err)
		}
		entries, matched, rns = append(entries, e), append(matched, m), append(rns, rn)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return SyncLogPage{}, fmt.Errorf("list sync errors: %w", err)
	}
	page, next, limited := pageOf(entries, matched, rns, limit, scanCap, func(e SyncLogEntry) string {
		return encodeKeyset(e.StartedAt, strconv.FormatInt(e.ID, 10))
	})
	return SyncLogPage{Entries: page, NextCursor: next, ScanLimited: limited}, nil
}

// SyncLogForEntities returns the newest sync operations about any of ids
// (entity_id) of the given entity types, through sync_log_entity_idx.
func (s *Store) SyncLogForEntities(ctx context.Context, entityTypes, ids []string, limit int) ([]SyncLogEntry, error) {
	if len(ids) == 0 || len(entityTypes) == 0 {
		return []SyncLogEntry{}, nil
	}
	rows, err := s.Pool.Query(ctx, `SELECT `+syncLogColumns+` FROM sync_log
		WHERE entity_type = ANY($1) AND entity_id = ANY($2) ORDER BY started_at DESC, id DESC LIMIT $3`,
		entityTypes, ids, limit)
	if err != nil {
		return nil, fmt.Errorf("sync_log for entities: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SyncLogEntry, error) {
		var e SyncLogEntry
		err := r.Scan(&e.ID, &e.Direction, &e.EntityType, &e.EntityID, &e.SourceID, &e.TargetID, &e.Status,
			&e.StartedAt, &e.FinishedAt, &e.ErrorMessage, &e.CorrelationID)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("sync_log for entities: %w", err)
	}
	return out, nil
}
