package observe

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/df-middleware/df-middleware/internal/store"
	"github.com/df-middleware/df-middleware/internal/upstream"
)

// LabelOther is the value a label takes when the real value is not one of
// its fixed set (an unknown event type, tool or method).
const LabelOther = "other"

// Webhook outcomes (the outcome label of webhook_events_total).
const (
	WebhookAccepted  = "accepted"  // stored, will be processed (202)
	WebhookDuplicate = "duplicate" // already stored (200)
	WebhookIgnored   = "ignored"   // stored as skipped: not in ALOWARE_WEBHOOK_ALLOWED_EVENTS (202)
	WebhookRefused   = "refused"   // not stored: the sender's problem (4xx, or 503 not configured)
	WebhookFailed    = "failed"    // not stored: ours (database unavailable, 503)
)

// Refusal reasons (the reason label of webhook_events_total; empty unless
// the outcome is refused or failed).
const (
	ReasonUnauthorized   = "unauthorized"
	ReasonStaleTimestamp = "stale_timestamp"
	ReasonMalformed      = "malformed"
	ReasonTooLarge       = "too_large"
	ReasonUnreadable     = "unreadable"
	ReasonNotConfigured  = "not_configured"
	ReasonDatabase       = "database"
	ReasonRateLimited    = "rate_limited" // over the source's DF_INTAKE_RATE_LIMIT (429)
)

// Statements timed by database_query_duration_seconds (the query label).
const (
	QueryInsertEvents = "insert_events"
	QueryClaimJobs    = "claim_jobs"
	QueryCompleteJobs = "complete_jobs"
	QueryQueueStats   = "queue_stats"
	QueryActiveAlerts = "active_alerts"
)

var (
	webhookSources = set("ghl", "aloware", "texting", "broadcast")
	httpMethods    = set("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
	webhookOutcome = set(WebhookAccepted, WebhookDuplicate, WebhookIgnored, WebhookRefused, WebhookFailed)
	refusalReasons = set(ReasonUnauthorized, ReasonStaleTimestamp, ReasonMalformed, ReasonTooLarge,
		ReasonUnreadable, ReasonNotConfigured, ReasonDatabase, ReasonRateLimited)
	finalStatuses = set(store.StatusDone, store.StatusSkipped, store.StatusError)
	jobStatuses   = set(store.StatusDone, store.StatusSkipped, store.StatusError, store.StatusPending)
	syncStatuses  = set(store.SyncSuccess, store.SyncSkipped, store.SyncError)
	queries       = set(QueryInsertEvents, QueryClaimJobs, QueryCompleteJobs, QueryQueueStats, QueryActiveAlerts)
	// upstreams are the clients with their own *_api_* families.
	upstreams = []string{"ghl", "aloware", "verity", "clerk"}
	// queueStatuses are the statuses job_queue_depth reports (QueueStats
	// counts only these: counting done rows would scan the whole table).
	queueStatuses = []string{store.StatusPending, store.StatusProcessing, store.StatusError, store.StatusQuarantined}
	alertSeverity = []string{"critical", "warning"}
	severities    = set(alertSeverity...)
)

func set(vs ...string) map[string]bool {
	m := make(map[string]bool, len(vs))
	for _, v := range vs {
		m[v] = true
	}
	return m
}

// maxEndpointsPerUpstream bounds the endpoint label of one upstream; later
// templates are counted as "other". The clients label with fixed templates,
// so this only guards against a mistake.
const maxEndpointsPerUpstream = 64

var (
	// Latency of things that answer fast (HTTP handlers, tools).
	fastBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	// Work that waits on upstreams and retries (jobs, sync operations, upstream calls).
	WorkBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
	// Single statements.
	dbBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
)

// Metrics is the service's Prometheus instrumentation, on a registry of its
// own. Every label takes its value from a fixed set or a template (route
// pattern, upstream endpoint template); ids, raw paths and error text never
// become label values. The zero of every hook is safe: a nil *Metrics
// observes nothing.
type Metrics struct {
	reg *prometheus.Registry
	log zerolog.Logger

	httpRequests, httpErrors        *prometheus.CounterVec
	httpDuration                    *prometheus.HistogramVec
	webhookEvents, webhookProcessed *prometheus.CounterVec
	syncOps                         *prometheus.CounterVec
	syncDuration                    *prometheus.HistogramVec
	jobDuration                     *prometheus.HistogramVec
	jobFailures                     *prometheus.CounterVec
	apiCalls, apiErrors             map[string]*prometheus.CounterVec
	upstreamDuration                *prometheus.HistogramVec
	dbDuration                      *prometheus.HistogramVec
	dbErrors                        *prometheus.CounterVec
	mcpCalls                        *prometheus.CounterVec
	mcpDuration                     *prometheus.HistogramVec

	eventType atomic.Pointer[func(source, eventType string) string]
	tools     atomic.Pointer[map[string]bool]

	endpointsMu sync.Mutex
	endpoints   map[string]map[string]bool // upstream → endpoint labels in use

	state *stateCollector
}

// NewMetrics builds the metrics on a fresh registry, with the Go runtime and
// process collectors. log receives scrape-time failures.
func NewMetrics(log zerolog.Logger) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), log: log, endpoints: map[string]map[string]bool{},
		apiCalls: map[string]*prometheus.CounterVec{}, apiErrors: map[string]*prometheus.CounterVec{}}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		m.reg.MustRegister(c)
		return c
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
		m.reg.MustRegister(h)
		return h
	}
	m.httpRequests = counter("http_requests_total",
		"HTTP requests served by the sidecar, by route pattern, method and status class.", "route", "method", "status_class")
	m.httpErrors = counter("http_errors_total",
		"HTTP requests answered with a 4xx or 5xx status, by route pattern, method and status class.", "route", "method", "status_class")
	m.httpDuration = histogram("http_request_duration_seconds",
		"Time from receiving a request to the handler's return, by route pattern and method.", prometheus.DefBuckets, "route", "method")
	m.webhookEvents = counter("webhook_events_total",
		"Webhook deliveries received, by source, event type, outcome (accepted, duplicate, ignored, refused, failed) and refusal reason.",
		"source", "event_type", "outcome", "reason")
	m.webhookProcessed = counter("webhook_events_processed_total",
		"Webhook events whose processing ended (done, skipped, error), by source, event type and final status.",
		"source", "event_type", "status")
	m.syncOps = counter("sync_operations_total",
		"Sync operations recorded in sync_log, by direction, entity type and status (success, skipped, error).",
		"direction", "entity", "status")
	m.syncDuration = histogram("sync_operations_duration_seconds",
		"Duration of one sync operation, upstream calls included, by direction and entity type.", WorkBuckets, "direction", "entity")
	m.jobDuration = histogram("job_processing_duration_seconds",
		"Duration of one handler run of a queued event, by source, event type and the status it led to (pending means a retry).",
		WorkBuckets, "source", "event_type", "status")
	m.jobFailures = counter("job_failures_total",
		"Handler runs that failed, by source, event type and outcome: retry (scheduled again) or error (gave up: permanent or out of attempts).",
		"source", "event_type", "outcome")
	for _, u := range upstreams {
		m.apiCalls[u] = counter(u+"_api_calls_total",
			"Attempts of calls to the "+u+" API (retries count separately), by endpoint template, method and status class (none: no response).",
			"endpoint", "method", "status_class")
		m.apiErrors[u] = counter(u+"_api_errors_total",
			"Failed attempts of calls to the "+u+" API, by endpoint template, method and kind (auth: 401/403, client: other 4xx, rate_limited, server, timeout, network, breaker_open, canceled, invalid_response).",
			"endpoint", "method", "kind")
	}
	m.upstreamDuration = histogram("upstream_request_duration_seconds",
		"Duration of one attempt of an upstream API call, by upstream, endpoint template and method.", WorkBuckets, "upstream", "endpoint", "method")
	m.dbDuration = histogram("database_query_duration_seconds",
		"Duration of the service's hot statements, by query (insert_events, claim_jobs, complete_jobs, queue_stats, active_alerts).", dbBuckets, "query")
	m.dbErrors = counter("database_query_errors_total",
		"Failed executions of the statements timed by database_query_duration_seconds, by query.", "query")
	m.mcpCalls = counter("mcp_tool_calls_total",
		"MCP tool calls, by tool and result (ok, tool_error: an isError result, error: a protocol-level failure).", "tool", "result")
	m.mcpDuration = histogram("mcp_tool_duration_seconds", "Duration of one MCP tool call, by tool.", fastBuckets, "tool")

	m.state = newStateCollector(m)
	m.reg.MustRegister(m.state,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	other := func(string, string) string { return LabelOther }
	m.eventType.Store(&other)
	return m
}

// Registry is the registry the metrics live on (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the exposition format. With token set, requests must carry
// Authorization: Bearer token (compared as SHA-256 digests in constant time).
// A failing scrape-time reading (the database is down) is left out and
// logged; every other metric is still served.
func (m *Metrics) Handler(token string) http.Handler {
	h := promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		ErrorLog:          scrapeErrorLog{m.log},
		Registry:          m.reg,
		Timeout:           10 * time.Second,
		EnableOpenMetrics: false,
	}))
	if token == "" {
		return h
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="df-middleware metrics"`)
			http.Error(w, "missing or wrong credentials: send Authorization: Bearer $DF_METRICS_TOKEN", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

type scrapeErrorLog struct{ log zerolog.Logger }

func (l scrapeErrorLog) Println(v ...any) {
	var b strings.Builder
	for i, x := range v {
		if i > 0 {
			b.WriteByte(' ')
		}
		if err, ok := x.(error); ok {
			b.WriteString(err.Error())
		} else if s, ok := x.(string); ok {
			b.WriteString(s)
		}
	}
	l.log.Warn().Str("error", b.String()).Msg("metrics scrape incomplete")
}

// SetEventTypeLabel installs the function that maps a (source, event type)
// to its label value: a known type's canonical name, else "other". Until it
// is called every event type is "other".
func (m *Metrics) SetEventTypeLabel(f func(source, eventType string) string) {
	if m != nil && f != nil {
		m.eventType.Store(&f)
	}
}

func (m *Metrics) eventTypeLabel(source, eventType string) string {
	if eventType == "" {
		return "none"
	}
	v := (*m.eventType.Load())(source, eventType)
	if v == "" || len(v) > 64 {
		return LabelOther
	}
	return v
}

func sourceLabel(s string) string {
	if webhookSources[s] {
		return s
	}
	return LabelOther
}

func oneOf(v string, allowed map[string]bool) string {
	if allowed[v] {
		return v
	}
	return LabelOther
}

// statusClass is "2xx" for 200..299 and so on; anything else is "none".
func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "none"
	}
	return strconv.Itoa(code/100) + "xx"
}

func methodLabel(m string) string { return oneOf(m, httpMethods) }

// routeLabel turns a ServeMux pattern ("POST /api/webhooks/{source}") into
// the route label ("/api/webhooks/{source}"); no pattern (404, 405) is
// "unmatched".
func routeLabel(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		pattern = strings.TrimSpace(pattern[i+1:])
	}
	return pattern
}

// ObserveHTTP records one served request. pattern is the ServeMux pattern
// that matched (http.Request.Pattern), never the raw path; status 0 means
// the handler wrote nothing (200).
func (m *Metrics) ObserveHTTP(method, pattern string, status int, d time.Duration) {
	if m == nil {
		return
	}
	if status == 0 {
		status = http.StatusOK
	}
	route, meth, class := routeLabel(pattern), methodLabel(method), statusClass(status)
	m.httpRequests.WithLabelValues(route, meth, class).Inc()
	m.httpDuration.WithLabelValues(route, meth).Observe(d.Seconds())
	if status >= 400 {
		m.httpErrors.WithLabelValues(route, meth, class).Inc()
	}
}

// WebhookOutcome records one delivery to /api/webhooks/{source}: outcome is
// one of the Webhook* constants, reason one of the Reason* constants for
// refused and failed deliveries ("" otherwise). eventType is the parsed
// type ("" when the body was never parsed).
func (m *Metrics) WebhookOutcome(source, eventType, outcome, reason string) {
	if m == nil || !webhookSources[source] {
		return
	}
	if reason != "" {
		reason = oneOf(reason, refusalReasons)
	}
	m.webhookEvents.WithLabelValues(source, m.eventTypeLabel(source, eventType), oneOf(outcome, webhookOutcome), reason).Inc()
}

// JobExecuted records one handler run of a claimed event and the outcome it
// produced (queue.Runner.OnExecuted).
func (m *Metrics) JobExecuted(job store.Job, out store.Outcome, d time.Duration) {
	if m == nil {
		return
	}
	src, et := sourceLabel(job.Source), m.eventTypeLabel(job.Source, job.EventType)
	status := oneOf(out.Status, jobStatuses)
	m.jobDuration.WithLabelValues(src, et, status).Observe(d.Seconds())
	switch out.Status {
	case store.StatusPending:
		m.jobFailures.WithLabelValues(src, et, "retry").Inc()
	case store.StatusError:
		m.jobFailures.WithLabelValues(src, et, "error").Inc()
	}
}

// JobFinished records an outcome once it is committed under its lease
// (queue.Runner.OnFinished); only final statuses count as processed.
func (m *Metrics) JobFinished(out store.Outcome, job store.Job) {
	if m == nil || !finalStatuses[out.Status] {
		return
	}
	m.webhookProcessed.WithLabelValues(sourceLabel(job.Source), m.eventTypeLabel(job.Source, job.EventType), out.Status).Inc()
}

// SyncOperation records one sync operation as written to sync_log
// (sync.Engine.OnOperation). direction and entity come from the engine's
// constants.
func (m *Metrics) SyncOperation(direction, entity, status string, d time.Duration) {
	if m == nil {
		return
	}
	direction, entity = identLabel(direction), identLabel(entity)
	m.syncOps.WithLabelValues(direction, entity, oneOf(status, syncStatuses)).Inc()
	m.syncDuration.WithLabelValues(direction, entity).Observe(d.Seconds())
}

// identLabel keeps a short lower-case identifier ("ghl_to_aloware") and
// turns anything else into "other".
func identLabel(s string) string {
	if s == "" || len(s) > 40 {
		return LabelOther
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && c != '_' {
			return LabelOther
		}
	}
	return s
}

// ObserveQuery records one execution of a timed statement; query is one of
// the Query* constants. A cancelled context is not a database error.
func (m *Metrics) ObserveQuery(query string, d time.Duration, err error) {
	if m == nil {
		return
	}
	q := oneOf(query, queries)
	m.dbDuration.WithLabelValues(q).Observe(d.Seconds())
	if err != nil && !errors.Is(err, context.Canceled) {
		m.dbErrors.WithLabelValues(q).Inc()
	}
}

// ObserveCall implements upstream.Observer: one attempt of an upstream call.
func (m *Metrics) ObserveCall(_ context.Context, up, endpoint, method string, status int, d time.Duration, err error) {
	if m == nil {
		return
	}
	calls, ok := m.apiCalls[up]
	if !ok {
		return
	}
	ep, meth := m.endpointLabel(up, endpoint), methodLabel(method)
	calls.WithLabelValues(ep, meth, statusClass(status)).Inc()
	breakerOpen := errors.Is(err, upstream.ErrBreakerOpen)
	if !breakerOpen {
		m.upstreamDuration.WithLabelValues(up, ep, meth).Observe(d.Seconds())
	}
	if err == nil && status >= 200 && status <= 299 {
		return
	}
	var kind string
	switch {
	case breakerOpen:
		kind = "breaker_open"
	case status == http.StatusTooManyRequests:
		kind = "rate_limited"
	case status >= 500:
		kind = "server"
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		kind = "auth" // our credentials: the upstream's failure as far as we are concerned
	case status >= 400:
		kind = "client" // the request or its data (404 for a missing id): not an outage
	case status >= 200 && status <= 299:
		kind = "invalid_response"
	case errors.Is(err, context.Canceled):
		kind = "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		kind = "timeout"
	default:
		kind = "network"
	}
	m.apiErrors[up].WithLabelValues(ep, meth, kind).Inc()
}

var _ upstream.Observer = (*Metrics)(nil)

// endpointLabel admits an endpoint template as a label value: the first
// maxEndpointsPerUpstream distinct templates of an upstream, and only
// templates (no digits-only or over-long segments); the rest are "other".
func (m *Metrics) endpointLabel(up, endpoint string) string {
	if endpoint == "" || len(endpoint) > 100 || !strings.HasPrefix(endpoint, "/") {
		return LabelOther
	}
	for _, seg := range strings.Split(endpoint, "/") {
		if seg != "" && strings.Trim(seg, "0123456789-") == "" {
			return LabelOther // a raw numeric id slipped through
		}
	}
	m.endpointsMu.Lock()
	defer m.endpointsMu.Unlock()
	seen := m.endpoints[up]
	if seen == nil {
		seen = map[string]bool{}
		m.endpoints[up] = seen
	}
	if seen[endpoint] {
		return endpoint
	}
	if len(seen) >= maxEndpointsPerUpstream {
		return LabelOther
	}
	seen[endpoint] = true
	return endpoint
}

// AddMCPTools declares the registered tool names (the tool label's set).
func (m *Metrics) AddMCPTools(names []string) {
	if m == nil {
		return
	}
	for {
		old := m.tools.Load()
		next := map[string]bool{}
		if old != nil {
			for k := range *old {
				next[k] = true
			}
		}
		for _, n := range names {
			next[n] = true
		}
		if m.tools.CompareAndSwap(old, &next) {
			return
		}
	}
}

func (m *Metrics) toolLabel(name string) string {
	if t := m.tools.Load(); t != nil && (*t)[name] {
		return name
	}
	return LabelOther
}

// MCPToolMiddleware counts and times every tool call. Add it as the first
// tool middleware so a panic turned into an error by server.WithRecovery is
// seen as one.
func (m *Metrics) MCPToolMiddleware() server.ToolHandlerMiddleware {
	return func(next server.ToolHandlerFunc) server.ToolHandlerFunc {
		if m == nil {
			return next
		}
		return func(ctx context.Context, req mcp.CallToolRequest) (res *mcp.CallToolResult, err error) {
			start := time.Now()
			result := "error"
			tool := m.toolLabel(req.Params.Name)
			defer func() {
				m.mcpCalls.WithLabelValues(tool, result).Inc()
				m.mcpDuration.WithLabelValues(tool).Observe(time.Since(start).Seconds())
			}()
			res, err = next(ctx, req)
			switch {
			case err != nil || res == nil:
			case res.IsError:
				result = "tool_error"
			default:
				result = "ok"
			}
			return res, err
		}
	}
}

// PoolStats is the connection pool at one moment.
type PoolStats struct {
	Acquired, Idle, Total, Max int32
}

// PgxPoolStats reads a pgx pool's statistics.
func PgxPoolStats(p *pgxpool.Pool) func() PoolStats {
	return func() PoolStats {
		s := p.Stat()
		return PoolStats{Acquired: s.AcquiredConns(), Idle: s.IdleConns(), Total: s.TotalConns(), Max: s.MaxConns()}
	}
}

// State is what the scrape-time gauges read. Nil fields are not reported.
type State struct {
	QueueStats   func(ctx context.Context) (store.QueueStats, error)
	ActiveAlerts func(ctx context.Context) ([]store.ActiveAlertState, error)
	Pool         func() PoolStats
	// Breakers maps an upstream name to its breaker's state
	// ("closed", "half-open", "open").
	Breakers map[string]func() string
	// ReadEvery is how long one reading of the database (queue statistics,
	// firing alerts) serves scrapes; 0 reads on every scrape. Counting a
	// backlog of 100,000 pending events costs ~80 ms of database time, so
	// a scrape every second (or several Prometheus servers) would cost a
	// tenth of the drain's throughput; the service reads at most every 5 s.
	ReadEvery time.Duration
}

// DefaultStateReadEvery is the service's State.ReadEvery.
const DefaultStateReadEvery = 5 * time.Second

// cachedRead keeps one reading of the database for a while.
type cachedRead[T any] struct {
	mu  sync.Mutex
	at  time.Time
	val T
	err error
	d   time.Duration // how long the reading took
}

// get returns the kept reading while it is younger than ttl, else reads.
// fresh reports whether this call read (and so should be timed).
func (c *cachedRead[T]) get(ttl time.Duration, read func() (T, error)) (val T, d time.Duration, fresh bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ttl > 0 && !c.at.IsZero() && time.Since(c.at) < ttl {
		return c.val, c.d, false, c.err
	}
	start := time.Now()
	c.val, c.err = read()
	c.d, c.at = time.Since(start), time.Now()
	return c.val, c.d, true, c.err
}

// WatchState makes the scrape read s: queue depth, oldest pending age and
// firing alerts with one short query each, pool and breaker state from
// memory. Call it once, before serving.
func (m *Metrics) WatchState(s State) {
	if m != nil {
		m.state.src.Store(&s)
	}
}

// stateTimeout bounds the queries a scrape runs, so /metrics answers even
// when the database does not.
const stateTimeout = 2 * time.Second

type stateCollector struct {
	m                       *Metrics
	src                     atomic.Pointer[State]
	queueDepth, oldestAge   *prometheus.Desc
	alertsFiring            *prometheus.Desc
	connsActive, connsIdle  *prometheus.Desc
	connsTotal, connsMax    *prometheus.Desc
	breakerState            *prometheus.Desc
	queueStatsUp, alertsUp  *prometheus.Desc
	lastQueueErr, lastAlert atomic.Int64 // unix seconds of the last logged failure
	queueRead               cachedRead[store.QueueStats]
	alertsRead              cachedRead[[]store.ActiveAlertState]
}

func newStateCollector(m *Metrics) *stateCollector {
	return &stateCollector{
		m: m,
		queueDepth: prometheus.NewDesc("job_queue_depth",
			"Events in the queue by status (pending, processing, error, quarantined), read from the database at scrape time (at most every few seconds).", []string{"status"}, nil),
		oldestAge: prometheus.NewDesc("job_oldest_pending_age_seconds",
			"How long the oldest due pending event has been waiting to be claimed (0 when none is due), read from the database at scrape time (at most every few seconds).", nil, nil),
		alertsFiring: prometheus.NewDesc("alerts_firing",
			"Alerts firing in alert_state, by severity, read from the database at scrape time (at most every few seconds; 0 when none).", []string{"severity"}, nil),
		connsActive: prometheus.NewDesc("database_connections_active",
			"Connections of the pool in use right now.", nil, nil),
		connsIdle: prometheus.NewDesc("database_connections_idle",
			"Idle connections of the pool.", nil, nil),
		connsTotal: prometheus.NewDesc("database_connections_open",
			"Open connections of the pool (active, idle and being established).", nil, nil),
		connsMax: prometheus.NewDesc("database_connections_max",
			"Largest size of the pool.", nil, nil),
		breakerState: prometheus.NewDesc("upstream_breaker_state",
			"Circuit breaker of an upstream: 0 closed, 1 half-open, 2 open.", []string{"upstream"}, nil),
		queueStatsUp: prometheus.NewDesc("job_queue_stats_up",
			"1 when the scrape could read the queue statistics, 0 when the query failed.", nil, nil),
		alertsUp: prometheus.NewDesc("alerts_state_up",
			"1 when the scrape could read alert_state, 0 when the query failed.", nil, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queueDepth, c.oldestAge, c.alertsFiring, c.connsActive, c.connsIdle,
		c.connsTotal, c.connsMax, c.breakerState, c.queueStatsUp, c.alertsUp} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Load()
	if s == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	up := func(ok bool) float64 {
		if ok {
			return 1
		}
		return 0
	}
	if s.Pool != nil {
		p := s.Pool()
		gauge(c.connsActive, float64(p.Acquired))
		gauge(c.connsIdle, float64(p.Idle))
		gauge(c.connsTotal, float64(p.Total))
		gauge(c.connsMax, float64(p.Max))
	}
	for name, state := range s.Breakers {
		v := 0.0
		switch state() {
		case "half-open":
			v = 1
		case "open":
			v = 2
		}
		gauge(c.breakerState, v, name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
	defer cancel()
	if s.QueueStats != nil {
		qs, d, fresh, err := c.queueRead.get(s.ReadEvery, func() (store.QueueStats, error) { return s.QueueStats(ctx) })
		if fresh {
			c.m.ObserveQuery(QueryQueueStats, d, err)
		}
		gauge(c.queueStatsUp, up(err == nil))
		if err != nil {
			c.logFailure(&c.lastQueueErr, "queue statistics", err)
		} else {
			for _, st := range queueStatuses {
				gauge(c.queueDepth, float64(qs.ByStatus[st]), st)
			}
			gauge(c.oldestAge, max(qs.OldestDueAgeSeconds, 0))
		}
	}
	if s.ActiveAlerts != nil {
		alerts, d, fresh, err := c.alertsRead.get(s.ReadEvery, func() ([]store.ActiveAlertState, error) { return s.ActiveAlerts(ctx) })
		if fresh {
			c.m.ObserveQuery(QueryActiveAlerts, d, err)
		}
		gauge(c.alertsUp, up(err == nil))
		if err != nil {
			c.logFailure(&c.lastAlert, "alert state", err)
		} else {
			firing := map[string]float64{}
			for _, a := range alerts {
				if a.State == "firing" {
					firing[oneOf(a.Severity, severities)]++
				}
			}
			for _, sev := range alertSeverity {
				gauge(c.alertsFiring, firing[sev], sev)
			}
			if n := firing[LabelOther]; n > 0 {
				gauge(c.alertsFiring, n, LabelOther)
			}
		}
	}
}

// logFailure logs a failed scrape-time read at most once a minute per kind.
func (c *stateCollector) logFailure(last *atomic.Int64, what string, err error) {
	now := time.Now().Unix()
	if prev := last.Load(); now-prev < 60 || !last.CompareAndSwap(prev, now) {
		return
	}
	c.m.log.Warn().Err(err).Str("reading", what).Msg("metrics scrape could not read from the database")
}
