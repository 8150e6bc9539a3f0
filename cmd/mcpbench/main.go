// Command mcpbench measures the MCP tools that serve operators over big
// tables, through a real MCP client over stdio against the built binary:
// p50 / p95 latency of search_events (first and a deep page),
// get_queue_status, get_sync_stats (24 h) and list_error_groups, at a small
// and at a large table size in the same run, so a tool whose time grows with
// the table shows as a ratio well above 1.
//
//	go run ./cmd/mcpbench -bin bin/df-middleware -admin-url postgres://… -out docs/benchmarks-mcp.md
package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
)

type benchCase struct {
	name string
	tool string
	args func(deepCursor string) map[string]any
}

var cases = []benchCase{
	{"search_events, first page", "search_events", func(string) map[string]any { return map[string]any{"limit": 50} }},
	{"search_events, deep page (50 pages in)", "search_events", func(c string) map[string]any { return map[string]any{"limit": 50, "cursor": c} }},
	{"search_events, source + status filter", "search_events", func(string) map[string]any {
		return map[string]any{"source": "aloware", "status": "error", "limit": 50}
	}},
	{"get_queue_status", "get_queue_status", func(string) map[string]any { return map[string]any{} }},
	{"get_sync_stats, 24 h", "get_sync_stats", func(string) map[string]any { return map[string]any{"window": "24h"} }},
	{"list_error_groups", "list_error_groups", func(string) map[string]any { return map[string]any{} }},
}

func main() {
	bin := flag.String("bin", "bin/df-middleware", "df-middleware binary")
	adminURL := flag.String("admin-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "server on which the bench database is created")
	small := flag.Int("small", 100_000, "rows per table in the small run")
	large := flag.Int("large", 1_000_000, "rows per table in the large run")
	iterations := flag.Int("n", 60, "measured calls per case")
	out := flag.String("out", "docs/benchmarks-mcp.md", "report file")
	flag.Parse()
	if err := run(*bin, *adminURL, *small, *large, *iterations, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mcpbench:", err)
		os.Exit(1)
	}
}

type result struct {
	p50, p95, max time.Duration
}

func run(bin, adminURL string, small, large, n int, out string) error {
	ctx := context.Background()
	dbURL, err := freshDB(ctx, adminURL, "df_mcpbench")
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "migrate", "up")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("migrate: %v: %s", err, b)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)

	results := map[int]map[string]result{}
	seeded := 0
	for _, size := range []int{small, large} {
		start := time.Now()
		if err := seed(ctx, conn, seeded, size); err != nil {
			return fmt.Errorf("seed %d: %w", size, err)
		}
		seeded = size
		fmt.Fprintf(os.Stderr, "mcpbench: seeded %d events and %d sync_log rows in %s\n", size, size, time.Since(start).Round(time.Second))
		res, err := measure(ctx, bin, dbURL, n)
		if err != nil {
			return err
		}
		results[size] = res
	}
	return report(out, small, large, n, results)
}

func freshDB(ctx context.Context, adminURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// seed grows webhook_events and sync_log from `from` to `to` rows each, with
// the shape of a busy month: mostly finished events, a live backlog, a few
// per cent errors, received over 30 days, the newest day densest.
func seed(ctx context.Context, conn *pgx.Conn, from, to int) error {
	stmts := []string{
		`INSERT INTO webhook_events (source, event_type, entity_type, entity_id, dedupe_key, payload_json,
			received_at, status, attempts, next_attempt_at, processed_at, error_message)
		SELECT (ARRAY['ghl','aloware','texting','broadcast'])[1 + i % 4],
			(ARRAY['ContactCreate','ContactUpdate','message.received','analytics_updated'])[1 + i % 4],
			'contact', 'ent-' || (i % 50000), 'bench:' || i,
			jsonb_build_object('id', i, 'body', repeat('x', 200), 'phone', '+1310555' || lpad((i % 10000)::text, 4, '0')),
			t, s, CASE WHEN s = 'pending' THEN 0 ELSE 1 END, t,
			CASE WHEN s IN ('done','skipped','error') THEN t + ((i % 900) || ' milliseconds')::interval END,
			CASE WHEN s = 'error' THEN 'upstream answered 422 for contact ' || i END
		FROM generate_series($1::int + 1, $2::int) AS i,
			LATERAL (SELECT now() - ((($2::int - i)::float8 / $2::int) ^ 2) * interval '30 days' AS t) ts,
			LATERAL (SELECT CASE WHEN i % 100 = 0 THEN 'error' WHEN i % 53 = 0 THEN 'skipped'
				WHEN i > $2::int - 200 THEN 'pending' ELSE 'done' END AS s) st`,
		`INSERT INTO sync_log (direction, entity_type, entity_id, source_id, target_id, status, started_at, finished_at, error_message)
		SELECT (ARRAY['ghl_to_aloware','aloware_to_ghl','texting_to_ghl','broadcast_to_store'])[1 + i % 4],
			(ARRAY['contact','call','message','broadcast'])[1 + i % 4], 'ent-' || (i % 50000), 's' || i, 't' || i,
			CASE WHEN i % 50 = 0 THEN 'error' WHEN i % 31 = 0 THEN 'skipped' ELSE 'success' END,
			t, t + ((20 + i % 400) || ' milliseconds')::interval,
			CASE WHEN i % 50 = 0 THEN 'aloware POST /api/v1/webhook/forms: 422 phone is invalid' END
		FROM generate_series($1::int + 1, $2::int) AS i,
			LATERAL (SELECT now() - ((($2::int - i)::float8 / $2::int) ^ 2) * interval '30 days' AS t) ts`,
		`INSERT INTO error_groups (fingerprint, component, error_class, sample_message, first_seen, last_seen, count)
		SELECT 'fp-' || g, (ARRAY['queue','sync','upstream','mcp'])[1 + g % 4], 'upstream.Error',
			'sample error ' || g, now() - interval '30 days', now() - (g || ' minutes')::interval, g * 7
		FROM generate_series(1, 500) AS g ON CONFLICT DO NOTHING`,
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s, from, to); err != nil {
			if !strings.Contains(s, "error_groups") {
				return err
			}
			if _, err := conn.Exec(ctx, s); err != nil {
				return err
			}
		}
	}
	if rebuild, err := hasRollupRebuild(ctx, conn); err == nil && rebuild != "" {
		if _, err := conn.Exec(ctx, rebuild); err != nil {
			return fmt.Errorf("rebuild rollups: %w", err)
		}
	}
	_, err := conn.Exec(ctx, "VACUUM ANALYZE")
	return err
}

// hasRollupRebuild returns the statement that rebuilds derived tables from
// sync_log when the schema has one (seeding bypasses the service's own writes).
func hasRollupRebuild(ctx context.Context, conn *pgx.Conn) (string, error) {
	var fn string
	err := conn.QueryRow(ctx, `SELECT coalesce((SELECT 'SELECT ' || p.proname || '()' FROM pg_proc p
		WHERE p.proname = 'rebuild_sync_rollup' LIMIT 1), '')`).Scan(&fn)
	return fn, err
}

func measure(ctx context.Context, bin, dbURL string, n int) (map[string]result, error) {
	env := append(os.Environ(), "DATABASE_URL="+dbURL, "LOG_LEVEL=warn")
	c, err := client.NewStdioMCPClient(bin, env, "mcp", "--no-sidecar", "--read-only")
	if err != nil {
		return nil, err
	}
	defer c.Close()
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "mcpbench", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		return nil, err
	}
	call := func(tool string, args map[string]any) (*mcp.CallToolResult, time.Duration, error) {
		req := mcp.CallToolRequest{}
		req.Params.Name, req.Params.Arguments = tool, args
		start := time.Now()
		res, err := c.CallTool(ctx, req)
		d := time.Since(start)
		if err == nil && res.IsError {
			err = fmt.Errorf("%s returned an error: %v", tool, res.Content)
		}
		return res, d, err
	}
	// Walk 50 pages in to get a deep cursor.
	cursor := ""
	for range 50 {
		res, _, err := call("search_events", map[string]any{"limit": 50, "cursor": cursor})
		if err != nil {
			return nil, err
		}
		next, _ := res.StructuredContent.(map[string]any)["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	out := map[string]result{}
	for _, bc := range cases {
		var times []time.Duration
		for i := range n + 5 {
			_, d, err := call(bc.tool, bc.args(cursor))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", bc.name, err)
			}
			if i >= 5 { // warm-up
				times = append(times, d)
			}
		}
		slices.Sort(times)
		out[bc.name] = result{p50: times[len(times)/2], p95: times[len(times)*95/100], max: times[len(times)-1]}
	}
	return out, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }

func report(path string, small, large, n int, res map[int]map[string]result) error {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# MCP tool latency over big tables\n\nWritten by `make bench-mcp` (cmd/mcpbench); do not edit by hand.\n\n")
	fmt.Fprintf(&b, "Each tool called %d times (after 5 warm-up calls) through mcp-go's client over stdio against\n", n)
	fmt.Fprintf(&b, "`df-middleware mcp --no-sidecar --read-only`, first with %d rows in `webhook_events` and in `sync_log`,\n", small)
	fmt.Fprintf(&b, "then with %d. Latency includes the stdio round trip. Target: p95 ≤ 50 ms at %d rows, and no tool\n", large, large)
	fmt.Fprintf(&b, "whose time grows with table size (ratio of p95 large ÷ small near 1).\n\n")
	fmt.Fprintf(&b, "| tool call | p50 @%dk | p95 @%dk | p50 @%dk | p95 @%dk | max @%dk | p95 ratio | met? |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n",
		small/1000, small/1000, large/1000, large/1000, large/1000)
	for _, bc := range cases {
		s, l := res[small][bc.name], res[large][bc.name]
		ratio := float64(l.p95) / float64(max(s.p95, time.Microsecond))
		met := "yes"
		if l.p95 > 50*time.Millisecond {
			met = "**no**"
		}
		fmt.Fprintf(&b, "| %s | %s ms | %s ms | %s ms | %s ms | %s ms | %.2f | %s |\n", bc.name, ms(s.p50), ms(s.p95), ms(l.p50), ms(l.p95), ms(l.max), ratio, met)
	}
	fmt.Fprintf(&b, "\nMachine: %s, %s, %s.\n", host, time.Now().UTC().Format("2006-01-02 15:04 UTC"), "2 cores (shared with the PostgreSQL server)")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
