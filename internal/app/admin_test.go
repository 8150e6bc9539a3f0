package app_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/queue"
	"github.com/df-middleware/df-middleware/internal/store"
)

func TestAdminAuth(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	routes := []struct{ method, path string }{
		{"POST", "/api/jobs/process-pending"},
		{"GET", "/api/admin/events"},
		{"GET", "/api/admin/events/00000000-0000-0000-0000-000000000000"},
		{"POST", "/api/admin/events/00000000-0000-0000-0000-000000000000/replay"},
		{"POST", "/api/admin/events/00000000-0000-0000-0000-000000000000/quarantine"},
		{"POST", "/api/admin/events/00000000-0000-0000-0000-000000000000/release"},
	}
	creds := map[string]http.Header{
		"missing":           nil,
		"wrong":             {"Authorization": {"Bearer " + adminSecret + "x"}},
		"prefix of secret":  {"Authorization": {"Bearer " + adminSecret[:10]}},
		"basic not bearer":  {"Authorization": {"Basic " + adminSecret}},
		"secret no scheme":  {"Authorization": {adminSecret}},
		"empty bearer":      {"Authorization": {"Bearer "}},
		"lowercase scheme?": {"Authorization": {"bearer x"}},
	}
	for _, rt := range routes {
		for name, hdr := range creds {
			if r := h.do(rt.method, rt.path, hdr, nil); r.code != http.StatusUnauthorized {
				t.Errorf("%s %s with %s credentials: %d, want 401", rt.method, rt.path, name, r.code)
			}
		}
	}
	if !strings.Contains(h.logs.String(), `"status":401`) {
		t.Fatal("401s were not logged")
	}
	for _, secret := range []string{adminSecret, webhookSecret, alowareBearer, alowarePass} {
		if strings.Contains(h.logs.String(), secret) {
			t.Fatalf("a configured secret appears in the logs")
		}
	}
}

func TestAdminAPIOffWithoutSecret(t *testing.T) {
	t.Parallel()
	h := start(t, map[string]string{"DF_ADMIN_SECRET": ""})
	r := h.do("GET", "/api/admin/events", http.Header{"Authorization": {"Bearer "}}, nil)
	if r.code != http.StatusServiceUnavailable || !strings.Contains(r.raw, "DF_ADMIN_SECRET") {
		t.Fatalf("admin without secret: %d %s", r.code, r.raw)
	}
}

func TestAdminEventLifecycle(t *testing.T) {
	t.Parallel()
	// Workers off, so the event stays where the operator puts it.
	h := start(t, map[string]string{"DF_WORKERS": "0"})
	body := []byte(`{"eventType":"message.received","messageId":"life-1","from":"+13105550100"}`)
	id := h.do("POST", "/api/webhooks/texting", signTexting(body), body).body["id"].(string)
	base := "/api/admin/events/" + id

	steps := []struct {
		path, body  string
		wantCode    int
		wantStatus  string // event status after a 200, or current_status in a 409
		wantAllowed string
	}{
		{"/replay", "", http.StatusConflict, "pending", "done"},
		{"/release", "", http.StatusConflict, "pending", "quarantined"},
		{"/quarantine", "", http.StatusBadRequest, "", ""},
		{"/quarantine", `{"reason":"  "}`, http.StatusBadRequest, "", ""},
		{"/quarantine", `not json`, http.StatusBadRequest, "", ""},
		{"/quarantine", `{"reason":"duplicate of another delivery"}`, http.StatusOK, "quarantined", ""},
		{"/quarantine", `{"reason":"again"}`, http.StatusConflict, "quarantined", "pending"},
		{"/replay", "", http.StatusConflict, "quarantined", "error"},
		{"/release", "", http.StatusOK, "pending", ""},
	}
	for i, s := range steps {
		r := h.admin("POST", base+s.path, s.body)
		if r.code != s.wantCode {
			t.Fatalf("step %d %s %s: %d %s, want %d", i, s.path, s.body, r.code, r.raw, s.wantCode)
		}
		switch s.wantCode {
		case http.StatusOK:
			ev := r.body["event"].(map[string]any)
			if ev["status"] != s.wantStatus {
				t.Fatalf("step %d: status %v, want %s", i, ev["status"], s.wantStatus)
			}
		case http.StatusConflict:
			if r.body["current_status"] != s.wantStatus || !strings.Contains(fmt.Sprint(r.body["allowed_from"]), s.wantAllowed) {
				t.Fatalf("step %d: 409 body %s, want current %s allowed incl. %s", i, r.raw, s.wantStatus, s.wantAllowed)
			}
		}
	}

	// Finish it as error the way a worker would, then replay it.
	ctx := context.Background()
	jobs, err := h.st.ClaimJobs(ctx, "manual", 1, time.Minute)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("claim: %v %d", err, len(jobs))
	}
	if r := h.admin("POST", base+"/quarantine", `{"reason":"leased"}`); r.code != http.StatusConflict || r.body["current_status"] != "processing" {
		t.Fatalf("quarantine of a leased event: %d %s", r.code, r.raw)
	}
	if _, err := h.st.CompleteJobs(ctx, []store.Outcome{{ID: id, LeaseToken: jobs[0].LeaseToken, Status: store.StatusError, Error: "boom"}}); err != nil {
		t.Fatal(err)
	}
	r := h.admin("POST", base+"/replay", "")
	if r.code != http.StatusOK {
		t.Fatalf("replay of error event: %d %s", r.code, r.raw)
	}
	ev := r.body["event"].(map[string]any)
	if ev["status"] != "pending" || ev["attempts"].(float64) != 0 || ev["error_message"] != nil {
		t.Fatalf("replayed event %v", ev)
	}

	if r := h.admin("POST", "/api/admin/events/00000000-0000-0000-0000-000000000000/replay", ""); r.code != http.StatusNotFound {
		t.Fatalf("replay of missing event: %d", r.code)
	}
	if r := h.admin("GET", "/api/admin/events/not-a-uuid", ""); r.code != http.StatusNotFound {
		t.Fatalf("get with bad id: %d", r.code)
	}

	audit, err := h.st.ListAudit(ctx, "event:"+id, 10)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range audit {
		if a.Interface != "admin-api" || a.RequestID == "" {
			t.Fatalf("audit row %+v lacks interface or request id", a)
		}
		actions = append(actions, a.Action)
	}
	if got := strings.Join(actions, ","); got != "replay_event,release_event,quarantine_event" {
		t.Fatalf("audit actions newest first = %s", got)
	}
	if audit[2].Reason != "duplicate of another delivery" {
		t.Fatalf("quarantine reason in audit = %q", audit[2].Reason)
	}
}

func TestAdminListingFiltersAndPages(t *testing.T) {
	t.Parallel()
	h := start(t, map[string]string{"DF_WORKERS": "0"})
	for i := range 12 {
		body := fmt.Appendf(nil, `{"eventType":"message.received","messageId":"p-%d"}`, i)
		h.do("POST", "/api/webhooks/texting", signTexting(body), body)
	}
	bc := []byte(`{"eventType":"analytics_updated","broadcastId":"b1"}`)
	h.do("POST", "/api/webhooks/broadcast", signBroadcast(bc), bc)

	seen := 0
	cursor := ""
	for range 10 {
		r := h.admin("GET", "/api/admin/events?source=texting&limit=5&cursor="+cursor, "")
		if r.code != http.StatusOK {
			t.Fatalf("list: %d %s", r.code, r.raw)
		}
		seen += len(r.body["events"].([]any))
		next, _ := r.body["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if seen != 12 {
		t.Fatalf("paged through %d texting events, want 12", seen)
	}
	r := h.admin("GET", "/api/admin/events?type=analytics_updated&status=pending&since="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "")
	if n := len(r.body["events"].([]any)); r.code != http.StatusOK || n != 1 {
		t.Fatalf("filtered list: %d, %d events", r.code, n)
	}
	for _, bad := range []string{"status=finished", "source=zapier", "limit=0", "limit=100000", "since=yesterday", "cursor=zzz"} {
		if r := h.admin("GET", "/api/admin/events?"+bad, ""); r.code != http.StatusBadRequest {
			t.Errorf("list with %s: %d, want 400", bad, r.code)
		}
	}
}

func TestProcessPendingRescuesAndWakes(t *testing.T) {
	t.Parallel()
	h := start(t, map[string]string{"DF_POLL_INTERVAL": "1h"})
	processed := make(chan string, 10)
	h.svc.Registry.Register("texting", "test.ping", "test", queue.HandlerFunc(func(ctx context.Context, j queue.Job) error {
		processed <- j.ID
		return nil
	}))
	// The leader rescues once when elected, then every 15 s: let that first
	// round pass so the rescue below is process-pending's.
	deadline := time.Now().Add(10 * time.Second)
	for !h.svc.Runner.IsLeader() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	// An event leased by a worker that died: its lease has already expired.
	var id string
	if err := h.st.Pool.QueryRow(context.Background(), `INSERT INTO webhook_events
		(source, event_type, dedupe_key, payload_json, status, attempts, locked_by, locked_until, lease_token)
		VALUES ('texting', 'test.ping', 'dead', '{}', 'processing', 1, 'dead-instance', now() - interval '1 second', gen_random_uuid())
		RETURNING id::text`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	r := h.admin("POST", "/api/jobs/process-pending", "")
	if r.code != http.StatusOK {
		t.Fatalf("process-pending: %d %s", r.code, r.raw)
	}
	if r.body["rescued"].(map[string]any)["requeued"].(float64) != 1 {
		t.Fatalf("process-pending report %s, want one lease rescued", r.raw)
	}
	select {
	case got := <-processed:
		if got != id {
			t.Fatalf("processed %s, want %s", got, id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("rescued event not processed after process-pending woke the workers")
	}
	audit, _ := h.st.ListAudit(context.Background(), "queue", 1)
	if len(audit) != 1 || audit[0].Action != "process_pending" {
		t.Fatalf("process-pending audit = %+v", audit)
	}
}
