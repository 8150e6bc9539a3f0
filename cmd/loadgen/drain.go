package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
)

// DrainResult is the JSON output of drain.
type DrainResult struct {
	Mode string `json:"mode"`
	// Phase start: the first claim seen by polling, or -start-at.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	WallS    float64   `json:"wall_s"`
	// Rows that reached a final status between Started and Finished
	// (processed_at ≥ the moment polling began).
	Processed int64 `json:"processed"`
	// PerSecond = Processed / WallS: first claim (±poll) to empty queue.
	PerSecond float64 `json:"per_second"`
	// ServerPerSecond = Processed / (max − min processed_at): the same
	// from the database's own timestamps, free of polling granularity.
	ServerPerSecond float64          `json:"server_per_second,omitempty"`
	InitialPending  int64            `json:"initial_pending"`
	FinalStatuses   map[string]int64 `json:"final_statuses"`
	PollIntervalMS  int64            `json:"poll_interval_ms"`
	Polls           int64            `json:"polls"`
}

// cmdDrain measures how fast the service empties the queue: it snapshots the
// backlog, waits for the first claim (a pending row leaving pending), then
// polls every -poll until no row is pending or processing.
func cmdDrain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("drain", flag.ExitOnError)
	dbURL := fs.String("db", envOr("DATABASE_URL", ""), "database URL (default $DATABASE_URL)")
	poll := fs.Duration("poll", 250*time.Millisecond, "poll interval")
	timeout := fs.Duration("timeout", 15*time.Minute, "give up after this long")
	startAt := fs.String("start-at", "", "RFC 3339 time the phase began (mixed load): skip waiting for the first claim")
	readyFile := fs.String("ready-file", "", "create this file once the backlog snapshot is taken")
	_ = fs.Parse(args)
	if *dbURL == "" {
		return errors.New("-db or DATABASE_URL is required")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	conn, err := pgx.Connect(ctx, *dbURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())

	res := DrainResult{Mode: "drain", PollIntervalMS: poll.Milliseconds()}
	// Polling begins now: every row finished from here on belongs to the phase.
	var since time.Time
	if err := conn.QueryRow(ctx, "SELECT now()").Scan(&since); err != nil {
		return err
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM webhook_events WHERE status = 'pending'`).Scan(&res.InitialPending); err != nil {
		return fmt.Errorf("count pending (is the schema migrated?): %w", err)
	}
	if *readyFile != "" {
		if err := os.WriteFile(*readyFile, nil, 0o644); err != nil {
			return err
		}
	}

	tick := time.NewTicker(*poll)
	defer tick.Stop()
	wait := func() error {
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %s (%d polls)", *timeout, res.Polls)
		case <-tick.C:
			res.Polls++
			return nil
		}
	}

	if *startAt != "" {
		if res.Started, err = time.Parse(time.RFC3339Nano, *startAt); err != nil {
			return fmt.Errorf("-start-at: %w", err)
		}
		since = res.Started
		logf("drain: phase began %s, waiting for an empty queue", res.Started.Format(time.RFC3339Nano))
	} else {
		logf("drain: %d pending, waiting for the first claim", res.InitialPending)
		for {
			if err := wait(); err != nil {
				return err
			}
			var pending int64
			var claimed bool
			err := conn.QueryRow(ctx, `SELECT count(*), EXISTS (SELECT 1 FROM webhook_events WHERE status = 'processing')
				FROM webhook_events WHERE status = 'pending'`).Scan(&pending, &claimed)
			if err != nil {
				return err
			}
			if claimed || pending < res.InitialPending {
				res.Started = time.Now()
				break
			}
		}
		logf("drain: first claim seen, waiting for an empty queue")
	}

	// The end test only touches the partial indexes of the live statuses.
	lastLog := time.Now()
	for {
		var live bool
		err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM webhook_events WHERE status = 'pending')
			OR EXISTS (SELECT 1 FROM webhook_events WHERE status = 'processing')`).Scan(&live)
		if err != nil {
			return err
		}
		if !live {
			res.Finished = time.Now()
			break
		}
		if time.Since(lastLog) >= 5*time.Second {
			lastLog = time.Now()
			var pending, processing int64
			_ = conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'processing')
				FROM webhook_events WHERE status IN ('pending', 'processing')`).Scan(&pending, &processing)
			logf("drain: %d pending, %d processing after %.1fs", pending, processing, time.Since(res.Started).Seconds())
		}
		if err := wait(); err != nil {
			return err
		}
	}
	res.WallS = res.Finished.Sub(res.Started).Seconds()

	var first, last *time.Time
	err = conn.QueryRow(ctx, `SELECT count(*), min(processed_at), max(processed_at)
		FROM webhook_events WHERE processed_at >= $1`, since).Scan(&res.Processed, &first, &last)
	if err != nil {
		return err
	}
	if res.Processed == 0 && *startAt == "" {
		// processed_at not recorded: count the backlog instead.
		res.Processed = res.InitialPending
	}
	res.PerSecond = float64(res.Processed) / res.WallS
	if first != nil && last != nil && last.Sub(*first) > 0 {
		res.ServerPerSecond = float64(res.Processed) / last.Sub(*first).Seconds()
	}
	res.Started, res.Finished = res.Started.UTC(), res.Finished.UTC()

	if res.FinalStatuses, err = countBy(ctx, conn, `SELECT status, count(*) FROM webhook_events GROUP BY status`); err != nil {
		return err
	}
	logf("drain: %d rows in %.2fs = %.0f/s (server timestamps: %.0f/s); statuses %v",
		res.Processed, res.WallS, res.PerSecond, res.ServerPerSecond, res.FinalStatuses)
	return writeJSON(res)
}

// countBy runs a "SELECT key, count(*) … GROUP BY key" query into a map.
func countBy(ctx context.Context, conn *pgx.Conn, sql string, args ...any) (map[string]int64, error) {
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			return nil, err
		}
		out[k] = n
	}
	return out, rows.Err()
}
