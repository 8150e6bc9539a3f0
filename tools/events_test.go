package tools

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/df-middleware/df-middleware/internal/mcpctx"
	"github.com/df-middleware/df-middleware/internal/observe"
	"github.com/df-middleware/df-middleware/internal/store"
)

func TestSearchEventsPagesPastTheMaximum(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ids := h.insertEvents(250, textingEvent)

	seen := map[string]bool{}
	var order []searchEventsResult
	cursor := ""
	for page := 0; ; page++ {
		args := map[string]any{"limit": 100}
		if cursor != "" {
			args["cursor"] = cursor
		}
		var r searchEventsResult
		h.ok("search_events", args, &r)
		order = append(order, r)
		for _, e := range r.Events {
			if seen[e.ID] {
				t.Fatalf("event %s returned twice", e.ID)
			}
			seen[e.ID] = true
		}
		if r.Truncated != (r.NextCursor != "") {
			t.Fatalf("truncated=%v with next_cursor %q", r.Truncated, r.NextCursor)
		}
		if r.NextCursor == "" {
			break
		}
		cursor = r.NextCursor
		if page > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if len(order) != 3 || len(order[0].Events) != 100 || len(order[1].Events) != 100 || len(order[2].Events) != 50 {
		t.Fatalf("pages of %d, want 100, 100, 50", pageSizes(order))
	}
	if len(seen) != len(ids) {
		t.Fatalf("saw %d events, want %d", len(seen), len(ids))
	}
	// Newest first across pages.
	var prev *eventSummary
	for _, p := range order {
		for i := range p.Events {
			e := &p.Events[i]
			if prev != nil && (e.ReceivedAt.After(prev.ReceivedAt) || e.ReceivedAt.Equal(prev.ReceivedAt) && e.ID > prev.ID) {
				t.Fatalf("order broken: %s/%s after %s/%s", e.ReceivedAt, e.ID, prev.ReceivedAt, prev.ID)
			}
			prev = e
		}
	}
	var def searchEventsResult
	h.ok("search_events", nil, &def)
	if len(def.Events) != 20 || !def.Truncated {
		t.Fatalf("default page: %d events, truncated %v; want 20, true", len(def.Events), def.Truncated)
	}
	if msg := h.fails("search_events", map[string]any{"limit": 101}); !strings.Contains(msg, "between 1 and 100") {
		t.Errorf("over the maximum: %q", msg)
	}
	if msg := h.fails("search_events", map[string]any{"cursor": "bm90LWEtY3Vyc29y"}); !strings.Contains(msg, "without cursor") {
		t.Errorf("bad cursor: %q", msg)
	}
}

func pageSizes(pages []searchEventsResult) []int {
	var out []int
	for _, p := range pages {
		out = append(out, len(p.Events))
	}
	return out
}

func TestSearchEventsFilters(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ids := h.insertEvents(30, func(i int) store.NewEvent {
		e := textingEvent(i)
		if i%3 == 0 {
			e.Source, e.EventType, e.EntityType, e.EntityID = "ghl", "ContactCreate", "contact", fmt.Sprintf("ghl-%d", i)
			e.DedupeKey = fmt.Sprintf("ghl:%d", i)
			e.Payload = []byte(fmt.Sprintf(`{"id":"ghl-%d","email":"Person%d@Example.com"}`, i, i))
		}
		return e
	})
	h.exec(`UPDATE webhook_events SET status = 'error', error_message = 'aloware 422: invalid phone' WHERE id = ANY($1)`, []string{ids[3], ids[4]})
	h.exec(`UPDATE webhook_events SET received_at = now() - interval '3 days' WHERE id = $1`, ids[6])

	count := func(args map[string]any) []eventSummary {
		t.Helper()
		var r searchEventsResult
		h.ok("search_events", args, &r)
		return r.Events
	}
	if got := count(map[string]any{"source": "ghl"}); len(got) != 10 {
		t.Errorf("source=ghl: %d events, want 10", len(got))
	}
	errs := count(map[string]any{"status": "error"})
	if len(errs) != 2 || errs[0].Error != "aloware 422: invalid phone" {
		t.Errorf("status=error: %+v", errs)
	}
	if got := count(map[string]any{"status": "pending", "event_type": "message.received"}); len(got) != 19 {
		t.Errorf("pending message.received: %d, want 19", len(got))
	}
	if got := count(map[string]any{"entity_type": "contact", "entity_id": "ghl-9"}); len(got) != 1 || got[0].ID != ids[9] {
		t.Errorf("entity lookup: %+v", got)
	}
	if got := count(map[string]any{"entity_id": "ghl-9"}); len(got) != 1 {
		t.Errorf("bare entity id: %+v", got)
	}
	if got := count(map[string]any{"payload_contains": "person12@example"}); len(got) != 1 || got[0].ID != ids[12] {
		t.Errorf("payload_contains is case-insensitive: %+v", got)
	}
	if got := count(map[string]any{"since": "1d"}); len(got) != 20 { // default limit
		t.Errorf("since=1d: %d", len(got))
	}
	if got := count(map[string]any{"until": "2d", "source": "ghl"}); len(got) != 1 || got[0].ID != ids[6] {
		t.Errorf("until=2d: %+v", got)
	}
	if msg := h.fails("search_events", map[string]any{"since": "last tuesday"}); !strings.Contains(msg, "RFC 3339") {
		t.Errorf("bad since: %q", msg)
	}
	if msg := h.fails("search_events", map[string]any{"status": "broken"}); !strings.Contains(msg, "status must be one of") {
		t.Errorf("bad status: %q", msg)
	}
}

func TestSearchEventsPayloadScanIsBounded(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ids := h.insertEvents(payloadScanCap+150, func(i int) store.NewEvent {
		e := textingEvent(i)
		if i == 5 {
			e.Payload = []byte(`{"messageId":"m5","body":"needle-in-haystack"}`)
		}
		return e
	})
	// Rows of one insert batch share received_at; make the needle the oldest.
	h.exec(`UPDATE webhook_events SET received_at = now() - interval '1 hour' WHERE id = $1`, ids[5])
	var first searchEventsResult
	h.ok("search_events", map[string]any{"payload_contains": "needle-in"}, &first)
	if len(first.Events) != 0 || !first.ScanLimited || !first.Truncated || first.NextCursor == "" {
		t.Fatalf("first call should stop at the scan cap with a cursor: %+v", first)
	}
	var second searchEventsResult
	text := h.ok("search_events", map[string]any{"payload_contains": "needle-in", "cursor": first.NextCursor}, &second)
	if len(second.Events) != 1 || second.ScanLimited || second.Truncated {
		t.Fatalf("second call should find the event and end: %+v", second)
	}
	if !strings.Contains(text, second.Events[0].ID) {
		t.Errorf("text lacks the event id: %s", text)
	}
}

func TestGetEvent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	big := strings.Repeat("x", maxPayloadBytes)
	ids := h.insertEvents(2, func(i int) store.NewEvent {
		e := store.NewEvent{Source: "ghl", EventType: "ContactCreate", EntityType: "contact", EntityID: "ghl-1", DedupeKey: fmt.Sprintf("ghl:k%d", i),
			Payload:     []byte(`{"id":"ghl-1","note":"safe\u202Egnp.exe \u200Bhidden \u001b[31mred","firstName":"Ann"}`),
			TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", RequestID: "req-1"}
		if i == 1 {
			e.Payload = []byte(`{"big":"` + big + `"}`)
		}
		return e
	})
	if err := h.st.InsertSyncLog(context.Background(), store.SyncLogEntry{Direction: "ghl_to_aloware", EntityType: "contact", EntityID: "ghl-1",
		SourceID: "ghl-1", Status: store.SyncError, StartedAt: time.Now().Add(-time.Second), ErrorMessage: "aloware 500\x1b[0m", CorrelationID: ids[0]}); err != nil {
		t.Fatal(err)
	}
	h.exec(`UPDATE webhook_events SET status = 'error', attempts = 10, error_message = 'gave up after 10 attempts' WHERE id = $1`, ids[0])

	var r getEventResult
	text := h.ok("get_event", map[string]any{"id": ids[0]}, &r)
	if r.Event.ID != ids[0] || r.Event.Status != "error" || r.Event.Attempts != 10 || r.Event.Error != "gave up after 10 attempts" {
		t.Errorf("event = %+v", r.Event)
	}
	if !r.Payload.Untrusted || strings.ContainsAny(r.Payload.Text, "\u202E\u200B\x1b") || !strings.Contains(r.Payload.Text, "safegnp.exe hidden") {
		t.Errorf("payload not sanitized: %q", r.Payload.Text)
	}
	if !strings.Contains(text, "untrusted data from ghl") || !strings.Contains(text, "<<<") {
		t.Errorf("text does not mark the payload as untrusted:\n%s", text)
	}
	if r.Trace.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || r.Trace.RequestID != "req-1" {
		t.Errorf("trace = %+v", r.Trace)
	}
	if !r.Handler.Registered || !strings.Contains(r.Handler.Description, "Aloware") {
		t.Errorf("handler = %+v", r.Handler)
	}
	if len(r.SyncLog) != 1 || r.SyncLog[0].Error != "aloware 500" || r.SyncLog[0].CorrelationID != ids[0] {
		t.Errorf("sync_log = %+v", r.SyncLog)
	}
	if strings.Join(r.AllowedActions, ",") != "replay_event,quarantine_event" {
		t.Errorf("allowed actions = %v", r.AllowedActions)
	}

	var bigEvent getEventResult
	h.ok("get_event", map[string]any{"id": ids[1]}, &bigEvent)
	if !bigEvent.Payload.Truncated || !bigEvent.Truncated || len(bigEvent.Payload.Text) != maxPayloadBytes || bigEvent.Payload.Bytes <= maxPayloadBytes {
		t.Errorf("big payload: truncated %v, %d of %d bytes", bigEvent.Payload.Truncated, len(bigEvent.Payload.Text), bigEvent.Payload.Bytes)
	}

	for _, id := range []string{"00000000-0000-0000-0000-000000000000", "not-a-uuid"} {
		if msg := h.fails("get_event", map[string]any{"id": id}); !strings.Contains(msg, "no event with id") || !strings.Contains(msg, "search_events") {
			t.Errorf("missing event %s: %q", id, msg)
		}
	}
}

type auditRecord struct {
	actor, iface, action, target, reason string
	details, requestID, traceID          string
}

func (h *harness) audit(target string) []auditRecord {
	h.t.Helper()
	rows, err := h.st.Pool.Query(context.Background(), `SELECT actor, interface, action, target, coalesce(reason, ''), coalesce(details::text, ''),
			coalesce(request_id, ''), coalesce(trace_id, '')
		FROM audit_log WHERE $1 = '' OR target = $1 ORDER BY id`, target)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	var out []auditRecord
	for rows.Next() {
		var a auditRecord
		if err := rows.Scan(&a.actor, &a.iface, &a.action, &a.target, &a.reason, &a.details, &a.requestID, &a.traceID); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func TestEventTransitionsAreAuditedWithTheCaller(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ids := h.insertEvents(2, textingEvent)
	h.exec(`UPDATE webhook_events SET status = 'error', error_message = 'boom' WHERE id = $1`, ids[0])
	// Over HTTP the call runs under the request's id and a span: the audit
	// row carries both.
	traceID := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: trace.FlagsSampled})
	httpCaller := trace.ContextWithSpanContext(observe.WithRequestID(ctxAs(mcpctx.HTTP, "clerk:user_42"), "req-audit-1"), sc)

	var r transitionResult
	text := h.okCtx(httpCaller, "replay_event", map[string]any{"id": ids[0], "reason": "fixed the phone format"}, &r)
	if r.PreviousStatus != "error" || r.Event.Status != "pending" || r.Actor != "clerk:user_42" || r.Interface != "mcp-http" {
		t.Errorf("replay = %+v", r)
	}
	if !strings.Contains(text, "error → pending") {
		t.Errorf("text: %s", text)
	}
	a := h.audit("event:" + ids[0])
	if len(a) != 1 || a[0].actor != "clerk:user_42" || a[0].iface != "mcp-http" || a[0].action != "replay_event" || a[0].reason != "fixed the phone format" ||
		a[0].requestID != "req-audit-1" || a[0].traceID != traceID.String() {
		t.Errorf("audit = %+v", a)
	}

	msg := h.fails("replay_event", map[string]any{"id": ids[0]})
	if !strings.Contains(msg, "is pending") || !strings.Contains(msg, "done, skipped, error") {
		t.Errorf("replaying a pending event: %q", msg)
	}
	if msg := h.fails("quarantine_event", map[string]any{"id": ids[1]}); !strings.Contains(msg, "reason is required") {
		t.Errorf("quarantine without reason: %q", msg)
	}
	if msg := h.fails("quarantine_event", map[string]any{"id": ids[1], "reason": "   "}); !strings.Contains(msg, "needs a reason") {
		t.Errorf("quarantine with a blank reason: %q", msg)
	}
	stdio := ctxAs(mcpctx.Stdio, "local")
	h.okCtx(stdio, "quarantine_event", map[string]any{"id": ids[1], "reason": "poison payload"}, &r)
	if r.Event.Status != "quarantined" {
		t.Errorf("quarantine = %+v", r)
	}
	if msg := h.fails("quarantine_event", map[string]any{"id": ids[1], "reason": "again"}); !strings.Contains(msg, "release_event") {
		t.Errorf("quarantining twice should point at release_event: %q", msg)
	}
	h.okCtx(stdio, "release_event", map[string]any{"id": ids[1]}, &r)
	if r.PreviousStatus != "quarantined" || r.Event.Status != "pending" {
		t.Errorf("release = %+v", r)
	}
	a = h.audit("event:" + ids[1])
	if len(a) != 2 || a[0].action != "quarantine_event" || a[0].reason != "poison payload" || a[1].action != "release_event" || a[0].iface != "mcp-stdio" {
		t.Errorf("audit = %+v", a)
	}
	if msg := h.fails("release_event", map[string]any{"id": "00000000-0000-0000-0000-000000000001"}); !strings.Contains(msg, "search_events") {
		t.Errorf("release of a missing event: %q", msg)
	}
}

func TestReplayEventsDryRunThenRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ids := h.insertEvents(40, textingEvent)
	h.exec(`UPDATE webhook_events SET status = 'error', error_message = 'upstream 500', processed_at = now() WHERE id = ANY($1)`, ids[:25])
	h.exec(`UPDATE webhook_events SET event_type = 'message.sent' WHERE id = ANY($1)`, ids[:5])

	var dry replayEventsResult
	text := h.ok("replay_events", map[string]any{"status": "error", "event_type": "message.received"}, &dry)
	if !dry.DryRun || dry.Matched != 20 || dry.WouldReplay != 20 || dry.Replayed != 0 || len(dry.SampleIDs) != replayDrySample || dry.ScanLimited {
		t.Fatalf("dry run = %+v", dry)
	}
	if !strings.Contains(text, "Nothing was changed") {
		t.Errorf("dry-run text: %s", text)
	}
	if n := h.countStatus("error"); n != 25 {
		t.Fatalf("dry run changed something: %d errors left", n)
	}
	if len(h.audit("")) != 0 {
		t.Fatal("a dry run wrote audit rows")
	}

	var run replayEventsResult
	ctx := ctxAs(mcpctx.HTTP, "token")
	h.okCtx(ctx, "replay_events", map[string]any{"status": "error", "event_type": "message.received", "dry_run": false, "max": 15, "reason": "upstream fixed"}, &run)
	if run.DryRun || run.Replayed != 15 || len(run.SampleIDs) != 15 || !run.Audited {
		t.Fatalf("run = %+v", run)
	}
	if n := h.countStatus("error"); n != 10 {
		t.Fatalf("%d errors left, want 10", n)
	}
	a := h.audit("")
	if len(a) != 16 {
		t.Fatalf("%d audit rows, want 15 per-event + 1 summary", len(a))
	}
	var summary, perEvent int
	for _, row := range a {
		if row.iface != "mcp-http" || row.actor != "token" || row.reason != "upstream fixed" {
			t.Errorf("audit row %+v", row)
		}
		switch row.action {
		case "replay_events":
			summary++
			if !strings.Contains(row.details, `"replayed": 15`) || !strings.Contains(row.details, `"event_type": "message.received"`) {
				t.Errorf("summary details: %s", row.details)
			}
		case "replay_event":
			perEvent++
			if !strings.Contains(row.details, `"previous_status": "error"`) || !strings.Contains(row.details, "upstream 500") {
				t.Errorf("per-event details: %s", row.details)
			}
		}
	}
	if summary != 1 || perEvent != 15 {
		t.Errorf("%d summary and %d per-event rows", summary, perEvent)
	}

	if msg := h.fails("replay_events", map[string]any{"status": "error", "max": 1001}); !strings.Contains(msg, "between 1 and 1000") {
		t.Errorf("max over the cap: %q", msg)
	}
	if msg := h.fails("replay_events", map[string]any{"source": "ghl"}); !strings.Contains(msg, "status is required") {
		t.Errorf("missing status: %q", msg)
	}
	if msg := h.fails("replay_events", map[string]any{"status": "pending"}); !strings.Contains(msg, "error, skipped, done") && !strings.Contains(msg, "done, skipped, error") {
		t.Errorf("pending is not replayable: %q", msg)
	}
}

func (h *harness) countStatus(status string) int {
	h.t.Helper()
	var n int
	if err := h.st.Pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_events WHERE status = $1`, status).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func TestProcessPending(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ids := h.insertEvents(3, textingEvent)
	h.exec(`UPDATE webhook_events SET next_attempt_at = now() + interval '1 hour', attempts = 2 WHERE id = $1`, ids[0])
	h.exec(`UPDATE webhook_events SET status = 'processing', attempts = 1, locked_by = 'gone', locked_until = now() - interval '1 minute',
		lease_token = gen_random_uuid() WHERE id = $1`, ids[1])

	var r processPendingResult
	h.okCtx(ctxAs(mcpctx.Stdio, "local"), "process_pending", map[string]any{"due_now": true}, &r)
	if r.Requeued != 1 || r.MadeDue != 1 || r.DuePending != 3 || !r.Audited {
		t.Fatalf("process_pending = %+v", r)
	}
	a := h.audit("queue")
	if len(a) != 1 || a[0].action != "process_pending" || a[0].iface != "mcp-stdio" || a[0].actor != "local" {
		t.Fatalf("audit = %+v", a)
	}

	noWorkers := newHarnessOn(t, h.st, withoutRunner())
	if msg := noWorkers.fails("process_pending", nil); !strings.Contains(msg, "workers are unavailable") {
		t.Errorf("without a runner: %q", msg)
	}
}
