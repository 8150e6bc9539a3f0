package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Job is a claimed event: the row plus the lease that guards its finish.
type Job struct {
	Event
	LeaseToken string
}

// claimColumns is eventColumns for the claim's UPDATE … FROM, where only
// "id" is ambiguous (the CTE has an id column too).
var claimColumns = strings.Replace(eventColumns, "id::text", "e.id::text", 1)

// ClaimJobs leases up to n due pending events to worker for lease. The
// partial index on pending rows keeps the claim independent of table size;
// SKIP LOCKED lets replicas claim side by side without waiting on each other.
func (s *Store) ClaimJobs(ctx context.Context, worker string, n int, lease time.Duration) ([]Job, error) {
	rows, err := s.Pool.Query(ctx, `
		WITH due AS (
			SELECT id FROM webhook_events
			WHERE status = 'pending' AND next_attempt_at <= now()
			ORDER BY next_attempt_at
			LIMIT $1
			FOR UPDATE SKIP LOCKED
		)
		UPDATE webhook_events e
		SET status = 'processing', attempts = e.attempts + 1, locked_by = $2,
			locked_until = now() + $3::interval, lease_token = gen_random_uuid(), updated_at = now()
		FROM due WHERE e.id = due.id
		RETURNING e.lease_token::text, `+claimColumns, n, worker, lease)
	if err != nil {
		return nil, fmt.Errorf("claim jobs: %w", err)
	}
	defer rows.Close()
	var jobs []Job
	for rows.Next() {
		var j Job
		var payload []byte
		e := &j.Event
		if err := rows.Scan(&j.LeaseToken, &e.ID, &e.Source, &e.EventType, &e.EntityType, &e.EntityID,
			&e.DedupeKey, &payload, &e.ReceivedAt, &e.Status, &e.Attempts, &e.NextAttemptAt,
			&e.LockedBy, &e.LockedUntil, &e.ErrorMessage, &e.ProcessedAt,
			&e.QuarantinedAt, &e.QuarantineReason, &e.TraceParent,
			&e.TraceState, &e.RequestID, &e.UpdatedAt); err != nil {
			return nil, fmt.Errorf("scan job: %w", err)
		}
		e.Payload = payload
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim jobs: %w", err)
	}
	return jobs, nil
}

// Outcome is how a job ended; Complete writes a batch of them.
type Outcome struct {
	ID         string
	LeaseToken string
	Status     string // done, skipped, error, or pending (retry)
	Error      string
	RetryIn    time.Duration // for pending: wait measured from the database's clock
}

// CompleteJobs finishes a batch of jobs in one statement. Each row changes
// only while its lease token still matches and it is still processing, so a
// worker whose lease expired and was rescued cannot overwrite the newer
// attempt. It returns the ids that were written.
func (s *Store) CompleteJobs(ctx context.Context, outs []Outcome) ([]string, error) {
	n := len(outs)
	if n == 0 {
		return nil, nil
	}
	ids, tokens, statuses := make([]string, n), make([]string, n), make([]string, n)
	errs := make([]*string, n)
	retryIn := make([]*float64, n)
	for i, o := range outs {
		ids[i], tokens[i], statuses[i], errs[i] = o.ID, o.LeaseToken, o.Status, nullIfEmpty(o.Error)
		if o.Status == StatusPending {
			secs := o.RetryIn.Seconds()
			retryIn[i] = &secs
		}
	}
	rows, err := s.Pool.Query(ctx, `
		UPDATE webhook_events e SET
			status = o.status,
			error_message = o.error_message,
			next_attempt_at = coalesce(now() + make_interval(secs => o.retry_in), e.next_attempt_at),
			processed_at = CASE WHEN o.status = 'pending' THEN NULL ELSE now() END,
			locked_by = NULL, locked_until = NULL, lease_token = NULL, updated_at = now()
		FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::float8[])
			AS o(id, token, status, error_message, retry_in)
		WHERE e.id = o.id AND e.lease_token = o.token AND e.status = 'processing'
		RETURNING e.id::text`, ids, tokens, statuses, errs, retryIn)
	if err != nil {
		return nil, fmt.Errorf("complete jobs: %w", err)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("complete jobs: %w", err)
	}
	return done, nil
}

// RescueResult counts what RescueExpiredLeases did.
type RescueResult struct {
	Requeued int64 `json:"requeued"`
	Failed   int64 `json:"failed"`
}

// RescueExpiredLeases returns events whose lease expired (their worker died
// or hung) to pending, or to error when they have used every attempt — an
// event that kills its worker must not loop forever.
func (s *Store) RescueExpiredLeases(ctx context.Context, maxAttempts int) (RescueResult, error) {
	rows, err := s.Pool.Query(ctx, `
		UPDATE webhook_events SET
			status = CASE WHEN attempts >= $1 THEN 'error' ELSE 'pending' END,
			error_message = CASE WHEN attempts >= $1
				THEN 'gave up after ' || attempts || ' attempts: lease expired (worker lost or timed out)'
				ELSE coalesce(error_message, 'lease expired (worker lost or timed out); retrying') END,
			processed_at = CASE WHEN attempts >= $1 THEN now() ELSE NULL END,
			next_attempt_at = now(),
			locked_by = NULL, locked_until = NULL, lease_token = NULL, updated_at = now()
		WHERE status = 'processing' AND locked_until < now()
		RETURNING status`, maxAttempts)
	if err != nil {
		return RescueResult{}, fmt.Errorf("rescue leases: %w", err)
	}
	statuses, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return RescueResult{}, fmt.Errorf("rescue leases: %w", err)
	}
	var r RescueResult
	for _, st := range statuses {
		if st == StatusError {
			r.Failed++
		} else {
			r.Requeued++
		}
	}
	return r, nil
}

// ExtendLeases renews the leases a live worker still holds: for each (id,
// token) pair still processing under that token, locked_until moves to
// now() + lease. It returns how many were renewed; a pair that was rescued
// meanwhile is left alone.
func (s *Store) ExtendLeases(ctx context.Context, ids, tokens []string, lease time.Duration) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	// SKIP LOCKED: a row locked right now is being completed (or rescued),
	// and needs no renewal; waiting for it in whatever order the rows come
	// could deadlock with a completion batch locking the same rows.
	tag, err := s.Pool.Exec(ctx, `
		UPDATE webhook_events e SET locked_until = now() + $3::interval
		FROM (SELECT w.id FROM webhook_events w
			JOIN unnest($1::uuid[], $2::uuid[]) AS held (id, token) ON w.id = held.id AND w.lease_token = held.token
			WHERE w.status = 'processing'
			FOR UPDATE OF w SKIP LOCKED) renew
		WHERE e.id = renew.id`, ids, tokens, lease)
	if err != nil {
		return 0, fmt.Errorf("extend leases: %w", err)
	}
	return tag.RowsAffected(), nil
}

// ReleaseLeases hands back every lease a worker instance still holds (on
// shutdown), without counting the interrupted attempt.
func (s *Store) ReleaseLeases(ctx context.Context, worker string) (int64, error) {
	tag, err := s.Pool.Exec(ctx, `
		UPDATE webhook_events SET status = 'pending', attempts = greatest(attempts - 1, 0),
			next_attempt_at = now(), locked_by = NULL, locked_until = NULL, lease_token = NULL, updated_at = now()
		WHERE status = 'processing' AND locked_by = $1`, worker)
	if err != nil {
		return 0, fmt.Errorf("release leases: %w", err)
	}
	return tag.RowsAffected(), nil
}

// MakeDue moves pending events waiting for a retry to now (an operator's
// "process pending now").
func (s *Store) MakeDue(ctx context.Context) (int64, error) {
	tag, err := s.Pool.Exec(ctx, `UPDATE webhook_events SET next_attempt_at = now(), updated_at = now()
		WHERE status = 'pending' AND next_attempt_at > now()`)
	if err != nil {
		return 0, fmt.Errorf("make pending events due: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Notify wakes the workers of every replica.
func (s *Store) Notify(ctx context.Context) error {
	_, err := s.Pool.Exec(ctx, `SELECT pg_notify($1, '')`, NotifyChannel)
	if err != nil {
		return fmt.Errorf("notify workers: %w", err)
	}
	return nil
}

// QueueStats is the shape of the queue right now.
type QueueStats struct {
	ByStatus            map[string]int64 `json:"by_status"`
	DuePending          int64            `json:"due_pending"`
	OldestDueAgeSeconds float64          `json:"oldest_due_age_seconds"`
	ExpiredLeases       int64            `json:"expired_leases"`
}

// QueueStats counts live statuses through the partial indexes. Finished
// statuses (done, skipped, error) are counted only for error, which
// operators watch; counting done rows would scan the whole table.
func (s *Store) QueueStats(ctx context.Context) (QueueStats, error) {
	st := QueueStats{ByStatus: map[string]int64{}}
	var pending, processing, errorCount, quarantined int64
	var oldest *float64
	err := s.Pool.QueryRow(ctx, `
		WITH pending AS (
			-- One pass over the pending index for both counts: during a
			-- drain of a large backlog each pass visits every pending row.
			SELECT count(*) AS n, count(*) FILTER (WHERE next_attempt_at <= now()) AS due
			FROM webhook_events WHERE status = 'pending')
		SELECT
			(SELECT n FROM pending),
			(SELECT due FROM pending),
			(SELECT extract(epoch FROM now() - min(next_attempt_at))::float8 FROM webhook_events
				WHERE status = 'pending' AND next_attempt_at <= now()),
			(SELECT count(*) FROM webhook_events WHERE status = 'processing'),
			(SELECT count(*) FROM webhook_events WHERE status = 'processing' AND locked_until < now()),
			(SELECT count(*) FROM webhook_events WHERE status = 'error'),
			(SELECT count(*) FROM webhook_events WHERE status = 'quarantined')`).
		Scan(&pending, &st.DuePending, &oldest, &processing, &st.ExpiredLeases, &errorCount, &quarantined)
	if err != nil {
		return QueueStats{}, fmt.Errorf("queue stats: %w", err)
	}
	st.ByStatus[StatusPending] = pending
	st.ByStatus[StatusProcessing] = processing
	st.ByStatus[StatusError] = errorCount
	st.ByStatus[StatusQuarantined] = quarantined
	if oldest != nil {
		st.OldestDueAgeSeconds = *oldest
	}
	return st, nil
}
