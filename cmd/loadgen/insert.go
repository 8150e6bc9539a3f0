package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// cmdInsert measures the physical reference of the intake benchmark: how many
// durable (synchronous_commit as configured, normally on) single-row
// transactions of a 1 KiB jsonb row this PostgreSQL commits per second at a
// given concurrency, into a scratch table shaped like webhook_events.
func cmdInsert(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("insert", flag.ExitOnError)
	var cfg loadConfig
	cfg.register(fs)
	dbURL := fs.String("db", envOr("DATABASE_URL", ""), "database URL (default $DATABASE_URL)")
	table := fs.String("table", "bench_insert", "scratch table (dropped and recreated)")
	bodySize := fs.Int("body-size", 1024, "approximate size of the jsonb payload in bytes")
	keep := fs.Bool("keep", false, "keep the scratch table afterwards")
	_ = fs.Parse(args)
	if err := cfg.validate(); err != nil {
		return err
	}
	if *dbURL == "" {
		return errors.New("-db or DATABASE_URL is required")
	}
	tbl := pgx.Identifier{*table}.Sanitize()

	admin, err := pgx.Connect(ctx, *dbURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer admin.Close(context.Background())
	ddl := fmt.Sprintf(`DROP TABLE IF EXISTS %[1]s;
CREATE TABLE %[1]s (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    source       text NOT NULL,
    event_type   text NOT NULL,
    dedupe_key   text NOT NULL UNIQUE,
    payload_json jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    status       text NOT NULL DEFAULT 'pending'
)`, tbl)
	if _, err := admin.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("create %s: %w", *table, err)
	}
	var syncCommit string
	if err := admin.QueryRow(ctx, "SHOW synchronous_commit").Scan(&syncCommit); err != nil {
		return err
	}
	if syncCommit != "on" {
		logf("warning: synchronous_commit=%s, the figure is not a durable-commit rate", syncCommit)
	}

	conns := make([]*pgx.Conn, cfg.Concurrency)
	for i := range conns {
		if conns[i], err = pgx.Connect(ctx, *dbURL); err != nil {
			return fmt.Errorf("connect worker %d: %w", i, err)
		}
		defer conns[i].Close(context.Background())
	}

	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	insert := fmt.Sprintf(`INSERT INTO %s (source, event_type, dedupe_key, payload_json) VALUES ($1, $2, $3, $4)`, tbl)
	pad := strings.Repeat("x", max(0, *bodySize-200))
	logf("insert: %d connections, warm-up %s, %s recorded", cfg.Concurrency, cfg.Warmup, cfg.Duration)
	res := runLoad(ctx, cfg, func(ctx context.Context, w int, seq uint64) (outcome, string) {
		key := runID + "-" + strconv.FormatUint(seq, 10)
		payload := json.RawMessage(`{"eventType":"bench.noop","messageId":"` + key +
			`","conversationId":"c","from":"+13105550100","to":"+18555550199","body":"` + pad +
			`","timestamp":"` + time.Now().UTC().Format(time.RFC3339) + `"}`)
		if _, err := conns[w].Exec(ctx, insert, "texting", "bench.noop", key, payload); err != nil {
			return outcomeError, firstLine(err.Error())
		}
		return outcomeOK, ""
	})
	res.Mode = "insert"
	res.Target = "table " + *table + " (synchronous_commit=" + syncCommit + ")"
	logf("insert: %.0f rows/s, p50 %.2f ms, p99 %.2f ms, %d errors", res.PerSecond, res.Latency.P50, res.Latency.P99, res.Errors)

	if !*keep {
		if _, err := admin.Exec(context.Background(), "DROP TABLE IF EXISTS "+tbl); err != nil {
			logf("drop %s: %v", *table, err)
		}
	}
	return writeJSON(res)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
