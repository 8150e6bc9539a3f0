package alert

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/df-middleware/df-middleware/internal/observe"
	"github.com/df-middleware/df-middleware/internal/store"
	"github.com/df-middleware/df-middleware/internal/upstream"
)

// DurationBuckets are the upper bounds (seconds) of the job duration
// histogram: those of job_processing_duration_seconds, so the p95 the
// evaluator estimates is the one histogram_quantile gives over the metric.
var DurationBuckets = observe.WorkBuckets

// Series of alert_counters.
const (
	seriesJobRuns     = "job_runs"
	seriesJobFailures = "job_failures"
	seriesJobBucket   = "job_duration_bucket:" // + index into DurationBuckets; len = +Inf
	seriesAPICalls    = "api_calls:"           // + upstream
	seriesAPIErrors   = "api_errors:"
)

// Counters counts this replica's share of the figures the rules judge. The
// hot paths (every job run, every upstream attempt) touch atomics only; Run
// moves the counts to alert_counters every FlushEvery.
type Counters struct {
	jobRuns, jobFailures atomic.Int64
	buckets              []atomic.Int64
	calls, errs          map[string]*atomic.Int64
}

// NewCounters counts calls to the given upstreams (others are ignored).
func NewCounters(upstreams []string) *Counters {
	c := &Counters{buckets: make([]atomic.Int64, len(DurationBuckets)+1),
		calls: map[string]*atomic.Int64{}, errs: map[string]*atomic.Int64{}}
	for _, up := range upstreams {
		c.calls[up], c.errs[up] = new(atomic.Int64), new(atomic.Int64)
	}
	return c
}

// JobExecuted counts one handler run (queue.Runner.OnExecuted): a run that
// led to a retry (pending) or gave up (error) is a failure.
func (c *Counters) JobExecuted(_ store.Job, out store.Outcome, d time.Duration) {
	c.jobRuns.Add(1)
	if out.Status == store.StatusPending || out.Status == store.StatusError {
		c.jobFailures.Add(1)
	}
	s := d.Seconds()
	i := sort.SearchFloat64s(DurationBuckets, s) // first bound >= s: Prometheus's le semantics
	c.buckets[i].Add(1)
}

// ObserveCall implements upstream.Observer: one attempt of an upstream call.
// A cancelled attempt is ours, not the upstream's, and is not counted. A
// failure is an attempt without a 2xx answer, except a 4xx that is about
// the request or its data (404 for an id that does not exist, 409, 422: the
// metrics' kind "client"): the upstream answered as it should. 401, 403 and
// 429 do count.
func (c *Counters) ObserveCall(_ context.Context, up, _, _ string, status int, _ time.Duration, err error) {
	calls, ok := c.calls[up]
	if !ok || errors.Is(err, context.Canceled) {
		return
	}
	calls.Add(1)
	if status >= 200 && status <= 299 && err == nil {
		return
	}
	if status >= 400 && status <= 499 && status != http.StatusUnauthorized && status != http.StatusForbidden &&
		status != http.StatusTooManyRequests {
		return
	}
	c.errs[up].Add(1)
}

var _ upstream.Observer = (*Counters)(nil)

// take empties the counters into a delta map (zero counts left out).
func (c *Counters) take() map[string]float64 {
	out := map[string]float64{}
	put := func(k string, n int64) {
		if n != 0 {
			out[k] += float64(n)
		}
	}
	put(seriesJobRuns, c.jobRuns.Swap(0))
	put(seriesJobFailures, c.jobFailures.Swap(0))
	for i := range c.buckets {
		put(seriesJobBucket+strconv.Itoa(i), c.buckets[i].Swap(0))
	}
	for up, n := range c.calls {
		put(seriesAPICalls+up, n.Swap(0))
		put(seriesAPIErrors+up, c.errs[up].Swap(0))
	}
	return out
}

// giveBack returns deltas that could not be written, so the next flush
// carries them.
func (c *Counters) giveBack(d map[string]float64) {
	for k, v := range d {
		n := int64(v)
		switch {
		case k == seriesJobRuns:
			c.jobRuns.Add(n)
		case k == seriesJobFailures:
			c.jobFailures.Add(n)
		case len(k) > len(seriesJobBucket) && k[:len(seriesJobBucket)] == seriesJobBucket:
			if i, err := strconv.Atoi(k[len(seriesJobBucket):]); err == nil && i >= 0 && i < len(c.buckets) {
				c.buckets[i].Add(n)
			}
		case len(k) > len(seriesAPICalls) && k[:len(seriesAPICalls)] == seriesAPICalls:
			if a := c.calls[k[len(seriesAPICalls):]]; a != nil {
				a.Add(n)
			}
		case len(k) > len(seriesAPIErrors) && k[:len(seriesAPIErrors)] == seriesAPIErrors:
			if a := c.errs[k[len(seriesAPIErrors):]]; a != nil {
				a.Add(n)
			}
		}
	}
}

// Flush writes the counts gathered since the last flush into the current
// slot of alert_counters; on failure they are kept for the next one.
func (c *Counters) Flush(ctx context.Context, st *store.Store, instance string, slot time.Duration) error {
	d := c.take()
	if len(d) == 0 {
		return nil
	}
	if err := st.AddAlertCounters(ctx, instance, slot, d); err != nil {
		c.giveBack(d)
		return err
	}
	return nil
}

// Run flushes every s.FlushEvery until ctx ends, then once more.
func (c *Counters) Run(ctx context.Context, st *store.Store, s Settings, log zerolog.Logger) {
	tick := time.NewTicker(s.FlushEvery)
	defer tick.Stop()
	var lastWarn time.Time
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = c.Flush(fctx, st, s.Instance, s.Slot)
			cancel()
			return
		}
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := c.Flush(fctx, st, s.Instance, s.Slot)
		cancel()
		if err != nil && ctx.Err() == nil && time.Since(lastWarn) > time.Minute {
			lastWarn = time.Now()
			log.Warn().Err(err).Msg("alert counters not written; kept for the next flush")
		}
	}
}

// figuresFrom turns summed counters into the rate figures.
func figuresFrom(totals map[string]float64, upstreams []string) Figures {
	f := Figures{JobRuns: totals[seriesJobRuns], JobFailures: totals[seriesJobFailures],
		Calls: map[string]float64{}, Errors: map[string]float64{}}
	counts := make([]float64, len(DurationBuckets)+1)
	for i := range counts {
		counts[i] = totals[seriesJobBucket+strconv.Itoa(i)]
	}
	f.JobP95 = quantile(0.95, counts)
	for _, up := range upstreams {
		f.Calls[up], f.Errors[up] = totals[seriesAPICalls+up], totals[seriesAPIErrors+up]
	}
	return f
}

// quantile estimates the q-quantile from per-bucket counts (last = +Inf)
// the way PromQL's histogram_quantile does: linear within the bucket, the
// highest finite bound when the rank falls in +Inf.
func quantile(q float64, counts []float64) float64 {
	var total float64
	for _, n := range counts {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := q * total
	var cum float64
	for i, n := range counts {
		if cum+n >= rank && n > 0 {
			if i == len(DurationBuckets) {
				return DurationBuckets[len(DurationBuckets)-1]
			}
			lower := 0.0
			if i > 0 {
				lower = DurationBuckets[i-1]
			}
			return lower + (DurationBuckets[i]-lower)*(rank-cum)/n
		}
		cum += n
	}
	return math.NaN()
}

// String is for logs.
func (f Figures) String() string {
	return fmt.Sprintf("depth=%.0f oldest=%.1fs runs=%.0f failures=%.0f p95=%.3fs calls=%v errors=%v",
		f.QueueDepth, f.OldestPendingAge, f.JobRuns, f.JobFailures, f.JobP95, f.Calls, f.Errors)
}
