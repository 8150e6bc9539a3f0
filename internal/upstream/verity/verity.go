// Package verity is the Verity API client: broadcasts, analytics, calls,
// send-message, and Raw for the API gateway. Every call except send-message
// carries a Clerk session token; on a 401 the token is invalidated, a fresh
// one fetched and the call retried once. See docs/upstreams.md.
package verity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/df-middleware/df-middleware/internal/upstream"
)

// TokenSource supplies Clerk session tokens (clerk.TokenProvider).
type TokenSource interface {
	Token(ctx context.Context) (string, error)
	Invalidate(token string)
}

// ErrUnauthorized is the cause when Verity refused a freshly issued token too.
var ErrUnauthorized = errors.New("verity refused a fresh Clerk session token")

// Client calls Verity.
type Client struct {
	http   *upstream.Client
	tokens TokenSource
	apiKey string
}

// Broadcast is a Verity broadcast.
type Broadcast struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Status       string `json:"status"`
	Channel      string `json:"channel"`
	AudienceSize int    `json:"audienceSize"`
	ScheduledAt  string `json:"scheduledAt"`
	SentAt       string `json:"sentAt"`
	CreatedAt    string `json:"createdAt"`
}

// Analytics are a broadcast's delivery counts.
type Analytics struct {
	BroadcastID string `json:"broadcastId"`
	Sent        int    `json:"sent"`
	Delivered   int    `json:"delivered"`
	Failed      int    `json:"failed"`
	Replied     int    `json:"replied"`
	OptedOut    int    `json:"optedOut"`
	UpdatedAt   string `json:"updatedAt"`
}

// Call is a Verity call record.
type Call struct {
	ID              string `json:"id"`
	Direction       string `json:"direction"`
	From            string `json:"from"`
	To              string `json:"to"`
	DurationSeconds int    `json:"durationSeconds"`
	Disposition     string `json:"disposition"`
	StartedAt       string `json:"startedAt"`
}

// New returns a Verity client. apiKey authenticates send-message; tokens
// every other call.
func New(baseURL, apiKey string, tokens TokenSource, o upstream.Options) *Client {
	o.Name = "verity"
	o.BaseURL = baseURL
	o.Secrets = append(slices.Clip(o.Secrets), apiKey)
	return &Client{http: upstream.New(o), tokens: tokens, apiKey: apiKey}
}

// BreakerState returns "closed", "half-open" or "open".
func (c *Client) BreakerState() string { return c.http.BreakerState() }

// IsNotFound reports whether err is Verity's 404.
func IsNotFound(err error) bool { return upstream.StatusOf(err) == http.StatusNotFound }

// withToken performs r with a Clerk token; on 401 it invalidates the token
// and retries once with a fresh one. A second 401 is permanent.
func (c *Client) withToken(ctx context.Context, r upstream.Request, out any) error {
	if c.tokens == nil {
		return &upstream.Error{Upstream: "verity", Endpoint: r.Method + " " + r.Endpoint,
			Message: "no Clerk token source configured (set CLERK_SECRET_KEY)"}
	}
	header := r.Header
	for try := 0; try < 2; try++ {
		tok, err := c.tokens.Token(ctx)
		if err != nil {
			return fmt.Errorf("verity %s %s: Clerk session token: %w", r.Method, r.Endpoint, err)
		}
		r.Header = header.Clone()
		if r.Header == nil {
			r.Header = http.Header{}
		}
		r.Header.Set("Authorization", "Bearer "+tok)
		err = c.http.Do(ctx, r, out)
		if upstream.StatusOf(err) != http.StatusUnauthorized {
			return err
		}
		c.tokens.Invalidate(tok)
	}
	return &upstream.Error{
		Upstream: "verity", Endpoint: r.Method + " " + r.Endpoint, Status: http.StatusUnauthorized,
		Message: "Verity rejected a freshly issued Clerk session token; check the Clerk sessions " +
			"(the signed-in user must be active and allowed in Verity)",
		Err: ErrUnauthorized,
	}
}

// ListBroadcasts lists broadcasts, optionally by status; next is the cursor
// of the following page, "" at the end.
func (c *Client) ListBroadcasts(ctx context.Context, status string, limit int, cursor string) ([]Broadcast, string, error) {
	q := page(limit, cursor)
	if status != "" {
		q.Set("status", status)
	}
	var resp struct {
		Broadcasts []Broadcast `json:"broadcasts"`
		NextCursor *string     `json:"nextCursor"`
	}
	err := c.withToken(ctx, upstream.Request{
		Method: http.MethodGet, Endpoint: "/api/comms/broadcasts", Path: "/api/comms/broadcasts", Query: q,
	}, &resp)
	return resp.Broadcasts, deref(resp.NextCursor), err
}

// GetBroadcast returns one broadcast; IsNotFound(err) when it does not exist.
func (c *Client) GetBroadcast(ctx context.Context, id string) (Broadcast, error) {
	var resp struct {
		Broadcast Broadcast `json:"broadcast"`
	}
	err := c.withToken(ctx, upstream.Request{
		Method: http.MethodGet, Endpoint: "/api/comms/broadcasts/{id}", Path: "/api/comms/broadcasts/" + url.PathEscape(id),
	}, &resp)
	return resp.Broadcast, err
}

// GetAnalytics returns a broadcast's delivery counts.
func (c *Client) GetAnalytics(ctx context.Context, id string) (Analytics, error) {
	var a Analytics
	err := c.withToken(ctx, upstream.Request{
		Method: http.MethodGet, Endpoint: "/api/comms/broadcasts/{id}/analytics",
		Path: "/api/comms/broadcasts/" + url.PathEscape(id) + "/analytics",
	}, &a)
	return a, err
}

// ListCalls lists calls, newest first; next is "" at the end.
func (c *Client) ListCalls(ctx context.Context, limit int, cursor string) ([]Call, string, error) {
	var resp struct {
		Calls      []Call  `json:"calls"`
		NextCursor *string `json:"nextCursor"`
	}
	err := c.withToken(ctx, upstream.Request{
		Method: http.MethodGet, Endpoint: "/api/calls", Path: "/api/calls", Query: page(limit, cursor),
	}, &resp)
	return resp.Calls, deref(resp.NextCursor), err
}

// SendMessage queues a text through Verity (X-API-Key auth). It is not
// idempotent: retried only on 429 and failures before sending.
func (c *Client) SendMessage(ctx context.Context, to, body, from string) (string, error) {
	msg := map[string]string{"to": to, "body": body}
	if from != "" {
		msg["from"] = from
	}
	var resp struct {
		MessageID string `json:"messageId"`
	}
	err := c.http.Do(ctx, upstream.Request{
		Method: http.MethodPost, Endpoint: "/api/comms/send-message", Path: "/api/comms/send-message",
		Body: msg, Header: http.Header{"X-Api-Key": {c.apiKey}},
	}, &resp)
	return resp.MessageID, err
}

// Raw performs a gateway call: method, path (validated by the caller against
// its catalog, escaped), query and JSON body. Verity's answer is returned as
// is — status, Content-Type and body (≤ 5 MiB) — with err nil even for a
// non-2xx; err is set when there was no answer (network, breaker, token) or
// Verity refused a fresh token twice.
func (c *Client) Raw(ctx context.Context, method, path string, query url.Values, body []byte) (int, string, []byte, error) {
	if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") || strings.ContainsAny(path, "?#") {
		return 0, "", nil, fmt.Errorf("verity: refusing path %q: must be an absolute path on Verity", path)
	}
	r := upstream.Request{Method: method, Endpoint: template(path), Path: path, Query: query}
	if len(body) > 0 {
		r.Body = json.RawMessage(body)
	}
	var raw upstream.RawResponse
	err := c.withToken(ctx, r, &raw)
	switch {
	case err == nil:
	case errors.Is(err, ErrUnauthorized):
		return 0, "", nil, err
	case upstream.StatusOf(err) != 0 && raw.Status != 0: // an answer: relay it
	default:
		return 0, "", nil, err
	}
	return raw.Status, raw.Header.Get("Content-Type"), raw.Body, nil
}

// Check is the health probe: the smallest broadcast list.
func (c *Client) Check(ctx context.Context) error {
	_, _, err := c.ListBroadcasts(ctx, "", 1, "")
	return err
}

func page(limit int, cursor string) url.Values {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	return q
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// template turns a gateway path into a bounded metric label: segments that
// are not plain lowercase words (ids, numbers, uuids) become {id}.
func template(path string) string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, s := range segs {
		if !isWord(s) {
			segs[i] = "{id}"
		}
	}
	if len(segs) > 8 {
		segs = append(segs[:8], "…")
	}
	return "/" + strings.Join(segs, "/")
}

func isWord(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && r != '-' && r != '_' {
			return false
		}
	}
	return true
}
