// Package ghl is the GoHighLevel (LeadConnector API v2) client: contacts,
// notes, tags, DND and conversation messages. See docs/upstreams.md.
package ghl

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/df-middleware/df-middleware/internal/upstream"
	"golang.org/x/time/rate"
)

// API versions GHL requires per endpoint group (the Version header).
const (
	VersionContacts      = "2021-07-28"
	VersionConversations = "2021-04-15"
)

// DefaultBaseURL is GHL's API host.
const DefaultBaseURL = "https://services.leadconnectorhq.com"

// Client calls GHL for one location.
type Client struct {
	http       *upstream.Client
	locationID string
}

// Contact is a GHL contact.
type Contact struct {
	ID          string         `json:"id"`
	LocationID  string         `json:"locationId"`
	FirstName   string         `json:"firstName"`
	LastName    string         `json:"lastName"`
	Name        string         `json:"name"`
	Email       string         `json:"email"`
	Phone       string         `json:"phone"`
	Tags        []string       `json:"tags"`
	DND         bool           `json:"dnd"`
	DNDSettings map[string]any `json:"dndSettings,omitempty"`
	Source      string         `json:"source"`
	DateAdded   string         `json:"dateAdded"`
	DateUpdated string         `json:"dateUpdated"`
}

// ContactInput is the writable part of a contact for upserts.
type ContactInput struct {
	FirstName string   `json:"firstName,omitempty"`
	LastName  string   `json:"lastName,omitempty"`
	Name      string   `json:"name,omitempty"`
	Email     string   `json:"email,omitempty"`
	Phone     string   `json:"phone,omitempty"`
	Source    string   `json:"source,omitempty"`
	Tags      []string `json:"tags,omitempty"`
}

// New returns a GHL client. o.Name, BaseURL, Headers and RateHeaders are set
// here; o.RateLimit defaults to GHL's burst limit of 100 requests / 10 s.
func New(baseURL, apiKey, locationID string, o upstream.Options) *Client {
	o.Name = "ghl"
	if baseURL == "" {
		baseURL = DefaultBaseURL
	}
	o.BaseURL = baseURL
	if o.RateLimit == 0 {
		o.RateLimit, o.RateBurst = rate.Every(100*time.Millisecond), 100
	}
	o.Headers = func(req *http.Request) {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	o.RateHeaders = rateHeaders
	o.Secrets = append(slices.Clip(o.Secrets), apiKey)
	return &Client{http: upstream.New(o), locationID: locationID}
}

// rateHeaders reads GHL's burst budget: X-RateLimit-Remaining requests left
// in the current X-RateLimit-Interval-Milliseconds window. GHL does not say
// when the window started, so the whole interval is the safe wait.
func rateHeaders(h http.Header) (int, time.Duration, bool) {
	rem, err1 := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Remaining")))
	ms, err2 := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Interval-Milliseconds")))
	if err2 != nil || ms <= 0 {
		return 0, 0, false
	}
	if err1 != nil {
		rem = 1 // unknown budget: the interval still serves a 429's wait
	}
	return rem, time.Duration(ms) * time.Millisecond, true
}

// BreakerState returns "closed", "half-open" or "open".
func (c *Client) BreakerState() string { return c.http.BreakerState() }

func (c *Client) do(ctx context.Context, version string, r upstream.Request, out any) error {
	if r.Header == nil {
		r.Header = http.Header{}
	}
	r.Header.Set("Version", version)
	return c.http.Do(ctx, r, out)
}

// IsNotFound reports whether err is GHL's "not found", which it answers
// with 400 {"message":"Contact not found"} as well as 404.
func IsNotFound(err error) bool {
	var e *upstream.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Status == http.StatusNotFound ||
		(e.Status == http.StatusBadRequest && strings.Contains(strings.ToLower(e.Message), "not found"))
}

// GetContact returns a contact by id.
func (c *Client) GetContact(ctx context.Context, id string) (Contact, error) {
	var resp struct {
		Contact Contact `json:"contact"`
	}
	err := c.do(ctx, VersionContacts, upstream.Request{
		Method: http.MethodGet, Endpoint: "/contacts/{id}", Path: "/contacts/" + url.PathEscape(id),
	}, &resp)
	return resp.Contact, err
}

// UpsertContact creates or updates the contact GHL matches by email, then
// phone (per the location's duplicate settings). created reports a new one.
// An upsert converges, so it is retried like an idempotent request.
func (c *Client) UpsertContact(ctx context.Context, in ContactInput) (Contact, bool, error) {
	body := struct {
		LocationID string `json:"locationId"`
		ContactInput
	}{c.locationID, in}
	var resp struct {
		New     bool    `json:"new"`
		Contact Contact `json:"contact"`
	}
	err := c.do(ctx, VersionContacts, upstream.Request{
		Method: http.MethodPost, Endpoint: "/contacts/upsert", Path: "/contacts/upsert",
		Body: body, Idempotent: true,
	}, &resp)
	return resp.Contact, resp.New, err
}

// UpdateContact applies a partial update (GHL field names) to a contact.
func (c *Client) UpdateContact(ctx context.Context, id string, patch map[string]any) (Contact, error) {
	var resp struct {
		Contact Contact `json:"contact"`
	}
	err := c.do(ctx, VersionContacts, upstream.Request{
		Method: http.MethodPut, Endpoint: "/contacts/{id}", Path: "/contacts/" + url.PathEscape(id), Body: patch,
	}, &resp)
	return resp.Contact, err
}

// FindDuplicate returns the contact GHL considers a duplicate of the phone
// (E.164) or email, nil when there is none.
func (c *Client) FindDuplicate(ctx context.Context, phone, email string) (*Contact, error) {
	q := url.Values{"locationId": {c.locationID}}
	if phone != "" {
		q.Set("number", phone)
	}
	if email != "" {
		q.Set("email", email)
	}
	var resp struct {
		Contact *Contact `json:"contact"`
	}
	err := c.do(ctx, VersionContacts, upstream.Request{
		Method: http.MethodGet, Endpoint: "/contacts/search/duplicate", Path: "/contacts/search/duplicate", Query: q,
	}, &resp)
	if err != nil || resp.Contact == nil || resp.Contact.ID == "" {
		return nil, err
	}
	return resp.Contact, nil
}

// SetDND turns do-not-disturb on or off. With a channel ("SMS", "Email",
// "Call", …) only that channel's dndSettings change; without one the
// contact-wide dnd flag does.
func (c *Client) SetDND(ctx context.Context, id string, dnd bool, channel, message string) error {
	patch := map[string]any{}
	if channel == "" {
		patch["dnd"] = dnd
	} else {
		status := "inactive"
		if dnd {
			status = "active"
		}
		setting := map[string]any{"status": status}
		if message != "" {
			setting["message"] = message
		}
		patch["dndSettings"] = map[string]any{channel: setting}
	}
	_, err := c.UpdateContact(ctx, id, patch)
	return err
}

// AddNote adds a note to a contact. A note is not idempotent: it is retried
// only on 429 and on failures before the request was sent.
func (c *Client) AddNote(ctx context.Context, contactID, body string) (string, error) {
	var resp struct {
		Note struct {
			ID string `json:"id"`
		} `json:"note"`
	}
	err := c.do(ctx, VersionContacts, upstream.Request{
		Method: http.MethodPost, Endpoint: "/contacts/{id}/notes", Path: "/contacts/" + url.PathEscape(contactID) + "/notes",
		Body: map[string]string{"body": body},
	}, &resp)
	return resp.Note.ID, err
}

// AddTags adds tags to a contact (adding a present tag is a no-op, so the
// call is retried like an idempotent one).
func (c *Client) AddTags(ctx context.Context, contactID string, tags []string) error {
	return c.do(ctx, VersionContacts, upstream.Request{
		Method: http.MethodPost, Endpoint: "/contacts/{id}/tags", Path: "/contacts/" + url.PathEscape(contactID) + "/tags",
		Body: map[string][]string{"tags": tags}, Idempotent: true,
	}, nil)
}

type conversation struct {
	ID        string `json:"id"`
	ContactID string `json:"contactId"`
}

// FindOrCreateConversation returns the contact's conversation, creating it
// when the contact has none.
func (c *Client) FindOrCreateConversation(ctx context.Context, contactID string) (string, error) {
	var found struct {
		Conversations []conversation `json:"conversations"`
	}
	err := c.do(ctx, VersionConversations, upstream.Request{
		Method: http.MethodGet, Endpoint: "/conversations/search", Path: "/conversations/search",
		Query: url.Values{"locationId": {c.locationID}, "contactId": {contactID}},
	}, &found)
	if err != nil {
		return "", err
	}
	for _, conv := range found.Conversations {
		if conv.ID != "" && (conv.ContactID == "" || conv.ContactID == contactID) {
			return conv.ID, nil
		}
	}
	var created struct {
		Conversation conversation `json:"conversation"`
	}
	err = c.do(ctx, VersionConversations, upstream.Request{
		Method: http.MethodPost, Endpoint: "/conversations/", Path: "/conversations/",
		Body: map[string]string{"locationId": c.locationID, "contactId": contactID},
	}, &created)
	// Another worker created it between our search and our create: GHL
	// answers 400 "Conversation already exists" with its id.
	var ue *upstream.Error
	if errors.As(err, &ue) && ue.Status == http.StatusBadRequest {
		var exists struct {
			ConversationID string `json:"conversationId"`
		}
		if json.Unmarshal(ue.Body, &exists) == nil && exists.ConversationID != "" {
			return exists.ConversationID, nil
		}
	}
	return created.Conversation.ID, err
}

// SendOutboundMessage sends an SMS to a contact through GHL.
func (c *Client) SendOutboundMessage(ctx context.Context, contactID, message string) (conversationID, messageID string, err error) {
	var resp struct {
		ConversationID string `json:"conversationId"`
		MessageID      string `json:"messageId"`
	}
	err = c.do(ctx, VersionConversations, upstream.Request{
		Method: http.MethodPost, Endpoint: "/conversations/messages", Path: "/conversations/messages",
		Body: map[string]string{"type": "SMS", "contactId": contactID, "message": message},
	}, &resp)
	return resp.ConversationID, resp.MessageID, err
}

// AddInboundMessage records an inbound SMS received by another provider
// (conversationProviderId) in a GHL conversation.
func (c *Client) AddInboundMessage(ctx context.Context, conversationID, providerID, message string, at time.Time) (string, error) {
	body := map[string]string{
		"type":                   "SMS",
		"conversationId":         conversationID,
		"conversationProviderId": providerID,
		"message":                message,
		"direction":              "inbound",
	}
	if !at.IsZero() {
		body["date"] = at.UTC().Format(time.RFC3339)
	}
	var resp struct {
		MessageID string `json:"messageId"`
	}
	err := c.do(ctx, VersionConversations, upstream.Request{
		Method: http.MethodPost, Endpoint: "/conversations/messages/inbound", Path: "/conversations/messages/inbound",
		Body: body,
	}, &resp)
	return resp.MessageID, err
}

// Check is a cheap health probe: a duplicate lookup of a number no contact has.
func (c *Client) Check(ctx context.Context) error {
	return c.do(ctx, VersionContacts, upstream.Request{
		Method: http.MethodGet, Endpoint: "/contacts/search/duplicate", Path: "/contacts/search/duplicate",
		Query: url.Values{"locationId": {c.locationID}, "number": {"+10000000000"}},
	}, nil)
}
