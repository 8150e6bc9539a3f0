package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"
)

// Observer is the one place calls are counted and timed; metrics and tracing
// plug in here. ObserveCall runs once per attempt, including attempts refused
// by the breaker (status 0, err wrapping ErrBreakerOpen). endpoint is the
// template ("/contacts/{id}"), never a raw path or query string.
type Observer interface {
	ObserveCall(ctx context.Context, upstream, endpoint, method string, status int, d time.Duration, err error)
}

// AttemptStarter may also be implemented by an Observer that must act before
// an attempt is sent, e.g. to start a client span and inject W3C trace
// context into header. The context it returns is the one later passed to
// ObserveCall for the same attempt.
type AttemptStarter interface {
	StartAttempt(ctx context.Context, upstream, endpoint, method string, header http.Header) context.Context
}

// NopObserver observes nothing.
type NopObserver struct{}

// ObserveCall does nothing.
func (NopObserver) ObserveCall(context.Context, string, string, string, int, time.Duration, error) {}

// Options configures a Client. Zero values take the defaults noted.
type Options struct {
	Name        string        // upstream name used in errors and labels
	BaseURL     string        // scheme://host[/prefix]
	Timeout     time.Duration // per attempt, default 10s
	MaxAttempts int           // default 4 (1 try + 3 retries)
	BackoffBase time.Duration // default 200ms, doubled per retry and jittered
	BackoffMax  time.Duration // default 5s
	// MaxRetryAfter is the longest Retry-After the client sleeps through;
	// a longer one is returned in the *Error so the queue reschedules the
	// event instead of holding a worker. Default 30s.
	MaxRetryAfter time.Duration
	RateLimit     rate.Limit // client-side limit; 0 means none
	RateBurst     int        // default 1 when RateLimit is set

	// Breaker: opens after BreakerConsecutiveFailures (default 5) consecutive
	// failures, or when at least BreakerMinRequests (default 20) requests in
	// BreakerInterval (default 30s, rolling) had ≥ BreakerFailureRatio
	// (default 0.5) failures; half-open after BreakerTimeout (default 15s).
	// Failures are transport errors, timeouts and 5xx; 4xx (including 429)
	// mean the upstream is alive.
	BreakerConsecutiveFailures uint32
	BreakerMinRequests         uint32
	BreakerFailureRatio        float64
	BreakerInterval            time.Duration
	BreakerTimeout             time.Duration

	HTTPClient *http.Client // default: a client with a pooled transport
	Observer   Observer     // default NopObserver
	// Headers adds authentication and other per-upstream headers.
	Headers func(req *http.Request)
	// RateHeaders reads a provider's rate-limit headers. When remaining
	// reaches 0 the client holds every call until reset has passed; on a
	// 429 without Retry-After, reset becomes the RetryAfter.
	RateHeaders func(h http.Header) (remaining int, reset time.Duration, ok bool)
	// Secrets are scrubbed from every message and body kept in an *Error.
	Secrets []string
	// MaxResponseBytes bounds a response body, default 5 MiB.
	MaxResponseBytes int64
}

// Client performs calls to one upstream.
type Client struct {
	o        Options
	base     *url.URL
	baseErr  error
	http     *http.Client
	observer Observer
	starter  AttemptStarter
	limiter  *rate.Limiter
	breaker  *gobreaker.TwoStepCircuitBreaker[struct{}]
	openedAt atomic.Int64 // unix nanos of the last transition to open

	gateMu    sync.Mutex
	gateUntil time.Time // no call starts before this (rate-limit budget exhausted)
}

// Request describes one call.
type Request struct {
	Method   string
	Endpoint string // template for labels, e.g. "/contacts/{id}"
	Path     string // concrete path, ids escaped with url.PathEscape
	Query    url.Values
	Body     any // JSON-encoded when non-nil
	Header   http.Header
	// Idempotent allows retrying a POST on 5xx and transport errors. GET,
	// HEAD, OPTIONS, PUT and DELETE are idempotent by default, and so is
	// any request carrying an Idempotency-Key header.
	Idempotent bool
}

// RawResponse, passed as out to Do, receives the response as bytes instead
// of being JSON-decoded. It is filled for every received response, 2xx or
// not (Do still returns *Error for a non-2xx), so proxies can relay it.
type RawResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// New returns a client for one upstream.
func New(o Options) *Client {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 4
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 200 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 5 * time.Second
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = 30 * time.Second
	}
	if o.BreakerConsecutiveFailures == 0 {
		o.BreakerConsecutiveFailures = 5
	}
	if o.BreakerMinRequests == 0 {
		o.BreakerMinRequests = 20
	}
	if o.BreakerFailureRatio <= 0 {
		o.BreakerFailureRatio = 0.5
	}
	if o.BreakerInterval <= 0 {
		o.BreakerInterval = 30 * time.Second
	}
	if o.BreakerTimeout <= 0 {
		o.BreakerTimeout = 15 * time.Second
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = 5 << 20
	}
	c := &Client{o: o, http: o.HTTPClient, observer: o.Observer}
	c.base, c.baseErr = url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if c.baseErr == nil && (c.base.Scheme == "" || c.base.Host == "") {
		c.baseErr = fmt.Errorf("base URL %q is not absolute", o.BaseURL)
	}
	if c.http == nil {
		c.http = defaultHTTPClient()
	}
	if c.observer == nil {
		c.observer = NopObserver{}
	}
	c.starter, _ = c.observer.(AttemptStarter)
	if o.RateLimit > 0 {
		burst := o.RateBurst
		if burst <= 0 {
			burst = 1
		}
		c.limiter = rate.NewLimiter(o.RateLimit, burst)
	}
	c.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         o.Name,
		MaxRequests:  1,
		Interval:     o.BreakerInterval,
		BucketPeriod: o.BreakerInterval / 6,
		Timeout:      o.BreakerTimeout,
		ReadyToTrip: func(n gobreaker.Counts) bool {
			if n.ConsecutiveFailures >= o.BreakerConsecutiveFailures {
				return true
			}
			decided := n.TotalSuccesses + n.TotalFailures // excluded calls do not count
			return decided >= o.BreakerMinRequests &&
				float64(n.TotalFailures) >= o.BreakerFailureRatio*float64(decided)
		},
		IsExcluded: func(err error) bool { return errors.Is(err, errExcluded) },
		OnStateChange: func(_ string, _, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				c.openedAt.Store(time.Now().UnixNano())
			}
		},
	})
	return c
}

// defaultHTTPClient pools enough connections per host for concurrent
// workers; net/http's default of 2 idle connections per host would make
// every burst reconnect.
func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 64
	t.IdleConnTimeout = 90 * time.Second
	// Never follow a redirect: it would carry the API key header (and, on
	// 307/308, a token in the body) to wherever the Location points. A 3xx
	// comes back as an answer, which the client reports as a failure.
	return &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// Name returns the upstream name.
func (c *Client) Name() string { return c.o.Name }

// BreakerState returns "closed", "half-open" or "open".
func (c *Client) BreakerState() string { return c.breaker.State().String() }

// Breaker outcomes reported to gobreaker: nil is a success.
var (
	errFailure  = errors.New("upstream failure")
	errExcluded = errors.New("not the upstream's fault")
)

// Do performs the request with rate limiting, the breaker and retries, and
// decodes a 2xx JSON body into out (nil discards it; *RawResponse keeps it
// raw). A non-2xx response or a failure is an *Error. Only retryable
// failures are retried, and only for idempotent requests — except a 429,
// which was not processed, and a transport failure before the request was
// written. Each attempt is reported to the Observer.
func (c *Client) Do(ctx context.Context, r Request, out any) error {
	endpoint := r.Method + " " + r.Endpoint
	if c.baseErr != nil {
		return &Error{Upstream: c.o.Name, Endpoint: endpoint, Message: "invalid base URL", Err: c.baseErr}
	}
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = json.Marshal(r.Body); err != nil {
			return &Error{Upstream: c.o.Name, Endpoint: endpoint, Message: "encode request body", Err: err}
		}
	}
	idempotent := r.Idempotent || r.Header.Get("Idempotency-Key") != ""
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		idempotent = true
	}
	return c.Retry(ctx, idempotent, func(ctx context.Context) error {
		return c.attempt(ctx, r, endpoint, body, out)
	})
}

// Retry runs attempt until it succeeds, fails permanently or MaxAttempts is
// reached, sleeping a jittered exponential backoff (or the *Error's
// RetryAfter when larger) between attempts. Errors other than *Error are
// not retried. The retry rules are those of Do; SDK-driven calls (Clerk)
// use it with their own attempt function.
func (c *Client) Retry(ctx context.Context, idempotent bool, attempt func(ctx context.Context) error) error {
	for n := 1; ; n++ {
		err := attempt(ctx)
		if err == nil {
			return nil
		}
		var e *Error
		if !errors.As(err, &e) || n >= c.o.MaxAttempts || !mayRetry(e, idempotent) || ctx.Err() != nil {
			return err
		}
		if e.RetryAfter > c.o.MaxRetryAfter {
			return err // let the queue reschedule instead of holding a worker
		}
		delay := max(c.backoff(n), e.RetryAfter)
		if sleep(ctx, delay) != nil {
			return err
		}
	}
}

func mayRetry(e *Error, idempotent bool) bool {
	if !e.Retryable || errors.Is(e, ErrBreakerOpen) {
		return false
	}
	return idempotent || e.Status == http.StatusTooManyRequests || e.notSent
}

// backoff is the delay before retry n (1-based): base·2^(n-1) capped at
// BackoffMax, with "equal jitter" (half fixed, half random) so that
// synchronized callers spread out but never retry immediately.
func (c *Client) backoff(n int) time.Duration {
	d := c.o.BackoffBase << min(n-1, 20)
	if d <= 0 || d > c.o.BackoffMax {
		d = c.o.BackoffMax
	}
	half := d / 2
	return half + rand.N(half+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// waitTurn applies the client-side rate limiter and the rate-limit budget
// gate before an attempt.
func (c *Client) waitTurn(ctx context.Context) error {
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The wait would outlast the deadline: fail now rather than later.
			return context.DeadlineExceeded
		}
	}
	c.gateMu.Lock()
	until := c.gateUntil
	c.gateMu.Unlock()
	return sleep(ctx, time.Until(until))
}

// holdUntil closes the gate until t (never shortening an existing hold).
func (c *Client) holdUntil(t time.Time) {
	c.gateMu.Lock()
	if t.After(c.gateUntil) {
		c.gateUntil = t
	}
	c.gateMu.Unlock()
}

// attempt sends one request through the gate, limiter and breaker.
func (c *Client) attempt(ctx context.Context, r Request, endpoint string, body []byte, out any) error {
	if err := c.waitTurn(ctx); err != nil {
		return c.contextError(endpoint, err)
	}
	done, berr := c.breaker.Allow()
	if berr != nil {
		e := c.breakerError(endpoint)
		c.observer.ObserveCall(ctx, c.o.Name, r.Endpoint, r.Method, 0, 0, e)
		return e
	}

	actx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	header := make(http.Header, len(r.Header)+3)
	for k, v := range r.Header {
		header[k] = v
	}
	header.Set("Accept", "application/json")
	if body != nil {
		header.Set("Content-Type", "application/json")
	}
	if c.starter != nil {
		actx = c.starter.StartAttempt(actx, c.o.Name, r.Endpoint, r.Method, header)
	}
	u, err := c.resolve(r.Path)
	if err != nil {
		done(errExcluded)
		return &Error{Upstream: c.o.Name, Endpoint: endpoint, Message: "invalid path", Err: err}
	}
	u.RawQuery = r.Query.Encode()
	var rdr io.Reader
	if body != nil {
		rdr = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, r.Method, u.String(), rdr)
	if err != nil {
		done(errExcluded)
		return &Error{Upstream: c.o.Name, Endpoint: endpoint, Message: "build request", Err: err}
	}
	req.Header = header
	if c.o.Headers != nil {
		c.o.Headers(req)
	}
	var wrote atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		WroteHeaderField: func(string, []string) { wrote.Store(true) },
	}))

	start := time.Now()
	status, hdr, respBody, err := c.send(req)
	d := time.Since(start)
	if err != nil {
		e := c.transportError(ctx, actx, endpoint, err, !wrote.Load())
		done(breakerOutcome(ctx, e))
		c.observer.ObserveCall(actx, c.o.Name, r.Endpoint, r.Method, e.Status, d, e)
		return e
	}
	c.noteRateHeaders(hdr)
	if raw, ok := out.(*RawResponse); ok {
		*raw = RawResponse{Status: status, Header: hdr, Body: respBody}
	}
	if status < 200 || status > 299 {
		e := c.statusError(endpoint, status, hdr, respBody)
		done(breakerOutcome(ctx, e))
		c.observer.ObserveCall(actx, c.o.Name, r.Endpoint, r.Method, status, d, e)
		return e
	}
	done(nil)
	var derr error
	if _, isRaw := out.(*RawResponse); !isRaw && out != nil && len(bytes.TrimSpace(respBody)) > 0 {
		if err := json.Unmarshal(respBody, out); err != nil {
			derr = &Error{Upstream: c.o.Name, Endpoint: endpoint, Status: status,
				Message: "response is not the expected JSON", Err: err,
				Body: []byte(scrub(string(truncate(respBody, maxErrorBody)), c.o.Secrets))}
		}
	}
	c.observer.ObserveCall(actx, c.o.Name, r.Endpoint, r.Method, status, d, derr)
	return derr
}

// resolve joins the base URL and an escaped path (ids escaped by the caller
// with url.PathEscape, so "/" inside an id stays "%2F").
func (c *Client) resolve(escapedPath string) (url.URL, error) {
	u := *c.base
	raw := c.base.EscapedPath() + escapedPath
	p, err := url.PathUnescape(raw)
	if err != nil {
		return u, err
	}
	u.Path, u.RawPath = p, raw
	return u, nil
}

// send performs the round trip and reads the bounded body.
func (c *Client) send(req *http.Request) (int, http.Header, []byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.o.MaxResponseBytes+1))
	if err != nil {
		return resp.StatusCode, nil, nil, err
	}
	if int64(len(b)) > c.o.MaxResponseBytes {
		return resp.StatusCode, nil, nil, fmt.Errorf("response body exceeds %d bytes", c.o.MaxResponseBytes)
	}
	return resp.StatusCode, resp.Header, b, nil
}

// breakerOutcome maps an attempt's error to what the breaker counts:
// transport errors, timeouts and 5xx are failures; the caller giving up is
// nobody's fault; anything else (4xx) proves the upstream is alive.
func breakerOutcome(parent context.Context, e *Error) error {
	switch {
	case parent.Err() != nil:
		return errExcluded
	case e.Status == 0 || e.Status >= 500:
		return errFailure
	default:
		return nil
	}
}

func (c *Client) breakerError(endpoint string) *Error {
	e := &Error{Upstream: c.o.Name, Endpoint: endpoint, Retryable: true, Err: ErrBreakerOpen}
	if at := c.openedAt.Load(); at != 0 {
		if left := time.Until(time.Unix(0, at).Add(c.o.BreakerTimeout)); left > 0 {
			e.RetryAfter = left
		}
	}
	return e
}

func (c *Client) contextError(endpoint string, err error) *Error {
	return &Error{Upstream: c.o.Name, Endpoint: endpoint, Retryable: true, Err: err}
}

// transportError classifies a failed round trip. url.Error is unwrapped
// because its text carries the full URL, query-string credentials included.
func (c *Client) transportError(parent, attempt context.Context, endpoint string, err error, notSent bool) *Error {
	if parent.Err() != nil {
		return c.contextError(endpoint, parent.Err())
	}
	if attempt.Err() != nil {
		return &Error{Upstream: c.o.Name, Endpoint: endpoint, Retryable: true,
			Message: fmt.Sprintf("no response within %s", c.o.Timeout), Err: context.DeadlineExceeded}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var e *Error
	if errors.As(err, &e) { // from a wrapping RoundTripper (Transport)
		return e
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	if errors.As(err, &dnsErr) || (errors.As(err, &opErr) && opErr.Op == "dial") {
		notSent = true
	}
	return &Error{Upstream: c.o.Name, Endpoint: endpoint, Retryable: true, notSent: notSent,
		Err: redacted{err: err, msg: scrub(err.Error(), c.o.Secrets)}}
}

// retryableStatus: the upstream could not serve the request now, but the
// same request may succeed later — throttling, a timeout on its side, a
// locked resource, too early, or a server error.
func retryableStatus(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusRequestTimeout, http.StatusLocked, http.StatusTooEarly:
		return true
	}
	return status >= 500
}

// statusError builds the *Error of a non-2xx response.
func (c *Client) statusError(endpoint string, status int, h http.Header, body []byte) *Error {
	e := &Error{
		Upstream:   c.o.Name,
		Endpoint:   endpoint,
		Status:     status,
		Message:    scrub(errorMessage(body), c.o.Secrets),
		Retryable:  retryableStatus(status),
		RetryAfter: retryAfter(h, time.Now()),
		Body:       []byte(scrub(string(truncate(body, maxErrorBody)), c.o.Secrets)),
	}
	if status == http.StatusTooManyRequests {
		if e.RetryAfter == 0 && c.o.RateHeaders != nil {
			if _, reset, ok := c.o.RateHeaders(h); ok {
				e.RetryAfter = reset
			}
		}
		// Everyone waits, not just this caller: the budget is shared.
		if e.RetryAfter > 0 && e.RetryAfter <= c.o.MaxRetryAfter {
			c.holdUntil(time.Now().Add(e.RetryAfter))
		}
	}
	return e
}

// noteRateHeaders closes the gate until the interval rolls over when the
// provider says the budget is spent.
func (c *Client) noteRateHeaders(h http.Header) {
	if c.o.RateHeaders == nil {
		return
	}
	if remaining, reset, ok := c.o.RateHeaders(h); ok && remaining <= 0 && reset > 0 {
		c.holdUntil(time.Now().Add(min(reset, c.o.MaxRetryAfter)))
	}
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// redacted keeps an error's chain for errors.Is/As while replacing its text.
type redacted struct {
	err error
	msg string
}

func (r redacted) Error() string { return r.msg }
func (r redacted) Unwrap() error { return r.err }
