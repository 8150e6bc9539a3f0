package upstream

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"
)

// Transport returns an http.RoundTripper that sends each request through the
// client's rate limiter, rate-limit gate, breaker and Observer, labelled
// with endpoint(req) (a template, never the raw path). It is how an SDK that
// owns its HTTP calls (clerk-sdk-go) joins the same machinery. It does not
// retry — wrap the SDK call in Retry — and passes every response through
// unchanged, after reading it (bounded) so the timing covers the body.
// A non-2xx response or failure is also recorded for RecordErrors.
func (c *Client) Transport(endpoint func(*http.Request) string) http.RoundTripper {
	base := c.http.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{c: c, base: base, endpoint: endpoint}
}

type transport struct {
	c        *Client
	base     http.RoundTripper
	endpoint func(*http.Request) string
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := t.c
	ctx := req.Context()
	label := t.endpoint(req)
	endpoint := req.Method + " " + label
	fail := func(e *Error) (*http.Response, error) {
		record(ctx, e)
		return nil, e
	}
	if err := c.waitTurn(ctx); err != nil {
		return fail(c.contextError(endpoint, err))
	}
	done, berr := c.breaker.Allow()
	if berr != nil {
		e := c.breakerError(endpoint)
		c.observer.ObserveCall(ctx, c.o.Name, label, req.Method, 0, 0, e)
		return fail(e)
	}
	actx := ctx
	if c.starter != nil {
		req = req.Clone(ctx)
		actx = c.starter.StartAttempt(ctx, c.o.Name, label, req.Method, req.Header)
	}
	var wrote atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		WroteHeaderField: func(string, []string) { wrote.Store(true) },
	}))

	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(io.LimitReader(resp.Body, c.o.MaxResponseBytes+1))
		resp.Body.Close()
		if err == nil && int64(len(body)) > c.o.MaxResponseBytes {
			err = fmt.Errorf("response body exceeds %d bytes", c.o.MaxResponseBytes)
		}
	}
	d := time.Since(start)
	if err != nil {
		var e *Error
		outcome := errFailure
		switch ctx.Err() {
		case nil:
			e = c.transportError(ctx, ctx, endpoint, err, !wrote.Load())
		case context.DeadlineExceeded: // http.Client.Timeout or the caller's deadline
			e = &Error{Upstream: c.o.Name, Endpoint: endpoint, Retryable: true,
				Message: "no response in time", Err: context.DeadlineExceeded}
		default: // the caller gave up: not the upstream's fault
			e, outcome = c.contextError(endpoint, ctx.Err()), errExcluded
		}
		done(outcome)
		c.observer.ObserveCall(actx, c.o.Name, label, req.Method, 0, d, e)
		return fail(e)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	c.noteRateHeaders(resp.Header)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := c.statusError(endpoint, resp.StatusCode, resp.Header, body)
		record(ctx, e)
		done(breakerOutcome(context.Background(), e))
		c.observer.ObserveCall(actx, c.o.Name, label, req.Method, resp.StatusCode, d, e)
		return resp, nil
	}
	done(nil)
	c.observer.ObserveCall(actx, c.o.Name, label, req.Method, resp.StatusCode, d, nil)
	return resp, nil
}
