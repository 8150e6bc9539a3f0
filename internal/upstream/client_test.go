package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type call struct {
	upstream, endpoint, method string
	status                     int
	err                        error
}

// recorder is an Observer that keeps every observed attempt.
type recorder struct {
	mu    sync.Mutex
	calls []call
}

func (r *recorder) ObserveCall(_ context.Context, up, endpoint, method string, status int, _ time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call{up, endpoint, method, status, err})
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

func fastOptions(base string, obs Observer) Options {
	return Options{
		Name: "test", BaseURL: base, Timeout: 2 * time.Second,
		BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		Observer: obs,
	}
}

// scripted answers each request with the next (status, headers, body) and
// repeats the last one.
type reply struct {
	status int
	header map[string]string
	body   string
}

func scripted(t *testing.T, replies ...reply) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if i >= len(replies) {
			i = len(replies) - 1
		}
		rp := replies[i]
		for k, v := range rp.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rp.status)
		io.WriteString(w, rp.body)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestDoRetries(t *testing.T) {
	ok := reply{status: 200, body: `{"ok":true}`}
	tests := []struct {
		name       string
		method     string
		idempotent bool
		replies    []reply
		wantErr    bool
		wantStatus int
		wantHits   int32
		retryable  bool
	}{
		{"503 503 200 GET succeeds on third", "GET", false,
			[]reply{{status: 503}, {status: 503}, ok}, false, 0, 3, false},
		{"400 is not retried", "GET", false,
			[]reply{{status: 400, body: `{"statusCode":400,"message":"bad"}`}, ok}, true, 400, 1, false},
		{"401 is not retried", "GET", false,
			[]reply{{status: 401, body: `{"message":"Invalid JWT"}`}, ok}, true, 401, 1, false},
		{"POST 500 not idempotent is not retried", "POST", false,
			[]reply{{status: 500}, ok}, true, 500, 1, true},
		{"POST 500 idempotent is retried", "POST", true,
			[]reply{{status: 500}, ok}, false, 0, 2, false},
		{"POST 429 is always retried", "POST", false,
			[]reply{{status: 429, header: map[string]string{"Retry-After": "0"}}, ok}, false, 0, 2, false},
		{"PUT 502 retried until attempts run out", "PUT", false,
			[]reply{{status: 502}}, true, 502, 4, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, hits := scripted(t, tt.replies...)
			rec := &recorder{}
			c := New(fastOptions(srv.URL, rec))
			var out struct{ OK bool }
			err := c.Do(context.Background(), Request{Method: tt.method, Endpoint: "/x/{id}", Path: "/x/1",
				Body: map[string]int{"a": 1}, Idempotent: tt.idempotent}, &out)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got := hits.Load(); got != tt.wantHits {
				t.Errorf("server hits = %d, want %d", got, tt.wantHits)
			}
			if got := rec.count(); got != int(tt.wantHits) {
				t.Errorf("observed attempts = %d, want %d", got, tt.wantHits)
			}
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || e.Status != tt.wantStatus || e.Retryable != tt.retryable {
					t.Errorf("err = %#v, want *Error status %d retryable %v", err, tt.wantStatus, tt.retryable)
				}
			} else if !out.OK {
				t.Error("body not decoded")
			}
			for _, c := range rec.calls {
				if c.endpoint != "/x/{id}" || c.upstream != "test" || c.method != tt.method {
					t.Errorf("observed %+v, want template label", c)
				}
			}
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	srv, hits := scripted(t, reply{status: 429, header: map[string]string{"Retry-After": "1"},
		body: `{"message":"Too Many Requests"}`}, reply{status: 200, body: `{}`})
	c := New(fastOptions(srv.URL, nil))
	start := time.Now()
	if err := c.Do(context.Background(), Request{Method: "POST", Endpoint: "/m", Path: "/m"}, nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("retried after %v, want ≥ 1s", d)
	}
	if hits.Load() != 2 {
		t.Errorf("hits = %d", hits.Load())
	}
}

func TestLongRetryAfterReturnedToCaller(t *testing.T) {
	srv, hits := scripted(t, reply{status: 429, header: map[string]string{"Retry-After": "120"}}, reply{status: 200})
	c := New(fastOptions(srv.URL, nil))
	start := time.Now()
	err := c.Do(context.Background(), Request{Method: "GET", Endpoint: "/m", Path: "/m"}, nil)
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("took %v: should return at once", d)
	}
	if !IsRetryable(err) || RetryAfterOf(err) != 120*time.Second {
		t.Fatalf("err = %v retryAfter %v, want retryable with 120s", err, RetryAfterOf(err))
	}
	if hits.Load() != 1 {
		t.Errorf("hits = %d, want 1", hits.Load())
	}
}

func TestErrorText(t *testing.T) {
	srv, _ := scripted(t, reply{status: 422, body: `{"statusCode":422,"message":["phone is invalid"],"error":"Unprocessable Entity"}`})
	c := New(Options{Name: "ghl", BaseURL: srv.URL})
	err := c.Do(context.Background(), Request{Method: "POST", Endpoint: "/contacts/upsert", Path: "/contacts/upsert"}, nil)
	want := "ghl POST /contacts/upsert: 422 Unprocessable Entity: phone is invalid"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestErrorMessage(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"statusCode":400,"message":"Contact not found"}`, "Contact not found"},
		{`{"statusCode":422,"message":["a","b"],"error":"Unprocessable Entity"}`, "a; b"},
		{`{"message":"The given data was invalid.","errors":{"phone_number":["The phone number field is required."]}}`,
			"The given data was invalid.: phone_number: The phone number field is required."},
		{`{"errors":[{"message":"not found","long_message":"Session not found","code":"resource_not_found"}],"clerk_trace_id":"x"}`,
			"Session not found"},
		{`{"error":"Broadcast not found"}`, "Broadcast not found"},
		{"<html>\n<h1>Bad\tGateway</h1>\x00</html>", "<html> <h1>Bad Gateway</h1></html>"},
		{strings.Repeat("x", 600), strings.Repeat("x", 500) + "…"},
	}
	for _, tt := range tests {
		if got := errorMessage([]byte(tt.body)); got != tt.want {
			t.Errorf("errorMessage(%.40q) = %q, want %q", tt.body, got, tt.want)
		}
	}
}

func TestBreakerOpensAndRecovers(t *testing.T) {
	var healthy atomic.Bool
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	o := fastOptions(srv.URL, &recorder{})
	o.MaxAttempts = 1
	o.BreakerConsecutiveFailures = 3
	o.BreakerTimeout = 100 * time.Millisecond
	c := New(o)
	get := func() error {
		return c.Do(context.Background(), Request{Method: "GET", Endpoint: "/h", Path: "/h"}, nil)
	}
	for i := 0; i < 3; i++ {
		if err := get(); StatusOf(err) != 503 {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if c.BreakerState() != "open" {
		t.Fatalf("state = %s, want open", c.BreakerState())
	}
	err := get()
	if !errors.Is(err, ErrBreakerOpen) || !IsRetryable(err) || RetryAfterOf(err) <= 0 {
		t.Fatalf("err = %v, want retryable ErrBreakerOpen with RetryAfter", err)
	}
	if hits.Load() != 3 {
		t.Fatalf("server hit %d times, want 3 (open breaker must not send)", hits.Load())
	}
	time.Sleep(120 * time.Millisecond)
	if c.BreakerState() != "half-open" {
		t.Fatalf("state = %s, want half-open", c.BreakerState())
	}
	healthy.Store(true)
	if err := get(); err != nil {
		t.Fatal(err)
	}
	if c.BreakerState() != "closed" {
		t.Fatalf("state = %s, want closed", c.BreakerState())
	}
}

func TestBreakerFailureRatio(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			w.WriteHeader(500)
			return
		}
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	o := fastOptions(srv.URL, nil)
	o.MaxAttempts = 1
	o.BreakerConsecutiveFailures = 100
	o.BreakerMinRequests = 10
	c := New(o)
	for i := 0; i < 9; i++ {
		_ = c.Do(context.Background(), Request{Method: "GET", Endpoint: "/h", Path: "/h"}, nil)
		if c.BreakerState() != "closed" {
			t.Fatalf("opened after %d calls, before the minimum of 10", i+1)
		}
	}
	_ = c.Do(context.Background(), Request{Method: "GET", Endpoint: "/h", Path: "/h"}, nil)
	if c.BreakerState() != "open" {
		t.Fatalf("50%% failures over 10 calls: state %s, want open", c.BreakerState())
	}
}

func TestBreakerIgnoresClientErrors(t *testing.T) {
	srv, _ := scripted(t, reply{status: 404}, reply{status: 429})
	o := fastOptions(srv.URL, nil)
	o.MaxAttempts = 1
	o.BreakerConsecutiveFailures = 2
	c := New(o)
	for i := 0; i < 5; i++ {
		_ = c.Do(context.Background(), Request{Method: "GET", Endpoint: "/h", Path: "/h"}, nil)
	}
	if c.BreakerState() != "closed" {
		t.Fatalf("4xx opened the breaker")
	}
}

// closedAddr returns a URL nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestDialErrorRetriedEvenForPOST(t *testing.T) {
	rec := &recorder{}
	o := fastOptions(closedAddr(t), rec)
	o.Secrets = []string{"tok-SECRET"}
	c := New(o)
	err := c.Do(context.Background(), Request{Method: "POST", Endpoint: "/send", Path: "/send",
		Query: url.Values{"api_token": {"tok-SECRET"}}}, nil)
	if !IsRetryable(err) || StatusOf(err) != 0 {
		t.Fatalf("err = %v, want retryable network error", err)
	}
	if rec.count() != 4 {
		t.Errorf("attempts = %d, want 4: a request never sent is safe to retry", rec.count())
	}
	if strings.Contains(err.Error(), "tok-SECRET") {
		t.Errorf("secret in error: %v", err)
	}
}

func TestBrokenConnectionAfterSendNotRetriedForPOST(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	c := New(fastOptions(srv.URL, nil))
	err := c.Do(context.Background(), Request{Method: "POST", Endpoint: "/notes", Path: "/notes", Body: map[string]string{"b": "x"}}, nil)
	if err == nil || StatusOf(err) != 0 {
		t.Fatalf("err = %v", err)
	}
	if hits.Load() != 1 {
		t.Errorf("hits = %d, want 1: a POST that reached the server must not be repeated", hits.Load())
	}
	hits.Store(0)
	_ = c.Do(context.Background(), Request{Method: "GET", Endpoint: "/notes", Path: "/notes"}, nil)
	if hits.Load() != 4 {
		t.Errorf("GET hits = %d, want 4", hits.Load())
	}
}

func TestAttemptTimeout(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			select {
			case <-time.After(time.Second):
			case <-r.Context().Done():
			}
			return
		}
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	o := fastOptions(srv.URL, nil)
	o.Timeout = 50 * time.Millisecond
	c := New(o)
	if err := c.Do(context.Background(), Request{Method: "GET", Endpoint: "/slow", Path: "/slow"}, nil); err != nil {
		t.Fatalf("err = %v, want success on the second attempt", err)
	}
	if hits.Load() != 2 {
		t.Errorf("hits = %d", hits.Load())
	}
}

func TestCallerCancellationStopsRetries(t *testing.T) {
	srv, hits := scripted(t, reply{status: 503})
	o := fastOptions(srv.URL, nil)
	o.BackoffBase, o.BackoffMax = time.Second, time.Second
	c := New(o)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := c.Do(ctx, Request{Method: "GET", Endpoint: "/x", Path: "/x"}, nil)
	if StatusOf(err) != 503 || hits.Load() != 1 {
		t.Fatalf("err = %v hits %d", err, hits.Load())
	}
}

func TestSecretsScrubbedFromErrors(t *testing.T) {
	srv, _ := scripted(t, reply{status: 422, body: `{"message":"token sk_live_SECRET is not allowed here"}`})
	o := fastOptions(srv.URL, nil)
	o.Secrets = []string{"sk_live_SECRET"}
	c := New(o)
	err := c.Do(context.Background(), Request{Method: "GET", Endpoint: "/x", Path: "/x"}, nil)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatal(err)
	}
	if strings.Contains(err.Error(), "SECRET") || strings.Contains(string(e.Body), "SECRET") {
		t.Errorf("secret leaked: %v / %s", err, e.Body)
	}
}

func TestPathEscapingAndRawResponse(t *testing.T) {
	var gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath = r.URL.EscapedPath()
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(404)
		io.WriteString(w, "nope")
	}))
	defer srv.Close()
	c := New(fastOptions(srv.URL+"/prefix", nil))
	var raw RawResponse
	err := c.Do(context.Background(), Request{Method: "GET", Endpoint: "/c/{id}", Path: "/c/" + url.PathEscape("a/b c")}, &raw)
	if StatusOf(err) != 404 || raw.Status != 404 || string(raw.Body) != "nope" || raw.Header.Get("Content-Type") != "text/plain" {
		t.Fatalf("err %v raw %+v", err, raw)
	}
	if gotPath != "/prefix/c/a%2Fb%20c" {
		t.Errorf("path = %q", gotPath)
	}
}

func TestRateHeadersGate(t *testing.T) {
	var times []time.Time
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		n := len(times)
		mu.Unlock()
		w.Header().Set("X-Remaining", fmt.Sprint(1-n)) // 0 after the first call
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	o := fastOptions(srv.URL, nil)
	o.RateHeaders = func(h http.Header) (int, time.Duration, bool) {
		var rem int
		_, err := fmt.Sscan(h.Get("X-Remaining"), &rem)
		return rem, 200 * time.Millisecond, err == nil
	}
	c := New(o)
	for i := 0; i < 2; i++ {
		if err := c.Do(context.Background(), Request{Method: "GET", Endpoint: "/x", Path: "/x"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if gap := times[1].Sub(times[0]); gap < 190*time.Millisecond {
		t.Errorf("second call after %v, want ≥ 200ms (budget spent)", gap)
	}
}

func TestTransportForSDKs(t *testing.T) {
	srv, _ := scripted(t, reply{status: 500, body: "oops"}, reply{status: 200, body: `{}`})
	rec := &recorder{}
	o := fastOptions(srv.URL, rec)
	c := New(o)
	hc := &http.Client{Transport: c.Transport(func(*http.Request) string { return "/things/{id}" })}
	ctx, last := RecordErrors(context.Background())
	resp, err := hc.Get(srv.URL + "/things/42")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 500 || string(b) != "oops" {
		t.Fatalf("status %d body %q: response must pass through", resp.StatusCode, b)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/things/42", nil)
	_, _ = hc.Do(req) // 200
	if last() != nil {
		t.Errorf("recorded %v for a 2xx", last())
	}
	ctx, last = RecordErrors(context.Background())
	srv2, _ := scripted(t, reply{status: 503, body: `{"message":"down"}`})
	req, _ = http.NewRequestWithContext(ctx, "GET", srv2.URL+"/things/42", nil)
	if _, err := hc.Do(req); err != nil {
		t.Fatal(err)
	}
	if e := last(); e == nil || e.Status != 503 || !e.Retryable || e.Message != "down" {
		t.Errorf("recorded %+v", e)
	}
	if rec.count() != 3 || rec.calls[0].endpoint != "/things/{id}" {
		t.Errorf("observed %+v", rec.calls)
	}
}

// A redirect is never followed: the API key would travel to whatever host
// the Location names.
func TestRedirectIsNotFollowed(t *testing.T) {
	var leaked atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Add(1)
	}))
	defer elsewhere.Close()
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+"/steal", code)
		}))
		c := New(fastOptions(srv.URL, nil))
		err := c.Do(context.Background(), Request{Method: "POST", Endpoint: "/m", Path: "/m", Body: map[string]string{"api_token": "secret"}}, nil)
		srv.Close()
		if err == nil {
			t.Errorf("%d: a redirect answered as success", code)
		}
	}
	if n := leaked.Load(); n != 0 {
		t.Fatalf("the redirect target received %d requests", n)
	}
}
