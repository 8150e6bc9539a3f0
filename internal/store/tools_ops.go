package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrorGroup is one row of error_groups.
type ErrorGroup struct {
	Fingerprint   string    `json:"fingerprint"`
	Component     string    `json:"component"`
	ErrorClass    string    `json:"error_class"`
	SampleMessage string    `json:"sample_message"`
	FirstSeen     time.Time `json:"first_seen"`
	LastSeen      time.Time `json:"last_seen"`
	Count         int64     `json:"count"`
	LastEventID   string    `json:"last_event_id,omitempty"`
}

// ErrorGroupPage is one page of error groups, most recently seen first.
type ErrorGroupPage struct {
	Groups     []ErrorGroup
	NextCursor string
}

// ListErrorGroups pages through error groups by last_seen, newest first,
// keyset on (last_seen, fingerprint) through error_groups_keyset_idx (or
// error_groups_component_idx within one component).
func (s *Store) ListErrorGroups(ctx context.Context, component, cursor string, limit int) (ErrorGroupPage, error) {
	var where []string
	var args []any
	if component != "" {
		args = append(args, component)
		where = append(where, "component = $"+strconv.Itoa(len(args)))
	}
	if cursor != "" {
		t, fp, err := decodeKeyset(cursor)
		if err != nil {
			return ErrorGroupPage{}, err
		}
		args = append(args, t, fp)
		where = append(where, fmt.Sprintf("(last_seen, fingerprint) < ($%d, $%d)", len(args)-1, len(args)))
	}
	args = append(args, limit+1)
	q := `SELECT fingerprint, component, error_class, sample_message, first_seen, last_seen, count,
		coalesce(last_event_id::text, '') FROM error_groups`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY last_seen DESC, fingerprint DESC LIMIT $%d", len(args))
	rows, err := s.Pool.Query(ctx, q, args...)
	if err != nil {
		return ErrorGroupPage{}, fmt.Errorf("list error groups: %w", err)
	}
	groups, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ErrorGroup, error) {
		var g ErrorGroup
		err := r.Scan(&g.Fingerprint, &g.Component, &g.ErrorClass, &g.SampleMessage, &g.FirstSeen, &g.LastSeen, &g.Count, &g.LastEventID)
		return g, err
	})
	if err != nil {
		return ErrorGroupPage{}, fmt.Errorf("list error groups: %w", err)
	}
	page := ErrorGroupPage{Groups: groups}
	if len(groups) > limit {
		page.Groups = groups[:limit]
		last := page.Groups[limit-1]
		page.NextCursor = encodeKeyset(last.LastSeen, last.Fingerprint)
	}
	return page, nil
}

// AlertState is one row of alert_state.
type AlertState struct {
	Fingerprint     string          `json:"fingerprint"`
	Rule            string          `json:"rule"`
	Severity        string          `json:"severity"`
	Labels          json.RawMessage `json:"labels"`
	State           string          `json:"state"`
	Value           *float64        `json:"value"`
	ActiveSince     *time.Time      `json:"active_since"`
	FiredAt         *time.Time      `json:"fired_at"`
	ResolvedAt      *time.Time      `json:"resolved_at"`
	LastEvaluatedAt time.Time       `json:"last_evaluated_at"`
}

// AlertStates returns up to limit alert states, firing first, then pending,
// then the rest; more reports whether some were left out.
func (s *Store) AlertStates(ctx context.Context, limit int) (states []AlertState, more bool, err error) {
	rows, err := s.Pool.Query(ctx, `SELECT fingerprint, rule, severity, labels, state, value, active_since,
			fired_at, resolved_at, last_evaluated_at
		FROM alert_state
		ORDER BY CASE state WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END,
			CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, rule, fingerprint
		LIMIT $1`, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("alert states: %w", err)
	}
	states, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (AlertState, error) {
		var a AlertState
		err := r.Scan(&a.Fingerprint, &a.Rule, &a.Severity, &a.Labels, &a.State, &a.Value, &a.ActiveSince,
			&a.FiredAt, &a.ResolvedAt, &a.LastEvaluatedAt)
		return a, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("alert states: %w", err)
	}
	if len(states) > limit {
		return states[:limit], true, nil
	}
	return states, false, nil
}

// AlertEvent is one row of alert_history.
type AlertEvent struct {
	ID          int64           `json:"id"`
	Fingerprint string          `json:"fingerprint"`
	Rule        string          `json:"rule"`
	Severity    string          `json:"severity"`
	State       string          `json:"state"`
	Value       *float64        `json:"value"`
	At          time.Time       `json:"at"`
	Labels      json.RawMessage `json:"labels"`
	Annotations json.RawMessage `json:"annotations"`
}

// AlertHistory pages through alert_history newest first (keyset on (at, id)).
func (s *Store) AlertHistory(ctx context.Context, cursor string, limit int) ([]AlertEvent, string, error) {
	args := []any{limit + 1}
	where := ""
	if cursor != "" {
		t, tie, err := decodeKeyset(cursor)
		if err != nil {
			return nil, "", err
		}
		id, err := strconv.ParseInt(tie, 10, 64)
		if err != nil {
			return nil, "", ErrBadCursor
		}
		args = append(args, t, id)
		where = " WHERE (at, id) < ($2, $3)"
	}
	rows, err := s.Pool.Query(ctx, `SELECT id, fingerprint, rule, severity, state, value, at, labels, annotations
		FROM alert_history`+where+` ORDER BY at DESC, id DESC LIMIT $1`, args...)
	if err != nil {
		return nil, "", fmt.Errorf("alert history: %w", err)
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AlertEvent, error) {
		var a AlertEvent
		err := r.Scan(&a.ID, &a.Fingerprint, &a.Rule, &a.Severity, &a.State, &a.Value, &a.At, &a.Labels, &a.Annotations)
		return a, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("alert history: %w", err)
	}
	if len(evs) > limit {
		evs = evs[:limit]
		last := evs[limit-1]
		return evs, encodeKeyset(last.At, strconv.FormatInt(last.ID, 10)), nil
	}
	return evs, "", nil
}

// Statement is one row of pg_stat_statements.
type Statement struct {
	QueryID      int64   `json:"query_id"`
	Query        string  `json:"query"`
	Calls        int64   `json:"calls"`
	TotalMS      float64 `json:"total_ms"`
	MeanMS       float64 `json:"mean_ms"`
	MaxMS        float64 `json:"max_ms"`
	Rows         int64   `json:"rows"`
	SharedBlkHit int64   `json:"shared_blks_hit"`
	SharedBlkRd  int64   `json:"shared_blks_read"`
}

// ErrNoStatStatements says pg_stat_statements cannot be read; the error
// text tells why (not installed, or not preloaded).
var ErrNoStatStatements = errors.New("pg_stat_statements unavailable")

// SlowStatements returns this database's statements with the highest mean
// (orderBy "mean") or total ("total") execution time. It returns an error
// wrapping ErrNoStatStatements when the extension is not installed in this
// database or not loaded by the server.
func (s *Store) SlowStatements(ctx context.Context, orderBy string, limit int) ([]Statement, error) {
	var installed bool
	if err := s.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')`).Scan(&installed); err != nil {
		return nil, fmt.Errorf("check pg_stat_statements: %w", err)
	}
	if !installed {
		return nil, fmt.Errorf("%w: the extension is not installed in this database", ErrNoStatStatements)
	}
	order := "mean_exec_time"
	if orderBy == "total" {
		order = "total_exec_time"
	}
	rows, err := s.Pool.Query(ctx, `SELECT coalesce(queryid, 0), left(query, 2000), calls, total_exec_time, mean_exec_time,
			max_exec_time, rows, shared_blks_hit, shared_blks_read
		FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
			-- Utility statements are recorded verbatim: one that sets a
			-- password must never reach a tool result.
			AND query !~* '^\s*(create|alter)\s+(role|user)\M'
			AND query !~* 'password'
		ORDER BY `+order+` DESC LIMIT $1`, limit)
	if err == nil {
		var out []Statement
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Statement, error) {
			var st Statement
			err := r.Scan(&st.QueryID, &st.Query, &st.Calls, &st.TotalMS, &st.MeanMS, &st.MaxMS, &st.Rows, &st.SharedBlkHit, &st.SharedBlkRd)
			return st, err
		})
		if err == nil {
			return out, nil
		}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "55000" || pgErr.Code == "42P01" || pgErr.Code == "42883") {
		// 55000: installed but not in shared_preload_libraries.
		return nil, fmt.Errorf("%w: %s", ErrNoStatStatements, pgErr.Message)
	}
	return nil, fmt.Errorf("read pg_stat_statements: %w", err)
}

// TableStats are the size and upkeep figures of one table.
type TableStats struct {
	Table           string     `json:"table"`
	TotalBytes      int64      `json:"total_bytes"`
	TableBytes      int64      `json:"table_bytes"`
	IndexBytes      int64      `json:"index_bytes"`
	ToastBytes      int64      `json:"toast_bytes"`
	EstimatedRows   int64      `json:"estimated_rows"`
	LiveTuples      int64      `json:"live_tuples"`
	DeadTuples      int64      `json:"dead_tuples"`
	SeqScans        int64      `json:"seq_scans"`
	IndexScans      int64      `json:"index_scans"`
	LastVacuum      *time.Time `json:"last_vacuum,omitempty"`
	LastAutovacuum  *time.Time `json:"last_autovacuum,omitempty"`
	LastAnalyze     *time.Time `json:"last_analyze,omitempty"`
	LastAutoanalyze *time.Time `json:"last_autoanalyze,omitempty"`
}

// IndexStats are the size and use of one index.
type IndexStats struct {
	Index string `json:"index"`
	Table string `json:"table"`
	Bytes int64  `json:"bytes"`
	Scans int64  `json:"scans"`
}

// TableSizes returns every table of the service's schema, largest first.
// Sizes come from the catalog and the files' lengths; no table is scanned.
func (s *Store) TableSizes(ctx context.Context) ([]TableStats, error) {
	rows, err := s.Pool.Query(ctx, `SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid),
			pg_indexes_size(c.oid), coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0),
			greatest(c.reltuples, 0)::bigint, coalesce(t.n_live_tup, 0), coalesce(t.n_dead_tup, 0),
			coalesce(t.seq_scan, 0), coalesce(t.idx_scan, 0),
			t.last_vacuum, t.last_autovacuum, t.last_analyze, t.last_autoanalyze
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_stat_user_tables t ON t.relid = c.oid
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
		ORDER BY 2 DESC, 1`)
	if err != nil {
		return nil, fmt.Errorf("table sizes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TableStats, error) {
		var t TableStats
		err := r.Scan(&t.Table, &t.TotalBytes, &t.TableBytes, &t.IndexBytes, &t.ToastBytes, &t.EstimatedRows,
			&t.LiveTuples, &t.DeadTuples, &t.SeqScans, &t.IndexScans, &t.LastVacuum, &t.LastAutovacuum,
			&t.LastAnalyze, &t.LastAutoanalyze)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("table sizes: %w", err)
	}
	return out, nil
}

// IndexSizes returns the largest indexes of the service's schema.
func (s *Store) IndexSizes(ctx context.Context, limit int) ([]IndexStats, error) {
	rows, err := s.Pool.Query(ctx, `SELECT indexrelname, relname, pg_relation_size(indexrelid), idx_scan
		FROM pg_stat_user_indexes WHERE schemaname = current_schema()
		ORDER BY 3 DESC, 1 LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("index sizes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (IndexStats, error) {
		var i IndexStats
		err := r.Scan(&i.Index, &i.Table, &i.Bytes, &i.Scans)
		return i, err
	})
	if err != nil {
		return nil, fmt.Errorf("index sizes: %w", err)
	}
	return out, nil
}

// PreloadedLibraries returns the server's shared_preload_libraries.
func (s *Store) PreloadedLibraries(ctx context.Context) (string, error) {
	var v string
	if err := s.Pool.QueryRow(ctx, `SELECT current_setting('shared_preload_libraries')`).Scan(&v); err != nil {
		return "", fmt.Errorf("read shared_preload_libraries: %w", err)
	}
	return v, nil
}

// PruneRollups deletes rollup rows older than the tools can ask for (a day
// of event finishes, a week of sync operations, with a margin). It is
// meant as a periodic leader duty; the rollups stay small without it, but
// would grow by a few thousand rows a day.
func (s *Store) PruneRollups(ctx context.Context) (int64, error) {
	var n int64
	err := s.Pool.QueryRow(ctx, `WITH e AS (DELETE FROM event_finish_rollup WHERE minute < now() - interval '2 days' RETURNING 1),
			sl AS (DELETE FROM sync_log_rollup WHERE hour < now() - interval '8 days' RETURNING 1)
		SELECT (SELECT count(*) FROM e) + (SELECT count(*) FROM sl)`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("prune rollups: %w", err)
	}
	return n, nil
}
