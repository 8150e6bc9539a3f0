// Package alert evaluates the operations document's alert rules inside the
// service and delivers their notifications in Alertmanager's webhook format.
//
// Every replica counts its own job runs, job failures, job durations and
// upstream call attempts (Counters) and adds them to alert_counters every few
// seconds. The leader replica evaluates the rules over the whole service's
// figures (Evaluator), keeps each alert's state in alert_state and its
// transitions in alert_history, and delivers what a receiver has not yet
// heard (Notifier), one sender across replicas. The database alert is the
// exception: when PostgreSQL cannot be reached there is no leader lock and no
// alert_state, so the replica that was leader when the database was last
// reachable evaluates and notifies it from memory (DatabaseWatch) and records
// it once the database is back.
package alert

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Alert names: the same in deploy/prometheus/alerts.yml.
const (
	QueueDepthCritical      = "QueueDepthCritical"
	QueueDepthWarning       = "QueueDepthWarning"
	ErrorRateCritical       = "ErrorRateCritical"
	ErrorRateWarning        = "ErrorRateWarning"
	DatabaseUnavailable     = "DatabaseUnavailable"
	UpstreamFailureRateHigh = "UpstreamFailureRateHigh"
	LatencyP95High          = "LatencyP95High"
	ProcessingDelayHigh     = "ProcessingDelayHigh"
)

// Severities.
const (
	Critical = "critical"
	Warning  = "warning"
)

// Service is the service label of every alert.
const Service = "df-middleware"

// DocsURL is where each alert's section lives (anchor: the lower-cased name).
const DocsURL = "https://github.com/df-middleware/df-middleware/blob/main/docs/alerting.md"

// Settings are the thresholds and timing of the rules and of delivery.
type Settings struct {
	Instance        string        // this replica (DF_INSTANCE_ID)
	EvalInterval    time.Duration // how often the leader evaluates
	Window          time.Duration // rate and percentile window
	For             time.Duration // how long a rate or latency condition must hold before firing
	DatabaseFor     time.Duration // how long the database must be unreachable
	QueueWarning    int64
	QueueCritical   int64
	ErrorWarning    float64 // failed / all handler runs
	ErrorCritical   float64
	UpstreamFailure float64 // failed / all call attempts, per upstream
	LatencyP95      time.Duration
	ProcessingDelay time.Duration // age of the oldest due pending event
	MinSamples      int           // runs or calls in the window below which a rate is not judged
	Upstreams       []string      // upstreams with a failure-rate alert

	WebhookURL      string // ALERT_WEBHOOK_URL: Alertmanager webhook format
	AlertmanagerURL string // ALERTMANAGER_URL: also push to /api/v2/alerts
	ExternalURL     string // externalURL of notifications, base of generatorURL
	Slot            time.Duration
	FlushEvery      time.Duration
	RetryBase       time.Duration // first retry of a failed delivery, doubled up to RetryMax
	RetryMax        time.Duration
	SendTimeout     time.Duration
}

// DefaultSettings are the operations document's thresholds.
func DefaultSettings() Settings {
	return Settings{
		EvalInterval: 15 * time.Second, Window: 5 * time.Minute, For: 5 * time.Minute, DatabaseFor: time.Minute,
		QueueWarning: 500, QueueCritical: 1000, ErrorWarning: 0.01, ErrorCritical: 0.05, UpstreamFailure: 0.10,
		LatencyP95: 5 * time.Second, ProcessingDelay: 10 * time.Minute, MinSamples: 10,
		Upstreams: []string{"ghl", "aloware", "verity"},
		Slot:      10 * time.Second, FlushEvery: 5 * time.Second,
		RetryBase: time.Second, RetryMax: 5 * time.Minute, SendTimeout: 10 * time.Second,
	}
}

// Figures are the whole service's measurements one evaluation judges.
type Figures struct {
	QueueDepth       float64 // pending + processing events
	OldestPendingAge float64 // seconds
	JobRuns          float64 // handler runs in the window
	JobFailures      float64 // of which failed (retry or error)
	JobP95           float64 // seconds; 0 without runs
	Calls, Errors    map[string]float64
}

// Sample is one rule's verdict for one label set.
type Sample struct {
	Labels map[string]string // beyond alertname, severity and service
	Value  float64
	Active bool // the condition holds
}

// Rule is one alert rule.
type Rule struct {
	Name     string
	Severity string
	Summary  string
	Runbook  string        // MCP runbook resource
	For      time.Duration // 0: fires on the first evaluation that finds it true
	Describe func(value float64, labels map[string]string) string
	Eval     func(Figures) []Sample
}

// Labels are the full label set of one alert of r.
func (r Rule) Labels(extra map[string]string) map[string]string {
	l := map[string]string{"alertname": r.Name, "severity": r.Severity, "service": Service}
	for k, v := range extra {
		l[k] = v
	}
	return l
}

// Annotations are summary, description and the runbook references.
func (r Rule) Annotations(value float64, labels map[string]string) map[string]string {
	summary := r.Summary
	if up := labels["upstream"]; up != "" {
		summary = strings.ReplaceAll(summary, "{upstream}", up)
	}
	return map[string]string{
		"summary":     summary,
		"description": r.Describe(value, labels),
		"runbook":     r.Runbook,
		"runbook_url": DocsURL + "#" + strings.ToLower(r.Name),
	}
}

// Fingerprint identifies an alert by its label set (16 hex digits, like
// Alertmanager's).
func Fingerprint(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := fnv.New64a()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{0xff})
		h.Write([]byte(labels[k]))
		h.Write([]byte{0xff})
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

func percent(v float64) string { return strconv.FormatFloat(v*100, 'f', 1, 64) + "%" }

func seconds(v float64) string {
	return (time.Duration(v * float64(time.Second))).Round(time.Millisecond).String()
}

// Rules are the operations document's rules with s's thresholds.
func Rules(s Settings) []Rule {
	ratio := func(failed, all float64) (float64, bool) {
		if all < float64(max(s.MinSamples, 1)) {
			return 0, false
		}
		return failed / all, true
	}
	window := s.Window.String()
	return []Rule{
		{
			Name: QueueDepthCritical, Severity: Critical, Runbook: "runbook://queue-backup",
			Summary: "Job queue is backing up",
			Describe: func(v float64, _ map[string]string) string {
				return fmt.Sprintf("%.0f events are pending or processing (critical above %d).", v, s.QueueCritical)
			},
			Eval: func(f Figures) []Sample {
				return []Sample{{Value: f.QueueDepth, Active: f.QueueDepth > float64(s.QueueCritical)}}
			},
		},
		{
			Name: QueueDepthWarning, Severity: Warning, Runbook: "runbook://queue-backup",
			Summary: "Job queue is growing",
			Describe: func(v float64, _ map[string]string) string {
				return fmt.Sprintf("%.0f events are pending or processing (warning above %d).", v, s.QueueWarning)
			},
			Eval: func(f Figures) []Sample {
				return []Sample{{Value: f.QueueDepth, Active: f.QueueDepth > float64(s.QueueWarning)}}
			},
		},
		{
			Name: ErrorRateCritical, Severity: Critical, Runbook: "runbook://recent-errors", For: s.For,
			Summary: "Event processing is failing",
			Describe: func(v float64, _ map[string]string) string {
				return fmt.Sprintf("%s of handler runs failed over the last %s (critical above %s).", percent(v), window, percent(s.ErrorCritical))
			},
			Eval: func(f Figures) []Sample {
				v, ok := ratio(f.JobFailures, f.JobRuns)
				return []Sample{{Value: v, Active: ok && v > s.ErrorCritical}}
			},
		},
		{
			Name: ErrorRateWarning, Severity: Warning, Runbook: "runbook://recent-errors", For: s.For,
			Summary: "Event processing errors are elevated",
			Describe: func(v float64, _ map[string]string) string {
				return fmt.Sprintf("%s of handler runs failed over the last %s (warning above %s).", percent(v), window, percent(s.ErrorWarning))
			},
			Eval: func(f Figures) []Sample {
				v, ok := ratio(f.JobFailures, f.JobRuns)
				return []Sample{{Value: v, Active: ok && v > s.ErrorWarning}}
			},
		},
		{
			Name: UpstreamFailureRateHigh, Severity: Critical, Runbook: "runbook://sync-failures", For: s.For,
			Summary: "{upstream} API calls are failing",
			Describe: func(v float64, l map[string]string) string {
				return fmt.Sprintf("%s of %s API call attempts failed over the last %s (critical above %s).",
					percent(v), l["upstream"], window, percent(s.UpstreamFailure))
			},
			Eval: func(f Figures) []Sample {
				out := make([]Sample, 0, len(s.Upstreams))
				for _, up := range s.Upstreams {
					v, ok := ratio(f.Errors[up], f.Calls[up])
					out = append(out, Sample{Labels: map[string]string{"upstream": up}, Value: v, Active: ok && v > s.UpstreamFailure})
				}
				return out
			},
		},
		{
			Name: LatencyP95High, Severity: Warning, Runbook: "runbook://queue-backup", For: s.For,
			Summary: "Event processing is slow",
			Describe: func(v float64, _ map[string]string) string {
				return fmt.Sprintf("p95 of handler run time is %s over the last %s (warning above %s).", seconds(v), window, s.LatencyP95)
			},
			Eval: func(f Figures) []Sample {
				ok := f.JobRuns >= float64(max(s.MinSamples, 1))
				return []Sample{{Value: f.JobP95, Active: ok && f.JobP95 > s.LatencyP95.Seconds()}}
			},
		},
		{
			Name: ProcessingDelayHigh, Severity: Warning, Runbook: "runbook://queue-backup",
			Summary: "Webhook processing is delayed",
			Describe: func(v float64, _ map[string]string) string {
				return fmt.Sprintf("The oldest due event has waited %s to be processed (warning above %s).", seconds(v), s.ProcessingDelay)
			},
			Eval: func(f Figures) []Sample {
				return []Sample{{Value: f.OldestPendingAge, Active: f.OldestPendingAge > s.ProcessingDelay.Seconds()}}
			},
		},
	}
}

// DatabaseRule is the database alert; DatabaseWatch evaluates it on the
// replica that was leader, since the leader's evaluator needs the database.
func DatabaseRule(s Settings) Rule {
	return Rule{
		Name: DatabaseUnavailable, Severity: Critical, Runbook: "runbook://health", For: s.DatabaseFor,
		Summary: "PostgreSQL cannot be reached",
		Describe: func(v float64, _ map[string]string) string {
			return fmt.Sprintf("The service has not reached PostgreSQL for %s: webhooks are refused with 503 and no event is processed.", seconds(v))
		},
	}
}
