package tools

import (
	"context"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/store"
)

// perfFill loads 1,000,000 webhook_events (7 days, 95% done, 3% skipped,
// 1% error, 0.8% pending, 0.1% processing with expired leases, 0.1%
// quarantined, ~1 KiB payloads) and 1,000,000 sync_log rows (7 days, 90%
// success, 7% error), plus 5,000 error groups. Rows are inserted in time
// order, as intake would.
const perfFill = `
INSERT INTO webhook_events (source, event_type, entity_type, entity_id, dedupe_key, payload_json, received_at, status, attempts,
	next_attempt_at, processed_at, error_message, locked_by, locked_until, lease_token)
SELECT src, src || '.' || (ARRAY['created','updated','deleted','received','sent','disposed'])[1 + (g % 6)],
	'contact', 'c' || (g::bigint * 7919 % 50000), 'perf:' || g,
	jsonb_build_object('id', 'c' || (g::bigint * 7919 % 50000), 'type', 'ContactUpdate', 'phone', '+1310555' || lpad((g % 10000)::text, 4, '0'),
		'email', 'user' || g || '@example.com', 'body', repeat('lorem ipsum dolor sit amet ', 30) || ' token' || g),
	ts, st, CASE WHEN st IN ('done', 'skipped') THEN 1 WHEN st = 'error' THEN 10 ELSE 0 END,
	CASE WHEN st = 'pending' AND g % 2 = 0 THEN now() + interval '10 min' ELSE ts END,
	CASE WHEN st IN ('done', 'skipped', 'error') THEN ts + (random() * interval '3 s') END,
	CASE WHEN st = 'error' THEN 'gave up after 10 attempts: upstream 500' END,
	CASE WHEN st = 'processing' THEN 'w1' END,
	CASE WHEN st = 'processing' THEN now() - interval '1 min' END,
	CASE WHEN st = 'processing' THEN gen_random_uuid() END
FROM (SELECT g, (ARRAY['ghl','ghl','ghl','ghl','aloware','aloware','aloware','texting','texting','broadcast'])[1 + (g % 10)] AS src,
		now() - interval '7 days' + (g * interval '7 days' / 1000000) AS ts,
		CASE WHEN g % 1000 < 950 THEN 'done' WHEN g % 1000 < 980 THEN 'skipped' WHEN g % 1000 < 990 THEN 'error'
			WHEN g % 1000 < 998 THEN 'pending' WHEN g % 1000 < 999 THEN 'processing' ELSE 'quarantined' END AS st
	FROM generate_series(1, 1000000) g) s;
INSERT INTO sync_log (direction, entity_type, entity_id, source_id, target_id, status, started_at, finished_at, error_message)
SELECT (ARRAY['ghl_to_aloware','aloware_to_ghl','texting_to_ghl','ghl_to_store','texting_to_store','broadcast_to_store'])[1 + (g % 6)],
	(ARRAY['contact','call','message','optout'])[1 + (g % 4)],
	'c' || (g::bigint * 7919 % 50000), 'c' || (g::bigint * 7919 % 50000), 'a' || g,
	CASE WHEN g % 100 < 90 THEN 'success' WHEN g % 100 < 97 THEN 'error' ELSE 'skipped' END,
	ts, ts + (exp(random() * 7) * interval '1 ms'),
	CASE WHEN g % 100 >= 90 AND g % 100 < 97 THEN 'aloware 422: invalid phone' END
FROM (SELECT g, now() - interval '7 days' + (g * interval '7 days' / 1000000) AS ts FROM generate_series(1, 1000000) g) s;
INSERT INTO error_groups (fingerprint, component, error_class, sample_message, first_seen, last_seen, count)
SELECT 'fp' || g, (ARRAY['queue','sync','intake','upstream'])[1 + g % 4], 'E' || (g % 50), 'message ' || g,
	now() - interval '7 days', now() - make_interval(secs => g * 60), g
FROM generate_series(1, 5000) g;
`

// TestPerfLargeTables measures tool latency through the MCP client on a
// database of 1M events and 1M sync operations. It runs only when
// DF_TOOLS_PERF_DB names such a database (an empty migrated one is filled
// first, which takes about a minute):
//
//	DF_TOOLS_PERF_DB=postgres://postgres@127.0.0.1:5432/dfm_perf?sslmode=disable go test ./tools -run TestPerfLargeTables -v
func TestPerfLargeTables(t *testing.T) {
	url := os.Getenv("DF_TOOLS_PERF_DB")
	if url == "" {
		t.Skip("set DF_TOOLS_PERF_DB to a scratch database to measure tool latency on 1M rows")
	}
	ctx := context.Background()
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := st.Pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM webhook_events LIMIT 1000000) x`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n < 1000000 {
		start := time.Now()
		if _, err := st.Pool.Exec(ctx, perfFill); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"webhook_events", "sync_log", "error_groups"} {
			if _, err := st.Pool.Exec(ctx, "VACUUM ANALYZE "+table); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("filled in %s", time.Since(start).Round(time.Second))
	}
	h := newHarnessOn(t, st)

	var mid searchEventsResult
	h.ok("search_events", map[string]any{"until": "84h", "limit": 1}, &mid)
	var anEvent searchEventsResult
	h.ok("search_events", map[string]any{"status": "error", "limit": 1}, &anEvent)

	cases := []struct {
		name   string
		tool   string
		args   map[string]any
		target time.Duration // 0: no target, reported only
	}{
		{"search_events first page", "search_events", map[string]any{}, 50 * time.Millisecond},
		{"search_events first page, limit 100", "search_events", map[string]any{"limit": 100}, 50 * time.Millisecond},
		{"search_events deep page (500k rows back)", "search_events", map[string]any{"cursor": mid.NextCursor}, 50 * time.Millisecond},
		{"search_events source=broadcast", "search_events", map[string]any{"source": "broadcast"}, 50 * time.Millisecond},
		{"search_events status=error", "search_events", map[string]any{"status": "error"}, 50 * time.Millisecond},
		{"search_events entity", "search_events", map[string]any{"entity_type": "contact", "entity_id": "c123"}, 50 * time.Millisecond},
		{"search_events rare event_type (full scan cap)", "search_events", map[string]any{"event_type": "nope.none"}, 0},
		{"search_events payload_contains (full scan cap)", "search_events", map[string]any{"payload_contains": "no-such-token"}, 0},
		{"get_queue_status", "get_queue_status", map[string]any{}, 50 * time.Millisecond},
		{"get_sync_stats 24h", "get_sync_stats", map[string]any{}, 50 * time.Millisecond},
		{"get_sync_stats 7d", "get_sync_stats", map[string]any{"window": "7d"}, 0},
		{"list_error_groups", "list_error_groups", map[string]any{}, 50 * time.Millisecond},
		{"list_error_groups component", "list_error_groups", map[string]any{"component": "sync", "limit": 100}, 50 * time.Millisecond},
		{"list_sync_errors", "list_sync_errors", map[string]any{}, 0},
		{"list_sync_errors direction", "list_sync_errors", map[string]any{"direction": "aloware_to_ghl"}, 0},
		{"get_event", "get_event", map[string]any{"id": anEvent.Events[0].ID}, 0},
		{"get_contact_sync_status", "get_contact_sync_status", map[string]any{"ghl_id": "c123"}, 0},
		{"list_alerts", "list_alerts", map[string]any{}, 0},
		{"get_db_performance", "get_db_performance", map[string]any{}, 0},
		{"replay_events dry run status=done", "replay_events", map[string]any{"status": "done", "event_type": "ghl.created"}, 0},
	}
	const runs = 40
	for _, c := range cases {
		var samples []time.Duration
		for i := 0; i < runs+3; i++ {
			start := time.Now()
			res := h.call(ctx, c.tool, c.args)
			d := time.Since(start)
			if res.IsError {
				t.Fatalf("%s: %s", c.name, resultText(res))
			}
			if i >= 3 { // warm-up
				samples = append(samples, d)
			}
		}
		sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
		p50, p95 := samples[len(samples)/2], samples[len(samples)*95/100]
		verdict := ""
		if c.target > 0 {
			verdict = "ok"
			if p95 > c.target {
				verdict = "OVER TARGET"
				t.Errorf("%s: p95 %s > %s", c.name, p95, c.target)
			}
		}
		t.Logf("%-48s p50 %7.2f ms  p95 %7.2f ms  %s", c.name, ms(p50), ms(p95), verdict)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
