package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Alert states kept in alert_state.state, and the notification states kept
// in last_notified_state.
const (
	AlertInactive = "inactive"
	AlertPending  = "pending"
	AlertFiring   = "firing"
	AlertResolved = "resolved" // a history row and a notification, never a state
)

// AlertRecord is the stored state of one alert: one rule with one label set.
type AlertRecord struct {
	Fingerprint       string
	Rule              string
	Severity          string
	Labels            map[string]string
	State             string // AlertInactive, AlertPending or AlertFiring
	Value             *float64
	ActiveSince       *time.Time // condition true since (pending or firing)
	FiredAt           *time.Time
	ResolvedAt        *time.Time
	LastEvaluatedAt   time.Time
	LastNotifiedState string // "", AlertFiring or AlertResolved
	LastNotifiedAt    *time.Time
}

// AlertTransition is one row of alert_history.
type AlertTransition struct {
	Fingerprint string
	Rule        string
	Severity    string
	State       string // AlertPending, AlertFiring or AlertResolved
	Value       *float64
	At          time.Time
	Labels      map[string]string
	Annotations map[string]string
}

const alertColumns = `fingerprint, rule, severity, labels, state, value, active_since, fired_at, resolved_at,
	last_evaluated_at, coalesce(last_notified_state, ''), last_notified_at`

func scanAlert(r pgx.CollectableRow) (AlertRecord, error) {
	var a AlertRecord
	var labels []byte
	err := r.Scan(&a.Fingerprint, &a.Rule, &a.Severity, &labels, &a.State, &a.Value, &a.ActiveSince, &a.FiredAt,
		&a.ResolvedAt, &a.LastEvaluatedAt, &a.LastNotifiedState, &a.LastNotifiedAt)
	if err != nil {
		return a, err
	}
	if len(labels) > 0 {
		if err := json.Unmarshal(labels, &a.Labels); err != nil {
			return a, fmt.Errorf("alert %s labels: %w", a.Fingerprint, err)
		}
	}
	return a, nil
}

// UpdateAlerts is one evaluation's write: in one transaction it locks the
// stored states of the given fingerprints and of every alert not inactive,
// hands them to decide, and writes back the states and history rows decide
// returns. Notification columns are left alone (NotifyAlert owns them).
func (s *Store) UpdateAlerts(ctx context.Context, fingerprints []string,
	decide func(current map[string]AlertRecord) ([]AlertRecord, []AlertTransition)) error {
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+alertColumns+` FROM alert_state
			WHERE fingerprint = ANY($1) OR state <> 'inactive'
			ORDER BY fingerprint FOR UPDATE`, fingerprints)
		if err != nil {
			return err
		}
		list, err := pgx.CollectRows(rows, scanAlert)
		if err != nil {
			return err
		}
		current := make(map[string]AlertRecord, len(list))
		for _, a := range list {
			current[a.Fingerprint] = a
		}
		states, history := decide(current)
		b := &pgx.Batch{}
		for _, a := range states {
			labels, err := json.Marshal(a.Labels)
			if err != nil {
				return err
			}
			b.Queue(`INSERT INTO alert_state (fingerprint, rule, severity, labels, state, value, active_since,
					fired_at, resolved_at, last_evaluated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
				ON CONFLICT (fingerprint) DO UPDATE SET rule = EXCLUDED.rule, severity = EXCLUDED.severity,
					labels = EXCLUDED.labels, state = EXCLUDED.state, value = EXCLUDED.value,
					active_since = EXCLUDED.active_since, fired_at = EXCLUDED.fired_at,
					resolved_at = EXCLUDED.resolved_at, last_evaluated_at = now()`,
				a.Fingerprint, a.Rule, a.Severity, labels, a.State, a.Value, a.ActiveSince, a.FiredAt, a.ResolvedAt)
		}
		if err := queueHistory(b, history); err != nil {
			return err
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("update alerts: %w", err)
	}
	return nil
}

func queueHistory(b *pgx.Batch, history []AlertTransition) error {
	for _, h := range history {
		labels, err := json.Marshal(h.Labels)
		if err != nil {
			return err
		}
		annotations, err := json.Marshal(h.Annotations)
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO alert_history (fingerprint, rule, severity, state, value, at, labels, annotations)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			h.Fingerprint, h.Rule, h.Severity, h.State, h.Value, h.At, labels, annotations)
	}
	return nil
}

// owedSQL is true for an alert whose receiver has not heard its current
// state: firing but not notified as firing, or no longer firing but last
// notified as firing (a resolved notification is owed).
const owedSQL = `((state = 'firing' AND last_notified_state IS DISTINCT FROM 'firing')
	OR (state <> 'firing' AND last_notified_state = 'firing'))`

// AlertsToNotify lists the alerts that owe their receiver a notification,
// oldest change first.
func (s *Store) AlertsToNotify(ctx context.Context) ([]AlertRecord, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+alertColumns+` FROM alert_state WHERE `+owedSQL+`
		ORDER BY coalesce(resolved_at, fired_at, active_since), fingerprint LIMIT 100`)
	if err != nil {
		return nil, fmt.Errorf("alerts to notify: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanAlert)
	if err != nil {
		return nil, fmt.Errorf("alerts to notify: %w", err)
	}
	return out, nil
}

// ErrAlertBusy says another session is notifying the alert (another
// replica, during a leader change); try again later.
var ErrAlertBusy = errors.New("alert is being notified by another session")

// alertLockClass is the first key of the advisory locks that serialise the
// notification of one alert ("dfma").
const alertLockClass = 0x64666d61

// NotifyAlert delivers what an alert owes at most once across replicas,
// without holding a transaction (or a row lock the evaluator would wait on)
// across the delivery: on one session it takes the alert's advisory lock
// (ErrAlertBusy when another session holds it), re-reads the row and returns
// sent=false when nothing is owed any more, else calls send with it and,
// when send succeeds, records the state it announced (AlertFiring or
// AlertResolved) before releasing the lock. A send that fails leaves the row
// as it was, to be retried. A crash between the send and the record means
// the notification is sent again: delivery is at least once.
func (s *Store) NotifyAlert(ctx context.Context, fingerprint string, send func(AlertRecord) error) (sent bool, err error) {
	conn, err := s.Pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("notify alert %s: %w", fingerprint, err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, alertLockClass, fingerprint).Scan(&locked); err != nil {
		return false, fmt.Errorf("notify alert %s: %w", fingerprint, err)
	}
	if !locked {
		return false, ErrAlertBusy
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, alertLockClass, fingerprint); uerr != nil {
			// A session that cannot unlock must not go back to the pool
			// holding the lock.
			_ = conn.Conn().Close(uctx)
		}
	}()
	rows, err := conn.Query(ctx, `SELECT `+alertColumns+` FROM alert_state WHERE fingerprint = $1 AND `+owedSQL, fingerprint)
	if err != nil {
		return false, fmt.Errorf("notify alert %s: %w", fingerprint, err)
	}
	list, err := pgx.CollectRows(rows, scanAlert)
	if err != nil {
		return false, fmt.Errorf("notify alert %s: %w", fingerprint, err)
	}
	if len(list) == 0 {
		return false, nil
	}
	a := list[0]
	if err := send(a); err != nil {
		return false, fmt.Errorf("notify alert %s: %w", fingerprint, err)
	}
	// What was announced is recorded whatever the evaluator did meanwhile:
	// if the alert resolved while "firing" was on its way, a resolved
	// notification is now owed, and the next round sends it.
	notified := AlertResolved
	if a.State == AlertFiring {
		notified = AlertFiring
	}
	if _, err := conn.Exec(ctx, `UPDATE alert_state SET last_notified_state = $2, last_notified_at = now()
		WHERE fingerprint = $1`, fingerprint, notified); err != nil {
		return true, fmt.Errorf("notify alert %s: sent, but not recorded (it will be sent again): %w", fingerprint, err)
	}
	return true, nil
}

// RecentAlerts returns the firing alerts and those resolved since `since`,
// for a push to Alertmanager's API.
func (s *Store) RecentAlerts(ctx context.Context, since time.Time) ([]AlertRecord, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+alertColumns+` FROM alert_state
		WHERE state = 'firing' OR (fired_at IS NOT NULL AND resolved_at >= $1 AND resolved_at >= fired_at)
		ORDER BY fingerprint LIMIT 500`, since)
	if err != nil {
		return nil, fmt.Errorf("recent alerts: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanAlert)
	if err != nil {
		return nil, fmt.Errorf("recent alerts: %w", err)
	}
	return out, nil
}

// RecordAlertOutage writes an alert that was evaluated and notified while
// the database could not be reached (the database alert): its state and
// notified state as the evaluator left them, and its history rows.
func (s *Store) RecordAlertOutage(ctx context.Context, a AlertRecord, history []AlertTransition) error {
	labels, err := json.Marshal(a.Labels)
	if err != nil {
		return err
	}
	var notified *string
	if a.LastNotifiedState != "" {
		notified = &a.LastNotifiedState
	}
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO alert_state (fingerprint, rule, severity, labels, state, value, active_since,
				fired_at, resolved_at, last_evaluated_at, last_notified_state, last_notified_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), $10, $11)
			ON CONFLICT (fingerprint) DO UPDATE SET rule = EXCLUDED.rule, severity = EXCLUDED.severity,
				labels = EXCLUDED.labels, state = EXCLUDED.state, value = EXCLUDED.value,
				active_since = EXCLUDED.active_since, fired_at = EXCLUDED.fired_at,
				resolved_at = EXCLUDED.resolved_at, last_evaluated_at = now(),
				last_notified_state = coalesce(EXCLUDED.last_notified_state, alert_state.last_notified_state),
				last_notified_at = coalesce(EXCLUDED.last_notified_at, alert_state.last_notified_at)`,
			a.Fingerprint, a.Rule, a.Severity, labels, a.State, a.Value, a.ActiveSince, a.FiredAt, a.ResolvedAt,
			notified, a.LastNotifiedAt)
		if err := queueHistory(b, history); err != nil {
			return err
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("record alert outage: %w", err)
	}
	return nil
}

// AddAlertCounters adds one replica's counter deltas to the current time
// slot (slot seconds wide, on the database's clock so that replicas with
// skewed clocks agree on the window).
func (s *Store) AddAlertCounters(ctx context.Context, instance string, slot time.Duration, deltas map[string]float64) error {
	if len(deltas) == 0 {
		return nil
	}
	series := make([]string, 0, len(deltas))
	values := make([]float64, 0, len(deltas))
	for k, v := range deltas {
		series = append(series, k)
		values = append(values, v)
	}
	_, err := s.Pool.Exec(ctx, `INSERT INTO alert_counters AS c (slot, instance, series, n)
		SELECT to_timestamp(floor(extract(epoch FROM now()) / $2) * $2), $1, d.series, d.n
		FROM unnest($3::text[], $4::float8[]) AS d (series, n)
		ORDER BY d.series
		ON CONFLICT (slot, instance, series) DO UPDATE SET n = c.n + EXCLUDED.n`,
		instance, slot.Seconds(), series, values)
	if err != nil {
		return fmt.Errorf("add alert counters: %w", err)
	}
	return nil
}

// AlertCounterTotals sums every replica's counters over the slots that
// started within the last window (database clock).
func (s *Store) AlertCounterTotals(ctx context.Context, window time.Duration) (map[string]float64, error) {
	rows, err := s.Pool.Query(ctx, `SELECT series, sum(n) FROM alert_counters
		WHERE slot > now() - make_interval(secs => $1) GROUP BY series`, window.Seconds())
	if err != nil {
		return nil, fmt.Errorf("alert counters: %w", err)
	}
	out := map[string]float64{}
	var series string
	var n float64
	_, err = pgx.ForEachRow(rows, []any{&series, &n}, func() error {
		out[series] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("alert counters: %w", err)
	}
	return out, nil
}

// PruneAlertCounters drops slots older than keep.
func (s *Store) PruneAlertCounters(ctx context.Context, keep time.Duration) (int64, error) {
	tag, err := s.Pool.Exec(ctx, `DELETE FROM alert_counters WHERE slot < now() - make_interval(secs => $1)`, keep.Seconds())
	if err != nil {
		return 0, fmt.Errorf("prune alert counters: %w", err)
	}
	return tag.RowsAffected(), nil
}
