package tools

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/store"
)

func TestCheckHealth(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var r healthResult
	text := h.ok("check_health", nil, &r)
	if r.Status != "ok" || len(r.Dependencies) != 2 {
		t.Fatalf("health = %+v", r)
	}
	if r.Dependencies[0].Name != "database" || r.Dependencies[0].Status != "ok" || r.Dependencies[0].LatencyMS <= 0 {
		t.Errorf("database check = %+v", r.Dependencies[0])
	}
	if r.Dependencies[1].Name != "verity_api" || r.Dependencies[1].Status != "not_configured" || !strings.Contains(r.Dependencies[1].Message, "VERITY_BASE_URL") {
		t.Errorf("verity check = %+v", r.Dependencies[1])
	}
	if !strings.Contains(text, "Service health: ok") || len(r.NextSteps) == 0 {
		t.Errorf("text:\n%s", text)
	}
	if msg := h.fails("check_health", map[string]any{"verbose": true}); !strings.Contains(msg, `unknown argument "verbose"`) || !strings.Contains(msg, "none") {
		t.Errorf("unknown argument: %q", msg)
	}
	noHealth := newHarnessOn(t, h.st, func(d *Deps, _ *Options) { d.Health = nil })
	if msg := noHealth.fails("check_health", nil); !strings.Contains(msg, "not available") {
		t.Errorf("without health: %q", msg)
	}
}

func TestQueueStatus(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	ids := h.insertEvents(12, func(i int) store.NewEvent {
		e := textingEvent(i)
		if i >= 8 {
			e.Source, e.DedupeKey = "ghl", fmt.Sprintf("ghl:%d", i)
		}
		return e
	})
	// Finish four through the queue's own statements, so the rollup
	// trigger counts them as a worker's finishes would be.
	jobs, err := h.st.ClaimJobs(ctx, "w1", 4, time.Minute)
	if err != nil || len(jobs) != 4 {
		t.Fatalf("claim: %d jobs, %v", len(jobs), err)
	}
	var outs []store.Outcome
	for i, j := range jobs {
		status := store.StatusDone
		if i == 3 {
			status = store.StatusError
		}
		outs = append(outs, store.Outcome{ID: j.ID, LeaseToken: j.LeaseToken, Status: status})
	}
	if _, err := h.st.CompleteJobs(ctx, outs); err != nil {
		t.Fatal(err)
	}
	h.exec(`UPDATE webhook_events SET next_attempt_at = now() + interval '5 min', attempts = 1 WHERE id = $1`, ids[4])
	h.exec(`UPDATE webhook_events SET next_attempt_at = now() - interval '20 min' WHERE id = $1`, ids[5])
	h.exec(`UPDATE webhook_events SET status = 'processing', locked_by = 'gone', locked_until = now() - interval '1 min', lease_token = gen_random_uuid() WHERE id = $1`, ids[6])
	h.exec(`UPDATE webhook_events SET status = 'quarantined', quarantine_reason = 'x' WHERE id = $1`, ids[7])

	var r queueStatusResult
	text := h.ok("get_queue_status", nil, &r)
	want := queueTotals{Pending: 6, Due: 5, WaitingForRetry: 1, Processing: 1, ExpiredLeases: 1, Error: 1, Quarantined: 1}
	if r.Totals != want {
		t.Errorf("totals = %+v, want %+v", r.Totals, want)
	}
	if r.OldestDue == nil || r.OldestDue.EventID != ids[5] || r.OldestDue.DueForSeconds < 1190 {
		t.Errorf("oldest due = %+v", r.OldestDue)
	}
	if len(r.ExpiredLeaseSample) != 1 || r.ExpiredLeaseSample[0] != ids[6] {
		t.Errorf("expired sample = %v", r.ExpiredLeaseSample)
	}
	if r.Rate.Finished5m != 4 || r.Rate.PerMinute5m <= 0 || r.Rate.Finished60m != 4 {
		t.Errorf("rate = %+v", r.Rate)
	}
	p := r.Processing
	if p.Finished != 4 || p.ByStatus["done"] != 3 || p.ByStatus["error"] != 1 || p.P95MS < p.P50MS || p.MaxMS < p.P95MS || p.AvgMS <= 0 {
		t.Errorf("processing = %+v", p)
	}
	if !r.Workers.InThisProcess || r.Workers.Running || r.Workers.InstanceID != "test-instance" {
		t.Errorf("workers = %+v", r.Workers)
	}
	if len(r.LowerBounds) != 0 {
		t.Errorf("lower bounds = %v", r.LowerBounds)
	}
	for _, want := range []string{"6 pending", "Finished per minute", "Oldest due: " + ids[5]} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	var sources []string
	for _, l := range r.Live {
		sources = append(sources, l.Source+"/"+l.Status)
	}
	if strings.Join(sources, ",") != "ghl/pending,texting/pending,texting/processing" {
		t.Errorf("live rows = %v", sources)
	}
	var hour queueStatusResult
	h.ok("get_queue_status", map[string]any{"window": "1h"}, &hour)
	if hour.Processing.WindowMinutes != 60 || hour.Processing.Finished != 4 {
		t.Errorf("window 1h: %+v", hour.Processing)
	}
	if msg := h.fails("get_queue_status", map[string]any{"window": "2d"}); !strings.Contains(msg, "at most 24h") {
		t.Errorf("bad window: %q", msg)
	}
}

func TestListAlerts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var empty alertsResult
	h.ok("list_alerts", nil, &empty)
	if !strings.Contains(empty.Note, "later issue") || len(empty.Alerts) != 0 || len(empty.History) != 0 {
		t.Fatalf("empty alerts = %+v", empty)
	}

	h.exec(`INSERT INTO alert_state (fingerprint, rule, severity, labels, state, value, active_since, fired_at) VALUES
		('a', 'QueueDepthWarning', 'warning', '{"queue":"webhook_events"}', 'inactive', 10, NULL, NULL),
		('b', 'QueueDepthCritical', 'critical', '{"queue":"webhook_events"}', 'firing', 1500, now() - interval '10 min', now() - interval '5 min'),
		('c', 'ErrorRateWarning', 'warning', '{}', 'pending', 0.02, now() - interval '1 min', NULL)`)
	h.exec(`INSERT INTO alert_history (fingerprint, rule, severity, state, value, at, annotations)
		SELECT 'b', 'QueueDepthCritical', 'critical', CASE WHEN g % 2 = 0 THEN 'firing' ELSE 'resolved' END, g,
			now() - make_interval(mins => g), '{"summary":"queue depth above 1000"}' FROM generate_series(1, 130) g`)
	var r alertsResult
	text := h.ok("list_alerts", map[string]any{"limit": 100}, &r)
	if r.Firing != 1 || r.Pending != 1 || len(r.Alerts) != 3 || r.Alerts[0].State != "firing" || r.Alerts[1].State != "pending" {
		t.Fatalf("alerts = %+v", r.Alerts)
	}
	if r.Alerts[0].Labels["queue"] != "webhook_events" || r.Alerts[0].Value == nil || *r.Alerts[0].Value != 1500 {
		t.Errorf("firing alert = %+v", r.Alerts[0])
	}
	if len(r.History) != 100 || !r.Truncated || r.NextCursor == "" || r.History[0].Summary != "queue depth above 1000" || r.Note != "" {
		t.Fatalf("history page: %d rows, truncated %v, note %q", len(r.History), r.Truncated, r.Note)
	}
	if !strings.Contains(text, "1 firing, 1 pending") {
		t.Errorf("text:\n%s", text)
	}
	var next alertsResult
	h.ok("list_alerts", map[string]any{"limit": 100, "cursor": r.NextCursor}, &next)
	if len(next.History) != 30 || next.Truncated || len(next.Alerts) != 0 || !next.History[0].At.Before(r.History[99].At) {
		t.Fatalf("second history page: %d rows, truncated %v", len(next.History), next.Truncated)
	}
	if msg := h.fails("list_alerts", map[string]any{"cursor": "garbage!"}); !strings.Contains(msg, "without cursor") {
		t.Errorf("bad cursor: %q", msg)
	}
}

func TestListErrorGroups(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var none errorGroupsResult
	if text := h.ok("list_error_groups", nil, &none); len(none.Groups) != 0 || !strings.Contains(text, "No error groups") {
		t.Fatalf("empty: %+v %s", none, text)
	}
	// 130 groups; ten share one last_seen to exercise the keyset tie-break.
	h.exec(`INSERT INTO error_groups (fingerprint, component, error_class, sample_message, first_seen, last_seen, count, last_event_id)
		SELECT 'fp' || lpad(g::text, 3, '0'), CASE WHEN g % 2 = 0 THEN 'sync' ELSE 'queue' END, 'UpstreamError',
			'aloware 500 for contact ' || g || E'\u202e', now() - interval '1 day',
			CASE WHEN g <= 10 THEN now() - interval '1 hour' ELSE now() - make_interval(mins => g) END, g, gen_random_uuid()
		FROM generate_series(1, 130) g`)
	seen := map[string]bool{}
	cursor := ""
	var pages []int
	for {
		args := map[string]any{"limit": 100}
		if cursor != "" {
			args["cursor"] = cursor
		}
		var r errorGroupsResult
		h.ok("list_error_groups", args, &r)
		pages = append(pages, len(r.Groups))
		for i, g := range r.Groups {
			if seen[g.Fingerprint] {
				t.Fatalf("%s twice", g.Fingerprint)
			}
			seen[g.Fingerprint] = true
			if strings.Contains(g.SampleMessage, "\u202e") {
				t.Fatalf("sample message not sanitized: %q", g.SampleMessage)
			}
			if i > 0 && g.LastSeen.After(r.Groups[i-1].LastSeen) {
				t.Fatal("not ordered by last_seen")
			}
		}
		if r.NextCursor == "" {
			break
		}
		cursor = r.NextCursor
	}
	if len(seen) != 130 || len(pages) != 2 || pages[0] != 100 {
		t.Fatalf("pages %v, %d groups", pages, len(seen))
	}
	var sync errorGroupsResult
	h.ok("list_error_groups", map[string]any{"component": "sync", "limit": 100}, &sync)
	if len(sync.Groups) != 65 || sync.Truncated {
		t.Errorf("component=sync: %d groups, truncated %v", len(sync.Groups), sync.Truncated)
	}
}

func TestDBPerformance(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.insertEvents(5, textingEvent)
	var r dbPerformanceResult
	text := h.ok("get_db_performance", map[string]any{"limit": 3, "order_by": "total"}, &r)
	if r.StatementsAvailable == (r.StatementsNote != "") {
		t.Errorf("statements available %v with note %q", r.StatementsAvailable, r.StatementsNote)
	}
	if !r.StatementsAvailable && (!strings.Contains(r.StatementsNote, "shared_preload_libraries") || !strings.Contains(r.StatementsNote, "CREATE EXTENSION")) {
		t.Errorf("note does not say how to enable pg_stat_statements: %q", r.StatementsNote)
	}
	var names []string
	for _, tb := range r.Tables {
		names = append(names, tb.Table)
	}
	for _, want := range []string{"webhook_events", "sync_log", "audit_log", "event_finish_rollup", "sync_log_rollup"} {
		if !strings.Contains(strings.Join(names, ","), want) {
			t.Errorf("tables lack %s: %v", want, names)
		}
	}
	if len(r.Indexes) != 3 || !r.Truncated {
		t.Errorf("indexes: %d, truncated %v", len(r.Indexes), r.Truncated)
	}
	if !strings.Contains(text, "webhook_events:") {
		t.Errorf("text:\n%s", text)
	}
	if msg := h.fails("get_db_performance", map[string]any{"order_by": "p99"}); !strings.Contains(msg, "mean, total") {
		t.Errorf("bad order_by: %q", msg)
	}
}
