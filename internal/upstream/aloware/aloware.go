// Package aloware is the Aloware client: contacts through the Lead API
// (/api/v1/webhook/forms), lookup by phone, SMS and users. Aloware
// authenticates with the account's api_token: a query parameter on GET and a
// JSON body field on POST. See docs/upstreams.md.
package aloware

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/df-middleware/df-middleware/internal/upstream"
	"golang.org/x/time/rate"
)

// DefaultBaseURL is Aloware's API host.
const DefaultBaseURL = "https://app.aloware.com"

// Client calls Aloware for one account.
type Client struct {
	http     *upstream.Client
	apiToken string
}

// Contact is an Aloware contact; ID is Aloware's integer id in decimal.
type Contact struct {
	ID          string `json:"id"`
	FirstName   string `json:"first_name"`
	LastName    string `json:"last_name"`
	Email       string `json:"email"`
	PhoneNumber string `json:"phone_number"`
	LeadSource  string `json:"lead_source"`
}

// ContactInput is a Lead API submission. Without ForceUpdate an existing
// contact (same phone) is a *ConflictError.
type ContactInput struct {
	PhoneNumber string `json:"phone_number"`
	FirstName   string `json:"first_name,omitempty"`
	LastName    string `json:"last_name,omitempty"`
	Email       string `json:"email,omitempty"`
	LeadSource  string `json:"lead_source,omitempty"`
	Notes       string `json:"notes,omitempty"`
	ForceUpdate bool   `json:"force_update"`
}

// User is an Aloware user (agent).
type User struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// ConflictError is Aloware's 409 for a contact that already exists when
// force_update was not set. It is not retryable: the caller decides whether
// to update ExistingID or to map to it.
type ConflictError struct {
	ExistingID string
	Err        *upstream.Error
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s (existing contact %s)", e.Err.Error(), e.ExistingID)
}

// Unwrap exposes the *upstream.Error (Status 409, Retryable false).
func (e *ConflictError) Unwrap() error { return e.Err }

// IsConflict reports whether err is a 409 existing-contact conflict.
func IsConflict(err error) bool {
	var c *ConflictError
	return errors.As(err, &c)
}

// New returns an Aloware client. o.RateLimit defaults to Aloware's 5,000
// requests per minute.
func New(baseURL, apiToken string, o upstream.Options) *Client {
	o.Name = "aloware"
	if baseURL == "" {
		baseURL = DefaultBaseURL
	}
	o.BaseURL = baseURL
	if o.RateLimit == 0 {
		o.RateLimit, o.RateBurst = rate.Every(time.Minute/5000), 100
	}
	o.Secrets = append(slices.Clip(o.Secrets), apiToken)
	return &Client{http: upstream.New(o), apiToken: apiToken}
}

// BreakerState returns "closed", "half-open" or "open".
func (c *Client) BreakerState() string { return c.http.BreakerState() }

// get adds api_token to the query. The query never reaches labels or
// errors: Endpoint is the template and transport errors drop the URL.
func (c *Client) get(ctx context.Context, endpoint string, q url.Values, out any) error {
	if q == nil {
		q = url.Values{}
	}
	q.Set("api_token", c.apiToken)
	return c.http.Do(ctx, upstream.Request{Method: http.MethodGet, Endpoint: endpoint, Path: endpoint, Query: q}, out)
}

// post sends body with api_token added as a JSON field.
func (c *Client) post(ctx context.Context, endpoint string, body any, idempotent bool, out any) error {
	fields, err := withToken(body, c.apiToken)
	if err != nil {
		return fmt.Errorf("aloware POST %s: encode body: %w", endpoint, err)
	}
	return c.http.Do(ctx, upstream.Request{
		Method: http.MethodPost, Endpoint: endpoint, Path: endpoint, Body: fields, Idempotent: idempotent,
	}, out)
}

func withToken(body any, token string) (map[string]json.RawMessage, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	fields := map[string]json.RawMessage{}
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	fields["api_token"], _ = json.Marshal(token)
	return fields, nil
}

// wireContact is Aloware's contact with its integer id.
type wireContact struct {
	ID          flexID `json:"id"`
	FirstName   string `json:"first_name"`
	LastName    string `json:"last_name"`
	Email       string `json:"email"`
	PhoneNumber string `json:"phone_number"`
	LeadSource  string `json:"lead_source"`
}

func (w wireContact) contact() Contact {
	return Contact{ID: string(w.ID), FirstName: w.FirstName, LastName: w.LastName, Email: w.Email,
		PhoneNumber: w.PhoneNumber, LeadSource: w.LeadSource}
}

// flexID accepts an id as a JSON number or string.
type flexID string

func (f *flexID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		*f = flexID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("aloware id: %w", err)
	}
	*f = flexID(n.String())
	return nil
}

// UpsertContact creates or updates a contact through the Lead API. created
// is read from Aloware's message ("Contact has been created."). With
// ForceUpdate the call converges and is retried like an idempotent one.
func (c *Client) UpsertContact(ctx context.Context, in ContactInput) (Contact, bool, error) {
	const endpoint = "/api/v1/webhook/forms"
	var resp struct {
		Message   string      `json:"message"`
		Contact   wireContact `json:"contact"`
		ContactID flexID      `json:"contact_id"`
	}
	err := c.post(ctx, endpoint, in, in.ForceUpdate, &resp)
	if err != nil {
		var e *upstream.Error
		if errors.As(err, &e) && e.Status == http.StatusConflict {
			return Contact{}, false, &ConflictError{ExistingID: existingID(e.Body), Err: e}
		}
		return Contact{}, false, err
	}
	ct := resp.Contact.contact()
	if ct.ID == "" {
		ct.ID = string(resp.ContactID)
	}
	if ct.PhoneNumber == "" {
		ct.PhoneNumber = in.PhoneNumber
	}
	created := strings.Contains(strings.ToLower(resp.Message), "created")
	return ct, created, nil
}

// existingID reads the id from a 409 body: {"contact":{"id":…}} or {"contact_id":…}.
func existingID(body []byte) string {
	var b struct {
		Contact   wireContact `json:"contact"`
		ContactID flexID      `json:"contact_id"`
	}
	_ = json.Unmarshal(body, &b)
	if b.Contact.ID != "" {
		return string(b.Contact.ID)
	}
	return string(b.ContactID)
}

// LookupByPhone returns the contact with the phone number, nil when none.
func (c *Client) LookupByPhone(ctx context.Context, phone string) (*Contact, error) {
	var raw json.RawMessage
	err := c.get(ctx, "/api/v1/webhook/contacts/phone-number", url.Values{"phone_number": {phone}}, &raw)
	if upstream.StatusOf(err) == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// {"contact": {…}} per the contract; a bare contact is tolerated.
	var wrapped struct {
		Contact *wireContact `json:"contact"`
	}
	if err := json.Unmarshal(raw, &wrapped); err == nil && wrapped.Contact != nil {
		if wrapped.Contact.ID == "" {
			return nil, nil
		}
		ct := wrapped.Contact.contact()
		return &ct, nil
	}
	var bare wireContact
	if err := json.Unmarshal(raw, &bare); err != nil || bare.ID == "" {
		return nil, nil
	}
	ct := bare.contact()
	return &ct, nil
}

// SendSMS sends a text from one of the account's numbers. It is not
// idempotent: retried only on 429 and on failures before sending.
func (c *Client) SendSMS(ctx context.Context, from, to, message string) (string, error) {
	var resp struct {
		ID flexID `json:"id"`
	}
	err := c.post(ctx, "/api/v1/webhook/sms-gateway/send",
		map[string]string{"from": from, "to": to, "message": message}, false, &resp)
	return string(resp.ID), err
}

// Users lists the account's users. The contract's bare array is expected;
// {"data": […]} and {"users": […]} are tolerated.
func (c *Client) Users(ctx context.Context) ([]User, error) {
	var raw json.RawMessage
	if err := c.get(ctx, "/api/v1/webhook/users", nil, &raw); err != nil {
		return nil, err
	}
	type wireUser struct {
		ID    flexID `json:"id"`
		Name  string `json:"name"`
		Email string `json:"email"`
	}
	var list []wireUser
	if err := json.Unmarshal(raw, &list); err != nil {
		var wrapped struct {
			Data  []wireUser `json:"data"`
			Users []wireUser `json:"users"`
		}
		if err := json.Unmarshal(raw, &wrapped); err != nil {
			return nil, fmt.Errorf("aloware GET /api/v1/webhook/users: unexpected response: %w", err)
		}
		list = append(wrapped.Data, wrapped.Users...)
	}
	users := make([]User, 0, len(list))
	for _, u := range list {
		users = append(users, User{ID: string(u.ID), Name: u.Name, Email: u.Email})
	}
	return users, nil
}

// Check is the health probe: listing users proves the token and the API.
func (c *Client) Check(ctx context.Context) error {
	_, err := c.Users(ctx)
	return err
}
