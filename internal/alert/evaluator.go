package alert

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/df-middleware/df-middleware/internal/store"
)

// Evaluator judges the rules over the whole service's figures and keeps
// alert_state and alert_history. It runs on the leader replica only (a queue
// duty), so one evaluation at a time writes the states.
type Evaluator struct {
	st    *store.Store
	s     Settings
	rules []Rule
	byFP  map[string]Rule // rule of every fingerprint seen, for stale states
	log   zerolog.Logger
	now   func() time.Time
}

// NewEvaluator evaluates Rules(s).
func NewEvaluator(st *store.Store, s Settings, log zerolog.Logger) *Evaluator {
	return &Evaluator{st: st, s: s, rules: Rules(s), byFP: map[string]Rule{}, log: log, now: time.Now}
}

// Figures reads the service's current figures: queue depth and delay from
// webhook_events, rates and p95 from every replica's counters in the window.
func (e *Evaluator) Figures(ctx context.Context) (Figures, error) {
	qs, err := e.st.QueueStats(ctx)
	if err != nil {
		return Figures{}, err
	}
	totals, err := e.st.AlertCounterTotals(ctx, e.s.Window)
	if err != nil {
		return Figures{}, err
	}
	f := figuresFrom(totals, e.s.Upstreams)
	f.QueueDepth = float64(qs.ByStatus[store.StatusPending] + qs.ByStatus[store.StatusProcessing])
	f.OldestPendingAge = max(qs.OldestDueAgeSeconds, 0)
	return f, nil
}

// judged is one rule's verdict on one label set.
type judged struct {
	rule   Rule
	labels map[string]string
	fp     string
	sample Sample
}

// Evaluate runs one evaluation and returns the transitions it recorded.
func (e *Evaluator) Evaluate(ctx context.Context) ([]store.AlertTransition, error) {
	f, err := e.Figures(ctx)
	if err != nil {
		return nil, fmt.Errorf("alert figures: %w", err)
	}
	var verdicts []judged
	fps := make([]string, 0, 16)
	for _, r := range e.rules {
		for _, smp := range r.Eval(f) {
			labels := r.Labels(smp.Labels)
			fp := Fingerprint(labels)
			e.byFP[fp] = r
			verdicts = append(verdicts, judged{rule: r, labels: labels, fp: fp, sample: smp})
			fps = append(fps, fp)
		}
	}
	now := e.now()
	var recorded []store.AlertTransition
	err = e.st.UpdateAlerts(ctx, fps, func(current map[string]store.AlertRecord) ([]store.AlertRecord, []store.AlertTransition) {
		states := make([]store.AlertRecord, 0, len(verdicts))
		var history []store.AlertTransition
		seen := make(map[string]bool, len(verdicts))
		for _, v := range verdicts {
			seen[v.fp] = true
			prev, ok := current[v.fp]
			if !ok {
				prev = store.AlertRecord{Fingerprint: v.fp, State: store.AlertInactive}
			}
			prev.Rule, prev.Severity, prev.Labels = v.rule.Name, v.rule.Severity, v.labels
			next, tr := Step(prev, v.rule.For, v.sample, now)
			states = append(states, next)
			if tr != "" {
				history = append(history, transition(v.rule, next, tr, now))
			}
		}
		// An alert stored as pending or firing that no rule produced this
		// time (a rule or upstream no longer configured) is resolved, so it
		// cannot stay firing forever.
		for fp, prev := range current {
			if seen[fp] || prev.State == store.AlertInactive {
				continue
			}
			next, tr := Step(prev, 0, Sample{Active: false}, now)
			if prev.Value != nil {
				next.Value = prev.Value
			}
			states = append(states, next)
			if tr != "" {
				r, ok := e.byFP[fp]
				if !ok {
					r = Rule{Name: prev.Rule, Severity: prev.Severity, Describe: func(float64, map[string]string) string {
						return "The rule that raised this alert is no longer evaluated."
					}}
				}
				history = append(history, transition(r, next, tr, now))
			}
		}
		recorded = history
		return states, history
	})
	if err != nil {
		return nil, err
	}
	for _, t := range recorded {
		ev := e.log.Info()
		if t.State == store.AlertFiring {
			ev = e.log.Warn()
		}
		ev.Str("alert", t.Rule).Str("severity", t.Severity).Str("state", t.State).
			Str("fingerprint", t.Fingerprint).Interface("labels", t.Labels).Str("description", t.Annotations["description"]).
			Msg("alert " + t.State)
	}
	return recorded, nil
}

func transition(r Rule, a store.AlertRecord, state string, at time.Time) store.AlertTransition {
	v := 0.0
	if a.Value != nil {
		v = *a.Value
	}
	return store.AlertTransition{Fingerprint: a.Fingerprint, Rule: a.Rule, Severity: a.Severity, State: state,
		Value: a.Value, At: at, Labels: a.Labels, Annotations: r.Annotations(v, a.Labels)}
}

// Step moves one alert through inactive → pending → firing → inactive
// (resolved) given the rule's verdict at now, and names the transition it
// made ("" when none, else store.AlertPending, AlertFiring or AlertResolved).
// A condition that stops holding while pending returns to inactive without a
// transition worth notifying.
func Step(prev store.AlertRecord, hold time.Duration, s Sample, now time.Time) (store.AlertRecord, string) {
	next := prev
	v := s.Value
	next.Value = &v
	t := now
	switch {
	case s.Active && prev.State == store.AlertFiring:
		return next, ""
	case s.Active && prev.State == store.AlertPending:
		if prev.ActiveSince != nil && now.Sub(*prev.ActiveSince) < hold {
			return next, ""
		}
		next.State, next.FiredAt, next.ResolvedAt = store.AlertFiring, &t, nil
		return next, store.AlertFiring
	case s.Active: // inactive
		next.ActiveSince = &t
		if hold <= 0 {
			next.State, next.FiredAt, next.ResolvedAt = store.AlertFiring, &t, nil
			return next, store.AlertFiring
		}
		next.State = store.AlertPending
		return next, store.AlertPending
	case prev.State == store.AlertFiring:
		next.State, next.ActiveSince, next.ResolvedAt = store.AlertInactive, nil, &t
		return next, store.AlertResolved
	case prev.State == store.AlertPending:
		next.State, next.ActiveSince = store.AlertInactive, nil
		return next, ""
	default:
		next.State = store.AlertInactive
		return next, ""
	}
}
