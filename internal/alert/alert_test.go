package alert

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/df-middleware/df-middleware/internal/store"
	"github.com/df-middleware/df-middleware/internal/testdb"
)

func TestStep(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := t0.Add(d); return &x }
	inactive := store.AlertRecord{State: store.AlertInactive}
	pending := store.AlertRecord{State: store.AlertPending, ActiveSince: at(0)}
	firing := store.AlertRecord{State: store.AlertFiring, ActiveSince: at(0), FiredAt: at(time.Minute)}
	tests := []struct {
		name      string
		prev      store.AlertRecord
		hold      time.Duration
		active    bool
		now       time.Duration
		wantState string
		wantTr    string
	}{
		{"inactive stays inactive", inactive, time.Minute, false, 0, store.AlertInactive, ""},
		{"true with a hold goes pending", inactive, time.Minute, true, 0, store.AlertPending, store.AlertPending},
		{"true without a hold fires at once", inactive, 0, true, 0, store.AlertFiring, store.AlertFiring},
		{"pending before the hold stays pending", pending, time.Minute, true, 59 * time.Second, store.AlertPending, ""},
		{"pending past the hold fires", pending, time.Minute, true, time.Minute, store.AlertFiring, store.AlertFiring},
		{"pending that clears goes back quietly", pending, time.Minute, false, 30 * time.Second, store.AlertInactive, ""},
		{"firing stays firing", firing, time.Minute, true, 2 * time.Minute, store.AlertFiring, ""},
		{"firing that clears resolves", firing, time.Minute, false, 2 * time.Minute, store.AlertInactive, store.AlertResolved},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next, tr := Step(tc.prev, tc.hold, Sample{Value: 7, Active: tc.active}, t0.Add(tc.now))
			if next.State != tc.wantState || tr != tc.wantTr {
				t.Fatalf("got %s (transition %q), want %s (%q)", next.State, tr, tc.wantState, tc.wantTr)
			}
			if next.Value == nil || *next.Value != 7 {
				t.Errorf("value not recorded: %v", next.Value)
			}
			switch tr {
			case store.AlertFiring:
				if next.FiredAt == nil || !next.FiredAt.Equal(t0.Add(tc.now)) || next.ResolvedAt != nil {
					t.Errorf("fired at %v resolved %v", next.FiredAt, next.ResolvedAt)
				}
			case store.AlertResolved:
				if next.ResolvedAt == nil || next.ActiveSince != nil || next.FiredAt == nil {
					t.Errorf("resolved %v active since %v fired %v", next.ResolvedAt, next.ActiveSince, next.FiredAt)
				}
			}
		})
	}
}

func TestQuantileMatchesHistogramQuantile(t *testing.T) {
	counts := make([]float64, len(DurationBuckets)+1)
	if got := quantile(0.95, counts); got != 0 {
		t.Fatalf("empty histogram: %v", got)
	}
	// 100 runs: 90 in (0.1, 0.25], 10 in (5, 10]. Rank 95 falls half way
	// into the (5, 10] bucket: 7.5s, as histogram_quantile computes it.
	counts[5], counts[10] = 90, 10
	if got := quantile(0.95, counts); math.Abs(got-7.5) > 1e-9 {
		t.Fatalf("p95 = %v, want 7.5", got)
	}
	// Everything above the last bound: the last finite bound.
	counts = make([]float64, len(DurationBuckets)+1)
	counts[len(DurationBuckets)] = 5
	if got := quantile(0.95, counts); got != 120 {
		t.Fatalf("p95 in +Inf = %v, want 120", got)
	}
}

func TestRulesJudgeThresholdsAndMinimumSamples(t *testing.T) {
	s := DefaultSettings()
	rules := map[string]Rule{}
	for _, r := range Rules(s) {
		rules[r.Name] = r
	}
	active := func(name string, f Figures) bool {
		for _, smp := range rules[name].Eval(f) {
			if smp.Active {
				return true
			}
		}
		return false
	}
	tests := []struct {
		rule string
		f    Figures
		want bool
	}{
		{QueueDepthWarning, Figures{QueueDepth: 500}, false},
		{QueueDepthWarning, Figures{QueueDepth: 501}, true},
		{QueueDepthCritical, Figures{QueueDepth: 1000}, false},
		{QueueDepthCritical, Figures{QueueDepth: 1001}, true},
		{ErrorRateWarning, Figures{JobRuns: 100, JobFailures: 2}, true},
		{ErrorRateWarning, Figures{JobRuns: 100, JobFailures: 1}, false},
		{ErrorRateCritical, Figures{JobRuns: 100, JobFailures: 6}, true},
		{ErrorRateCritical, Figures{JobRuns: 5, JobFailures: 5}, false}, // too few runs to judge
		{LatencyP95High, Figures{JobRuns: 100, JobP95: 5.5}, true},
		{LatencyP95High, Figures{JobRuns: 3, JobP95: 50}, false},
		{ProcessingDelayHigh, Figures{OldestPendingAge: 601}, true},
		{ProcessingDelayHigh, Figures{OldestPendingAge: 599}, false},
		{UpstreamFailureRateHigh, Figures{Calls: map[string]float64{"ghl": 100}, Errors: map[string]float64{"ghl": 11}}, true},
		{UpstreamFailureRateHigh, Figures{Calls: map[string]float64{"ghl": 100}, Errors: map[string]float64{"ghl": 10}}, false},
		{UpstreamFailureRateHigh, Figures{Calls: map[string]float64{"ghl": 4}, Errors: map[string]float64{"ghl": 4}}, false},
	}
	for _, tc := range tests {
		if got := active(tc.rule, tc.f); got != tc.want {
			t.Errorf("%s over %v: active %v, want %v", tc.rule, tc.f, got, tc.want)
		}
	}
	// One upstream alert per upstream, each with its label.
	smps := rules[UpstreamFailureRateHigh].Eval(Figures{})
	if len(smps) != 3 || smps[0].Labels["upstream"] != "ghl" {
		t.Fatalf("upstream samples %+v", smps)
	}
}

func TestFingerprintDependsOnEveryLabel(t *testing.T) {
	a := Fingerprint(map[string]string{"alertname": "X", "upstream": "ghl"})
	if a != Fingerprint(map[string]string{"upstream": "ghl", "alertname": "X"}) {
		t.Fatal("fingerprint depends on map order")
	}
	if a == Fingerprint(map[string]string{"alertname": "X", "upstream": "aloware"}) {
		t.Fatal("different label values, same fingerprint")
	}
	if a == Fingerprint(map[string]string{"alertnam": "eX", "upstream": "ghl"}) {
		t.Fatal("label boundaries are not part of the fingerprint")
	}
}

func TestCountersFromTwoReplicasSumInTheWindow(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	ctx := context.Background()
	s := DefaultSettings()
	a, b := NewCounters(s.Upstreams), NewCounters(s.Upstreams)
	for i := range 40 {
		out := store.Outcome{Status: store.StatusDone}
		if i%10 == 0 {
			out.Status = store.StatusPending // a retry is a failed run
		}
		a.JobExecuted(store.Job{}, out, 30*time.Millisecond)
		b.JobExecuted(store.Job{}, out, 7*time.Second)
		a.ObserveCall(ctx, "ghl", "/contacts/", "GET", 200, time.Millisecond, nil)
		b.ObserveCall(ctx, "ghl", "/contacts/", "GET", 503, time.Millisecond, errors.New("503"))
		b.ObserveCall(ctx, "ghl", "/contacts/", "GET", 0, time.Millisecond, context.Canceled)    // ours, not counted
		a.ObserveCall(ctx, "ghl", "/contacts/", "GET", 404, time.Millisecond, errors.New("404")) // a call, not a failure
		b.ObserveCall(ctx, "clerk", "/sessions", "GET", 500, time.Millisecond, nil)              // no alert, not counted
	}
	if err := a.Flush(ctx, st, "a", s.Slot); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx, st, "b", s.Slot); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx, st, "a", s.Slot); err != nil { // nothing new: no-op
		t.Fatal(err)
	}
	totals, err := st.AlertCounterTotals(ctx, s.Window)
	if err != nil {
		t.Fatal(err)
	}
	f := figuresFrom(totals, s.Upstreams)
	if f.JobRuns != 80 || f.JobFailures != 8 {
		t.Errorf("runs %v failures %v, want 80 and 8", f.JobRuns, f.JobFailures)
	}
	if f.Calls["ghl"] != 120 || f.Errors["ghl"] != 40 {
		t.Errorf("ghl calls %v errors %v, want 120 and 40 (a 404 is a call, not a failure)", f.Calls["ghl"], f.Errors["ghl"])
	}
	// Half the runs took 7s: p95 lies in the (5, 10] bucket.
	if f.JobP95 <= 5 || f.JobP95 > 10 {
		t.Errorf("p95 %v, want in (5, 10]", f.JobP95)
	}
	// Counts that could not be written are kept for the next flush.
	a.JobExecuted(store.Job{}, store.Outcome{Status: store.StatusDone}, time.Millisecond)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := a.Flush(cctx, st, "a", s.Slot); err == nil {
		t.Fatal("flush with a cancelled context succeeded")
	}
	if d := a.take(); d[seriesJobRuns] != 1 {
		t.Fatalf("failed flush lost its counts: %v", d)
	}
	if n, err := st.PruneAlertCounters(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("prune of fresh counters: %d %v", n, err)
	}
}

// A receiver that redirects has not taken the notification: the POST is not
// followed (it would become a GET whose 200 looks like a delivery).
func TestRedirectingReceiverIsAFailure(t *testing.T) {
	var got atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
	defer elsewhere.Close()
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/login", http.StatusFound)
	}))
	defer rcv.Close()
	s := DefaultSettings()
	s.WebhookURL = rcv.URL
	n := NewNotifier(nil, s, zerolog.Nop())
	if err := n.post(context.Background(), rcv.URL, Message{Version: "4"}); err == nil {
		t.Fatal("a 302 from the receiver counted as delivered")
	}
	if got.Load() != 0 {
		t.Fatal("the redirect was followed")
	}
}

func TestWhatCountsAsAnUpstreamFailure(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		status  int
		err     error
		call    bool
		failure bool
	}{
		{200, nil, true, false},
		{404, errors.New("404"), true, false}, // the data, not the upstream
		{422, errors.New("422"), true, false},
		{401, errors.New("401"), true, true}, // our credentials
		{403, errors.New("403"), true, true},
		{429, errors.New("429"), true, true},
		{503, errors.New("503"), true, true},
		{200, errors.New("bad json"), true, true},
		{0, errors.New("connection refused"), true, true},
		{0, context.Canceled, false, false}, // ours
	}
	for _, tc := range tests {
		c := NewCounters([]string{"ghl"})
		c.ObserveCall(ctx, "ghl", "/x", "GET", tc.status, time.Millisecond, tc.err)
		d := c.take()
		if got := d[seriesAPICalls+"ghl"] == 1; got != tc.call {
			t.Errorf("%d %v: counted as a call %v, want %v", tc.status, tc.err, got, tc.call)
		}
		if got := d[seriesAPIErrors+"ghl"] == 1; got != tc.failure {
			t.Errorf("%d %v: counted as a failure %v, want %v", tc.status, tc.err, got, tc.failure)
		}
	}
}
