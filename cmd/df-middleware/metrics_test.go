package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/df-middleware/df-middleware/internal/app"
	"github.com/df-middleware/df-middleware/internal/config"
	"github.com/df-middleware/df-middleware/internal/intake"
	"github.com/df-middleware/df-middleware/internal/observe"
	"github.com/df-middleware/df-middleware/internal/sandbox"
	"github.com/df-middleware/df-middleware/internal/testdb"
)

// requiredMetrics are the names of DESIGN.md's observability contract and
// of the additions; every one must be in a scrape.
var requiredMetrics = []string{
	"http_requests_total", "http_request_duration_seconds", "http_errors_total",
	"webhook_events_total", "webhook_events_processed_total",
	"sync_operations_total", "sync_operations_duration_seconds",
	"job_queue_depth", "job_processing_duration_seconds", "job_failures_total",
	"ghl_api_calls_total", "ghl_api_errors_total", "aloware_api_calls_total", "aloware_api_errors_total",
	"verity_api_calls_total", "verity_api_errors_total", "clerk_api_calls_total",
	"database_connections_active", "database_query_duration_seconds",
	"job_oldest_pending_age_seconds", "alerts_firing", "mcp_tool_calls_total", "mcp_tool_duration_seconds",
	"upstream_breaker_state", "upstream_request_duration_seconds",
	"go_goroutines", "process_cpu_seconds_total",
}

const (
	metricsToken      = "metrics-scrape-token-0007"
	metricsAdmin      = "metrics-admin-secret-0008"
	metricsMCPToken   = "metrics-mcp-token-0009"
	metricsGateway    = "metrics-gateway-key-0010"
	metricsAloBearer  = "metrics-aloware-bearer-0011"
	metricsHookSecret = "metrics-webhook-secret-0012"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// metricsService runs the real service in this process — store, intake,
// workers, sync against the sandbox, MCP at /mcp — as `serve` wires it.
type metricsService struct {
	t    *testing.T
	url  string
	sb   *sandbox.Server
	ghl  ed25519.PrivateKey
	logs *lockedBuffer
}

func startMetricsService(t *testing.T) *metricsService {
	t.Helper()
	sb := sandbox.New(sandbox.Config{
		GHLToken: sandbox.DevGHLAPIKey, GHLLocationID: sandbox.DevGHLLocationID,
		AlowareToken: sandbox.DevAlowareToken, VerityAPIKey: sandbox.DevVerityAPIKey,
		ClerkSecretKey: sandbox.DevClerkSecretKey, Seed: true,
	})
	up := httptest.NewServer(sb)
	t.Cleanup(up.Close)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"DATABASE_URL": testdb.NewURL(t), "DF_ADMIN_SECRET": metricsAdmin, "DF_METRICS_TOKEN": metricsToken,
		"DF_MCP_HTTP_TOKEN": metricsMCPToken, "DF_MIDDLEWARE_API_KEY": metricsGateway,
		"VERITY_WEBHOOK_SECRET": metricsHookSecret, "ALOWARE_WEBHOOK_BEARER_TOKEN": metricsAloBearer,
		"GHL_WEBHOOK_PUBLIC_KEY": base64.StdEncoding.EncodeToString(der),
		"GHL_API_KEY":            sandbox.DevGHLAPIKey, "GHL_LOCATION_ID": sandbox.DevGHLLocationID,
		"GHL_BASE_URL":      up.URL + sandbox.PrefixGHL,
		"ALOWARE_API_TOKEN": sandbox.DevAlowareToken, "ALOWARE_BASE_URL": up.URL + sandbox.PrefixAloware,
		"VERITY_BASE_URL": up.URL + sandbox.PrefixVerity, "VERITY_API_KEY": sandbox.DevVerityAPIKey,
		"CLERK_SECRET_KEY": sandbox.DevClerkSecretKey, "CLERK_API_URL": up.URL + sandbox.PrefixClerk,
		"DF_RETRY_BASE": "100ms", "DF_BREAKER_COOLDOWN": "300ms", "DF_WORKERS": "4", "DF_POLL_INTERVAL": "50ms",
		"LOG_LEVEL": "info", "DF_INSTANCE_ID": "metrics-test",
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &lockedBuffer{}
	log, err := observe.NewLogger(logs, cfg.LogLevel, cfg.Secrets())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := app.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("app.New: %v", err)
	}
	if err := mountMCPHTTP(ctx, svc, log); err != nil {
		cancel()
		svc.Store.Close()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		svc.Store.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = svc.Run(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	s := &metricsService{t: t, url: "http://" + ln.Addr().String(), sb: sb, ghl: priv, logs: logs}
	waitReady(t, ln.Addr().String())
	return s
}

func (s *metricsService) do(method, path string, hdr http.Header, body []byte) (int, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// deliver posts a signed webhook and returns the status and the event id.
func (s *metricsService) deliver(source string, body []byte) (int, string) {
	s.t.Helper()
	hdr := http.Header{}
	switch source {
	case "ghl":
		hdr.Set(intake.HeaderGHLSignature, base64.StdEncoding.EncodeToString(ed25519.Sign(s.ghl, body)))
	case "aloware":
		hdr.Set("Authorization", "Bearer "+metricsAloBearer)
	case "texting":
		hdr.Set("X-Texting-Signature", intake.SignHMAC(body, []byte(metricsHookSecret)))
	case "broadcast":
		hdr.Set("X-Broadcast-Signature", intake.SignHMAC(body, []byte(metricsHookSecret)))
	}
	code, raw := s.do("POST", "/api/webhooks/"+source, hdr, body)
	var r struct{ ID string }
	_ = json.Unmarshal(raw, &r)
	return code, r.ID
}

func (s *metricsService) accepted(source string, body []byte) string {
	s.t.Helper()
	code, id := s.deliver(source, body)
	if code != http.StatusAccepted || id == "" {
		s.t.Fatalf("POST %s: %d", source, code)
	}
	return id
}

func (s *metricsService) event(id string) (status string, attempts int) {
	s.t.Helper()
	code, raw := s.do("GET", "/api/admin/events/"+id, http.Header{"Authorization": {"Bearer " + metricsAdmin}}, nil)
	if code != http.StatusOK {
		s.t.Fatalf("get event %s: %d %s", id, code, raw)
	}
	var ev struct {
		Status   string `json:"status"`
		Attempts int    `json:"attempts"`
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		s.t.Fatal(err)
	}
	return ev.Status, ev.Attempts
}

func (s *metricsService) waitFor(id string, cond func(status string, attempts int) bool, what string) {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, n := s.event(id)
		if cond(st, n) {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("event %s: status %s after %d attempts; waited for %s", id, st, n, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (s *metricsService) waitFinal(id, want string) {
	s.t.Helper()
	s.waitFor(id, func(st string, _ int) bool { return st == want }, want)
}

func ghlBody(typ, id, first, phone string) []byte {
	return fmt.Appendf(nil, `{"type":%q,"locationId":%q,"id":%q,"firstName":%q,"lastName":"Ruiz","email":"%s@example.com","phone":%q,"timestamp":%q,"webhookId":"wh-%s"}`,
		typ, sandbox.DevGHLLocationID, id, first, strings.ToLower(first), phone, time.Now().UTC().Format(time.RFC3339), id)
}

// TestMetricsEndToEnd drives webhooks through intake, the queue and sync
// against the sandbox, an upstream failure, the gateway, health and MCP
// tool calls, then scrapes /metrics: every required name is there with
// sane values, no label value is an id, a phone or a raw path, and
// promtool's linter accepts the scrape.
func TestMetricsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole service")
	}
	t.Parallel()
	s := startMetricsService(t)
	var ids []string

	// Intake → queue → sync, one event per source.
	ids = append(ids, s.accepted("ghl", ghlBody("ContactCreate", "ghl-metrics-1", "Ana", "+13105550100")))
	call := []byte(`{"event":"OutboundPhoneCall-DispositionCompleted","body":{"id":"77701","contact_id":"8801","direction":"outbound","disposition":"Interested","duration":60,"contact":{"id":"8801","phone_number":"+13105550111","first_name":"Bea"}}}`)
	ids = append(ids, s.accepted("aloware", call))
	texting := []byte(`{"eventType":"message.received","messageId":"txt_metrics_1","from":"+13105550122","to":"+18555550199","body":"STOP"}`)
	ids = append(ids, s.accepted("texting", texting))
	ids = append(ids, s.accepted("broadcast", []byte(`{"eventType":"analytics_updated","broadcastId":"bc_metrics_1","analytics":{"sent":10,"delivered":9},"timestamp":"2026-03-10T18:00:00Z"}`)))
	// A type no handler wants: stored, skipped, labelled "other".
	ids = append(ids, s.accepted("ghl", ghlBody("AppointmentCreate", "appt-metrics-1", "Cy", "+13105550133")))
	for _, id := range ids[:4] {
		s.waitFor(id, func(st string, _ int) bool { return st == "done" || st == "skipped" }, "done or skipped")
	}
	s.waitFinal(ids[4], "skipped")

	// A duplicate delivery and a refused one.
	if code, _ := s.deliver("texting", texting); code != http.StatusOK {
		t.Fatalf("duplicate: %d", code)
	}
	if code, _ := s.do("POST", "/api/webhooks/texting", http.Header{"X-Texting-Signature": {"00"}}, texting); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d", code)
	}
	s.do("GET", "/api/admin/events/11111111-2222-4333-8444-555555555555/nothing", nil, nil) // unmatched route

	// Upstream failure: GHL answers 500, the Aloware call's note is retried,
	// then GHL recovers and the event is done.
	s.sb.SetFaults(sandbox.UpstreamGHL, sandbox.Faults{ErrorRate: 1, Status: 500})
	retried := s.accepted("aloware", []byte(`{"event":"OutboundPhoneCall-DispositionCompleted","body":{"id":"77702","contact_id":"8802","direction":"outbound","disposition":"Busy","duration":5,"contact":{"id":"8802","phone_number":"+13105550144","first_name":"Dee"}}}`))
	ids = append(ids, retried)
	s.waitFor(retried, func(_ string, n int) bool { return n >= 2 }, "a second attempt")
	// Health while three upstreams fail: errors on each client.
	s.sb.SetFaults(sandbox.UpstreamAloware, sandbox.Faults{ErrorRate: 1, Status: 502})
	s.sb.SetFaults(sandbox.UpstreamVerity, sandbox.Faults{ErrorRate: 1, Status: 503})
	s.do("GET", "/health", nil, nil)
	s.sb.SetFaults("all", sandbox.Faults{})
	time.Sleep(400 * time.Millisecond) // past the breaker cooldown
	s.waitFinal(retried, "done")
	s.do("GET", "/health", nil, nil)

	// The Verity gateway (Clerk token, then Verity).
	gw, _ := json.Marshal(map[string]any{"endpoint": "/api/comms/broadcasts", "method": "GET", "query": map[string]string{"limit": "5"}})
	if code, raw := s.do("POST", "/api/verity", http.Header{"X-API-Key": {metricsGateway}, "Content-Type": {"application/json"}}, gw); code != http.StatusOK {
		t.Fatalf("gateway: %d %s", code, raw)
	}

	// MCP tool calls over streamable HTTP: one ok, one isError.
	c, err := client.NewStreamableHttpClient(s.url+"/mcp", transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + metricsMCPToken}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	initialize(t, ctx, c)
	if res := callTool(t, ctx, c, "get_queue_status", map[string]any{}); res.IsError {
		t.Fatalf("get_queue_status: %+v", res.Content)
	}
	if res := callTool(t, ctx, c, "get_event", map[string]any{"id": "00000000-0000-4000-8000-000000000000"}); !res.IsError {
		t.Fatalf("get_event of a missing id was not an isError result")
	}

	// The scrape: token required.
	if code, _ := s.do("GET", "/metrics", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("/metrics without DF_METRICS_TOKEN: %d, want 401", code)
	}
	// Twice: a scrape's own queue_stats query is timed into the next one.
	s.do("GET", "/metrics", http.Header{"Authorization": {"Bearer " + metricsToken}}, nil)
	code, scrape := s.do("GET", "/metrics", http.Header{"Authorization": {"Bearer " + metricsToken}}, nil)
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, scrape)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(scrape))
	if err != nil {
		t.Fatalf("scrape does not parse: %v", err)
	}
	for _, name := range requiredMetrics {
		mf, ok := families[name]
		if !ok || len(mf.GetMetric()) == 0 {
			t.Errorf("metric %s missing from the scrape", name)
			continue
		}
		if mf.GetHelp() == "" {
			t.Errorf("metric %s has no HELP", name)
		}
	}
	for _, name := range []string{"ghl_api_errors_total", "aloware_api_errors_total", "verity_api_errors_total"} {
		if sum(families, name, nil) < 1 {
			t.Errorf("%s: no error counted during the fault", name)
		}
	}

	// Sane values.
	checkAtLeast := func(name string, match map[string]string, min float64) {
		t.Helper()
		if got := sum(families, name, match); got < min {
			t.Errorf("%s%v = %v, want ≥ %v", name, match, got, min)
		}
	}
	checkAtLeast("http_requests_total", map[string]string{"route": "/api/webhooks/{source}", "method": "POST", "status_class": "2xx"}, 7)
	checkAtLeast("http_errors_total", map[string]string{"route": "/api/webhooks/{source}", "status_class": "4xx"}, 1)
	checkAtLeast("http_requests_total", map[string]string{"route": "unmatched"}, 1)
	checkAtLeast("http_requests_total", map[string]string{"route": "/mcp"}, 1)
	checkAtLeast("webhook_events_total", map[string]string{"outcome": "accepted"}, 6)
	checkAtLeast("webhook_events_total", map[string]string{"source": "texting", "event_type": "message.received", "outcome": "duplicate"}, 1)
	checkAtLeast("webhook_events_total", map[string]string{"source": "texting", "outcome": "refused", "reason": "unauthorized"}, 1)
	checkAtLeast("webhook_events_total", map[string]string{"source": "ghl", "event_type": "other", "outcome": "accepted"}, 1)
	checkAtLeast("webhook_events_total", map[string]string{"source": "ghl", "event_type": "ContactCreate"}, 1)
	checkAtLeast("webhook_events_processed_total", map[string]string{"status": "done"}, 3)
	checkAtLeast("webhook_events_processed_total", map[string]string{"source": "ghl", "event_type": "other", "status": "skipped"}, 1)
	checkAtLeast("sync_operations_total", map[string]string{"direction": "ghl_to_aloware", "entity": "contact", "status": "success"}, 1)
	checkAtLeast("sync_operations_total", map[string]string{"direction": "aloware_to_ghl", "status": "error"}, 1)
	checkAtLeast("job_failures_total", map[string]string{"source": "aloware", "outcome": "retry"}, 1)
	checkAtLeast("job_processing_duration_seconds", map[string]string{"status": "done"}, 3)
	checkAtLeast("database_query_duration_seconds", map[string]string{"query": "insert_events"}, 1)
	checkAtLeast("database_query_duration_seconds", map[string]string{"query": "claim_jobs"}, 1)
	checkAtLeast("database_query_duration_seconds", map[string]string{"query": "complete_jobs"}, 1)
	checkAtLeast("database_query_duration_seconds", map[string]string{"query": "queue_stats"}, 1)
	checkAtLeast("ghl_api_calls_total", map[string]string{"status_class": "2xx"}, 1)
	checkAtLeast("aloware_api_calls_total", map[string]string{"status_class": "2xx"}, 1)
	checkAtLeast("verity_api_calls_total", map[string]string{"endpoint": "/api/comms/broadcasts", "status_class": "2xx"}, 1)
	checkAtLeast("clerk_api_calls_total", nil, 1)
	checkAtLeast("mcp_tool_calls_total", map[string]string{"tool": "get_queue_status", "result": "ok"}, 1)
	checkAtLeast("mcp_tool_calls_total", map[string]string{"tool": "get_event", "result": "tool_error"}, 1)
	checkAtLeast("mcp_tool_duration_seconds", map[string]string{"tool": "get_queue_status"}, 1)
	checkAtLeast("database_connections_max", nil, 1)
	for _, st := range []string{"pending", "processing", "error", "quarantined"} {
		if v, ok := value(families, "job_queue_depth", map[string]string{"status": st}); !ok || v < 0 {
			t.Errorf("job_queue_depth{status=%q} = %v (present %v)", st, v, ok)
		}
	}
	if v, _ := value(families, "job_queue_depth", map[string]string{"status": "pending"}); v != 0 {
		t.Errorf("pending depth %v after everything finished", v)
	}
	if v, ok := value(families, "alerts_firing", map[string]string{"severity": "critical"}); !ok || v != 0 {
		t.Errorf("alerts_firing{critical} = %v (present %v), want 0 with an empty alert_state", v, ok)
	}
	if v, ok := value(families, "job_oldest_pending_age_seconds", nil); !ok || v < 0 {
		t.Errorf("job_oldest_pending_age_seconds = %v", v)
	}
	if v, ok := value(families, "database_connections_active", nil); !ok || v < 0 || v > 100 {
		t.Errorf("database_connections_active = %v", v)
	}
	for _, u := range []string{"ghl", "aloware", "verity", "clerk"} {
		if v, ok := value(families, "upstream_breaker_state", map[string]string{"upstream": u}); !ok || v < 0 || v > 2 {
			t.Errorf("upstream_breaker_state{%s} = %v (present %v)", u, v, ok)
		}
	}

	// Bounded labels: no id, phone, email, query string or raw path.
	checkLabels(t, families, append(ids, "ghl-metrics-1", "appt-metrics-1", "77701", "77702", "8801", "8802", "txt_metrics_1", "bc_metrics_1"))

	if p := os.Getenv("DF_METRICS_SCRAPE_OUT"); p != "" {
		_ = os.WriteFile(p, scrape, 0o600) // for a look by hand
	}
	t.Run("promtool", func(t *testing.T) { promtoolCheck(t, scrape) })
}

var (
	uuidRE   = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)
	digitsRE = regexp.MustCompile(`^[0-9]+$`)
	phoneRE  = regexp.MustCompile(`\+?[0-9][0-9 ()-]{6,}[0-9]`)
)

func checkLabels(t *testing.T, families map[string]*dto.MetricFamily, secrets []string) {
	t.Helper()
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				k, v := l.GetName(), l.GetValue()
				switch k {
				case "le", "quantile", "code", "version":
					continue // bucket bounds, promhttp's status code, go_info
				}
				bad := ""
				switch {
				case uuidRE.MatchString(v):
					bad = "a uuid"
				case digitsRE.MatchString(v):
					bad = "a numeric id"
				case phoneRE.MatchString(v):
					bad = "a phone number"
				case strings.ContainsAny(v, "@?#"):
					bad = "an email or a query string"
				case k == "route" && v != "unmatched" && !strings.HasPrefix(v, "/"):
					bad = "not a route pattern"
				case len(v) > 100:
					bad = "too long"
				}
				for _, s := range secrets {
					if s != "" && strings.Contains(v, s) {
						bad = "an id used in this test (" + s + ")"
					}
				}
				if bad != "" {
					t.Errorf("%s{%s=%q}: label value is %s", name, k, v, bad)
				}
			}
		}
	}
}

// sum adds the values (counter, gauge, or a histogram's count) of every
// series of name whose labels include match.
func sum(families map[string]*dto.MetricFamily, name string, match map[string]string) float64 {
	total := 0.0
	mf := families[name]
	if mf == nil {
		return 0
	}
	for _, m := range mf.GetMetric() {
		if matches(m, match) {
			total += metricValue(m)
		}
	}
	return total
}

func value(families map[string]*dto.MetricFamily, name string, match map[string]string) (float64, bool) {
	mf := families[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		if matches(m, match) {
			return metricValue(m), true
		}
	}
	return 0, false
}

func matches(m *dto.Metric, match map[string]string) bool {
	for k, v := range match {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == k && l.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

// promtoolCheck runs `promtool check metrics` (Debian's prometheus package)
// on a scrape. Under CI a missing promtool is a failure; locally a skip.
func promtoolCheck(t *testing.T, scrape []byte) {
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed (CI=true): apt-get install prometheus, or run `make test`, which installs it")
		}
		t.Skip("promtool not found: install Debian's prometheus package (`make test` does) to lint the scrape")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(scrape)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("promtool: %v", err)
	}
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
