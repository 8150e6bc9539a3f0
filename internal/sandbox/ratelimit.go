package sandbox

import (
	"math"
	"time"
)

// window is a fixed-window rate limit: limit requests per interval, the
// window starting at the first request after the previous one ended.
// limit < 0 means unlimited.
type window struct {
	limit    int
	interval time.Duration
	start    time.Time
	count    int
}

func (w *window) roll(now time.Time) {
	if w.start.IsZero() || !now.Before(w.start.Add(w.interval)) || now.Before(w.start) {
		w.start, w.count = now, 0
	}
}

// take consumes one request; when the window is full it reports false and
// how long until it rolls over.
func (w *window) take(now time.Time) (ok bool, retry time.Duration) {
	if w.limit < 0 {
		return true, 0
	}
	w.roll(now)
	if w.count >= w.limit {
		return false, w.start.Add(w.interval).Sub(now)
	}
	w.count++
	return true, 0
}

// remaining is what is left of the current window (the full limit when it
// has rolled over).
func (w *window) remaining(now time.Time) int {
	if w.limit < 0 {
		return math.MaxInt32
	}
	if w.start.IsZero() || !now.Before(w.start.Add(w.interval)) || now.Before(w.start) {
		return w.limit
	}
	return max(w.limit-w.count, 0)
}

func (w *window) max() int {
	if w.limit < 0 {
		return math.MaxInt32
	}
	return w.limit
}

// daily is a per-UTC-day request budget; limit < 0 means unlimited.
type daily struct {
	limit int
	day   string
	used  int
}

func (d *daily) roll(now time.Time) {
	if day := now.UTC().Format(time.DateOnly); day != d.day {
		d.day, d.used = day, 0
	}
}

func (d *daily) take(now time.Time) (ok bool, retry time.Duration) {
	if d.limit < 0 {
		return true, 0
	}
	d.roll(now)
	if d.used >= d.limit {
		u := now.UTC()
		midnight := time.Date(u.Year(), u.Month(), u.Day()+1, 0, 0, 0, 0, time.UTC)
		return false, midnight.Sub(u)
	}
	d.used++
	return true, 0
}

func (d *daily) remaining(now time.Time) int {
	if d.limit < 0 {
		return math.MaxInt32
	}
	d.roll(now)
	return max(d.limit-d.used, 0)
}

func (d *daily) max() int {
	if d.limit < 0 {
		return math.MaxInt32
	}
	return d.limit
}

// retryAfterSeconds renders a wait as Retry-After: whole seconds, rounded
// up, at least 1.
func retryAfterSeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	return max(s, 1)
}
