package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// LiveGroup is the live part of the queue for one source and status.
type LiveGroup struct {
	Source        string     `json:"source"`
	Status        string     `json:"status"` // pending or processing
	Count         int64      `json:"count"`
	Due           int64      `json:"due"`            // pending and next_attempt_at <= now
	Waiting       int64      `json:"waiting"`        // pending, waiting for a retry
	ExpiredLeases int64      `json:"expired_leases"` // processing with locked_until < now
	OldestSince   *time.Time `json:"oldest_since,omitempty"`
}

// LiveQueue is the queue right now, counted through the partial indexes of
// the live statuses. Each status is counted up to a cap, so a backlog of
// millions costs no more than one of cap rows; Capped says the counts of a
// status are lower bounds.
type LiveQueue struct {
	Now               time.Time
	Groups            []LiveGroup
	PendingCapped     bool
	ProcessingCapped  bool
	Errors            int64
	ErrorsCapped      bool
	Quarantined       int64
	QuarantinedCapped bool
	OldestDue         *Event // the due event waiting longest (no payload)
	ExpiredSample     []string
}

// LiveQueueStats reads the live queue. Pending rows are read through
// webhook_events_claim_idx and processing ones through
// webhook_events_lease_idx — the ORDER BY of each arm matches its index, so
// the planner walks the index and stops at the cap instead of scanning the
// table when its statistics are off.
func (s *Store) LiveQueueStats(ctx context.Context, countCap int) (LiveQueue, error) {
	var q LiveQueue
	rows, err := s.Pool.Query(ctx, `
		SELECT source, status, count(*),
			count(*) FILTER (WHERE status = 'pending' AND next_attempt_at <= now()),
			count(*) FILTER (WHERE status = 'pending' AND next_attempt_at > now()),
			count(*) FILTER (WHERE status = 'processing' AND locked_until < now()),
			min(CASE WHEN status = 'pending' THEN next_attempt_at ELSE updated_at END)
				FILTER (WHERE status = 'processing' OR next_attempt_at <= now())
		FROM (
			(SELECT source, status, next_attempt_at, locked_until, updated_at FROM webhook_events
				WHERE status = 'pending' ORDER BY next_attempt_at LIMIT $1)
			UNION ALL
			(SELECT source, status, next_attempt_at, locked_until, updated_at FROM webhook_events
				WHERE status = 'processing' ORDER BY locked_until LIMIT $1)
		) live
		GROUP BY source, status ORDER BY status, source`, countCap+1)
	if err != nil {
		return q, fmt.Errorf("live queue: %w", err)
	}
	q.Groups, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (LiveGroup, error) {
		var g LiveGroup
		err := r.Scan(&g.Source, &g.Status, &g.Count, &g.Due, &g.Waiting, &g.ExpiredLeases, &g.OldestSince)
		return g, err
	})
	if err != nil {
		return q, fmt.Errorf("live queue: %w", err)
	}
	var pending, processing int64
	for _, g := range q.Groups {
		if g.Status == StatusPending {
			pending += g.Count
		} else {
			processing += g.Count
		}
	}
	q.PendingCapped, q.ProcessingCapped = pending > int64(countCap), processing > int64(countCap)

	// Finished statuses that need an operator, counted through the problem
	// index (index-only: these rows rarely change).
	err = s.Pool.QueryRow(ctx, `SELECT now(),
			(SELECT count(*) FROM (SELECT 1 FROM webhook_events WHERE status = 'error'
				ORDER BY received_at DESC, id DESC LIMIT $1) e),
			(SELECT count(*) FROM (SELECT 1 FROM webhook_events WHERE status = 'quarantined'
				ORDER BY received_at DESC, id DESC LIMIT $1) q),
			(SELECT coalesce(array_agg(id::text), '{}') FROM (SELECT id FROM webhook_events
				WHERE status = 'processing' AND locked_until < now() ORDER BY locked_until LIMIT 5) x)`,
		countCap+1).Scan(&q.Now, &q.Errors, &q.Quarantined, &q.ExpiredSample)
	if err != nil {
		return q, fmt.Errorf("queue problems: %w", err)
	}
	q.ErrorsCapped, q.QuarantinedCapped = q.Errors > int64(countCap), q.Quarantined > int64(countCap)
	q.Errors, q.Quarantined = min(q.Errors, int64(countCap)), min(q.Quarantined, int64(countCap))

	e, err := scanEvent(s.Pool.QueryRow(ctx, `SELECT `+eventColumnsNoPayload+` FROM webhook_events
		WHERE status = 'pending' AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT 1`))
	switch {
	case err == nil:
		q.OldestDue = &e
	case !errors.Is(err, pgx.ErrNoRows):
		return q, fmt.Errorf("oldest due event: %w", err)
	}
	return q, nil
}

// FinishStats are the events finished by workers over recent windows, from
// event_finish_rollup (maintained by a trigger; see migration 00003).
type FinishStats struct {
	Now time.Time
	// Finished counts events finished in the last 5, 15 and 60 minutes
	// (whole minutes back from the current, partial one).
	Finished5, Finished15, Finished60 int64
	// Over the window asked for: counts by final status and the histogram
	// of processing time (processed_at - received_at).
	WindowStart time.Time
	ByStatus    map[string]int64
	BySource    map[string]int64
	Histogram   Histogram
}

// EventFinishStats reads the finish rollup for the last 60 minutes and for
// the window (in minutes, 1–1440).
func (s *Store) EventFinishStats(ctx context.Context, windowMinutes int) (FinishStats, error) {
	st := FinishStats{ByStatus: map[string]int64{}, BySource: map[string]int64{}, Histogram: NewHistogram()}
	err := s.Pool.QueryRow(ctx, `SELECT now(), date_trunc('minute', now()) - make_interval(mins => $1 - 1)`, windowMinutes).
		Scan(&st.Now, &st.WindowStart)
	if err != nil {
		return st, fmt.Errorf("finish stats: %w", err)
	}
	rows, err := s.Pool.Query(ctx, `
		WITH b AS (SELECT date_trunc('minute', now()) AS m)
		SELECT source, status, bucket,
			coalesce(sum(n) FILTER (WHERE minute >= b.m - interval '4 min'), 0),
			coalesce(sum(n) FILTER (WHERE minute >= b.m - interval '14 min'), 0),
			coalesce(sum(n) FILTER (WHERE minute >= b.m - interval '59 min'), 0),
			coalesce(sum(n) FILTER (WHERE minute >= $1), 0),
			coalesce(sum(sum_ms) FILTER (WHERE minute >= $1), 0),
			coalesce(max(max_ms) FILTER (WHERE minute >= $1), 0)
		FROM event_finish_rollup, b
		WHERE minute >= least($1, b.m - interval '59 min')
		GROUP BY source, status, bucket`, st.WindowStart)
	if err != nil {
		return st, fmt.Errorf("finish stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var source, status string
		var bucket int
		var n5, n15, n60, nw int64
		var sumMS, maxMS float64
		if err := rows.Scan(&source, &status, &bucket, &n5, &n15, &n60, &nw, &sumMS, &maxMS); err != nil {
			return st, fmt.Errorf("finish stats: %w", err)
		}
		st.Finished5 += n5
		st.Finished15 += n15
		st.Finished60 += n60
		if nw > 0 {
			st.ByStatus[status] += nw
			st.BySource[source] += nw
			st.Histogram.Add(bucket, nw, sumMS, maxMS)
		}
	}
	return st, rows.Err()
}
