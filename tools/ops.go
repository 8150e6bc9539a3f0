package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/df-middleware/df-middleware/internal/health"
	"github.com/df-middleware/df-middleware/internal/store"
)

func opsToolset() toolset {
	return toolset{
		name:        "ops",
		description: "Health of the service and its dependencies, the job queue, alerts, grouped errors and database performance. Start here.",
		tools: []toolDef{
			checkHealthTool(),
			queueStatusTool(),
			listAlertsTool(),
			listErrorGroupsTool(),
			dbPerformanceTool(),
		},
	}
}

// readOnlyHints are the annotations of a tool that only reads local state.
func readOnlyHints(title string) mcp.ToolAnnotation {
	return mcp.ToolAnnotation{Title: title, ReadOnlyHint: yes(), DestructiveHint: no(), IdempotentHint: yes(), OpenWorldHint: no()}
}

// ---- check_health ----

type noParams struct{}

type dependencyCheck struct {
	Name      string  `json:"name" jsonschema:"database, job_queue, ghl_api, aloware_api, verity_api, …"`
	Status    string  `json:"status" jsonschema:"ok, degraded, down or not_configured"`
	LatencyMS float64 `json:"latency_ms" jsonschema:"how long the check took"`
	Message   string  `json:"message,omitempty" jsonschema:"the check's evidence or error"`
}

type healthResult struct {
	Status       string            `json:"status" jsonschema:"overall: ok, degraded, or down (down only when the database is unreachable and the service cannot accept work)"`
	Timestamp    string            `json:"timestamp"`
	Dependencies []dependencyCheck `json:"dependencies" jsonschema:"every dependency, problems first"`
	NextSteps    []string          `json:"next_steps" jsonschema:"what to look at next"`
}

func (r healthResult) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Service health: %s (%s)\n", r.Status, r.Timestamp)
	for _, d := range r.Dependencies {
		fmt.Fprintf(&b, "- %s: %s, %.1f ms", d.Name, d.Status, d.LatencyMS)
		if d.Message != "" {
			fmt.Fprintf(&b, " — %s", d.Message)
		}
		b.WriteByte('\n')
	}
	writeSteps(&b, r.NextSteps)
	return b.String()
}

func checkHealthTool() toolDef {
	return define(spec{
		name:  "check_health",
		title: "Check service health",
		description: "Checks every dependency of df-middleware now — the database, the job queue, and the GHL, Aloware and Verity APIs — " +
			"and returns each one's status (ok, degraded, down, not_configured), check latency and message, plus the overall status " +
			"that GET /health reports. Use it first when something seems wrong, and after fixing configuration. " +
			"Next: get_queue_status when job_queue is degraded; list_sync_errors when an upstream API is down; list_error_groups for recent failures.",
		annotations: mcp.ToolAnnotation{Title: "Check service health", ReadOnlyHint: yes(), DestructiveHint: no(), IdempotentHint: yes(), OpenWorldHint: yes()},
	}, checkHealth)
}

var statusRank = map[string]int{health.Down: 0, health.Degraded: 1, health.OK: 2, health.NotConfigured: 3}

func checkHealth(ctx context.Context, d *Deps, _ noParams) (healthResult, error) {
	if d.Health == nil {
		return healthResult{}, fail("health checks are not available in this process; check the server's startup logs")
	}
	rep := d.Health.Run(ctx)
	r := healthResult{Status: rep.Status, Timestamp: rep.Timestamp, Dependencies: []dependencyCheck{}, NextSteps: []string{}}
	for name, c := range rep.Checks {
		r.Dependencies = append(r.Dependencies, dependencyCheck{Name: name, Status: c.Status, LatencyMS: c.LatencyMS, Message: clean(c.Message, maxMessageBytes)})
	}
	sort.Slice(r.Dependencies, func(i, j int) bool {
		a, b := r.Dependencies[i], r.Dependencies[j]
		if statusRank[a.Status] != statusRank[b.Status] {
			return statusRank[a.Status] < statusRank[b.Status]
		}
		return a.Name < b.Name
	})
	for _, dep := range r.Dependencies {
		if dep.Status != health.Down && dep.Status != health.Degraded {
			continue
		}
		switch dep.Name {
		case "database":
			r.NextSteps = append(r.NextSteps, "The database is unreachable: check DATABASE_URL and that PostgreSQL is running; every other tool fails until it is back.")
		case "job_queue":
			r.NextSteps = append(r.NextSteps, "The job queue is behind or has expired leases: call get_queue_status, then process_pending if workers are idle.")
		case "ghl_api", "aloware_api":
			r.NextSteps = append(r.NextSteps, fmt.Sprintf("%s is %s: call list_sync_errors to see the failed operations and get_sync_stats for the error rate.", dep.Name, dep.Status))
		case "verity_api":
			r.NextSteps = append(r.NextSteps, "Verity is "+dep.Status+": broadcast tools will fail; check VERITY_BASE_URL, CLERK_SECRET_KEY and the Clerk session.")
		default:
			r.NextSteps = append(r.NextSteps, fmt.Sprintf("%s is %s: see its message above.", dep.Name, dep.Status))
		}
	}
	if len(r.NextSteps) == 0 {
		r.NextSteps = append(r.NextSteps, "All checked dependencies are fine: call get_queue_status for the backlog and list_error_groups for recent failures.")
	}
	return r, nil
}

// ---- get_queue_status ----

type queueStatusParams struct {
	Window string `json:"window"`
}

type liveRow struct {
	Source           string  `json:"source"`
	Status           string  `json:"status" jsonschema:"pending or processing"`
	Count            int64   `json:"count"`
	Due              int64   `json:"due" jsonschema:"pending and due now"`
	WaitingForRetry  int64   `json:"waiting_for_retry" jsonschema:"pending, waiting for a retry's backoff"`
	ExpiredLeases    int64   `json:"expired_leases" jsonschema:"processing whose lease expired (worker lost); the leader returns them to pending"`
	OldestAgeSeconds float64 `json:"oldest_age_seconds" jsonschema:"pending: longest wait since due; processing: longest time since claimed"`
}

type queueTotals struct {
	Pending         int64 `json:"pending"`
	Due             int64 `json:"due"`
	WaitingForRetry int64 `json:"waiting_for_retry"`
	Processing      int64 `json:"processing"`
	ExpiredLeases   int64 `json:"expired_leases"`
	Error           int64 `json:"error" jsonschema:"finished in error: needs an operator (replay_events or replay_event)"`
	Quarantined     int64 `json:"quarantined"`
}

type oldestDue struct {
	EventID            string  `json:"event_id"`
	Source             string  `json:"source"`
	EventType          string  `json:"event_type"`
	Attempts           int     `json:"attempts"`
	DueForSeconds      float64 `json:"due_for_seconds"`
	ReceivedSecondsAgo float64 `json:"received_seconds_ago"`
}

type rateFigures struct {
	PerMinute5m  float64 `json:"per_minute_5m" jsonschema:"events finished per minute over the last 5 minutes"`
	PerMinute15m float64 `json:"per_minute_15m"`
	PerMinute60m float64 `json:"per_minute_60m"`
	Finished5m   int64   `json:"finished_5m"`
	Finished15m  int64   `json:"finished_15m"`
	Finished60m  int64   `json:"finished_60m"`
}

type processingFigures struct {
	WindowMinutes int              `json:"window_minutes"`
	WindowStart   time.Time        `json:"window_start"`
	Finished      int64            `json:"finished"`
	ByStatus      map[string]int64 `json:"by_status" jsonschema:"finished events by final status: done, skipped, error"`
	BySource      map[string]int64 `json:"by_source"`
	AvgMS         float64          `json:"avg_ms" jsonschema:"mean of processed_at - received_at (queue wait plus handling), exact"`
	P50MS         float64          `json:"p50_ms" jsonschema:"median, estimated from a histogram"`
	P95MS         float64          `json:"p95_ms" jsonschema:"95th percentile, estimated from a histogram"`
	MaxMS         float64          `json:"max_ms"`
}

type workerFigures struct {
	InThisProcess bool   `json:"in_this_process" jsonschema:"false when this MCP server runs without the worker pool"`
	Running       bool   `json:"running"`
	Leader        bool   `json:"leader" jsonschema:"this process holds the leader lock (lease rescue, alert evaluation)"`
	Workers       int    `json:"workers"`
	InstanceID    string `json:"instance_id,omitempty"`
}

type queueStatusResult struct {
	AsOf               time.Time         `json:"as_of"`
	Live               []liveRow         `json:"live" jsonschema:"live events by source and status"`
	Totals             queueTotals       `json:"totals"`
	LowerBounds        []string          `json:"lower_bounds" jsonschema:"statuses whose counts reached the counting cap and are lower bounds"`
	OldestDue          *oldestDue        `json:"oldest_due,omitempty"`
	ExpiredLeaseSample []string          `json:"expired_lease_sample" jsonschema:"ids of some events with expired leases"`
	Rate               rateFigures       `json:"rate"`
	Processing         processingFigures `json:"processing"`
	Workers            workerFigures     `json:"workers"`
	Notes              []string          `json:"notes"`
}

// liveCountCap bounds how many live rows of one status are counted: beyond
// it a count is reported as a lower bound.
const liveCountCap = 10_000

func (r queueStatusResult) text() string {
	var b strings.Builder
	t := r.Totals
	bound := func(status string, n int64) string {
		for _, s := range r.LowerBounds {
			if s == status {
				return fmt.Sprintf("≥%d", n)
			}
		}
		return fmt.Sprint(n)
	}
	fmt.Fprintf(&b, "Queue at %s: %s pending (%d due, %d waiting for retry), %s processing (%d expired leases), %s error, %s quarantined.\n",
		r.AsOf.Format(time.RFC3339), bound("pending", t.Pending), t.Due, t.WaitingForRetry, bound("processing", t.Processing), t.ExpiredLeases,
		bound("error", t.Error), bound("quarantined", t.Quarantined))
	for _, l := range r.Live {
		fmt.Fprintf(&b, "- %s %s: %d (due %d, waiting %d, expired %d, oldest %.0fs)\n", l.Source, l.Status, l.Count, l.Due, l.WaitingForRetry, l.ExpiredLeases, l.OldestAgeSeconds)
	}
	if r.OldestDue != nil {
		fmt.Fprintf(&b, "Oldest due: %s (%s %s, attempt %d) due for %.0fs.\n", r.OldestDue.EventID, r.OldestDue.Source, r.OldestDue.EventType, r.OldestDue.Attempts, r.OldestDue.DueForSeconds)
	}
	fmt.Fprintf(&b, "Finished per minute: %.1f (5m), %.1f (15m), %.1f (60m).\n", r.Rate.PerMinute5m, r.Rate.PerMinute15m, r.Rate.PerMinute60m)
	p := r.Processing
	fmt.Fprintf(&b, "Processing time over %d min (%d finished): avg %.0f ms, p50 ≈%.0f ms, p95 ≈%.0f ms, max %.0f ms.\n", p.WindowMinutes, p.Finished, p.AvgMS, p.P50MS, p.P95MS, p.MaxMS)
	w := r.Workers
	if w.InThisProcess {
		fmt.Fprintf(&b, "Workers here: %d, running=%t, leader=%t.\n", w.Workers, w.Running, w.Leader)
	} else {
		b.WriteString("No worker pool in this process.\n")
	}
	writeSteps(&b, r.Notes)
	return b.String()
}

func queueStatusTool() toolDef {
	return define(spec{
		name:  "get_queue_status",
		title: "Get job queue status",
		description: "Returns the shape of the webhook job queue now: pending events by source (due now vs waiting for a retry), events being processed and expired leases, " +
			"events in error or quarantine, the oldest due event, the processing rate (events finished per minute over 5, 15 and 60 minutes), " +
			"processing time (processed_at - received_at: average, p50, p95, max) over a window, and whether this process runs workers or leads. " +
			"Use it when the queue seems backed up or slow. Next: process_pending when due events wait and workers are idle; " +
			"search_events with status=error for failures; get_event on oldest_due.event_id.",
		annotations: readOnlyHints("Get job queue status"),
		params: []mcp.ToolOption{
			mcp.WithString("window", mcp.Description("Window of the processing-time figures, as a duration: 15m (default), 1h, 24h (at most 24h; whole minutes)."),
				mcp.MaxLength(16), mcp.DefaultString("15m")),
		},
	}, queueStatus)
}

func queueStatus(ctx context.Context, d *Deps, p queueStatusParams) (queueStatusResult, error) {
	window, err := parseWindow(p.Window, 15*time.Minute, 24*time.Hour, time.Minute)
	if err != nil {
		return queueStatusResult{}, err
	}
	live, err := d.Store.LiveQueueStats(ctx, liveCountCap)
	if err != nil {
		return queueStatusResult{}, err
	}
	fin, err := d.Store.EventFinishStats(ctx, window)
	if err != nil {
		return queueStatusResult{}, err
	}
	r := queueStatusResult{AsOf: live.Now, Live: []liveRow{}, LowerBounds: []string{}, ExpiredLeaseSample: live.ExpiredSample, Notes: []string{}}
	for _, g := range live.Groups {
		row := liveRow{Source: g.Source, Status: g.Status, Count: g.Count, Due: g.Due, WaitingForRetry: g.Waiting, ExpiredLeases: g.ExpiredLeases}
		if g.OldestSince != nil {
			row.OldestAgeSeconds = math.Max(0, live.Now.Sub(*g.OldestSince).Seconds())
		}
		r.Live = append(r.Live, row)
		if g.Status == store.StatusPending {
			r.Totals.Pending += g.Count
			r.Totals.Due += g.Due
			r.Totals.WaitingForRetry += g.Waiting
		} else {
			r.Totals.Processing += g.Count
			r.Totals.ExpiredLeases += g.ExpiredLeases
		}
	}
	r.Totals.Error, r.Totals.Quarantined = live.Errors, live.Quarantined
	for status, capped := range map[string]bool{"pending": live.PendingCapped, "processing": live.ProcessingCapped, "error": live.ErrorsCapped, "quarantined": live.QuarantinedCapped} {
		if capped {
			r.LowerBounds = append(r.LowerBounds, status)
		}
	}
	sort.Strings(r.LowerBounds)
	if len(r.LowerBounds) > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("Counts of %s stop at %d rows per status (so this call stays fast on a large backlog); they are lower bounds.", strings.Join(r.LowerBounds, ", "), liveCountCap))
	}
	if e := live.OldestDue; e != nil {
		r.OldestDue = &oldestDue{EventID: e.ID, Source: e.Source, EventType: clean(e.EventType, maxShortBytes), Attempts: e.Attempts,
			DueForSeconds: math.Max(0, live.Now.Sub(e.NextAttemptAt).Seconds()), ReceivedSecondsAgo: math.Max(0, live.Now.Sub(e.ReceivedAt).Seconds())}
	}

	// Rates: the rollup counts whole minutes back from the current one, so
	// a window of n minutes spans n-1 whole minutes plus the current part.
	part := fin.Now.Sub(fin.Now.Truncate(time.Minute)).Minutes()
	perMinute := func(n int64, minutes float64) float64 { return round2(float64(n) / (minutes - 1 + part)) }
	r.Rate = rateFigures{
		PerMinute5m: perMinute(fin.Finished5, 5), PerMinute15m: perMinute(fin.Finished15, 15), PerMinute60m: perMinute(fin.Finished60, 60),
		Finished5m: fin.Finished5, Finished15m: fin.Finished15, Finished60m: fin.Finished60,
	}
	h := fin.Histogram
	r.Processing = processingFigures{WindowMinutes: window, WindowStart: fin.WindowStart, Finished: h.N, ByStatus: fin.ByStatus, BySource: fin.BySource,
		AvgMS: round2(h.Mean()), P50MS: round2(h.Percentile(0.5)), P95MS: round2(h.Percentile(0.95)), MaxMS: round2(h.MaxMS)}

	if d.Runner != nil {
		cfg := d.Runner.Config()
		r.Workers = workerFigures{InThisProcess: true, Running: d.Runner.Running(), Leader: d.Runner.IsLeader(), Workers: cfg.Workers, InstanceID: cfg.InstanceID}
	}
	switch {
	case r.Totals.Due > 0 && r.Workers.InThisProcess && !r.Workers.Running:
		r.Notes = append(r.Notes, "Due events are waiting and this process runs no workers (DF_WORKERS=0?): start workers, or check another replica.")
	case r.Totals.Due > 0 && r.OldestDue != nil && r.OldestDue.DueForSeconds > 600:
		r.Notes = append(r.Notes, "The oldest due event has waited more than 10 minutes: call process_pending, then check_health.")
	}
	if r.Totals.ExpiredLeases > 0 {
		r.Notes = append(r.Notes, "Some leases expired (a worker died or hung): process_pending returns them to the queue now.")
	}
	if r.Totals.Error > 0 {
		r.Notes = append(r.Notes, "Events in error need an operator: search_events with status=error, then replay_event or replay_events.")
	}
	if h.N > 0 {
		r.Notes = append(r.Notes, "Percentiles are estimated from a duration histogram (bucket bounds 5 ms … 1 h); the average is exact.")
	}
	return r, nil
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// ---- list_alerts ----

type listAlertsParams struct {
	Limit  int    `json:"limit"`
	Cursor string `json:"cursor"`
}

type alertRow struct {
	Rule            string            `json:"rule"`
	Severity        string            `json:"severity"`
	State           string            `json:"state" jsonschema:"firing, pending or inactive"`
	Value           *float64          `json:"value,omitempty"`
	Labels          map[string]string `json:"labels"`
	ActiveSince     *time.Time        `json:"active_since,omitempty"`
	FiredAt         *time.Time        `json:"fired_at,omitempty"`
	ResolvedAt      *time.Time        `json:"resolved_at,omitempty"`
	LastEvaluatedAt time.Time         `json:"last_evaluated_at"`
	Fingerprint     string            `json:"fingerprint"`
}

type alertHistoryRow struct {
	At       time.Time         `json:"at"`
	Rule     string            `json:"rule"`
	Severity string            `json:"severity"`
	State    string            `json:"state"`
	Value    *float64          `json:"value,omitempty"`
	Labels   map[string]string `json:"labels"`
	Summary  string            `json:"summary,omitempty"`
}

type alertsResult struct {
	Firing     int               `json:"firing"`
	Pending    int               `json:"pending"`
	Alerts     []alertRow        `json:"alerts" jsonschema:"current alert states, firing first, then pending, then inactive"`
	History    []alertHistoryRow `json:"history" jsonschema:"alert transitions, newest first"`
	NextCursor string            `json:"next_cursor,omitempty" jsonschema:"pass as cursor for older history"`
	Truncated  bool              `json:"truncated" jsonschema:"true when more alerts or history exist than were returned"`
	Note       string            `json:"note,omitempty"`
}

const maxAlertStates = 100

func (r alertsResult) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Alerts: %d firing, %d pending.\n", r.Firing, r.Pending)
	for _, a := range r.Alerts {
		fmt.Fprintf(&b, "- [%s] %s (%s)", a.State, a.Rule, a.Severity)
		if a.Value != nil {
			fmt.Fprintf(&b, " value %g", *a.Value)
		}
		b.WriteByte('\n')
	}
	if len(r.History) > 0 {
		b.WriteString("History (newest first):\n")
		for _, h := range r.History {
			fmt.Fprintf(&b, "- %s %s %s (%s)\n", h.At.Format(time.RFC3339), h.Rule, h.State, h.Severity)
		}
	}
	if r.Note != "" {
		b.WriteString(r.Note + "\n")
	}
	writeMore(&b, r.NextCursor)
	return b.String()
}

func listAlertsTool() toolDef {
	return define(spec{
		name:  "list_alerts",
		title: "List alerts",
		description: "Lists the service's alert rules in their current state — firing first, then pending, then inactive — with value, labels and since when, " +
			"plus the recent alert history (firing and resolved transitions, newest first, paginated with cursor). " +
			"Rules: queue depth, error rate, database connection failures, upstream API failures, p95 latency, processing delay. " +
			"Use it to see what is alarming and since when. Next: get_queue_status or list_sync_errors, depending on the rule.",
		annotations: readOnlyHints("List alerts"),
		params:      []mcp.ToolOption{limitParam(20, 100, "history entries"), cursorParam()},
	}, listAlerts)
}

func listAlerts(ctx context.Context, d *Deps, p listAlertsParams) (alertsResult, error) {
	limit := withDefault(p.Limit, 20)
	r := alertsResult{Alerts: []alertRow{}, History: []alertHistoryRow{}}
	if p.Cursor == "" {
		states, more, err := d.Store.AlertStates(ctx, maxAlertStates)
		if err != nil {
			return r, err
		}
		r.Truncated = more
		for _, s := range states {
			switch s.State {
			case "firing":
				r.Firing++
			case "pending":
				r.Pending++
			}
			r.Alerts = append(r.Alerts, alertRow{Rule: clean(s.Rule, maxShortBytes), Severity: s.Severity, State: s.State, Value: finite(s.Value),
				Labels: labelMap(s.Labels), ActiveSince: s.ActiveSince, FiredAt: s.FiredAt, ResolvedAt: s.ResolvedAt,
				LastEvaluatedAt: s.LastEvaluatedAt, Fingerprint: s.Fingerprint})
		}
	}
	hist, next, err := d.Store.AlertHistory(ctx, p.Cursor, limit)
	if errors.Is(err, store.ErrBadCursor) {
		return r, badCursor("list_alerts")
	}
	if err != nil {
		return r, err
	}
	for _, h := range hist {
		ann := labelMap(h.Annotations)
		r.History = append(r.History, alertHistoryRow{At: h.At, Rule: clean(h.Rule, maxShortBytes), Severity: h.Severity, State: h.State,
			Value: finite(h.Value), Labels: labelMap(h.Labels), Summary: ann["summary"]})
	}
	r.NextCursor = next
	r.Truncated = r.Truncated || next != ""
	if p.Cursor == "" && len(r.Alerts) == 0 && len(r.History) == 0 {
		r.Note = "No alert has been evaluated yet: the in-process alert evaluator arrives with a later issue, so alert_state and alert_history are still empty. " +
			"Meanwhile use check_health, get_queue_status and get_sync_stats, which compute the same signals on demand."
	}
	return r, nil
}

// labelMap decodes a JSON object of labels into strings (bounded, sanitized).
func labelMap(raw json.RawMessage) map[string]string {
	out := map[string]string{}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return out
	}
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			b, _ := json.Marshal(v)
			s = string(b)
		}
		out[clean(k, maxShortBytes)] = clean(s, maxShortBytes)
	}
	return out
}

func finite(v *float64) *float64 {
	if v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) {
		return nil
	}
	return v
}

// ---- list_error_groups ----

type listErrorGroupsParams struct {
	Component string `json:"component"`
	Limit     int    `json:"limit"`
	Cursor    string `json:"cursor"`
}

type errorGroupRow struct {
	Fingerprint   string    `json:"fingerprint"`
	Component     string    `json:"component"`
	ErrorClass    string    `json:"error_class"`
	SampleMessage string    `json:"sample_message" jsonschema:"one occurrence's message (sanitized, bounded)"`
	Count         int64     `json:"count"`
	FirstSeen     time.Time `json:"first_seen"`
	LastSeen      time.Time `json:"last_seen"`
	LastEventID   string    `json:"last_event_id,omitempty" jsonschema:"the event of the latest occurrence: pass to get_event"`
}

type errorGroupsResult struct {
	Groups     []errorGroupRow `json:"groups" jsonschema:"error groups, most recently seen first"`
	NextCursor string          `json:"next_cursor,omitempty"`
	Truncated  bool            `json:"truncated" jsonschema:"true when more groups exist: call again with next_cursor"`
}

func (r errorGroupsResult) text() string {
	var b strings.Builder
	if len(r.Groups) == 0 {
		b.WriteString("No error groups.\n")
	}
	for _, g := range r.Groups {
		fmt.Fprintf(&b, "- %s ×%d [%s/%s] last %s: %s", g.Fingerprint, g.Count, g.Component, g.ErrorClass, g.LastSeen.Format(time.RFC3339), truncateRunes(g.SampleMessage, 160))
		if g.LastEventID != "" {
			fmt.Fprintf(&b, " (event %s)", g.LastEventID)
		}
		b.WriteByte('\n')
	}
	writeMore(&b, r.NextCursor)
	return b.String()
}

func listErrorGroupsTool() toolDef {
	return define(spec{
		name:  "list_error_groups",
		title: "List error groups",
		description: "Lists errors grouped by fingerprint (same component, error class and normalized message), most recently seen first: " +
			"count, first and last seen, a sample message and the last event id. Filter by component (e.g. queue, sync, intake, upstream). " +
			"Use it to see which failures recur and since when. Next: get_event on last_event_id, or search_events with status=error.",
		annotations: readOnlyHints("List error groups"),
		params: []mcp.ToolOption{
			mcp.WithString("component", mcp.Description("Only groups of this component."), mcp.MaxLength(100)),
			limitParam(20, 100, "groups"), cursorParam(),
		},
	}, listErrorGroups)
}

func listErrorGroups(ctx context.Context, d *Deps, p listErrorGroupsParams) (errorGroupsResult, error) {
	page, err := d.Store.ListErrorGroups(ctx, p.Component, p.Cursor, withDefault(p.Limit, 20))
	if errors.Is(err, store.ErrBadCursor) {
		return errorGroupsResult{}, badCursor("list_error_groups")
	}
	if err != nil {
		return errorGroupsResult{}, err
	}
	r := errorGroupsResult{Groups: []errorGroupRow{}, NextCursor: page.NextCursor, Truncated: page.NextCursor != ""}
	for _, g := range page.Groups {
		r.Groups = append(r.Groups, errorGroupRow{Fingerprint: g.Fingerprint, Component: g.Component, ErrorClass: clean(g.ErrorClass, maxShortBytes),
			SampleMessage: clean(g.SampleMessage, maxMessageBytes), Count: g.Count, FirstSeen: g.FirstSeen, LastSeen: g.LastSeen, LastEventID: g.LastEventID})
	}
	return r, nil
}

// ---- get_db_performance ----

type dbPerformanceParams struct {
	Limit   int    `json:"limit"`
	OrderBy string `json:"order_by"`
}

type statementRow struct {
	Query      string  `json:"query" jsonschema:"normalized statement text (constants replaced by $n), bounded"`
	Calls      int64   `json:"calls"`
	MeanMS     float64 `json:"mean_ms"`
	TotalMS    float64 `json:"total_ms"`
	MaxMS      float64 `json:"max_ms"`
	Rows       int64   `json:"rows"`
	HitPercent float64 `json:"cache_hit_percent" jsonschema:"shared buffer hits / (hits + reads)"`
}

type tableRow struct {
	Table           string     `json:"table"`
	TotalBytes      int64      `json:"total_bytes"`
	Total           string     `json:"total" jsonschema:"total size, human readable"`
	TableBytes      int64      `json:"table_bytes"`
	IndexBytes      int64      `json:"index_bytes"`
	ToastBytes      int64      `json:"toast_bytes"`
	EstimatedRows   int64      `json:"estimated_rows"`
	DeadTuples      int64      `json:"dead_tuples"`
	LastAutovacuum  *time.Time `json:"last_autovacuum,omitempty"`
	LastAutoanalyze *time.Time `json:"last_autoanalyze,omitempty"`
}

type indexRow struct {
	Index string `json:"index"`
	Table string `json:"table"`
	Bytes int64  `json:"bytes"`
	Size  string `json:"size"`
	Scans int64  `json:"scans" jsonschema:"index scans since statistics were reset; 0 on a large index suggests it is unused"`
}

type upkeep struct {
	LiveTuples      int64      `json:"live_tuples"`
	DeadTuples      int64      `json:"dead_tuples"`
	DeadPercent     float64    `json:"dead_percent"`
	LastVacuum      *time.Time `json:"last_vacuum,omitempty"`
	LastAutovacuum  *time.Time `json:"last_autovacuum,omitempty"`
	LastAnalyze     *time.Time `json:"last_analyze,omitempty"`
	LastAutoanalyze *time.Time `json:"last_autoanalyze,omitempty"`
}

type dbPerformanceResult struct {
	StatementsAvailable bool           `json:"statements_available" jsonschema:"pg_stat_statements could be read"`
	StatementsNote      string         `json:"statements_note,omitempty" jsonschema:"why statements are missing and how to enable them"`
	Statements          []statementRow `json:"statements" jsonschema:"slowest statements of this database"`
	Tables              []tableRow     `json:"tables" jsonschema:"tables of the service's schema, largest first"`
	Indexes             []indexRow     `json:"indexes" jsonschema:"largest indexes"`
	WebhookEvents       upkeep         `json:"webhook_events" jsonschema:"dead tuples and vacuum times of the queue table"`
	Truncated           bool           `json:"truncated" jsonschema:"true when more statements or indexes exist than limit"`
}

func (r dbPerformanceResult) text() string {
	var b strings.Builder
	if r.StatementsAvailable {
		b.WriteString("Slowest statements:\n")
		for _, s := range r.Statements {
			fmt.Fprintf(&b, "- mean %.2f ms, %d calls, total %.0f ms: %s\n", s.MeanMS, s.Calls, s.TotalMS, truncateRunes(strings.Join(strings.Fields(s.Query), " "), 160))
		}
	} else {
		b.WriteString("Statements: " + r.StatementsNote + "\n")
	}
	b.WriteString("Tables:\n")
	for _, t := range r.Tables {
		fmt.Fprintf(&b, "- %s: %s (~%d rows, %d dead)\n", t.Table, t.Total, t.EstimatedRows, t.DeadTuples)
	}
	b.WriteString("Largest indexes:\n")
	for _, i := range r.Indexes {
		fmt.Fprintf(&b, "- %s on %s: %s, %d scans\n", i.Index, i.Table, i.Size, i.Scans)
	}
	w := r.WebhookEvents
	fmt.Fprintf(&b, "webhook_events: %d live, %d dead tuples (%.1f%%), last autovacuum %s.\n", w.LiveTuples, w.DeadTuples, w.DeadPercent, fmtTime(w.LastAutovacuum))
	return b.String()
}

func dbPerformanceTool() toolDef {
	return define(spec{
		name:  "get_db_performance",
		title: "Get database performance",
		description: "Reports PostgreSQL performance for this service: the slowest statements from pg_stat_statements (by mean or total time; " +
			"when the extension is missing, a note says how to enable it), the size of every table and of the largest indexes with their scan counts, " +
			"and dead tuples and last (auto)vacuum/analyze of webhook_events. Reads catalogs and statistics only; it scans no table. " +
			"Use it when tools or the queue are slow. Next: get_queue_status for the backlog behind a large webhook_events.",
		annotations: readOnlyHints("Get database performance"),
		params: []mcp.ToolOption{
			mcp.WithInteger("limit", mcp.Description("How many statements and indexes to return (default 10, at most 50)."), mcp.Min(1), mcp.Max(50), mcp.DefaultNumber(10)),
			mcp.WithString("order_by", mcp.Description("Rank statements by mean time per call (default) or by total time."), mcp.Enum("mean", "total"), mcp.DefaultString("mean")),
		},
	}, dbPerformance)
}

func dbPerformance(ctx context.Context, d *Deps, p dbPerformanceParams) (dbPerformanceResult, error) {
	limit := withDefault(p.Limit, 10)
	r := dbPerformanceResult{Statements: []statementRow{}, Tables: []tableRow{}, Indexes: []indexRow{}}
	stmts, err := d.Store.SlowStatements(ctx, withDefault(p.OrderBy, "mean"), limit+1)
	switch {
	case errors.Is(err, store.ErrNoStatStatements):
		preload, _ := d.Store.PreloadedLibraries(ctx)
		r.StatementsNote = fmt.Sprintf("pg_stat_statements is not available (%s). To enable it: add pg_stat_statements to shared_preload_libraries "+
			"in postgresql.conf (currently %q), restart PostgreSQL, then run CREATE EXTENSION pg_stat_statements; in this database as a superuser. "+
			"Table and index figures below do not need it.", clean(strings.TrimPrefix(err.Error(), store.ErrNoStatStatements.Error()+": "), maxShortBytes), preload)
	case err != nil:
		return r, err
	default:
		r.StatementsAvailable = true
		if len(stmts) > limit {
			stmts, r.Truncated = stmts[:limit], true
		}
		for _, s := range stmts {
			hit := 100.0
			if s.SharedBlkHit+s.SharedBlkRd > 0 {
				hit = round2(100 * float64(s.SharedBlkHit) / float64(s.SharedBlkHit+s.SharedBlkRd))
			}
			r.Statements = append(r.Statements, statementRow{Query: clean(s.Query, maxMessageBytes), Calls: s.Calls, MeanMS: round2(s.MeanMS),
				TotalMS: round2(s.TotalMS), MaxMS: round2(s.MaxMS), Rows: s.Rows, HitPercent: hit})
		}
	}
	tables, err := d.Store.TableSizes(ctx)
	if err != nil {
		return r, err
	}
	for _, t := range tables {
		r.Tables = append(r.Tables, tableRow{Table: t.Table, TotalBytes: t.TotalBytes, Total: bytesText(t.TotalBytes), TableBytes: t.TableBytes,
			IndexBytes: t.IndexBytes, ToastBytes: t.ToastBytes, EstimatedRows: t.EstimatedRows, DeadTuples: t.DeadTuples,
			LastAutovacuum: t.LastAutovacuum, LastAutoanalyze: t.LastAutoanalyze})
		if t.Table == "webhook_events" {
			r.WebhookEvents = upkeep{LiveTuples: t.LiveTuples, DeadTuples: t.DeadTuples, LastVacuum: t.LastVacuum, LastAutovacuum: t.LastAutovacuum,
				LastAnalyze: t.LastAnalyze, LastAutoanalyze: t.LastAutoanalyze}
			if t.LiveTuples+t.DeadTuples > 0 {
				r.WebhookEvents.DeadPercent = round2(100 * float64(t.DeadTuples) / float64(t.LiveTuples+t.DeadTuples))
			}
		}
	}
	idx, err := d.Store.IndexSizes(ctx, limit+1)
	if err != nil {
		return r, err
	}
	if len(idx) > limit {
		idx, r.Truncated = idx[:limit], true
	}
	for _, i := range idx {
		r.Indexes = append(r.Indexes, indexRow{Index: i.Index, Table: i.Table, Bytes: i.Bytes, Size: bytesText(i.Bytes), Scans: i.Scans})
	}
	return r, nil
}

func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// writeSteps appends a list of sentences to a text rendering.
func writeSteps(b *strings.Builder, steps []string) {
	for _, s := range steps {
		b.WriteString("→ " + s + "\n")
	}
}

// writeMore tells the reader how to get the next page.
func writeMore(b *strings.Builder, next string) {
	if next != "" {
		fmt.Fprintf(b, "More results: call again with cursor=%q.\n", next)
	}
}

func badCursor(tool string) error {
	return fail("cursor is not one %s returned (or its filters changed); call %s again without cursor to start from the newest", tool, tool)
}
