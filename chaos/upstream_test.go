package chaos

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/sandbox"
	"github.com/df-middleware/df-middleware/internal/testdb"
)

// breakerSample is one reading of upstream_breaker_state (0 closed, 1
// half-open, 2 open).
type breakerSample struct {
	at    time.Time
	state float64
}

// pollBreaker reads upstream_breaker_state{upstream} every interval until
// stop is closed.
func pollBreaker(url, upstream string, interval time.Duration, stop <-chan struct{}) func() []breakerSample {
	var mu sync.Mutex
	var samples []breakerSample
	done := make(chan struct{})
	go func() {
		defer close(done)
		client := &http.Client{Timeout: 5 * time.Second}
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if v, ok := metric(ctx, client, url, `upstream_breaker_state{upstream="`+upstream+`"}`); ok {
				mu.Lock()
				samples = append(samples, breakerSample{time.Now(), v})
				mu.Unlock()
			}
			cancel()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() []breakerSample {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return samples
	}
}

func breakerName(v float64) string {
	switch v {
	case 0:
		return "closed"
	case 1:
		return "half-open"
	case 2:
		return "open"
	}
	return fmt.Sprint(v)
}

// TestUpstreamFaults makes GHL answer 500 to everything, then 429 to most
// calls: events back off and retry, the GHL breaker opens and closes again,
// and every event ends done with exactly one note in GHL.
func TestUpstreamFaults(t *testing.T) {
	setup(t)
	res := newResult("upstream")
	sec := newSecrets(t)
	sb := startSandbox(t, 0)
	dbURL := testdb.NewURL(t)
	addr := freeAddr(t)
	extra := map[string]string{
		"DF_RETRY_BASE":       pick("500ms", "1s"),
		"DF_BREAKER_COOLDOWN": pick("2s", "5s"),
		"DF_MAX_ATTEMPTS":     "20",
	}
	res.Settings = extra
	svc := startService(t, "serve", addr, "up-1", serviceEnv(withPoolSize(dbURL, poolSize()), sb.url, addr, "up-1", sec, extra))

	spec := loadSpec{Kind: sandbox.KindTextingMessage, Rate: pick(30.0, 50.0), Targets: fixed(svc.url)}
	warm, errs, storm, tail := pick(3*time.Second, 10*time.Second), pick(8*time.Second, 60*time.Second),
		pick(6*time.Second, 30*time.Second), pick(4*time.Second, 10*time.Second)
	res.Load = describeLoad(spec, warm+errs+storm+tail)
	res.Fault = fmt.Sprintf("GHL answers 500 to every call for %s, then 429 (Retry-After: 1) to 80 %% of calls for %s, then recovers",
		errs, storm)
	load := newLoadDriver(t, spec, sec)
	stopPoll := make(chan struct{})
	breaker := pollBreaker(svc.url, "ghl", 100*time.Millisecond, stopPoll)
	load.start()

	time.Sleep(warm)
	errStart := time.Now()
	sb.setFaults(t, sandbox.UpstreamGHL, sandbox.Faults{ErrorRate: 1, Status: 500})
	time.Sleep(errs)
	stormStart := time.Now()
	sb.setFaults(t, sandbox.UpstreamGHL, sandbox.Faults{Rate429: 0.8})
	time.Sleep(storm)
	sb.setFaults(t, sandbox.UpstreamGHL, sandbox.Faults{})
	faultEnd := time.Now()
	time.Sleep(tail)
	load.stop()
	recs := load.snapshot()

	checkInvariant(t, res, recs, checkOpts{dbURL: dbURL, sb: sb, settle: pick(90*time.Second, 5*time.Minute), faultEnd: faultEnd})
	time.Sleep(500 * time.Millisecond) // one more breaker reading after the queue settled
	close(stopPoll)
	samples := breaker()

	// The breaker: opened during the 500s, closed at the end.
	var openedAt, closedInStorm, closedAt time.Time
	var changes []string
	prev := -1.0
	for _, s := range samples {
		if s.state != prev {
			changes = append(changes, fmt.Sprintf("%s at %+.1f s", breakerName(s.state), s.at.Sub(errStart).Seconds()))
			prev = s.state
		}
		if s.at.After(errStart) && s.at.Before(stormStart.Add(time.Second)) && s.state == 2 && openedAt.IsZero() {
			openedAt = s.at
		}
		if s.at.After(stormStart) && s.at.Before(faultEnd) && s.state == 0 && closedInStorm.IsZero() {
			closedInStorm = s.at
		}
		if s.at.After(faultEnd) && s.state == 0 && closedAt.IsZero() {
			closedAt = s.at
		}
	}
	if len(samples) == 0 {
		res.problem("upstream_breaker_state{upstream=\"ghl\"} was never read from /metrics")
	} else if last := samples[len(samples)-1]; last.state != 0 {
		res.problem("the GHL breaker is %s after recovery", breakerName(last.state))
	}
	if openedAt.IsZero() {
		res.problem("the GHL breaker was never seen open during %s of 500s", errs)
	} else {
		res.observe("GHL breaker opened", "%s after the 500s began", seconds(openedAt.Sub(errStart)))
	}
	if !closedInStorm.IsZero() {
		res.observe("GHL breaker closed during the 429 storm", "%s after it began (a 429 means the upstream is alive)",
			seconds(closedInStorm.Sub(stormStart)))
	}
	if !closedAt.IsZero() {
		res.observe("GHL breaker closed after the faults", "%s after they were cleared", seconds(closedAt.Sub(faultEnd)))
	}
	if len(changes) > 12 {
		changes = append(changes[:6], append([]string{"…"}, changes[len(changes)-5:]...)...)
	}
	res.observe("GHL breaker states, sampled every 100 ms (time from the first 500)", "%s", strings.Join(changes, "; "))

	// Backoff: how many attempts events needed, and the client's view.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := connectRetry(ctx, t, dbURL)
	defer conn.Close(context.Background())
	var retried, maxAttempts int
	if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE attempts > 1), coalesce(max(attempts), 0)
		FROM webhook_events WHERE status = 'done'`).Scan(&retried, &maxAttempts); err != nil {
		t.Fatal(err)
	}
	res.observe("events retried", "%d of %d done, at most %d attempts (DF_MAX_ATTEMPTS=20)", retried, res.Ended["done"], maxAttempts)
	if retried == 0 {
		res.problem("no event needed a retry: the faults did not reach the handlers")
	}
	var kinds []string
	for _, k := range []string{"server", "rate_limited", "breaker_open"} {
		if v, ok := metricSum(ctx, http.DefaultClient, svc.url, "ghl_api_errors_total", `kind="`+k+`"`); ok {
			kinds = append(kinds, fmt.Sprintf("%s %.0f", k, v))
		}
	}
	res.observe("ghl_api_errors_total by kind", "%s", strings.Join(kinds, ", "))
	finish(t, res)
}
