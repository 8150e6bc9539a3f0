package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/df-middleware/df-middleware/internal/observe"
	"github.com/df-middleware/df-middleware/internal/store"
	"github.com/df-middleware/df-middleware/internal/testdb"
)

const (
	rlWebhookSecret = "rate-limit-test-webhook-secret"
	rlAlowareToken  = "rate-limit-test-aloware-token"
)

// fakeClock is the handler's clock: tests move it instead of sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type outcome struct{ source, eventType, outcome, reason string }

// handlerHarness is a Handler over a fresh database, with its clock, its
// outcomes and its log lines.
type handlerHarness struct {
	t        *testing.T
	h        *Handler
	st       *store.Store
	clock    *fakeClock
	logs     *bytes.Buffer
	mu       sync.Mutex
	outcomes []outcome
	seq      atomic.Int64
}

func newHandlerHarness(t *testing.T, limits map[string]RateLimit) *handlerHarness {
	t.Helper()
	st := testdb.New(t)
	c := NewCommitter(st)
	go c.Run()
	t.Cleanup(c.Stop)
	hh := &handlerHarness{t: t, st: st, logs: &bytes.Buffer{},
		clock: &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
	set := Settings{
		GHL:           getTestKeys().verifier(),
		Aloware:       AlowareAuth{BearerToken: rlAlowareToken},
		WebhookSecret: []byte(rlWebhookSecret),
		RateLimits:    limits,
		Now:           hh.clock.Now,
	}
	hh.h = NewHandler(set, c, zerolog.New(hh.logs).Level(zerolog.InfoLevel))
	hh.h.OnOutcome = func(source, eventType, out, reason string) {
		hh.mu.Lock()
		defer hh.mu.Unlock()
		hh.outcomes = append(hh.outcomes, outcome{source, eventType, out, reason})
	}
	return hh
}

// signed returns a fresh, correctly signed delivery for source: a new body
// each call, so none is a duplicate of another.
func (hh *handlerHarness) signed(source string) ([]byte, http.Header) {
	n := hh.seq.Add(1)
	h := http.Header{}
	var body []byte
	switch source {
	case SourceGHL:
		body = fmt.Appendf(nil, `{"type":"ContactCreate","id":"c-%d","webhookId":"wh-%d"}`, n, n)
		h.Set(HeaderGHLSignature, signEd(getTestKeys().ed, body))
	case SourceAloware:
		body = fmt.Appendf(nil, `{"event":"Contact Created","body":{"id":%d}}`, n)
		h.Set("Authorization", "Bearer "+rlAlowareToken)
	case SourceTexting:
		body = fmt.Appendf(nil, `{"eventType":"message.received","messageId":"m-%d","from":"+13105550100","body":"secret-body-text"}`, n)
		h.Set("X-Texting-Signature", SignHMAC(body, []byte(rlWebhookSecret)))
	case SourceBroadcast:
		body = fmt.Appendf(nil, `{"eventType":"analytics_updated","broadcastId":"b-%d"}`, n)
		h.Set("X-Broadcast-Signature", SignHMAC(body, []byte(rlWebhookSecret)))
	default:
		hh.t.Fatalf("no signed delivery for source %q", source)
	}
	return body, h
}

type response struct {
	code       int
	retryAfter string
	body       map[string]string
	raw        string
}

// post serves one request; body is read through r when it is not nil.
func (hh *handlerHarness) post(source string, body io.Reader, h http.Header) response {
	hh.t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/api/webhooks/"+source, body)
	req = req.WithContext(observe.WithRequestID(context.Background(), "req-test"))
	req.SetPathValue("source", source)
	for k, v := range h {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	hh.h.ServeHTTP(rec, req)
	r := response{code: rec.Code, retryAfter: rec.Header().Get("Retry-After"), raw: rec.Body.String()}
	if err := json.Unmarshal(rec.Body.Bytes(), &r.body); err != nil {
		hh.t.Fatalf("%s: response %d is not a JSON object: %q", source, rec.Code, r.raw)
	}
	return r
}

func (hh *handlerHarness) send(source string) response {
	hh.t.Helper()
	body, h := hh.signed(source)
	return hh.post(source, bytes.NewReader(body), h)
}

func (hh *handlerHarness) stored(source string) int {
	hh.t.Helper()
	var n int
	if err := hh.st.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM webhook_events WHERE source = $1`, source).Scan(&n); err != nil {
		hh.t.Fatal(err)
	}
	return n
}

func (hh *handlerHarness) count(o outcome) int {
	hh.mu.Lock()
	defer hh.mu.Unlock()
	n := 0
	for _, got := range hh.outcomes {
		if got == o {
			n++
		}
	}
	return n
}

func rateLimited(source string) outcome {
	return outcome{source, "", observe.WebhookRefused, observe.ReasonRateLimited}
}

// checkLimited asserts r is the 429 of a rate-limited delivery.
func checkLimited(t *testing.T, r response, wantRetryAfter string) {
	t.Helper()
	if r.code != http.StatusTooManyRequests {
		t.Fatalf("status %d %s, want 429", r.code, r.raw)
	}
	if r.retryAfter != wantRetryAfter {
		t.Errorf("Retry-After = %q, want %q", r.retryAfter, wantRetryAfter)
	}
	// The shape of every other refusal: {"error", "request_id"}.
	if r.body["error"] == "" || r.body["request_id"] != "req-test" || len(r.body) != 2 {
		t.Errorf("body %s, want {error, request_id}", r.raw)
	}
}

func TestRateLimitRefusesWith429AndStoresNothing(t *testing.T) {
	tests := []struct {
		name           string
		limit          RateLimit
		wantRetryAfter string // of the first refusal
	}{
		{"one a second", RateLimit{Limit: 1, Burst: 2}, "1"},
		{"wait rounded up", RateLimit{Limit: 0.4, Burst: 2}, "3"},           // 2.5 s
		{"slow bucket", RateLimit{Limit: 0.1, Burst: 2}, "10"},              // 10 s
		{"fast bucket still says 1", RateLimit{Limit: 1000, Burst: 2}, "1"}, // 1 ms
	}
	for _, src := range []string{SourceGHL, SourceAloware, SourceTexting, SourceBroadcast} {
		for _, tt := range tests {
			t.Run(src+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				hh := newHandlerHarness(t, map[string]RateLimit{src: tt.limit})
				for i := range tt.limit.Burst {
					if r := hh.send(src); r.code != http.StatusAccepted {
						t.Fatalf("delivery %d within the burst: %d %s, want 202", i+1, r.code, r.raw)
					}
				}
				for range 3 {
					checkLimited(t, hh.send(src), tt.wantRetryAfter)
				}
				if n := hh.stored(src); n != tt.limit.Burst {
					t.Errorf("%d rows stored, want %d (the burst; nothing of the refused ones)", n, tt.limit.Burst)
				}
				if n := hh.count(rateLimited(src)); n != 3 {
					t.Errorf("%d outcomes refused/rate_limited, want 3", n)
				}
				// Refusals spend no tokens: after the advertised wait a
				// delivery goes through again.
				hh.clock.Advance(time.Duration(float64(time.Second) / tt.limit.Limit))
				if r := hh.send(src); r.code != http.StatusAccepted {
					t.Fatalf("after the wait: %d %s, want 202", r.code, r.raw)
				}
			})
		}
	}
}

func TestRateLimitIsPerSource(t *testing.T) {
	t.Parallel()
	hh := newHandlerHarness(t, map[string]RateLimit{
		SourceTexting: {Limit: 0.001, Burst: 1},
		SourceGHL:     {Limit: 0.001, Burst: 1},
		SourceAloware: {Limit: 100, Burst: 10},
		// broadcast has no entry: unlimited
	})
	if r := hh.send(SourceTexting); r.code != http.StatusAccepted {
		t.Fatalf("first texting delivery: %d %s", r.code, r.raw)
	}
	checkLimited(t, hh.send(SourceTexting), "1000")
	// Texting's empty bucket takes nothing from the others.
	for _, src := range []string{SourceGHL, SourceAloware, SourceBroadcast} {
		if r := hh.send(src); r.code != http.StatusAccepted {
			t.Errorf("%s after texting was limited: %d %s, want 202", src, r.code, r.raw)
		}
	}
	for range 20 {
		if r := hh.send(SourceBroadcast); r.code != http.StatusAccepted {
			t.Fatalf("unlimited broadcast: %d %s, want 202", r.code, r.raw)
		}
	}
	checkLimited(t, hh.send(SourceGHL), "1000")
	if hh.count(rateLimited(SourceTexting)) != 1 || hh.count(rateLimited(SourceGHL)) != 1 ||
		hh.count(rateLimited(SourceAloware)) != 0 || hh.count(rateLimited(SourceBroadcast)) != 0 {
		t.Errorf("rate_limited outcomes %+v, want one texting and one ghl", hh.outcomes)
	}
}

func TestRateLimitOff(t *testing.T) {
	tests := []struct {
		name   string
		limits map[string]RateLimit
	}{
		{"no limits", nil},
		{"limit zero", map[string]RateLimit{SourceTexting: {Limit: 0, Burst: 1}}},
		{"negative limit", map[string]RateLimit{SourceTexting: {Limit: -1, Burst: 1}}},
		{"other source limited", map[string]RateLimit{SourceGHL: {Limit: 0.001, Burst: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hh := newHandlerHarness(t, tt.limits)
			for i := range 50 { // all at one instant of the clock
				if r := hh.send(SourceTexting); r.code != http.StatusAccepted {
					t.Fatalf("delivery %d: %d %s, want 202", i+1, r.code, r.raw)
				}
			}
			if n := hh.count(rateLimited(SourceTexting)); n != 0 {
				t.Errorf("%d rate_limited outcomes, want none", n)
			}
		})
	}
}

func TestRateLimitZeroBurstAdmitsOne(t *testing.T) {
	t.Parallel()
	// Config refuses a zero burst; a Settings built by hand gets one token
	// rather than a bucket that refuses everything.
	hh := newHandlerHarness(t, map[string]RateLimit{SourceTexting: {Limit: 1, Burst: 0}})
	if r := hh.send(SourceTexting); r.code != http.StatusAccepted {
		t.Fatalf("first delivery: %d %s, want 202", r.code, r.raw)
	}
	checkLimited(t, hh.send(SourceTexting), "1")
}

// readSpy records whether the handler read the body at all.
type readSpy struct {
	r    io.Reader
	read atomic.Bool
}

func (s *readSpy) Read(p []byte) (int, error) {
	s.read.Store(true)
	return s.r.Read(p)
}

func TestRateLimitRefusesBeforeReadingTheBody(t *testing.T) {
	t.Parallel()
	hh := newHandlerHarness(t, map[string]RateLimit{SourceTexting: {Limit: 0.001, Burst: 1}})
	if r := hh.send(SourceTexting); r.code != http.StatusAccepted {
		t.Fatalf("first delivery: %d %s", r.code, r.raw)
	}
	body, h := hh.signed(SourceTexting)
	spy := &readSpy{r: bytes.NewReader(body)}
	checkLimited(t, hh.post(SourceTexting, spy, h), "1000")
	if spy.read.Load() {
		t.Error("the body of a rate-limited delivery was read")
	}
	// Not even an unsigned or oversized one gets further than the bucket.
	checkLimited(t, hh.post(SourceTexting, strings.NewReader("not json"), nil), "1000")
}

func TestRateLimitWarnsOnceASecondPerSource(t *testing.T) {
	t.Parallel()
	hh := newHandlerHarness(t, map[string]RateLimit{
		SourceTexting: {Limit: 0.001, Burst: 1},
		SourceGHL:     {Limit: 0.001, Burst: 1},
	})
	hh.send(SourceTexting)
	hh.send(SourceGHL)
	for range 5 {
		hh.send(SourceTexting)
	}
	hh.send(SourceGHL)
	hh.clock.Advance(500 * time.Millisecond)
	for range 3 {
		hh.send(SourceTexting)
	}
	hh.clock.Advance(500 * time.Millisecond)
	hh.send(SourceTexting)

	type line struct {
		Level   string `json:"level"`
		Source  string `json:"source"`
		Refused int    `json:"refused"`
		Message string `json:"message"`
	}
	var got []line
	for _, raw := range strings.Split(strings.TrimSpace(hh.logs.String()), "\n") {
		if strings.Contains(raw, "secret-body-text") || strings.Contains(raw, rlWebhookSecret) {
			t.Errorf("log line carries the body or a secret: %s", raw)
		}
		var l line
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("log line %q: %v", raw, err)
		}
		if strings.Contains(l.Message, "rate limit") {
			got = append(got, l)
		}
	}
	// texting: its first refusal, then one more a second later covering
	// the 4 + 3 + 1 refused meanwhile; ghl: one.
	want := []line{
		{"warn", SourceTexting, 1, ""},
		{"warn", SourceGHL, 1, ""},
		{"warn", SourceTexting, 8, ""},
	}
	if len(got) != len(want) {
		t.Fatalf("rate-limit log lines %+v, want %d", got, len(want))
	}
	for i := range want {
		if got[i].Level != want[i].Level || got[i].Source != want[i].Source || got[i].Refused != want[i].Refused {
			t.Errorf("line %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestRateLimitedCountedInWebhookMetrics(t *testing.T) {
	t.Parallel()
	hh := newHandlerHarness(t, map[string]RateLimit{SourceAloware: {Limit: 0.001, Burst: 1}})
	m := observe.NewMetrics(zerolog.Nop())
	hh.h.OnOutcome = m.WebhookOutcome
	hh.send(SourceAloware)
	for range 2 {
		checkLimited(t, hh.send(SourceAloware), "1000")
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var limited float64
	for _, mf := range mfs {
		if mf.GetName() != "webhook_events_total" {
			continue
		}
		for _, s := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range s.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["source"] == SourceAloware && l["outcome"] == observe.WebhookRefused && l["reason"] == "rate_limited" {
				limited += s.GetCounter().GetValue()
			}
		}
	}
	if limited != 2 {
		t.Errorf("webhook_events_total{source=aloware,outcome=refused,reason=rate_limited} = %v, want 2", limited)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	tests := []struct {
		wait time.Duration
		want int
	}{
		{0, 1},
		{time.Nanosecond, 1},
		{999 * time.Millisecond, 1},
		{time.Second, 1},
		{time.Second + time.Nanosecond, 2},
		{2500 * time.Millisecond, 3},
		{time.Hour, 3600},
		{time.Duration(1<<63 - 1), 1<<31 - 1},
	}
	for _, tt := range tests {
		if got := retryAfterSeconds(tt.wait); got != tt.want {
			t.Errorf("retryAfterSeconds(%v) = %d, want %d", tt.wait, got, tt.want)
		}
	}
}

// The same signed GHL delivery sent twice (a replay inside the window) is
// one row; a stale one is refused as stale_timestamp and not stored. The
// end-to-end versions are in internal/app (TestGHLReplayProtectionAndLegacySignature).
func TestHandlerGHLReplay(t *testing.T) {
	t.Parallel()
	hh := newHandlerHarness(t, nil)
	now := hh.clock.Now()
	sign := func(body string) http.Header {
		h := http.Header{}
		h.Set(HeaderGHLSignature, signEd(getTestKeys().ed, []byte(body)))
		return h
	}
	tests := []struct {
		name     string
		body     string
		wantCode []int // first and second delivery of the same bytes
	}{
		{"same webhookId", `{"type":"ContactCreate","id":"r1","webhookId":"wh-replay","timestamp":"` + now.Format(time.RFC3339) + `"}`,
			[]int{http.StatusAccepted, http.StatusOK}},
		{"no webhookId: same body", `{"type":"ContactCreate","id":"r2","timestamp":"` + now.Format(time.RFC3339) + `"}`,
			[]int{http.StatusAccepted, http.StatusOK}},
		{"stale", `{"type":"ContactCreate","id":"r3","webhookId":"wh-stale","timestamp":"` + now.Add(-DefaultMaxSkew-time.Second).Format(time.RFC3339) + `"}`,
			[]int{http.StatusUnauthorized, http.StatusUnauthorized}},
		{"from the future", `{"type":"ContactCreate","id":"r4","webhookId":"wh-future","timestamp":"` + epochMillis(now.Add(DefaultMaxSkew+time.Second)) + `"}`,
			[]int{http.StatusUnauthorized, http.StatusUnauthorized}},
	}
	for _, tt := range tests {
		before := hh.stored(SourceGHL)
		var ids []string
		for i, want := range tt.wantCode {
			r := hh.post(SourceGHL, strings.NewReader(tt.body), sign(tt.body))
			if r.code != want {
				t.Fatalf("%s: delivery %d: %d %s, want %d", tt.name, i+1, r.code, r.raw, want)
			}
			ids = append(ids, r.body["id"])
		}
		wantRows := 1
		if tt.wantCode[0] != http.StatusAccepted {
			wantRows = 0
		} else if ids[0] == "" || ids[1] != ids[0] {
			t.Errorf("%s: ids %q, want the duplicate to name the first", tt.name, ids)
		}
		if n := hh.stored(SourceGHL) - before; n != wantRows {
			t.Errorf("%s: %d rows stored, want %d", tt.name, n, wantRows)
		}
	}
	if n := hh.count(outcome{SourceGHL, "ContactCreate", observe.WebhookRefused, observe.ReasonStaleTimestamp}); n != 4 {
		t.Errorf("%d stale_timestamp outcomes, want 4", n)
	}
}

func epochMillis(t time.Time) string { return fmt.Sprint(t.UnixMilli()) }
