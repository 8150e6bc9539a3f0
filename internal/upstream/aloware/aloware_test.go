package aloware

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/upstream"
)

const testToken = "alw-SECRET-token"

// fakeAloware imitates the Lead API, phone lookup, SMS and users, checking
// that api_token arrives in the query on GET and in the body on POST.
type fakeAloware struct {
	mu       sync.Mutex
	contacts map[string]map[string]any // phone → contact
	nextID   int
	hits     atomic.Int32
	problems []string
}

func (f *fakeAloware) fail(format string) {
	f.mu.Lock()
	f.problems = append(f.problems, format)
	f.mu.Unlock()
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-RateLimit-Limit", "5000")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeAloware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	var body map[string]any
	if r.Method == http.MethodPost {
		if r.URL.Query().Has("api_token") {
			f.fail("api_token in the query of a POST")
		}
		json.NewDecoder(r.Body).Decode(&body)
		if body["api_token"] != testToken {
			reply(w, 401, map[string]any{"message": "Invalid api token."})
			return
		}
	} else if r.URL.Query().Get("api_token") != testToken {
		reply(w, 401, map[string]any{"message": "Invalid api token."})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.URL.Path {
	case "/api/v1/webhook/forms":
		phone, _ := body["phone_number"].(string)
		if phone == "" {
			reply(w, 422, map[string]any{"message": "The given data was invalid.",
				"errors": map[string][]string{"phone_number": {"The phone number field is required."}}})
			return
		}
		if c, ok := f.contacts[phone]; ok {
			if body["force_update"] != true {
				reply(w, 409, map[string]any{"message": "Contact already exists.", "contact": map[string]any{"id": c["id"]}})
				return
			}
			for k, v := range body {
				if k != "api_token" && k != "force_update" {
					c[k] = v
				}
			}
			reply(w, 200, map[string]any{"message": "Contact has been updated.", "contact": c})
			return
		}
		f.nextID++
		c := map[string]any{"id": 100 + f.nextID}
		for k, v := range body {
			if k != "api_token" && k != "force_update" {
				c[k] = v
			}
		}
		f.contacts[phone] = c
		reply(w, 200, map[string]any{"message": "Contact has been created.", "contact": c})
	case "/api/v1/webhook/contacts/phone-number":
		if c, ok := f.contacts[r.URL.Query().Get("phone_number")]; ok {
			reply(w, 200, map[string]any{"contact": c})
			return
		}
		reply(w, 404, map[string]any{"message": "Contact not found."})
	case "/api/v1/webhook/sms-gateway/send":
		reply(w, 200, map[string]any{"message": "Message sent.", "id": 456})
	case "/api/v1/webhook/users":
		reply(w, 200, []map[string]any{{"id": 7, "name": "Agent", "email": "a@example.com"}})
	default:
		reply(w, 404, map[string]any{"message": "Not found."})
	}
}

func newFake(t *testing.T) (*fakeAloware, *Client) {
	f := &fakeAloware{contacts: map[string]map[string]any{}}
	srv := httptest.NewServer(f)
	t.Cleanup(func() {
		srv.Close()
		for _, p := range f.problems {
			t.Error(p)
		}
	})
	return f, New(srv.URL, testToken, upstream.Options{BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond})
}

func TestContactLifecycle(t *testing.T) {
	_, c := newFake(t)
	ctx := context.Background()
	ct, created, err := c.UpsertContact(ctx, ContactInput{PhoneNumber: "+15551230001", FirstName: "Ada", ForceUpdate: true})
	if err != nil || !created || ct.ID != "101" || ct.FirstName != "Ada" {
		t.Fatalf("create: %+v %v %v", ct, created, err)
	}
	ct2, created, err := c.UpsertContact(ctx, ContactInput{PhoneNumber: "+15551230001", LastName: "L", ForceUpdate: true})
	if err != nil || created || ct2.ID != "101" || ct2.LastName != "L" {
		t.Fatalf("update: %+v %v %v", ct2, created, err)
	}
	found, err := c.LookupByPhone(ctx, "+15551230001")
	if err != nil || found == nil || found.ID != "101" {
		t.Fatalf("lookup: %+v %v", found, err)
	}
	if none, err := c.LookupByPhone(ctx, "+15550000000"); err != nil || none != nil {
		t.Fatalf("lookup of unknown: %+v %v", none, err)
	}
	if id, err := c.SendSMS(ctx, "+15550001111", "+15551230001", "hi"); err != nil || id != "456" {
		t.Fatalf("sms: %q %v", id, err)
	}
	users, err := c.Users(ctx)
	if err != nil || len(users) != 1 || users[0].ID != "7" {
		t.Fatalf("users: %+v %v", users, err)
	}
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestConflictNotRetried(t *testing.T) {
	f, c := newFake(t)
	ctx := context.Background()
	if _, _, err := c.UpsertContact(ctx, ContactInput{PhoneNumber: "+15551230001", ForceUpdate: true}); err != nil {
		t.Fatal(err)
	}
	before := f.hits.Load()
	_, _, err := c.UpsertContact(ctx, ContactInput{PhoneNumber: "+15551230001"})
	var ce *ConflictError
	if !IsConflict(err) || !errors.As(err, &ce) || ce.ExistingID != "101" || upstream.IsRetryable(err) {
		t.Fatalf("err = %v, want conflict with existing id 101, not retryable", err)
	}
	if f.hits.Load()-before != 1 {
		t.Errorf("409 was retried")
	}
}

func TestValidationMessage(t *testing.T) {
	_, c := newFake(t)
	_, _, err := c.UpsertContact(context.Background(), ContactInput{FirstName: "NoPhone", ForceUpdate: true})
	var e *upstream.Error
	if !errors.As(err, &e) || e.Status != 422 || e.Retryable {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(e.Message, "The phone number field is required.") {
		t.Errorf("message = %q", e.Message)
	}
}

func TestTokenNeverInErrors(t *testing.T) {
	tests := []struct {
		name string
		call func(c *Client) error
	}{
		{"GET rejected", func(c *Client) error { _, err := c.Users(context.Background()); return err }},
		{"POST rejected", func(c *Client) error {
			_, err := c.SendSMS(context.Background(), "a", "b", "c")
			return err
		}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A hostile proxy echoing the request back.
		reply(w, 500, map[string]any{"message": "failed " + r.URL.RawQuery})
	}))
	defer srv.Close()
	obs := &labels{}
	c := New(srv.URL, testToken, upstream.Options{BackoffBase: time.Millisecond, BackoffMax: time.Millisecond, Observer: obs})
	for _, tt := range tests {
		err := tt.call(c)
		if err == nil || strings.Contains(err.Error(), testToken) {
			t.Errorf("%s: %v", tt.name, err)
		}
		var e *upstream.Error
		if errors.As(err, &e) && strings.Contains(string(e.Body), testToken) {
			t.Errorf("%s: token in body", tt.name)
		}
	}
	// And a network error, whose text would otherwise carry the URL.
	srv.Close()
	if _, err := c.Users(context.Background()); err == nil || strings.Contains(err.Error(), testToken) {
		t.Errorf("network error: %v", err)
	}
	for _, l := range obs.seen {
		if strings.Contains(l, testToken) || strings.Contains(l, "?") {
			t.Errorf("label %q", l)
		}
	}
}

type labels struct {
	mu   sync.Mutex
	seen []string
}

func (l *labels) ObserveCall(_ context.Context, up, endpoint, method string, _ int, _ time.Duration, _ error) {
	l.mu.Lock()
	l.seen = append(l.seen, up+" "+method+" "+endpoint)
	l.mu.Unlock()
}
