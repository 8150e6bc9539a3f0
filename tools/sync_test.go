package tools

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/store"
)

func (h *harness) syncLog(e store.SyncLogEntry) {
	h.t.Helper()
	if err := h.st.InsertSyncLog(context.Background(), e); err != nil {
		h.t.Fatal(err)
	}
}

func op(dir, ent, id, status string, dur time.Duration, at time.Time) store.SyncLogEntry {
	fin := at.Add(dur)
	e := store.SyncLogEntry{Direction: dir, EntityType: ent, EntityID: id, SourceID: id, Status: status, StartedAt: at, FinishedAt: &fin}
	if status == store.SyncError {
		e.ErrorMessage = "aloware 422: invalid phone " + id
	}
	return e
}

func TestSyncStats(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	now := time.Now()
	for i := range 20 {
		h.syncLog(op("ghl_to_aloware", "contact", fmt.Sprint(i), store.SyncSuccess, time.Duration(100+i)*time.Millisecond, now.Add(-time.Minute)))
	}
	for i := range 5 {
		h.syncLog(op("ghl_to_aloware", "contact", fmt.Sprint(i), store.SyncError, 2*time.Second, now.Add(-time.Minute)))
	}
	h.syncLog(op("texting_to_ghl", "message", "m1", store.SyncSkipped, 3*time.Millisecond, now.Add(-time.Minute)))
	h.syncLog(op("texting_to_ghl", "message", "m2", store.SyncSuccess, 40*time.Millisecond, now.Add(-30*time.Hour))) // outside 24 h

	var r syncStatsResult
	text := h.ok("get_sync_stats", nil, &r)
	if r.WindowHours != 24 || len(r.Rows) != 2 {
		t.Fatalf("stats = %+v", r)
	}
	g := r.Rows[0]
	if g.Direction != "ghl_to_aloware" || g.Total != 25 || g.Success != 20 || g.Error != 5 || g.SuccessRate != 0.8 {
		t.Errorf("ghl_to_aloware = %+v", g)
	}
	if g.P50MS < 100 || g.P50MS > 250 || g.P95MS < 1000 || g.P95MS > 2000 || g.MaxMS != 2000 {
		t.Errorf("durations p50 %v p95 %v max %v", g.P50MS, g.P95MS, g.MaxMS)
	}
	if tx := r.Rows[1]; tx.Total != 1 || tx.Skipped != 1 || tx.SuccessRate != 0 {
		t.Errorf("texting_to_ghl = %+v", tx)
	}
	if r.Totals.Total != 26 || r.Totals.Error != 5 {
		t.Errorf("totals = %+v", r.Totals)
	}
	if !strings.Contains(text, "fails often") || !strings.Contains(text, "list_sync_errors") {
		t.Errorf("text:\n%s", text)
	}
	var week syncStatsResult
	h.ok("get_sync_stats", map[string]any{"window": "7d", "direction": "texting_to_ghl"}, &week)
	if len(week.Rows) != 1 || week.Rows[0].Total != 2 {
		t.Errorf("week, texting_to_ghl = %+v", week.Rows)
	}
	if week.WindowHours != 168 {
		t.Errorf("7d = %d hours", week.WindowHours)
	}
	var day syncStatsResult
	h.ok("get_sync_stats", map[string]any{"window": "24h"}, &day)
	if day.WindowHours != 24 || day.Totals.Total != 26 {
		t.Errorf("24h: %d hours, %d ops", day.WindowHours, day.Totals.Total)
	}
	if msg := h.fails("get_sync_stats", map[string]any{"window": "8d"}); !strings.Contains(msg, "at most 7d") {
		t.Errorf("window too long: %q", msg)
	}
	if msg := h.fails("get_sync_stats", map[string]any{"window": "a day"}); !strings.Contains(msg, "not a duration") {
		t.Errorf("bad window: %q", msg)
	}
	if msg := h.fails("get_sync_stats", map[string]any{"window_hours": 24}); !strings.Contains(msg, `unknown argument "window_hours"`) || !strings.Contains(msg, "window") {
		t.Errorf("unknown argument: %q", msg)
	}
}

func TestListSyncErrorsPages(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	base := time.Now().Add(-time.Hour)
	for i := range 130 {
		dir := "ghl_to_aloware"
		if i%10 == 0 {
			dir = "aloware_to_ghl"
		}
		h.syncLog(op(dir, "contact", fmt.Sprintf("c%d", i), store.SyncError, time.Second, base.Add(time.Duration(i)*time.Second)))
		h.syncLog(op(dir, "contact", fmt.Sprintf("c%d", i), store.SyncSuccess, time.Second, base.Add(time.Duration(i)*time.Second)))
	}
	var first, second syncErrorsResult
	h.ok("list_sync_errors", map[string]any{"limit": 100}, &first)
	if len(first.Errors) != 100 || !first.Truncated || first.Errors[0].EntityID != "c129" {
		t.Fatalf("first page: %d, truncated %v, first %+v", len(first.Errors), first.Truncated, first.Errors[0])
	}
	h.ok("list_sync_errors", map[string]any{"limit": 100, "cursor": first.NextCursor}, &second)
	if len(second.Errors) != 30 || second.Truncated || second.Errors[29].EntityID != "c0" {
		t.Fatalf("second page: %d, truncated %v", len(second.Errors), second.Truncated)
	}
	var dir syncErrorsResult
	text := h.ok("list_sync_errors", map[string]any{"direction": "aloware_to_ghl"}, &dir)
	if len(dir.Errors) != 13 || !strings.Contains(dir.Errors[0].Error, "invalid phone") {
		t.Errorf("direction filter: %d", len(dir.Errors))
	}
	if !strings.Contains(text, "13 failed sync operations") {
		t.Errorf("text:\n%s", text)
	}
	var one syncErrorsResult
	h.ok("list_sync_errors", map[string]any{"entity_id": "c5", "since": "2h"}, &one)
	if len(one.Errors) != 1 {
		t.Errorf("entity filter: %+v", one.Errors)
	}
}

func TestContactSyncStatus(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.st.LinkContacts(ctx, "ghl-1", "alo-1", "+13105550100", "ann@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := h.st.SetOptOut(ctx, store.OptOut{PhoneE164: "+13105550100", Status: "opted_out", Keyword: "STOP", Source: "texting"}); err != nil {
		t.Fatal(err)
	}
	ids := h.insertEvents(3, func(i int) store.NewEvent {
		e := store.NewEvent{Source: "ghl", EventType: "ContactUpdate", EntityType: "contact", EntityID: "ghl-1", DedupeKey: fmt.Sprintf("g%d", i), Payload: []byte(`{}`)}
		switch i {
		case 1:
			e.Source, e.EntityID = "aloware", "alo-1"
		case 2:
			e.Source, e.EventType, e.EntityID = "texting", "message.received", "+13105550100"
		}
		return e
	})
	e := op("ghl_to_aloware", "contact", "ghl-1", store.SyncError, time.Second, time.Now())
	e.CorrelationID = ids[0]
	h.syncLog(e)
	h.syncLog(op("aloware_to_ghl", "contact", "alo-1", store.SyncSuccess, time.Second, time.Now().Add(-time.Minute)))
	h.syncLog(op("ghl_to_aloware", "contact", "ghl-2", store.SyncSuccess, time.Second, time.Now()))

	for _, args := range []map[string]any{{"phone": "(310) 555-0100"}, {"email": "ANN@example.com"}, {"ghl_id": "ghl-1"}, {"aloware_id": "alo-1"}} {
		var r contactResult
		text := h.ok("get_contact_sync_status", args, &r)
		if r.Mapping == nil || r.Mapping.GHLID != "ghl-1" || r.Mapping.AlowareID != "alo-1" {
			t.Fatalf("%v: mapping %+v", args, r.Mapping)
		}
		if r.OptOut == nil || r.OptOut.Status != "opted_out" {
			t.Errorf("%v: opt-out %+v", args, r.OptOut)
		}
		if len(r.RecentSync) != 2 || r.RecentSync[0].Status != "error" {
			t.Errorf("%v: sync %+v", args, r.RecentSync)
		}
		if len(r.RecentEvents) != 3 {
			t.Errorf("%v: events %d, want 3", args, len(r.RecentEvents))
		}
		if !strings.Contains(text, "GHL ghl-1 ↔ Aloware alo-1") || !strings.Contains(text, ids[0]) {
			t.Errorf("%v: text:\n%s", args, text)
		}
	}
	var byPhone contactResult
	h.ok("get_contact_sync_status", map[string]any{"phone": "310-555-0100"}, &byPhone)
	if byPhone.Lookup.Normalized != "+13105550100" {
		t.Errorf("normalized phone = %q", byPhone.Lookup.Normalized)
	}
	var unmapped contactResult
	h.ok("get_contact_sync_status", map[string]any{"ghl_id": "ghl-2"}, &unmapped)
	if unmapped.Mapping != nil || len(unmapped.RecentSync) != 1 || !strings.Contains(strings.Join(unmapped.NextSteps, " "), "not linked") {
		t.Errorf("unmapped contact = %+v", unmapped)
	}
	if msg := h.fails("get_contact_sync_status", map[string]any{"ghl_id": "nobody"}); !strings.Contains(msg, "no contact found") {
		t.Errorf("unknown contact: %q", msg)
	}
	if msg := h.fails("get_contact_sync_status", map[string]any{"ghl_id": "a", "email": "b@c.d"}); !strings.Contains(msg, "exactly one") {
		t.Errorf("two identifiers: %q", msg)
	}
	if msg := h.fails("get_contact_sync_status", nil); !strings.Contains(msg, "exactly one") {
		t.Errorf("no identifier: %q", msg)
	}
	if msg := h.fails("get_contact_sync_status", map[string]any{"phone": "12"}); !strings.Contains(msg, "not a possible phone number") {
		t.Errorf("bad phone: %q", msg)
	}
}
