package ghl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/upstream"
	"golang.org/x/time/rate"
)

const (
	testKey      = "pit-SECRET-123"
	testLocation = "loc1"
)

// fakeGHL imitates the LeadConnector endpoints the client uses: Bearer and
// Version checks, GHL's error bodies and rate-limit headers.
type fakeGHL struct {
	mu            sync.Mutex
	contacts      map[string]map[string]any
	conversations map[string]string // contactID → conversationID
	lastBody      map[string]any
	hits          atomic.Int32
	remaining     atomic.Int32 // X-RateLimit-Remaining to report
	intervalMS    int
	calls         []time.Time
}

func newFake(t *testing.T) (*fakeGHL, *httptest.Server) {
	f := &fakeGHL{contacts: map[string]map[string]any{}, conversations: map[string]string{}, intervalMS: 10000}
	f.remaining.Store(99)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func ghlError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"statusCode": status, "message": msg, "error": http.StatusText(status)})
}

func (f *fakeGHL) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	f.mu.Lock()
	f.calls = append(f.calls, time.Now())
	f.mu.Unlock()
	w.Header().Set("X-RateLimit-Max", "100")
	w.Header().Set("X-RateLimit-Interval-Milliseconds", fmt.Sprint(f.intervalMS))
	w.Header().Set("X-RateLimit-Remaining", fmt.Sprint(f.remaining.Load()))
	if r.Header.Get("Authorization") != "Bearer "+testKey {
		// Worst case for secret hygiene: echo what was sent.
		ghlError(w, 401, "Invalid JWT: "+r.Header.Get("Authorization"))
		return
	}
	want := VersionContacts
	if strings.HasPrefix(r.URL.Path, "/conversations") {
		want = VersionConversations
	}
	if r.Header.Get("Version") != want {
		ghlError(w, 400, "Version header is missing or invalid")
		return
	}
	var body map[string]any
	if r.Body != nil {
		json.NewDecoder(r.Body).Decode(&body)
	}
	f.mu.Lock()
	f.lastBody = body
	f.mu.Unlock()
	f.route(w, r, body)
}

func (f *fakeGHL) route(w http.ResponseWriter, r *http.Request, body map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := r.URL.Path
	seg := strings.Split(strings.Trim(p, "/"), "/")
	switch {
	case r.Method == "POST" && p == "/contacts/upsert":
		if body["locationId"] != testLocation {
			ghlError(w, 422, "locationId is required")
			return
		}
		for id, c := range f.contacts {
			if c["email"] == body["email"] || c["phone"] == body["phone"] {
				for k, v := range body {
					c[k] = v
				}
				writeJSON(w, 200, map[string]any{"new": false, "contact": withID(id, c), "traceId": "t"})
				return
			}
		}
		id := fmt.Sprintf("c%d", len(f.contacts)+1)
		f.contacts[id] = body
		writeJSON(w, 200, map[string]any{"new": true, "contact": withID(id, body), "traceId": "t"})
	case r.Method == "GET" && p == "/contacts/search/duplicate":
		q := r.URL.Query()
		if q.Get("locationId") != testLocation {
			ghlError(w, 422, "locationId is required")
			return
		}
		for id, c := range f.contacts {
			if (q.Get("number") != "" && c["phone"] == q.Get("number")) || (q.Get("email") != "" && c["email"] == q.Get("email")) {
				writeJSON(w, 200, map[string]any{"contact": withID(id, c)})
				return
			}
		}
		writeJSON(w, 200, map[string]any{"contact": nil})
	case len(seg) == 2 && seg[0] == "contacts" && (r.Method == "GET" || r.Method == "PUT"):
		c, ok := f.contacts[seg[1]]
		if !ok {
			ghlError(w, 400, "Contact not found")
			return
		}
		if r.Method == "PUT" {
			for k, v := range body {
				c[k] = v
			}
			writeJSON(w, 200, map[string]any{"succeded": true, "contact": withID(seg[1], c)})
			return
		}
		writeJSON(w, 200, map[string]any{"contact": withID(seg[1], c)})
	case len(seg) == 3 && seg[0] == "contacts" && seg[2] == "notes" && r.Method == "POST":
		writeJSON(w, 201, map[string]any{"note": map[string]any{"id": "n1", "body": body["body"], "contactId": seg[1]}})
	case len(seg) == 3 && seg[0] == "contacts" && seg[2] == "tags" && r.Method == "POST":
		writeJSON(w, 201, map[string]any{"tags": body["tags"]})
	case r.Method == "GET" && p == "/conversations/search":
		cid := r.URL.Query().Get("contactId")
		var convs []map[string]any
		if id, ok := f.conversations[cid]; ok {
			convs = append(convs, map[string]any{"id": id, "contactId": cid, "locationId": testLocation})
		}
		writeJSON(w, 200, map[string]any{"conversations": convs, "total": len(convs)})
	case r.Method == "POST" && p == "/conversations/":
		cid, _ := body["contactId"].(string)
		id := "conv-" + cid
		f.conversations[cid] = id
		writeJSON(w, 201, map[string]any{"success": true, "conversation": map[string]any{"id": id, "contactId": cid}})
	case r.Method == "POST" && p == "/conversations/messages":
		writeJSON(w, 201, map[string]any{"conversationId": "conv-x", "messageId": "m1", "msg": "Message queued"})
	case r.Method == "POST" && p == "/conversations/messages/inbound":
		writeJSON(w, 200, map[string]any{"success": true, "conversationId": body["conversationId"], "messageId": "m2"})
	default:
		ghlError(w, 404, "Cannot "+r.Method+" "+p)
	}
}

func withID(id string, c map[string]any) map[string]any {
	out := map[string]any{"id": id, "locationId": testLocation}
	for k, v := range c {
		if k != "locationId" {
			out[k] = v
		}
	}
	return out
}

func testOptions() upstream.Options {
	return upstream.Options{BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, Timeout: 2 * time.Second}
}

func TestContactsAndConversations(t *testing.T) {
	f, srv := newFake(t)
	c := New(srv.URL, testKey, testLocation, testOptions())
	ctx := context.Background()

	ct, created, err := c.UpsertContact(ctx, ContactInput{FirstName: "Ada", Phone: "+15551230001", Email: "ada@example.com", Tags: []string{"x"}})
	if err != nil || !created || ct.ID == "" || ct.FirstName != "Ada" || ct.LocationID != testLocation {
		t.Fatalf("upsert: %+v %v %v", ct, created, err)
	}
	if _, created, err = c.UpsertContact(ctx, ContactInput{LastName: "Lovelace", Email: "ada@example.com"}); err != nil || created {
		t.Fatalf("second upsert: created=%v err=%v", created, err)
	}
	got, err := c.GetContact(ctx, ct.ID)
	if err != nil || got.LastName != "Lovelace" {
		t.Fatalf("get: %+v %v", got, err)
	}
	dup, err := c.FindDuplicate(ctx, "+15551230001", "")
	if err != nil || dup == nil || dup.ID != ct.ID {
		t.Fatalf("duplicate: %+v %v", dup, err)
	}
	if dup, err := c.FindDuplicate(ctx, "+15550000000", ""); err != nil || dup != nil {
		t.Fatalf("no duplicate: %+v %v", dup, err)
	}
	if err := c.SetDND(ctx, ct.ID, true, "SMS", "STOP"); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	dnd, _ := json.Marshal(f.lastBody)
	f.mu.Unlock()
	if string(dnd) != `{"dndSettings":{"SMS":{"message":"STOP","status":"active"}}}` {
		t.Errorf("DND body = %s", dnd)
	}
	if id, err := c.AddNote(ctx, ct.ID, "called"); err != nil || id != "n1" {
		t.Fatalf("note: %q %v", id, err)
	}
	if err := c.AddTags(ctx, ct.ID, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	conv, err := c.FindOrCreateConversation(ctx, ct.ID)
	if err != nil || conv != "conv-"+ct.ID {
		t.Fatalf("conversation: %q %v", conv, err)
	}
	before := f.hits.Load()
	if again, err := c.FindOrCreateConversation(ctx, ct.ID); err != nil || again != conv || f.hits.Load()-before != 1 {
		t.Fatalf("existing conversation: %q %v (%d calls)", again, err, f.hits.Load()-before)
	}
	if cid, mid, err := c.SendOutboundMessage(ctx, ct.ID, "hi"); err != nil || cid == "" || mid != "m1" {
		t.Fatalf("outbound: %q %q %v", cid, mid, err)
	}
	if mid, err := c.AddInboundMessage(ctx, conv, "prov1", "hello", time.Now()); err != nil || mid != "m2" {
		t.Fatalf("inbound: %q %v", mid, err)
	}
	f.mu.Lock()
	if f.lastBody["conversationProviderId"] != "prov1" || f.lastBody["direction"] != "inbound" {
		t.Errorf("inbound body %v", f.lastBody)
	}
	f.mu.Unlock()
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestNotFoundIsPermanent(t *testing.T) {
	f, srv := newFake(t)
	c := New(srv.URL, testKey, testLocation, testOptions())
	_, err := c.GetContact(context.Background(), "missing")
	if !IsNotFound(err) || upstream.IsRetryable(err) {
		t.Fatalf("err = %v, want not-found, not retryable", err)
	}
	if f.hits.Load() != 1 {
		t.Errorf("hits = %d, want 1", f.hits.Load())
	}
}

func TestWrongKeyNeverLeaks(t *testing.T) {
	_, srv := newFake(t)
	c := New(srv.URL, "wrong-SECRET-key", testLocation, testOptions())
	_, err := c.GetContact(context.Background(), "c1")
	var e *upstream.Error
	if !errors.As(err, &e) || e.Status != 401 || e.Retryable {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "wrong-SECRET-key") || strings.Contains(string(e.Body), "wrong-SECRET-key") {
		t.Errorf("api key in error: %v", err)
	}
}

func TestRemainingZeroWaitsForInterval(t *testing.T) {
	f, srv := newFake(t)
	f.intervalMS = 300
	f.remaining.Store(0)
	c := New(srv.URL, testKey, testLocation, testOptions())
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := c.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	gap := f.calls[1].Sub(f.calls[0])
	f.mu.Unlock()
	if gap < 290*time.Millisecond {
		t.Errorf("second call %v after the first, want ≥ the 300ms interval", gap)
	}
}

func TestTooManyRequestsWithoutRetryAfterUsesInterval(t *testing.T) {
	var n atomic.Int32
	var first, second time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-RateLimit-Interval-Milliseconds", "250")
		if n.Add(1) == 1 {
			first = time.Now()
			w.Header().Set("X-RateLimit-Remaining", "0")
			ghlError(w, 429, "Too Many Requests")
			return
		}
		second = time.Now()
		w.Header().Set("X-RateLimit-Remaining", "50")
		writeJSON(w, 201, map[string]any{"note": map[string]any{"id": "n9"}})
	}))
	defer srv.Close()
	c := New(srv.URL, testKey, testLocation, testOptions())
	id, err := c.AddNote(context.Background(), "c1", "x") // POST: 429 is still safe to retry
	if err != nil || id != "n9" {
		t.Fatalf("%q %v", id, err)
	}
	if gap := second.Sub(first); gap < 240*time.Millisecond {
		t.Errorf("retried after %v, want ≥ 250ms interval", gap)
	}
}

func TestClientRateLimit(t *testing.T) {
	f, srv := newFake(t)
	o := testOptions()
	o.RateLimit, o.RateBurst = rate.Every(50*time.Millisecond), 1 // scaled-down 100/10s
	c := New(srv.URL, testKey, testLocation, o)
	start := time.Now()
	for i := 0; i < 5; i++ {
		if err := c.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 190*time.Millisecond {
		t.Errorf("5 calls at 20/s took %v, want ≥ 200ms", d)
	}
	if f.hits.Load() != 5 {
		t.Errorf("hits = %d", f.hits.Load())
	}
}
