package store

import "math"

// DurationBucketBounds are the upper bounds (milliseconds) of the duration
// histogram buckets of event_finish_rollup and sync_log_rollup; they must
// equal the array in dfm_duration_bucket (migration 00003). Bucket b holds
// durations in [bound[b-1], bound[b]); the last bucket is open-ended.
var DurationBucketBounds = []float64{5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// Histogram is a duration histogram read from a rollup.
type Histogram struct {
	Counts []int64 // per bucket, len(DurationBucketBounds)+1
	N      int64
	SumMS  float64
	MaxMS  float64
}

// NewHistogram returns an empty histogram.
func NewHistogram() Histogram {
	return Histogram{Counts: make([]int64, len(DurationBucketBounds)+1)}
}

// Add counts n durations of bucket b (out-of-range buckets, such as the -1
// of operations without a finish time, are ignored).
func (h *Histogram) Add(b int, n int64, sumMS, maxMS float64) {
	if b < 0 || b >= len(h.Counts) || n <= 0 {
		return
	}
	h.Counts[b] += n
	h.N += n
	h.SumMS += sumMS
	h.MaxMS = math.Max(h.MaxMS, maxMS)
}

// Merge adds o to h.
func (h *Histogram) Merge(o Histogram) {
	for b, n := range o.Counts {
		h.Counts[b] += n
	}
	h.N += o.N
	h.SumMS += o.SumMS
	h.MaxMS = math.Max(h.MaxMS, o.MaxMS)
}

// Mean is the exact average in milliseconds (0 when empty).
func (h Histogram) Mean() float64 {
	if h.N == 0 {
		return 0
	}
	return h.SumMS / float64(h.N)
}

// Percentile estimates the p-th percentile (0 < p ≤ 1) in milliseconds by
// linear interpolation inside the bucket that holds it; the estimate never
// exceeds the largest duration seen. Its error is bounded by the width of
// that bucket.
func (h Histogram) Percentile(p float64) float64 {
	if h.N == 0 {
		return 0
	}
	rank := p * float64(h.N)
	var before float64
	for b, n := range h.Counts {
		if n == 0 {
			continue
		}
		if before+float64(n) >= rank {
			lo := 0.0
			if b > 0 {
				lo = DurationBucketBounds[b-1]
			}
			hi := h.MaxMS
			if b < len(DurationBucketBounds) {
				hi = math.Min(DurationBucketBounds[b], h.MaxMS)
			}
			if hi < lo {
				hi = lo
			}
			return lo + (hi-lo)*(rank-before)/float64(n)
		}
		before += float64(n)
	}
	return h.MaxMS
}
