package verity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/upstream"
)

const testAPIKey = "vk-SECRET-key"

// tokens is a TokenSource that counts fetches (what the Clerk provider
// would POST) and honours Invalidate.
type tokens struct {
	mu      sync.Mutex
	cached  string
	fetches int
}

func (s *tokens) Token(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cached == "" {
		s.fetches++
		s.cached = fmt.Sprintf("jwt-%d", s.fetches)
	}
	return s.cached, nil
}

func (s *tokens) Invalidate(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cached == tok {
		s.cached = ""
	}
}

// fakeVerity accepts the Bearer tokens in valid and the API key on
// send-message, and serves the contract's shapes.
type fakeVerity struct {
	mu    sync.Mutex
	valid map[string]bool
}

func (f *fakeVerity) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/api/comms/send-message" {
		if r.Header.Get("X-API-Key") != testAPIKey || r.Header.Get("Authorization") != "" {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":"Unauthorized: `+r.Header.Get("X-API-Key")+`"}`)
			return
		}
		var m map[string]string
		json.NewDecoder(r.Body).Decode(&m)
		if m["to"] == "" || m["body"] == "" {
			w.WriteHeader(400)
			io.WriteString(w, `{"error":"to and body are required"}`)
			return
		}
		w.WriteHeader(202)
		io.WriteString(w, `{"messageId":"msg_1","status":"queued"}`)
		return
	}
	f.mu.Lock()
	ok := f.valid[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	f.mu.Unlock()
	if !ok {
		w.WriteHeader(401)
		io.WriteString(w, `{"error":"Unauthorized"}`)
		return
	}
	switch {
	case r.URL.Path == "/api/comms/broadcasts":
		if r.URL.Query().Get("cursor") == "" {
			io.WriteString(w, `{"broadcasts":[{"id":"b1","name":"Spring","status":"completed","channel":"sms","audienceSize":120}],"nextCursor":"c2"}`)
			return
		}
		io.WriteString(w, `{"broadcasts":[],"nextCursor":null}`)
	case r.URL.Path == "/api/comms/broadcasts/b1":
		io.WriteString(w, `{"broadcast":{"id":"b1","name":"Spring","status":"completed"}}`)
	case r.URL.Path == "/api/comms/broadcasts/b1/analytics":
		io.WriteString(w, `{"broadcastId":"b1","sent":100,"delivered":95,"failed":5,"replied":7,"optedOut":2,"updatedAt":"2024-01-01T00:00:00Z"}`)
	case r.URL.Path == "/api/calls":
		io.WriteString(w, `{"calls":[{"id":"call1","direction":"inbound","durationSeconds":42}],"nextCursor":null}`)
	case r.URL.Path == "/api/echo" && r.Method == http.MethodPost:
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(201)
		w.Write(b)
	default:
		w.WriteHeader(404)
		io.WriteString(w, `{"error":"Broadcast not found"}`)
	}
}

func setup(t *testing.T, valid ...string) (*Client, *tokens, *fakeVerity) {
	f := &fakeVerity{valid: map[string]bool{}}
	for _, v := range valid {
		f.valid[v] = true
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	ts := &tokens{}
	return New(srv.URL, testAPIKey, ts, upstream.Options{BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond}), ts, f
}

func TestUnauthorizedRefreshesOnce(t *testing.T) {
	tests := []struct {
		name      string
		valid     []string
		wantErr   bool
		wantFetch int
	}{
		{"valid token", []string{"jwt-1"}, false, 1},
		{"401 once then fresh token works", []string{"jwt-2"}, false, 2},
		{"401 twice is permanent", nil, true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ts, _ := setup(t, tt.valid...)
			_, err := c.GetAnalytics(context.Background(), "b1")
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if ts.fetches != tt.wantFetch {
				t.Errorf("token fetches = %d, want %d", ts.fetches, tt.wantFetch)
			}
			if err != nil {
				if !errors.Is(err, ErrUnauthorized) || upstream.IsRetryable(err) || upstream.StatusOf(err) != 401 ||
					!strings.Contains(err.Error(), "check the Clerk sessions") {
					t.Errorf("err = %v", err)
				}
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	c, _, _ := setup(t, "jwt-1")
	ctx := context.Background()
	bs, next, err := c.ListBroadcasts(ctx, "completed", 10, "")
	if err != nil || len(bs) != 1 || bs[0].AudienceSize != 120 || next != "c2" {
		t.Fatalf("list: %+v %q %v", bs, next, err)
	}
	if _, next, err = c.ListBroadcasts(ctx, "", 10, next); err != nil || next != "" {
		t.Fatalf("last page: %q %v", next, err)
	}
	if b, err := c.GetBroadcast(ctx, "b1"); err != nil || b.Name != "Spring" {
		t.Fatalf("get: %+v %v", b, err)
	}
	if _, err := c.GetBroadcast(ctx, "nope"); !IsNotFound(err) || upstream.IsRetryable(err) {
		t.Fatalf("missing broadcast: %v", err)
	}
	if a, err := c.GetAnalytics(ctx, "b1"); err != nil || a.Delivered != 95 || a.OptedOut != 2 {
		t.Fatalf("analytics: %+v %v", a, err)
	}
	if calls, _, err := c.ListCalls(ctx, 5, ""); err != nil || len(calls) != 1 || calls[0].DurationSeconds != 42 {
		t.Fatalf("calls: %+v %v", calls, err)
	}
	if id, err := c.SendMessage(ctx, "+15551230001", "hi", ""); err != nil || id != "msg_1" {
		t.Fatalf("send: %q %v", id, err)
	}
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSendMessageKeyNotLeaked(t *testing.T) {
	f := &fakeVerity{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := New(srv.URL, "vk-WRONG-secret", &tokens{}, upstream.Options{})
	_, err := c.SendMessage(context.Background(), "+1", "x", "")
	if upstream.StatusOf(err) != 401 || strings.Contains(err.Error(), "vk-WRONG-secret") {
		t.Fatalf("err = %v", err)
	}
}

func TestRaw(t *testing.T) {
	c, ts, f := setup(t, "jwt-2") // the first token is refused: Raw refreshes too
	ctx := context.Background()
	status, ct, body, err := c.Raw(ctx, http.MethodGet, "/api/comms/broadcasts/b1", url.Values{"x": {"1"}}, nil)
	if err != nil || status != 200 || ct != "application/json" || !strings.Contains(string(body), `"Spring"`) {
		t.Fatalf("raw get: %d %q %s %v", status, ct, body, err)
	}
	if ts.fetches != 2 {
		t.Errorf("fetches = %d, want 2", ts.fetches)
	}
	status, _, body, err = c.Raw(ctx, http.MethodGet, "/api/comms/broadcasts/zzz9", nil, nil)
	if err != nil || status != 404 || string(body) != `{"error":"Broadcast not found"}` {
		t.Fatalf("raw 404 must be relayed: %d %s %v", status, body, err)
	}
	status, _, body, err = c.Raw(ctx, http.MethodPost, "/api/echo", nil, []byte(`{"a":1}`))
	if err != nil || status != 201 || string(body) != `{"a":1}` {
		t.Fatalf("raw post: %d %s %v", status, body, err)
	}
	if _, _, _, err := c.Raw(ctx, http.MethodGet, "//evil.example/x", nil, nil); err == nil {
		t.Fatal("host-relative path accepted")
	}
	f.mu.Lock()
	f.valid = map[string]bool{}
	f.mu.Unlock()
	if _, _, _, err := c.Raw(ctx, http.MethodGet, "/api/calls", nil, nil); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("second 401 must be an error: %v", err)
	}
}

func TestTemplate(t *testing.T) {
	tests := map[string]string{
		"/api/comms/broadcasts":                     "/api/comms/broadcasts",
		"/api/comms/broadcasts/b_123/analytics":     "/api/comms/broadcasts/{id}/analytics",
		"/api/calls/3f2a9c1e-0000-4000-8000-000000": "/api/calls/{id}",
	}
	for in, want := range tests {
		if got := template(in); got != want {
			t.Errorf("template(%q) = %q, want %q", in, got, want)
		}
	}
}
