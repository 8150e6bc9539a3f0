package intake

import (
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/df-middleware/df-middleware/internal/observe"
)

// RateLimit is one source's token bucket: Limit deliveries a second on
// average, up to Burst at once. Limit <= 0 means unlimited.
type RateLimit struct {
	Limit float64
	Burst int
}

// sourceLimiter is the bucket of one source, plus a one-a-second bucket for
// its warning so that a flood writes one log line a second, not one a
// request.
type sourceLimiter struct {
	requests *rate.Limiter
	warn     *rate.Limiter
	refused  atomic.Int64 // refusals since the last warning
}

// newLimiters builds a bucket for each source whose limit is on; sources
// without one are never limited.
func newLimiters(limits map[string]RateLimit) map[string]*sourceLimiter {
	out := map[string]*sourceLimiter{}
	for source, l := range limits {
		if l.Limit <= 0 {
			continue
		}
		// A zero burst would refuse everything; config refuses it, and a
		// caller building Settings by hand gets one token instead.
		out[source] = &sourceLimiter{
			requests: rate.NewLimiter(rate.Limit(l.Limit), max(l.Burst, 1)),
			warn:     rate.NewLimiter(rate.Every(time.Second), 1),
		}
	}
	return out
}

// take takes a token for one delivery at now. When none is left it takes
// nothing and returns how long until one will be.
func (s *sourceLimiter) take(now time.Time) (wait time.Duration, ok bool) {
	r := s.requests.ReserveN(now, 1)
	if !r.OK() {
		return time.Second, false // n > burst: cannot happen with burst >= 1
	}
	if wait = r.DelayFrom(now); wait == 0 {
		return 0, true
	}
	// The refused delivery must not spend a future token: hand it back.
	r.CancelAt(now)
	return wait, false
}

// retryAfterSeconds is the Retry-After value for a wait: whole seconds,
// rounded up, at least 1.
func retryAfterSeconds(wait time.Duration) int {
	s := math.Ceil(wait.Seconds())
	switch {
	case s < 1:
		return 1
	case s > math.MaxInt32:
		return math.MaxInt32
	}
	return int(s)
}

// rateLimited answers 429 when source is over its limit and reports whether
// it did. It runs before the body is read, so a flood costs a map lookup
// and a token check per request, and nothing of it is stored.
func (h *Handler) rateLimited(w http.ResponseWriter, r *http.Request, source string) bool {
	lim := h.limiters[source]
	if lim == nil {
		return false
	}
	now := h.set.Now()
	wait, ok := lim.take(now)
	if ok {
		return false
	}
	secs := retryAfterSeconds(wait)
	lim.refused.Add(1)
	if lim.warn.AllowN(now, 1) {
		// One line a second per source at most; refused counts every
		// refusal since the previous line. Never the body or its headers.
		h.log.Warn().Str("source", source).Int64("refused", lim.refused.Swap(0)).Int("retry_after_s", secs).
			Msg("webhooks refused with 429: source over its intake rate limit (DF_INTAKE_RATE_LIMIT)")
	}
	h.outcome(source, "", observe.WebhookRefused, observe.ReasonRateLimited)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	WriteError(w, r, http.StatusTooManyRequests,
		"too many "+source+" webhooks: over this source's rate limit; nothing was stored, retry after "+strconv.Itoa(secs)+" s")
	return true
}
