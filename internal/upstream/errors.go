// Package upstream is the common machinery of the GHL, Aloware, Verity and
// Clerk clients: per-attempt timeouts, retries with jittered exponential
// backoff, Retry-After, client-side rate limits, a circuit breaker per
// upstream, error classification for the queue, and the one place where
// calls are counted and timed (Observer).
package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// ErrBreakerOpen is the cause of calls refused without being sent because the
// upstream's circuit breaker is open (or half-open and already probing).
var ErrBreakerOpen = errors.New("circuit breaker open")

// Error is every failed call. It never carries tokens, api_token values or
// other secrets: messages and bodies are scrubbed of the configured secrets
// and URLs (which may hold query-string credentials) are dropped from
// transport errors.
type Error struct {
	Upstream   string        // "ghl", "aloware", "verity", "clerk"
	Endpoint   string        // method and endpoint template, e.g. "POST /contacts/{id}/notes"
	Status     int           // HTTP status, 0 for network errors and an open breaker
	Message    string        // the provider's message from the error body, ≤ 500 chars
	Retryable  bool          // network error, timeout, 429, 5xx, breaker open
	RetryAfter time.Duration // from Retry-After or rate-limit headers, 0 if unknown
	Body       []byte        // start of the error body (≤ 4 KiB), secrets scrubbed
	Err        error         // underlying error, if any

	// notSent marks transport failures that happened before the request
	// was written, so even a non-idempotent request may be retried.
	notSent bool
}

// Error renders e.g. "ghl POST /contacts/upsert: 422 Unprocessable Entity: phone is invalid".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Upstream)
	if e.Endpoint != "" {
		b.WriteByte(' ')
		b.WriteString(e.Endpoint)
	}
	b.WriteString(": ")
	switch {
	case e.Status != 0:
		fmt.Fprintf(&b, "%d %s", e.Status, http.StatusText(e.Status))
		if e.Message != "" {
			b.WriteString(": ")
			b.WriteString(e.Message)
		}
	case e.Message != "" && e.Err != nil:
		b.WriteString(e.Message)
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	case e.Message != "":
		b.WriteString(e.Message)
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString("request failed")
	}
	return b.String()
}

// Unwrap returns the underlying error (ErrBreakerOpen, context errors, …).
func (e *Error) Unwrap() error { return e.Err }

// IsRetryable reports whether err is a failure worth retrying later: a
// network error, timeout, 429, 5xx or open breaker. Unknown errors are not.
func IsRetryable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Retryable
}

// RetryAfterOf returns how long the upstream asked us to wait, 0 if it did
// not say. The queue uses it as the minimum delay before the next attempt.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// StatusOf returns the HTTP status of a failed call, 0 when there was none.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// errorCapture records the last *Error produced by Transport under a context.
type errorCapture struct{ last *Error }

type captureKey struct{}

// RecordErrors returns a context under which Transport records the *Error
// built from the last failed round trip (non-2xx response or transport
// failure), and a function returning it (nil if none). It classifies errors
// of SDKs that hide the HTTP status: clerk-sdk-go returns errors.New(body)
// for error bodies that are not Clerk-shaped.
func RecordErrors(ctx context.Context) (context.Context, func() *Error) {
	c := &errorCapture{}
	return context.WithValue(ctx, captureKey{}, c), func() *Error { return c.last }
}

func record(ctx context.Context, e *Error) {
	if c, ok := ctx.Value(captureKey{}).(*errorCapture); ok {
		c.last = e
	}
}
