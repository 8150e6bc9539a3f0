package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// loadConfig is the shape of a load run shared by insert and intake.
type loadConfig struct {
	Concurrency int
	Warmup      time.Duration // run but do not record
	Duration    time.Duration // recorded window
	Rate        float64       // operations per second in total; 0 = closed loop
	MaxOps      int64         // stop after this many operations; 0 = no limit
}

func (c *loadConfig) register(fs *flag.FlagSet) {
	fs.IntVar(&c.Concurrency, "concurrency", 32, "concurrent workers (connections)")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "time to run before recording")
	fs.DurationVar(&c.Duration, "duration", 20*time.Second, "recorded duration")
	fs.Float64Var(&c.Rate, "rate", 0, "paced load in operations/s in total (open loop, latency from the intended start); 0 = as fast as the workers go")
	fs.Int64Var(&c.MaxOps, "max-ops", 0, "stop after this many operations even before -warmup + -duration is over (0 = no limit)")
}

func (c *loadConfig) validate() error {
	if c.Concurrency < 1 {
		return fmt.Errorf("-concurrency must be at least 1")
	}
	if c.Duration <= 0 {
		return fmt.Errorf("-duration must be positive")
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		return fmt.Errorf("-rate must be a finite number ≥ 0")
	}
	if c.MaxOps < 0 {
		return fmt.Errorf("-max-ops must be ≥ 0")
	}
	return nil
}

// outcome of one operation.
type outcome int

const (
	outcomeOK outcome = iota
	outcomeDuplicate
	outcomeError
)

// opFunc performs operation seq on worker w. detail names the error
// (e.g. "HTTP 500: …") and is sampled into the result.
type opFunc func(ctx context.Context, w int, seq uint64) (o outcome, detail string)

// LatencyMS summarises latencies in milliseconds.
type LatencyMS struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// LoadResult is the JSON output of insert and intake.
type LoadResult struct {
	Mode         string           `json:"mode"`
	Target       string           `json:"target"`
	Concurrency  int              `json:"concurrency"`
	WarmupS      float64          `json:"warmup_s"`
	DurationS    float64          `json:"duration_s"`
	TargetRate   float64          `json:"target_rate,omitempty"`
	Started      time.Time        `json:"started"`
	Operations   int64            `json:"operations"`
	OK           int64            `json:"ok"`
	Duplicates   int64            `json:"duplicates"`
	Errors       int64            `json:"errors"`
	ErrorSamples map[string]int64 `json:"error_samples,omitempty"`
	PerSecond    float64          `json:"per_second"`
	OKPerSecond  float64          `json:"ok_per_second"`
	Latency      LatencyMS        `json:"latency"`
	LatencyNote  string           `json:"latency_note"`
	// TotalSent counts every operation including warm-up and those outside
	// the recorded window: the rows the run left behind.
	TotalSent int64 `json:"total_sent"`
	// MaxOps is -max-ops; StoppedByMaxOps says the run ended on it, so the
	// rates are over the time the recorded operations took.
	MaxOps          int64 `json:"max_ops,omitempty"`
	StoppedByMaxOps bool  `json:"stopped_by_max_ops,omitempty"`
}

// workerStats is what one worker records; merged at the end so the hot path
// takes no lock.
type workerStats struct {
	lat        []time.Duration
	ok, dup    int64
	errs       int64
	errSamples map[string]int64
}

func (s *workerStats) record(o outcome, detail string, lat time.Duration) {
	s.lat = append(s.lat, lat)
	switch o {
	case outcomeOK:
		s.ok++
	case outcomeDuplicate:
		s.dup++
	default:
		s.errs++
		if s.errSamples == nil {
			s.errSamples = map[string]int64{}
		}
		if len(s.errSamples) < 20 || s.errSamples[detail] > 0 {
			s.errSamples[detail]++
		}
	}
}

// runLoad drives op with cfg. Closed loop: every worker issues its next
// operation when the previous one returns, and an operation is recorded when
// it started inside the window. Paced: a dispatcher releases operations at
// their intended times and latency runs from the intended time, so a stall
// is charged to every operation it delays (no coordinated omission).
func runLoad(ctx context.Context, cfg loadConfig, op opFunc) LoadResult {
	var seq atomic.Uint64
	// next claims an operation number; false once -max-ops are issued.
	next := func() (uint64, bool) {
		n := seq.Add(1)
		if cfg.MaxOps > 0 && n > uint64(cfg.MaxOps) {
			return 0, false
		}
		return n, true
	}
	start := time.Now()
	measureFrom := start.Add(cfg.Warmup)
	measureTo := measureFrom.Add(cfg.Duration)
	stats := make([]workerStats, cfg.Concurrency)
	for i := range stats {
		stats[i].lat = make([]time.Duration, 0, 1<<14)
	}

	var wg sync.WaitGroup
	if cfg.Rate == 0 {
		for w := range cfg.Concurrency {
			wg.Go(func() {
				st := &stats[w]
				for ctx.Err() == nil {
					t0 := time.Now()
					if !t0.Before(measureTo) {
						return
					}
					n, ok := next()
					if !ok {
						return
					}
					o, detail := op(ctx, w, n)
					if !t0.Before(measureFrom) {
						st.record(o, detail, time.Since(t0))
					}
				}
			})
		}
	} else {
		ticks := make(chan time.Time, 1<<16)
		go dispatch(ctx, ticks, start, measureTo, cfg.Rate, cfg.MaxOps)
		for w := range cfg.Concurrency {
			wg.Go(func() {
				st := &stats[w]
				for intended := range ticks {
					if ctx.Err() != nil {
						continue // drain the channel
					}
					n, _ := next() // dispatch stops at -max-ops
					o, detail := op(ctx, w, n)
					if !intended.Before(measureFrom) {
						st.record(o, detail, time.Since(intended))
					}
				}
			})
		}
	}
	wg.Wait()
	elapsed := cfg.Duration
	total := int64(seq.Load())
	stoppedByMax := cfg.MaxOps > 0 && total >= cfg.MaxOps && time.Now().Before(measureTo)
	if ctx.Err() != nil || stoppedByMax { // interrupted or -max-ops: rate over what really ran
		elapsed = max(time.Since(measureFrom), time.Millisecond)
	}
	if cfg.MaxOps > 0 {
		total = min(total, cfg.MaxOps)
	}
	r := merge(stats, cfg, start, elapsed, total)
	r.MaxOps, r.StoppedByMaxOps = cfg.MaxOps, stoppedByMax
	return r
}

// dispatch sends the intended start time of each operation at rate per second
// from start until end, or until maxOps (> 0) operations are sent.
func dispatch(ctx context.Context, ticks chan<- time.Time, start, end time.Time, rate float64, maxOps int64) {
	defer close(ticks)
	interval := time.Duration(float64(time.Second) / rate)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i := int64(0); ; i++ {
		intended := start.Add(time.Duration(i) * interval)
		if !intended.Before(end) || ctx.Err() != nil || (maxOps > 0 && i >= maxOps) {
			return
		}
		// Never release an operation early; when the dispatcher wakes late,
		// everything already due goes out at once.
		if d := time.Until(intended); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		}
		ticks <- intended
	}
}

func merge(stats []workerStats, cfg loadConfig, start time.Time, elapsed time.Duration, total int64) LoadResult {
	var all []time.Duration
	r := LoadResult{
		Concurrency: cfg.Concurrency,
		WarmupS:     cfg.Warmup.Seconds(),
		DurationS:   elapsed.Seconds(),
		TargetRate:  cfg.Rate,
		Started:     start.UTC(),
		TotalSent:   total,
	}
	for i := range stats {
		s := &stats[i]
		all = append(all, s.lat...)
		r.OK += s.ok
		r.Duplicates += s.dup
		r.Errors += s.errs
		for k, v := range s.errSamples {
			if r.ErrorSamples == nil {
				r.ErrorSamples = map[string]int64{}
			}
			r.ErrorSamples[k] += v
		}
	}
	r.Operations = int64(len(all))
	r.PerSecond = float64(r.Operations) / elapsed.Seconds()
	r.OKPerSecond = float64(r.OK+r.Duplicates) / elapsed.Seconds()
	r.Latency = summarise(all)
	if cfg.Rate > 0 {
		r.LatencyNote = "paced open loop: latency from each operation's intended start"
	} else {
		r.LatencyNote = "closed loop: latency of each operation"
	}
	return r
}

// summarise computes percentiles from the sorted samples: exact, and cheap
// enough for a few million samples.
func summarise(d []time.Duration) LatencyMS {
	if len(d) == 0 {
		return LatencyMS{}
	}
	slices.Sort(d)
	var sum time.Duration
	for _, v := range d {
		sum += v
	}
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(d)))) - 1
		i = max(0, min(i, len(d)-1))
		return ms(d[i])
	}
	return LatencyMS{
		P50:  q(0.50),
		P90:  q(0.90),
		P99:  q(0.99),
		P999: q(0.999),
		Max:  ms(d[len(d)-1]),
		Mean: ms(sum / time.Duration(len(d))),
	}
}

func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)*1000) / 1000
}

// sortedKeys returns the keys of m in order (stable output).
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
