package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// E2EResult is the JSON output of e2e: what became of the events received
// since a moment, once the queue has settled.
type E2EResult struct {
	Mode  string    `json:"mode"`
	Since time.Time `json:"since"`
	// Events is every webhook_events row received since Since.
	Events   int64            `json:"events"`
	Statuses map[string]int64 `json:"statuses"`
	Done     int64            `json:"done"`
	// AllDone: every event received ended done.
	AllDone bool `json:"all_done"`
	// Retried counts done events that needed more than one attempt.
	Retried int64 `json:"retried"`
	// FirstReceived .. LastProcessed spans intake of the first event to the
	// last one done; PerSecond = Done / that span.
	FirstReceived time.Time `json:"first_received"`
	LastProcessed time.Time `json:"last_processed"`
	SpanS         float64   `json:"span_s"`
	PerSecond     float64   `json:"per_second"`
	// Latency of processed_at − received_at over the done rows.
	Latency LatencyMS `json:"latency"`
	// With -load-end: the events done after the load stopped and their rate
	// (processing alone, without intake competing for the CPUs).
	LoadEnd          *time.Time `json:"load_end,omitempty"`
	DoneAfterLoad    int64      `json:"done_after_load,omitempty"`
	AfterLoadPerSec  float64    `json:"after_load_per_second,omitempty"`
	QueueEmptyAfterS float64    `json:"queue_empty_after_load_s,omitempty"`
	// SyncLog counts sync_log rows started since Since, by status.
	SyncLog map[string]int64 `json:"sync_log"`
	// ContactMappings created since Since.
	ContactMappings int64 `json:"contact_mappings"`
	// ErrorSamples: error_message of the events not done, and of the
	// attempts that failed before a done (the last message is kept), by count.
	ErrorSamples map[string]int64 `json:"error_samples,omitempty"`
	WaitedS      float64          `json:"waited_s"`
	TimedOut     bool             `json:"timed_out,omitempty"`
}

// cmdE2E waits until no event received since -since is pending or
// processing (retries included), then reports from the database how many
// ended in which status, the rate from the first intake to the last done,
// and the intake-to-done latency (processed_at − received_at) of the done
// rows. On -timeout it reports what it has, with timed_out set.
func cmdE2E(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("e2e", flag.ExitOnError)
	dbURL := fs.String("db", envOr("DATABASE_URL", ""), "database URL (default $DATABASE_URL)")
	sinceFlag := fs.String("since", "", "RFC 3339 time the phase began: only events received from then on count (required)")
	loadEndFlag := fs.String("load-end", "", "RFC 3339 time the load stopped (optional): adds the processing rate after it")
	poll := fs.Duration("poll", 250*time.Millisecond, "poll interval")
	timeout := fs.Duration("timeout", 15*time.Minute, "stop waiting for the queue after this long")
	_ = fs.Parse(args)
	if *dbURL == "" {
		return errors.New("-db or DATABASE_URL is required")
	}
	since, err := time.Parse(time.RFC3339Nano, *sinceFlag)
	if err != nil {
		return fmt.Errorf("-since: %w", err)
	}
	res := E2EResult{Mode: "e2e", Since: since.UTC(), Statuses: map[string]int64{}, SyncLog: map[string]int64{}}
	var loadEnd time.Time
	if *loadEndFlag != "" {
		if loadEnd, err = time.Parse(time.RFC3339Nano, *loadEndFlag); err != nil {
			return fmt.Errorf("-load-end: %w", err)
		}
		le := loadEnd.UTC()
		res.LoadEnd = &le
	}

	conn, err := pgx.Connect(ctx, *dbURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())

	// Wait for the queue to settle: the live statuses have partial indexes.
	start := time.Now()
	deadline := start.Add(*timeout)
	lastLog := start
	for {
		var pending, processing int64
		err := conn.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM webhook_events WHERE status = 'pending' AND received_at >= $1),
			(SELECT count(*) FROM webhook_events WHERE status = 'processing' AND received_at >= $1)`, since).
			Scan(&pending, &processing)
		if err != nil {
			return fmt.Errorf("count live events (is the schema migrated?): %w", err)
		}
		if pending+processing == 0 {
			break
		}
		if time.Now().After(deadline) {
			res.TimedOut = true
			logf("e2e: timed out after %s with %d pending, %d processing", *timeout, pending, processing)
			break
		}
		if time.Since(lastLog) >= 5*time.Second {
			lastLog = time.Now()
			logf("e2e: %d pending, %d processing after %.1fs", pending, processing, time.Since(start).Seconds())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(*poll):
		}
	}
	res.WaitedS = time.Since(start).Seconds()

	statuses, err := countBy(ctx, conn, `SELECT status, count(*) FROM webhook_events WHERE received_at >= $1 GROUP BY status`, since)
	if err != nil {
		return err
	}
	for s, n := range statuses {
		res.Statuses[s] = n
		res.Events += n
	}
	res.Done = res.Statuses["done"]
	res.AllDone = res.Events > 0 && res.Done == res.Events

	// Rate and latency over the done rows. percentile_disc picks a real
	// sample, as the load generator's own percentiles do.
	var first, last *time.Time
	var p50, p90, p99, p999, maxS, meanS *float64
	err = conn.QueryRow(ctx, `
		WITH d AS (
			SELECT received_at, processed_at, attempts,
				extract(epoch FROM processed_at - received_at)::float8 AS lat
			FROM webhook_events
			WHERE status = 'done' AND received_at >= $1 AND processed_at IS NOT NULL)
		SELECT min(received_at), max(processed_at), count(*) FILTER (WHERE attempts > 1),
			percentile_disc(0.5) WITHIN GROUP (ORDER BY lat),
			percentile_disc(0.9) WITHIN GROUP (ORDER BY lat),
			percentile_disc(0.99) WITHIN GROUP (ORDER BY lat),
			percentile_disc(0.999) WITHIN GROUP (ORDER BY lat),
			max(lat), avg(lat)
		FROM d`, since).Scan(&first, &last, &res.Retried, &p50, &p90, &p99, &p999, &maxS, &meanS)
	if err != nil {
		return err
	}
	if first != nil && last != nil {
		res.FirstReceived, res.LastProcessed = first.UTC(), last.UTC()
		res.SpanS = last.Sub(*first).Seconds()
		if res.SpanS > 0 {
			res.PerSecond = float64(res.Done) / res.SpanS
		}
		sec := func(v *float64) float64 {
			if v == nil {
				return 0
			}
			return ms(time.Duration(*v * float64(time.Second)))
		}
		res.Latency = LatencyMS{P50: sec(p50), P90: sec(p90), P99: sec(p99), P999: sec(p999), Max: sec(maxS), Mean: sec(meanS)}
		if !loadEnd.IsZero() {
			err := conn.QueryRow(ctx, `SELECT count(*) FROM webhook_events
				WHERE status = 'done' AND received_at >= $1 AND processed_at > $2`, since, loadEnd).Scan(&res.DoneAfterLoad)
			if err != nil {
				return err
			}
			if tail := last.Sub(loadEnd).Seconds(); tail > 0 {
				res.QueueEmptyAfterS = tail
				if res.DoneAfterLoad > 0 {
					res.AfterLoadPerSec = float64(res.DoneAfterLoad) / tail
				}
			}
		}
	}

	syncLog, err := countBy(ctx, conn, `SELECT status, count(*) FROM sync_log WHERE started_at >= $1 GROUP BY status`, since)
	if err != nil {
		return err
	}
	for s, n := range syncLog {
		res.SyncLog[s] = n
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM contact_mappings WHERE created_at >= $1`, since).Scan(&res.ContactMappings); err != nil {
		return err
	}

	samples, err := countBy(ctx, conn, `SELECT coalesce(left(error_message, 200), '(no message)') AS m, count(*)
		FROM webhook_events
		WHERE received_at >= $1 AND (status <> 'done' OR attempts > 1)
		GROUP BY m ORDER BY count(*) DESC LIMIT 10`, since)
	if err != nil {
		return err
	}
	if len(samples) > 0 {
		res.ErrorSamples = samples
	}

	logf("e2e: %d events, statuses %v; %.0f done/s from first intake to last done; intake→done p50 %.1f ms, p99 %.1f ms",
		res.Events, res.Statuses, res.PerSecond, res.Latency.P50, res.Latency.P99)
	return writeJSON(res)
}
