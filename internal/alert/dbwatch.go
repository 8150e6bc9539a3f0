package alert

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/df-middleware/df-middleware/internal/store"
)

// DatabaseWatch evaluates the database alert on every replica, without the
// database: it pings PostgreSQL every evaluation interval and, when the
// database has not answered for DatabaseFor, fires DatabaseUnavailable.
//
// Who notifies: with the database down there is no leader lock to elect a
// sender and no alert_state to deduplicate through, so the replica that was
// the leader at its last successful ping is the one that notifies (each
// replica knows whether it was; exactly one was). It keeps the alert in
// memory, retries the delivery with backoff, and once the database answers
// again it records the outage (state, notified state, history) so that the
// leader's notifier sends the resolved notification through the usual
// exactly-once path. A replica that was never leader stays silent; if the
// leader itself went down with the database, no in-process notification
// goes out and the Prometheus rule (deploy/prometheus/alerts.yml) is the
// backstop.
type DatabaseWatch struct {
	st       *store.Store
	s        Settings
	n        *Notifier
	isLeader func() bool
	log      zerolog.Logger
	now      func() time.Time

	conn      *pgx.Conn // its own session: a saturated pool must not look like a dead database
	wasLeader bool
	downSince time.Time
	lastErr   string
	firing    *store.AlertRecord
	notified  bool
}

// NewDatabaseWatch pings through st; isLeader tells whether this replica
// holds the leader lock.
func NewDatabaseWatch(st *store.Store, s Settings, n *Notifier, isLeader func() bool, log zerolog.Logger) *DatabaseWatch {
	return &DatabaseWatch{st: st, s: s, n: n, isLeader: isLeader, log: log, now: time.Now}
}

// Run checks every evaluation interval until ctx ends.
func (w *DatabaseWatch) Run(ctx context.Context) {
	tick := time.NewTicker(w.s.EvalInterval)
	defer tick.Stop()
	defer w.close()
	for {
		w.Check(ctx)
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// Check is one round: ping, then fire, notify or record as due.
func (w *DatabaseWatch) Check(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, min(w.s.EvalInterval, 3*time.Second))
	err := w.ping(pctx)
	cancel()
	if ctx.Err() != nil {
		w.close()
		return
	}
	now := w.now()
	if err == nil {
		w.wasLeader = w.isLeader()
		w.downSince = time.Time{}
		if w.firing != nil {
			w.recover(ctx, now)
		}
		return
	}
	w.lastErr = err.Error()
	if w.downSince.IsZero() {
		w.downSince = now
		w.log.Warn().Err(err).Bool("was_leader", w.wasLeader).Msg("database unreachable")
	}
	if !w.wasLeader {
		return
	}
	rule := DatabaseRule(w.s)
	down := now.Sub(w.downSince)
	if w.firing == nil && down >= w.s.DatabaseFor {
		labels := rule.Labels(nil)
		v := down.Seconds()
		since, fired := w.downSince, now
		w.firing = &store.AlertRecord{Fingerprint: Fingerprint(labels), Rule: rule.Name, Severity: rule.Severity,
			Labels: labels, State: store.AlertFiring, Value: &v, ActiveSince: &since, FiredAt: &fired}
		w.notified = false
		w.log.Error().Str("alert", rule.Name).Str("severity", rule.Severity).Dur("down_for", down).
			Str("last_error", w.lastErr).Msg("alert firing")
	}
	if w.firing == nil {
		return
	}
	v := down.Seconds()
	w.firing.Value = &v
	w.pushAlertmanager(ctx)
	if w.notified || w.n.s.WebhookURL == "" || !w.n.due(w.firing.Fingerprint) {
		return
	}
	if err := w.n.post(ctx, w.n.s.WebhookURL, w.n.Message(*w.firing)); err != nil {
		failures, wait := w.n.failed(w.firing.Fingerprint)
		w.log.Warn().Err(err).Str("alert", rule.Name).Int("failures", failures).Dur("retry_in", wait).
			Msg("alert notification failed; will retry")
		return
	}
	w.n.succeeded(w.firing.Fingerprint)
	w.notified = true
	w.log.Info().Str("alert", rule.Name).Str("status", store.AlertFiring).Msg("alert notification delivered")
}

// ping checks the database on the watch's own session, reconnecting when
// it has none.
func (w *DatabaseWatch) ping(ctx context.Context) error {
	if w.conn == nil {
		conn, err := pgx.ConnectConfig(ctx, w.st.Pool.Config().ConnConfig.Copy())
		if err != nil {
			return err
		}
		w.conn = conn
	}
	if err := w.conn.Ping(ctx); err != nil {
		w.close()
		return err
	}
	return nil
}

func (w *DatabaseWatch) close() {
	if w.conn == nil {
		return
	}
	cctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = w.conn.Close(cctx)
	cancel()
	w.conn = nil
}

// pushAlertmanager re-sends the firing database alert to ALERTMANAGER_URL
// each check (valid for four checks, so Alertmanager resolves it by itself
// if this replica goes away); once the database is back the leader's push
// sends it resolved.
func (w *DatabaseWatch) pushAlertmanager(ctx context.Context) {
	if w.n.s.AlertmanagerURL == "" {
		return
	}
	a := w.n.alert(*w.firing)
	p := PostableAlert{Labels: a.Labels, Annotations: a.Annotations, StartsAt: a.StartsAt,
		EndsAt: w.now().Add(4 * max(w.s.EvalInterval, 15*time.Second)).UTC(), GeneratorURL: a.GeneratorURL}
	if err := w.n.post(ctx, strings.TrimRight(w.n.s.AlertmanagerURL, "/")+"/api/v2/alerts", []PostableAlert{p}); err != nil {
		w.log.Debug().Err(err).Msg("database alert not pushed to Alertmanager; next check retries")
	}
}

// recover records the outage now that the database answers: state inactive
// (resolved), notified as firing when the firing notification went out, so
// the leader owes (and sends, once) the resolved notification.
func (w *DatabaseWatch) recover(ctx context.Context, now time.Time) {
	a := *w.firing
	rule := DatabaseRule(w.s)
	resolved := now
	a.State, a.ActiveSince, a.ResolvedAt = store.AlertInactive, nil, &resolved
	a.LastNotifiedState = ""
	if w.notified {
		a.LastNotifiedState = store.AlertFiring
		a.LastNotifiedAt = &resolved
	}
	v := 0.0
	if a.Value != nil {
		v = *a.Value
	}
	history := []store.AlertTransition{
		{Fingerprint: a.Fingerprint, Rule: a.Rule, Severity: a.Severity, State: store.AlertFiring, Value: a.Value,
			At: *w.firing.FiredAt, Labels: a.Labels, Annotations: rule.Annotations(v, a.Labels)},
		{Fingerprint: a.Fingerprint, Rule: a.Rule, Severity: a.Severity, State: store.AlertResolved, Value: a.Value,
			At: resolved, Labels: a.Labels, Annotations: rule.Annotations(v, a.Labels)},
	}
	if err := w.st.RecordAlertOutage(ctx, a, history); err != nil {
		w.log.Warn().Err(err).Msg("database answers again but the outage could not be recorded yet; retrying")
		return
	}
	w.log.Info().Str("alert", rule.Name).Str("state", store.AlertResolved).Msg("alert resolved")
	w.firing, w.notified = nil, false
}
