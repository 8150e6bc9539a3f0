package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/alert"
	"github.com/df-middleware/df-middleware/internal/sandbox"
	"github.com/df-middleware/df-middleware/internal/testdb"
)

// amMessage mirrors Alertmanager's webhook payload (notify/webhook.Message,
// version 4) independently of internal/alert, so a field we drop or rename
// fails the strict decode below.
type amMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     time.Time         `json:"startsAt"`
		EndsAt       time.Time         `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
		Fingerprint  string            `json:"fingerprint"`
	} `json:"alerts"`
}

var fingerprintRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// validate checks what Alertmanager's webhook receivers rely on.
func (m amMessage) validate() error {
	switch {
	case m.Version != "4":
		return fmt.Errorf("version %q, want 4", m.Version)
	case m.Status != "firing" && m.Status != "resolved":
		return fmt.Errorf("status %q", m.Status)
	case m.Receiver == "" || m.GroupKey == "" || m.ExternalURL == "":
		return fmt.Errorf("receiver %q, groupKey %q, externalURL %q must be set", m.Receiver, m.GroupKey, m.ExternalURL)
	case len(m.Alerts) == 0:
		return fmt.Errorf("no alerts")
	case m.GroupLabels["alertname"] == "":
		return fmt.Errorf("groupLabels without alertname: %v", m.GroupLabels)
	}
	for _, a := range m.Alerts {
		switch {
		case a.Status != m.Status:
			return fmt.Errorf("alert status %q in a %q message", a.Status, m.Status)
		case a.Labels["alertname"] == "" || a.Labels["severity"] == "" || a.Labels["service"] != "df-middleware":
			return fmt.Errorf("labels %v", a.Labels)
		case a.Annotations["summary"] == "" || a.Annotations["description"] == "" || a.Annotations["runbook"] == "" ||
			a.Annotations["runbook_url"] == "":
			return fmt.Errorf("annotations %v", a.Annotations)
		case !fingerprintRE.MatchString(a.Fingerprint):
			return fmt.Errorf("fingerprint %q", a.Fingerprint)
		case a.StartsAt.IsZero():
			return fmt.Errorf("startsAt unset")
		case a.Status == "firing" && !a.EndsAt.IsZero():
			return fmt.Errorf("firing alert with endsAt %s", a.EndsAt)
		case a.Status == "resolved" && a.EndsAt.Before(a.StartsAt):
			return fmt.Errorf("resolved alert ends %s before it starts %s", a.EndsAt, a.StartsAt)
		}
	}
	return nil
}

// receiver is an Alertmanager webhook receiver that records what it is
// sent, answers 500 to the first failFirst requests, and fails the test on
// a payload of the wrong shape.
type receiver struct {
	t         *testing.T
	srv       *httptest.Server
	mu        sync.Mutex
	failFirst int
	requests  int
	got       []amMessage
}

func newReceiver(t *testing.T, failFirst int) *receiver {
	r := &receiver{t: t, failFirst: failFirst}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.requests++
	fail := r.requests <= r.failFirst
	r.mu.Unlock()
	if fail {
		http.Error(w, "receiver down for the test", http.StatusInternalServerError)
		return
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		r.t.Errorf("alert payload is not a JSON object: %v", err)
	}
	for _, k := range []string{"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
		"commonLabels", "commonAnnotations", "externalURL", "alerts"} {
		if _, ok := raw[k]; !ok {
			r.t.Errorf("alert payload lacks %q: %s", k, body)
		}
	}
	var m amMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		r.t.Errorf("alert payload does not decode strictly: %v\n%s", err, body)
	} else if err := m.validate(); err != nil {
		r.t.Errorf("alert payload: %v\n%s", err, body)
	}
	r.mu.Lock()
	r.got = append(r.got, m)
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// count is how many messages carried alertname with status.
func (r *receiver) count(alertname, status string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.got {
		if m.Status == status && m.GroupLabels["alertname"] == alertname {
			n++
		}
	}
	return n
}

func (r *receiver) messages() []amMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]amMessage(nil), r.got...)
}

func (r *receiver) waitFor(alertname, status string, within time.Duration) amMessage {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for _, m := range r.messages() {
			if m.Status == status && m.GroupLabels["alertname"] == alertname {
				return m
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatalf("no %s notification of %s within %s; got %d messages: %+v", status, alertname, within, len(r.messages()), r.messages())
	return amMessage{}
}

// alertEnv is fast alerting for tests: evaluate every 200ms over 1s slots.
func alertEnv(receiverURL string, extra map[string]string) map[string]string {
	env := map[string]string{
		"ALERT_WEBHOOK_URL": receiverURL, "DF_ALERT_EVAL_INTERVAL": "200ms", "DF_ALERT_SLOT": "1s",
		"DF_ALERT_WINDOW": "3s", "DF_ALERT_FOR": "1s", "DF_ALERT_MIN_SAMPLES": "3", "DF_ALERT_RETRY_BASE": "100ms",
		"DF_ALERT_DATABASE_FOR": "1s",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// injectPending inserts n pending texting events of an unhandled type
// (processing skips them) without going through intake.
func (h *harness) injectPending(n int) {
	h.t.Helper()
	_, err := h.st.Pool.Exec(context.Background(), `INSERT INTO webhook_events (source, event_type, dedupe_key, payload_json)
		SELECT 'texting', 'alert.test', 'alert-test-' || gen_random_uuid(), '{}'::jsonb FROM generate_series(1, $1)`, n)
	if err != nil {
		h.t.Fatal(err)
	}
}

func TestQueueDepthAlertsNotifiedOncePerTransitionAcrossReplicas(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, 0)
	// Two replicas with workers paused (intake only) on one database.
	a := start(t, alertEnv(rcv.srv.URL, map[string]string{"DF_WORKERS": "0", "DF_INSTANCE_ID": "replica-a"}))
	b := start(t, alertEnv(rcv.srv.URL, map[string]string{"DF_WORKERS": "0", "DF_INSTANCE_ID": "replica-b",
		"DATABASE_URL": a.svc.Config.DatabaseURL}))
	waitLeader(t, a, b)

	a.injectPending(600)
	warn := rcv.waitFor(alert.QueueDepthWarning, "firing", 15*time.Second)
	if d := warn.Alerts[0].Annotations["description"]; !contains(d, "600 events") {
		t.Errorf("warning description %q does not carry the measured depth", d)
	}
	if rcv.count(alert.QueueDepthCritical, "firing") != 0 {
		t.Fatal("critical fired at 600 events")
	}
	a.injectPending(500)
	crit := rcv.waitFor(alert.QueueDepthCritical, "firing", 15*time.Second)
	if crit.Alerts[0].Labels["severity"] != "critical" || crit.CommonLabels["severity"] != "critical" {
		t.Errorf("critical alert labels %v", crit.Alerts[0].Labels)
	}

	// Drain with a third replica that has workers: both resolve.
	start(t, alertEnv(rcv.srv.URL, map[string]string{"DF_WORKERS": "4", "DF_INSTANCE_ID": "replica-c",
		"DATABASE_URL": a.svc.Config.DatabaseURL}))
	rcv.waitFor(alert.QueueDepthCritical, "resolved", 60*time.Second)
	rcv.waitFor(alert.QueueDepthWarning, "resolved", 60*time.Second)
	time.Sleep(time.Second) // a few more evaluations: nothing new may be sent
	for _, name := range []string{alert.QueueDepthWarning, alert.QueueDepthCritical} {
		for _, status := range []string{"firing", "resolved"} {
			if n := rcv.count(name, status); n != 1 {
				t.Errorf("%s %s notified %d times, want exactly once", name, status, n)
			}
		}
	}
	for _, m := range rcv.messages() {
		if n := m.GroupLabels["alertname"]; n != alert.QueueDepthWarning && n != alert.QueueDepthCritical {
			t.Errorf("unexpected notification %s %s: %v", n, m.Status, m.CommonAnnotations)
		}
	}
	// The history holds each transition once; list_alerts reads it.
	hist, _, err := a.st.AlertHistory(context.Background(), "", 50)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range hist {
		seen[e.Rule+" "+e.State]++
	}
	for _, k := range []string{"QueueDepthWarning firing", "QueueDepthWarning resolved", "QueueDepthCritical firing", "QueueDepthCritical resolved"} {
		if seen[k] != 1 {
			t.Errorf("alert_history has %d rows %q, want 1 (all: %v)", seen[k], k, seen)
		}
	}
}

// waitLeader waits until exactly one of the replicas leads.
func waitLeader(t *testing.T, hs ...*harness) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		n := 0
		for _, h := range hs {
			if h.svc.Runner.IsLeader() {
				n++
			}
		}
		if n == 1 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no single leader among the replicas")
}

func TestAlertNotificationRetriedUntilTheReceiverAnswers(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, 2) // fails twice
	h := start(t, alertEnv(rcv.srv.URL, map[string]string{"DF_WORKERS": "0"}))
	h.injectPending(501)
	rcv.waitFor(alert.QueueDepthWarning, "firing", 20*time.Second)
	time.Sleep(500 * time.Millisecond)
	rcv.mu.Lock()
	requests := rcv.requests
	rcv.mu.Unlock()
	if requests != 3 {
		t.Errorf("receiver saw %d requests, want 3 (two failures, one success)", requests)
	}
	if n := rcv.count(alert.QueueDepthWarning, "firing"); n != 1 {
		t.Errorf("firing delivered %d times, want 1", n)
	}
	if !contains(h.logs.String(), "alert notification failed; will retry") {
		t.Error("the failed deliveries were not logged")
	}
}

func TestGHLOutageFiresUpstreamAlertAndRecoveryResolvesIt(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, 0)
	h, sb := startSynced(t, alertEnv(rcv.srv.URL, map[string]string{"DF_MAX_ATTEMPTS": "50"}))
	sb.SetFaults(sandbox.UpstreamGHL, sandbox.Faults{Outage: true, Status: http.StatusInternalServerError})
	call := func(i int) []byte {
		return fmt.Appendf(nil, `{"event":"OutboundPhoneCall-DispositionCompleted","body":{"id":"%d","contact_id":"%d","user_id":"12","direction":"outbound","disposition":"Interested","duration":10,"talk_time":8,"created_at":"2026-03-10 17:05:00","contact":{"id":"%d","phone_number":"+1310555%04d","first_name":"Ana"}}}`,
			70000+i, 8000+i, 8000+i, i)
	}
	var ids []string
	for i := range 5 {
		ids = append(ids, h.post("aloware", call(i)))
	}
	m := rcv.waitFor(alert.UpstreamFailureRateHigh, "firing", 30*time.Second)
	if m.Alerts[0].Labels["upstream"] != "ghl" || m.GroupLabels["upstream"] != "ghl" {
		t.Fatalf("upstream alert labels %v", m.Alerts[0].Labels)
	}
	if rcv.count(alert.UpstreamFailureRateHigh, "firing") != 1 {
		t.Fatal("more than one upstream alert fired (only GHL is down)")
	}
	sb.SetFaults(sandbox.UpstreamGHL, sandbox.Faults{})
	for _, id := range ids {
		h.waitStatusWithin(id, "done", 60*time.Second)
	}
	rcv.waitFor(alert.UpstreamFailureRateHigh, "resolved", 30*time.Second)
}

func TestStoppingPostgreSQLFiresTheDatabaseAlert(t *testing.T) {
	t.Parallel()
	pg := testdb.StartCluster(t)
	rcv := newReceiver(t, 0)
	h := start(t, alertEnv(rcv.srv.URL, map[string]string{"DATABASE_URL": pg.URL(), "DF_WORKERS": "1"}))
	waitLeader(t, h)
	time.Sleep(300 * time.Millisecond) // the watch has seen the database up while leading

	pg.Stop()
	m := rcv.waitFor(alert.DatabaseUnavailable, "firing", 20*time.Second)
	if m.Alerts[0].Labels["severity"] != "critical" {
		t.Errorf("database alert labels %v", m.Alerts[0].Labels)
	}
	pg.Start()
	rcv.waitFor(alert.DatabaseUnavailable, "resolved", 30*time.Second)
	time.Sleep(time.Second)
	for _, status := range []string{"firing", "resolved"} {
		if n := rcv.count(alert.DatabaseUnavailable, status); n != 1 {
			t.Errorf("database alert %s notified %d times, want 1", status, n)
		}
	}
	// The outage is in the history once the database is back.
	hist, _, err := h.st.AlertHistory(context.Background(), "", 10)
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, e := range hist {
		if e.Rule == alert.DatabaseUnavailable {
			states = append(states, e.State)
		}
	}
	if len(states) != 2 || states[0] != "resolved" || states[1] != "firing" {
		t.Errorf("database alert history %v, want [resolved firing]", states)
	}
}
