package observe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/df-middleware/df-middleware/internal/store"
	"github.com/df-middleware/df-middleware/internal/upstream"
)

func testMetrics(t *testing.T) *Metrics {
	t.Helper()
	m := NewMetrics(zerolog.Nop())
	m.SetEventTypeLabel(func(source, eventType string) string {
		if source == "texting" && eventType == "message.received" {
			return eventType
		}
		return LabelOther
	})
	return m
}

// labels returns every label value of every series of family name.
func labels(t *testing.T, m *Metrics, name string) []map[string]string {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range s.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			out = append(out, l)
		}
	}
	return out
}

func TestLabelsStayBounded(t *testing.T) {
	m := testMetrics(t)
	m.ObserveHTTP("BREW", "", 0, time.Millisecond)
	m.ObserveHTTP("GET", "GET /api/admin/events/{id}", 404, time.Millisecond)
	m.WebhookOutcome("texting", "message.received", WebhookAccepted, "")
	m.WebhookOutcome("texting", "evil-type-123", WebhookAccepted, "")
	m.WebhookOutcome("ghl", "", WebhookRefused, "bad signature from 10.0.0.1")
	m.WebhookOutcome("/etc/passwd", "x", WebhookAccepted, "") // not a source: not counted
	m.SyncOperation("ghl_to_aloware", "contact", store.SyncSuccess, time.Millisecond)
	m.SyncOperation("GHL to 42", "contact", "weird", time.Millisecond)
	for i := range maxEndpointsPerUpstream + 10 {
		m.ObserveCall(context.Background(), "ghl", fmt.Sprintf("/thing%c/{id}", 'a'+rune(i%26))+strings.Repeat("x", i/26), "GET", 200, time.Millisecond, nil)
	}
	m.ObserveCall(context.Background(), "aloware", "/api/v1/contacts/12345", "GET", 200, time.Millisecond, nil)
	m.ObserveCall(context.Background(), "nope", "/x", "GET", 200, time.Millisecond, nil)
	m.ObserveQuery("DROP TABLE x", time.Millisecond, errors.New("boom"))

	for _, l := range labels(t, m, "http_requests_total") {
		if l["method"] != "other" && l["method"] != "GET" {
			t.Errorf("method label %q", l["method"])
		}
		if l["route"] != "unmatched" && l["route"] != "/api/admin/events/{id}" {
			t.Errorf("route label %q", l["route"])
		}
	}
	if got := labels(t, m, "http_errors_total"); len(got) != 1 || got[0]["status_class"] != "4xx" {
		t.Errorf("http_errors_total series %v, want one 4xx", got)
	}
	seen := map[string]bool{}
	for _, l := range labels(t, m, "webhook_events_total") {
		seen[l["source"]+"|"+l["event_type"]+"|"+l["outcome"]+"|"+l["reason"]] = true
	}
	for _, want := range []string{"texting|message.received|accepted|", "texting|other|accepted|", "ghl|none|refused|other"} {
		if !seen[want] {
			t.Errorf("webhook_events_total lacks %q: %v", want, seen)
		}
	}
	if len(seen) != 3 {
		t.Errorf("webhook_events_total series %v", seen)
	}
	for _, l := range labels(t, m, "sync_operations_total") {
		if l["direction"] != "ghl_to_aloware" && l["direction"] != "other" || l["status"] == "weird" {
			t.Errorf("sync labels %v", l)
		}
	}
	eps := map[string]bool{}
	for _, l := range labels(t, m, "ghl_api_calls_total") {
		eps[l["endpoint"]] = true
	}
	if len(eps) != maxEndpointsPerUpstream+1 || !eps["other"] {
		t.Errorf("ghl endpoints: %d distinct (other: %v), want %d + other", len(eps), eps["other"], maxEndpointsPerUpstream)
	}
	if got := labels(t, m, "aloware_api_calls_total"); len(got) != 1 || got[0]["endpoint"] != "other" {
		t.Errorf("a raw numeric id became an endpoint label: %v", got)
	}
	if got := labels(t, m, "database_query_errors_total"); len(got) != 1 || got[0]["query"] != "other" {
		t.Errorf("database_query_errors_total %v", got)
	}
}

func TestUpstreamErrorKinds(t *testing.T) {
	m := testMetrics(t)
	ctx := context.Background()
	breaker := &upstream.Error{Upstream: "verity", Err: upstream.ErrBreakerOpen}
	m.ObserveCall(ctx, "verity", "/api/calls", "GET", 0, 0, breaker)
	m.ObserveCall(ctx, "verity", "/api/calls", "GET", 429, time.Millisecond, errors.New("429"))
	m.ObserveCall(ctx, "verity", "/api/calls", "GET", 503, time.Millisecond, errors.New("503"))
	m.ObserveCall(ctx, "verity", "/api/calls", "GET", 404, time.Millisecond, errors.New("404"))
	m.ObserveCall(ctx, "verity", "/api/calls", "GET", 401, time.Millisecond, errors.New("401"))
	m.ObserveCall(ctx, "verity", "/api/calls", "GET", 200, time.Millisecond, errors.New("bad json"))
	m.ObserveCall(ctx, "verity", "/api/calls", "GET", 0, time.Millisecond, fmt.Errorf("x: %w", context.DeadlineExceeded))
	m.ObserveCall(ctx, "verity", "/api/calls", "GET", 0, time.Millisecond, errors.New("connection refused"))
	m.ObserveCall(ctx, "verity", "/api/calls", "GET", 200, time.Millisecond, nil)
	kinds := map[string]bool{}
	for _, l := range labels(t, m, "verity_api_errors_total") {
		kinds[l["kind"]] = true
	}
	for _, k := range []string{"breaker_open", "rate_limited", "server", "auth", "client", "invalid_response", "timeout", "network"} {
		if !kinds[k] {
			t.Errorf("no %s error: %v", k, kinds)
		}
	}
	if n := testutil.ToFloat64(m.apiCalls["verity"].WithLabelValues("/api/calls", "GET", "2xx")); n != 2 {
		t.Errorf("2xx calls = %v, want 2", n)
	}
}

func TestJobsAndQueueState(t *testing.T) {
	m := testMetrics(t)
	job := store.Job{Event: store.Event{ID: "0b6f7e3c-1111-4222-8333-944445555666", Source: "texting", EventType: "message.received"}}
	m.JobExecuted(job, store.Outcome{Status: store.StatusPending}, 10*time.Millisecond)
	m.JobExecuted(job, store.Outcome{Status: store.StatusDone}, 10*time.Millisecond)
	m.JobFinished(store.Outcome{Status: store.StatusPending}, job) // a retry is not processed
	m.JobFinished(store.Outcome{Status: store.StatusDone}, job)
	if n := testutil.ToFloat64(m.jobFailures.WithLabelValues("texting", "message.received", "retry")); n != 1 {
		t.Errorf("retries = %v", n)
	}
	if n := testutil.ToFloat64(m.webhookProcessed.WithLabelValues("texting", "message.received", "done")); n != 1 {
		t.Errorf("processed = %v", n)
	}
	if got := labels(t, m, "webhook_events_processed_total"); len(got) != 1 {
		t.Errorf("processed series %v", got)
	}

	fail := true
	m.WatchState(State{
		QueueStats: func(ctx context.Context) (store.QueueStats, error) {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("queue stats read without a deadline")
			}
			if fail {
				return store.QueueStats{}, errors.New("database down")
			}
			return store.QueueStats{ByStatus: map[string]int64{"pending": 7, "processing": 2}, OldestDueAgeSeconds: 12.5}, nil
		},
		ActiveAlerts: func(context.Context) ([]store.ActiveAlertState, error) {
			return []store.ActiveAlertState{{State: "firing", Severity: "critical"}, {State: "pending", Severity: "warning"}}, nil
		},
		Pool:     func() PoolStats { return PoolStats{Acquired: 3, Idle: 1, Total: 4, Max: 20} },
		Breakers: map[string]func() string{"ghl": func() string { return "open" }, "aloware": func() string { return "closed" }},
	})
	// A failed read leaves the queue gauges out and says so; the rest is served.
	if got := labels(t, m, "job_queue_depth"); len(got) != 0 {
		t.Errorf("queue depth served from a failed read: %v", got)
	}
	if v := gaugeValue(t, m, "job_queue_stats_up", nil); v != 0 {
		t.Errorf("job_queue_stats_up = %v, want 0", v)
	}
	fail = false
	if v := gaugeValue(t, m, "job_queue_depth", map[string]string{"status": "pending"}); v != 7 {
		t.Errorf("pending depth = %v", v)
	}
	if v := gaugeValue(t, m, "job_queue_depth", map[string]string{"status": "quarantined"}); v != 0 {
		t.Errorf("quarantined depth = %v", v)
	}
	if v := gaugeValue(t, m, "job_oldest_pending_age_seconds", nil); v != 12.5 {
		t.Errorf("oldest age = %v", v)
	}
	if v := gaugeValue(t, m, "alerts_firing", map[string]string{"severity": "critical"}); v != 1 {
		t.Errorf("critical firing = %v", v)
	}
	if v := gaugeValue(t, m, "alerts_firing", map[string]string{"severity": "warning"}); v != 0 {
		t.Errorf("warning firing = %v (a pending alert is not firing)", v)
	}
	if v := gaugeValue(t, m, "database_connections_active", nil); v != 3 {
		t.Errorf("active connections = %v", v)
	}
	if v := gaugeValue(t, m, "upstream_breaker_state", map[string]string{"upstream": "ghl"}); v != 2 {
		t.Errorf("ghl breaker = %v, want 2 (open)", v)
	}
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func gaugeValue(t *testing.T, m *Metrics, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, s := range mf.GetMetric() {
			for k, v := range want {
				if !hasLabel(s, k, v) {
					continue series
				}
			}
			return s.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, want)
	return 0
}

func hasLabel(s *dto.Metric, k, v string) bool {
	for _, p := range s.GetLabel() {
		if p.GetName() == k && p.GetValue() == v {
			return true
		}
	}
	return false
}

func TestMCPToolMiddleware(t *testing.T) {
	m := testMetrics(t)
	m.AddMCPTools([]string{"get_event"})
	mw := m.MCPToolMiddleware()
	call := func(name string, res *mcp.CallToolResult, err error) {
		h := mw(func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) { return res, err })
		req := mcp.CallToolRequest{}
		req.Params.Name = name
		_, _ = h(context.Background(), req)
	}
	call("get_event", &mcp.CallToolResult{}, nil)
	call("get_event", &mcp.CallToolResult{IsError: true}, nil)
	call("get_event", nil, errors.New("panic recovered"))
	call("not_a_tool", &mcp.CallToolResult{}, nil)
	for _, c := range []struct{ tool, result string }{{"get_event", "ok"}, {"get_event", "tool_error"}, {"get_event", "error"}, {"other", "ok"}} {
		if n := testutil.ToFloat64(m.mcpCalls.WithLabelValues(c.tool, c.result)); n != 1 {
			t.Errorf("mcp_tool_calls_total{%s,%s} = %v", c.tool, c.result, n)
		}
	}
}

func TestMetricsHandlerToken(t *testing.T) {
	m := testMetrics(t)
	srv := httptest.NewServer(m.Handler("scrape-token-0001"))
	defer srv.Close()
	get := func(auth string) (int, string) {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, auth := range []string{"", "Bearer nope", "Basic scrape-token-0001"} {
		if code, _ := get(auth); code != http.StatusUnauthorized {
			t.Errorf("%q: %d, want 401", auth, code)
		}
	}
	code, body := get("Bearer scrape-token-0001")
	if code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Errorf("with token: %d %.200s", code, body)
	}
}

func TestNilMetricsIsSafe(t *testing.T) {
	var m *Metrics
	m.ObserveHTTP("GET", "/", 200, time.Millisecond)
	m.WebhookOutcome("ghl", "x", WebhookAccepted, "")
	m.JobExecuted(store.Job{}, store.Outcome{}, 0)
	m.JobFinished(store.Outcome{}, store.Job{})
	m.SyncOperation("a", "b", "success", 0)
	m.ObserveQuery(QueryClaimJobs, 0, nil)
	m.ObserveCall(context.Background(), "ghl", "/x", "GET", 200, 0, nil)
	m.AddMCPTools([]string{"x"})
	m.WatchState(State{})
	m.SetEventTypeLabel(func(string, string) string { return "" })
	h := m.MCPToolMiddleware()(func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) { return nil, nil })
	if _, err := h(context.Background(), mcp.CallToolRequest{}); err != nil {
		t.Fatal(err)
	}
}

// One reading of the database serves the scrapes of ReadEvery: a scrape
// every second costs one count of the backlog per ReadEvery, not per scrape.
func TestStateReadsAreSharedForReadEvery(t *testing.T) {
	for _, tc := range []struct {
		every time.Duration
		want  int32
	}{{0, 3}, {time.Hour, 1}} {
		var reads atomic.Int32
		m := NewMetrics(zerolog.Nop())
		m.WatchState(State{ReadEvery: tc.every, QueueStats: func(context.Context) (store.QueueStats, error) {
			reads.Add(1)
			return store.QueueStats{ByStatus: map[string]int64{store.StatusPending: 7}}, nil
		}})
		for range 3 {
			if _, err := m.Registry().Gather(); err != nil {
				t.Fatal(err)
			}
		}
		if got := reads.Load(); got != tc.want {
			t.Errorf("ReadEvery %s: %d reads for 3 scrapes, want %d", tc.every, got, tc.want)
		}
	}
}
