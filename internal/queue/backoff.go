package queue

import (
	"math/rand/v2"
	"time"
)

// Backoff computes the wait before the next attempt.
type Backoff struct {
	Base time.Duration // wait after the first failure
	Max  time.Duration // cap
}

// Delay returns the wait after the given number of attempts (1-based): the
// exponential step with "equal jitter" (half fixed, half random), so retries
// of many events that failed together spread out instead of hitting the
// upstream in waves, yet never come back sooner than half the step.
func (b Backoff) Delay(attempts int) time.Duration {
	if attempts < 1 {
		attempts = 1
	}
	d := b.Base
	for i := 1; i < attempts && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	half := d / 2
	return half + rand.N(half+1)
}
