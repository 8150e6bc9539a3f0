package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/df-middleware/df-middleware/internal/store"
)

// Receiver is the receiver name of our notifications.
const Receiver = "df-middleware"

// Message is Alertmanager's webhook payload, version 4
// (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config).
type Message struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"` // firing | resolved
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []Alert           `json:"alerts"`
}

// Alert is one alert of a Message.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"` // zero while firing, as Alertmanager sends it
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// PostableAlert is one element of Alertmanager's POST /api/v2/alerts body.
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Notifier delivers alert notifications: owed webhook notifications exactly
// once across replicas (store.NotifyAlert), retried with backoff; and, when
// ALERTMANAGER_URL is set, the current alerts to Alertmanager's API.
type Notifier struct {
	st     *store.Store
	s      Settings
	rules  map[string]Rule
	client *http.Client
	log    zerolog.Logger
	now    func() time.Time

	mu    sync.Mutex
	retry map[string]*retryState
	// dbFingerprint is the database alert's, whose retries DatabaseWatch
	// keeps while no alert_state can be read.
	dbFingerprint string
}

type retryState struct {
	failures int
	next     time.Time
}

// NewNotifier delivers with s's URLs and retry settings.
func NewNotifier(st *store.Store, s Settings, log zerolog.Logger) *Notifier {
	rules := map[string]Rule{}
	for _, r := range append(Rules(s), DatabaseRule(s)) {
		rules[r.Name] = r
	}
	// A receiver that redirects (a moved hook, a login page) has not taken
	// the notification: following it would turn the POST into a GET whose
	// 200 looks like a delivery. A 3xx is a failure, retried.
	client := &http.Client{Timeout: s.SendTimeout, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	return &Notifier{st: st, s: s, rules: rules, client: client, log: log, now: time.Now, retry: map[string]*retryState{},
		dbFingerprint: Fingerprint(DatabaseRule(s).Labels(nil))}
}

// backoff is the wait after the n-th consecutive failure (n >= 1).
func (n *Notifier) backoff(failures int) time.Duration {
	d := n.s.RetryBase
	for i := 1; i < failures && d < n.s.RetryMax; i++ {
		d *= 2
	}
	return min(d, n.s.RetryMax)
}

// due reports whether fp may be tried now; failed records a failed try.
func (n *Notifier) due(fp string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := n.retry[fp]
	return r == nil || !n.now().Before(r.next)
}

func (n *Notifier) failed(fp string) (int, time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := n.retry[fp]
	if r == nil {
		r = &retryState{}
		n.retry[fp] = r
	}
	r.failures++
	wait := n.backoff(r.failures)
	r.next = n.now().Add(wait)
	return r.failures, wait
}

// forgetSettled drops the retry state of alerts no longer owed, so a later
// notification of the same alert starts without the old backoff.
func (n *Notifier) forgetSettled(owed []store.AlertRecord) {
	still := make(map[string]bool, len(owed))
	for _, a := range owed {
		still[a.Fingerprint] = true
	}
	n.mu.Lock()
	for fp := range n.retry {
		if !still[fp] && fp != n.dbFingerprint {
			delete(n.retry, fp)
		}
	}
	n.mu.Unlock()
}

// Run delivers on the leader replica, apart from the leader's duty loop so
// that a slow receiver never delays lease rescue or evaluation: owed
// webhook notifications every 500 ms, the Alertmanager push every
// evaluation interval. Failures are logged at most once a minute.
func (n *Notifier) Run(ctx context.Context, isLeader func() bool) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var lastPush, lastWarn time.Time
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		if !isLeader() {
			continue
		}
		err := n.NotifyDue(ctx)
		if n.s.AlertmanagerURL != "" && time.Since(lastPush) >= n.s.EvalInterval {
			lastPush = time.Now()
			if perr := n.PushAlertmanager(ctx); perr != nil && err == nil {
				err = fmt.Errorf("alertmanager push: %w", perr)
			}
		}
		if err != nil && ctx.Err() == nil && time.Since(lastWarn) > time.Minute {
			lastWarn = time.Now()
			n.log.Warn().Err(err).Msg("alert delivery round failed; retrying")
		}
	}
}

func (n *Notifier) succeeded(fp string) {
	n.mu.Lock()
	delete(n.retry, fp)
	n.mu.Unlock()
}

// NotifyDue delivers every owed notification whose retry time has come.
func (n *Notifier) NotifyDue(ctx context.Context) error {
	if n.s.WebhookURL == "" {
		return nil
	}
	owed, err := n.st.AlertsToNotify(ctx)
	if err != nil {
		return err
	}
	n.forgetSettled(owed)
	for _, a := range owed {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !n.due(a.Fingerprint) {
			continue
		}
		var status string
		sent, err := n.st.NotifyAlert(ctx, a.Fingerprint, func(rec store.AlertRecord) error {
			msg := n.Message(rec)
			status = msg.Status
			return n.post(ctx, n.s.WebhookURL, msg)
		})
		switch {
		case errors.Is(err, store.ErrAlertBusy):
			continue // another session has it; look again next time
		case err != nil:
			failures, wait := n.failed(a.Fingerprint)
			n.log.Warn().Err(err).Str("alert", a.Rule).Str("fingerprint", a.Fingerprint).Int("failures", failures).
				Dur("retry_in", wait).Msg("alert notification failed; will retry")
		default:
			n.succeeded(a.Fingerprint)
			if sent {
				n.log.Info().Str("alert", a.Rule).Str("fingerprint", a.Fingerprint).Str("status", status).
					Msg("alert notification delivered")
			}
		}
	}
	return nil
}

// rule returns the rule an alert came from (a placeholder for names this
// version no longer has).
func (n *Notifier) rule(name, severity string) Rule {
	if r, ok := n.rules[name]; ok {
		return r
	}
	return Rule{Name: name, Severity: severity, Summary: name, Describe: func(float64, map[string]string) string {
		return "The rule that raised this alert is no longer evaluated."
	}}
}

// alert turns a stored alert into its Alertmanager form.
func (n *Notifier) alert(rec store.AlertRecord) Alert {
	v := 0.0
	if rec.Value != nil {
		v = *rec.Value
	}
	r := n.rule(rec.Rule, rec.Severity)
	labels := rec.Labels
	if labels == nil {
		labels = r.Labels(nil)
	}
	a := Alert{Status: store.AlertFiring, Labels: labels, Annotations: r.Annotations(v, labels),
		GeneratorURL: n.generatorURL(), Fingerprint: rec.Fingerprint}
	switch {
	case rec.FiredAt != nil:
		a.StartsAt = rec.FiredAt.UTC()
	case rec.ActiveSince != nil:
		a.StartsAt = rec.ActiveSince.UTC()
	}
	if rec.State != store.AlertFiring {
		a.Status = store.AlertResolved
		if rec.ResolvedAt != nil {
			a.EndsAt = rec.ResolvedAt.UTC()
		} else {
			a.EndsAt = n.now().UTC()
		}
	}
	return a
}

func (n *Notifier) generatorURL() string {
	if n.s.ExternalURL == "" {
		return ""
	}
	return strings.TrimRight(n.s.ExternalURL, "/") + "/health"
}

// Message is the webhook notification of one alert's current state.
func (n *Notifier) Message(rec store.AlertRecord) Message {
	a := n.alert(rec)
	group := map[string]string{"alertname": a.Labels["alertname"]}
	if up := a.Labels["upstream"]; up != "" {
		group["upstream"] = up
	}
	return Message{
		Version: "4", GroupKey: "{}:" + labelString(group), Status: a.Status, Receiver: Receiver,
		GroupLabels: group, CommonLabels: a.Labels, CommonAnnotations: a.Annotations,
		ExternalURL: n.s.ExternalURL, Alerts: []Alert{a},
	}
}

// labelString renders labels the way Alertmanager writes group keys:
// {a="1", b="2"}, sorted by name.
func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, l[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// post sends body as JSON; any non-2xx answer is a failure.
func (n *Notifier) post(ctx context.Context, target string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, n.s.SendTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "df-middleware-alerts")
	resp, err := n.client.Do(req)
	if err != nil {
		// The URL may carry a token (many receivers put one in the path):
		// report the cause without it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("alert receiver: %w", err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("alert receiver answered %d: %s", resp.StatusCode, strings.TrimSpace(string(snippet)))
	}
	return nil
}

// PushAlertmanager sends the firing alerts, and those resolved in the last
// 15 minutes, to ALERTMANAGER_URL's /api/v2/alerts. Alertmanager expects a
// firing alert to be re-sent before its endsAt (it resolves it otherwise),
// so every evaluation pushes them again, valid for four evaluations.
func (n *Notifier) PushAlertmanager(ctx context.Context) error {
	if n.s.AlertmanagerURL == "" {
		return nil
	}
	recs, err := n.st.RecentAlerts(ctx, n.now().Add(-15*time.Minute))
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	valid := 4 * max(n.s.EvalInterval, 15*time.Second)
	out := make([]PostableAlert, 0, len(recs))
	for _, rec := range recs {
		a := n.alert(rec)
		p := PostableAlert{Labels: a.Labels, Annotations: a.Annotations, StartsAt: a.StartsAt,
			EndsAt: a.EndsAt, GeneratorURL: a.GeneratorURL}
		if a.Status == store.AlertFiring {
			p.EndsAt = n.now().Add(valid).UTC()
		}
		out = append(out, p)
	}
	return n.post(ctx, strings.TrimRight(n.s.AlertmanagerURL, "/")+"/api/v2/alerts", out)
}
