package clerk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	clerksdk "github.com/clerk/clerk-sdk-go/v2"
	clerkjwt "github.com/clerk/clerk-sdk-go/v2/jwt"
	"github.com/clerk/clerk-sdk-go/v2/session"
	"github.com/df-middleware/df-middleware/internal/upstream"
	"golang.org/x/sync/singleflight"
)

// ErrNoActiveSession means no Clerk user has an active session to act for.
var ErrNoActiveSession = errors.New("no active Clerk session: sign in to Verity with a user so the middleware can act on its behalf")

const (
	// refreshMargin: a cached token is replaced this long before its exp,
	// so a token never expires between Token() and Verity checking it.
	refreshMargin = 10 * time.Second
	// usersScanned bounds how many recently active users are searched for
	// an active session.
	usersScanned = 10
)

// TokenProvider hands out a Clerk session token (JWT) of an active session,
// cached until shortly before it expires. Concurrent callers share one
// refresh.
type TokenProvider struct {
	sdk      *sdk
	sessions *session.Client
	now      func() time.Time
	flight   singleflight.Group

	mu         sync.Mutex
	token      string
	validUntil time.Time
	sessionID  string // the session last used, tried first on refresh
}

// NewTokenProvider returns a provider for the Clerk instance at apiURL
// (default https://api.clerk.com/v1) with its secret key.
func NewTokenProvider(apiURL, secretKey string, o upstream.Options) (*TokenProvider, error) {
	s, err := newSDK(apiURL, secretKey, o)
	if err != nil {
		return nil, err
	}
	return &TokenProvider{sdk: s, sessions: session.NewClient(s.config), now: time.Now}, nil
}

// BreakerState returns the Clerk breaker's state.
func (p *TokenProvider) BreakerState() string { return p.sdk.http.BreakerState() }

// Token returns a valid session token, refreshing it when it is within 10s
// of expiry or was invalidated.
func (p *TokenProvider) Token(ctx context.Context) (string, error) {
	if tok, ok := p.cached(); ok {
		return tok, nil
	}
	// The refresh outlives a caller that gives up: others may be waiting on
	// it. Each HTTP attempt inside is bounded by the client's timeout.
	ch := p.flight.DoChan("token", func() (any, error) {
		return p.refresh(context.WithoutCancel(ctx))
	})
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	}
}

// Invalidate drops the cached token if it is token, so that the next Token
// call fetches a new one (used after Verity answered 401).
func (p *TokenProvider) Invalidate(token string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.token == token {
		p.token, p.validUntil = "", time.Time{}
	}
}

// Check reports whether a session token can be had (cached or fresh).
func (p *TokenProvider) Check(ctx context.Context) error {
	_, err := p.Token(ctx)
	return err
}

func (p *TokenProvider) cached() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.token != "" && p.now().Before(p.validUntil) {
		return p.token, true
	}
	return "", false
}

func (p *TokenProvider) refresh(ctx context.Context) (string, error) {
	if tok, ok := p.cached(); ok { // refreshed while this caller queued
		return tok, nil
	}
	p.mu.Lock()
	sid := p.sessionID
	p.mu.Unlock()
	if sid != "" {
		tok, err := p.createToken(ctx, sid)
		if err == nil {
			return tok, nil
		}
		if !sessionGone(err) {
			return "", err
		}
	}
	sid, err := p.activeSession(ctx)
	if err != nil {
		return "", err
	}
	return p.createToken(ctx, sid)
}

// sessionGone: Clerk refuses tokens for ended, expired or unknown sessions
// with a 4xx; the provider then looks for another active session.
func sessionGone(err error) bool {
	switch upstream.StatusOf(err) {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusGone, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

func (p *TokenProvider) createToken(ctx context.Context, sid string) (string, error) {
	var tok *clerksdk.SessionToken
	err := p.sdk.call(ctx, "POST /sessions/{id}/tokens", func(ctx context.Context) error {
		var err error
		tok, err = p.sessions.CreateToken(ctx, &session.CreateTokenParams{ID: sid})
		return err
	})
	if err != nil {
		return "", err
	}
	if tok == nil || tok.JWT == "" {
		return "", &upstream.Error{Upstream: "clerk", Endpoint: "POST /sessions/{id}/tokens", Message: "response has no jwt"}
	}
	// Decoded without verification: only to learn when to refresh.
	claims, err := clerkjwt.Decode(ctx, &clerkjwt.DecodeParams{Token: tok.JWT})
	if err != nil || claims.Expiry == nil {
		return "", &upstream.Error{Upstream: "clerk", Endpoint: "POST /sessions/{id}/tokens",
			Message: "session token is not a JWT with exp", Err: err}
	}
	p.mu.Lock()
	p.token = tok.JWT
	p.validUntil = time.Unix(*claims.Expiry, 0).Add(-refreshMargin)
	p.sessionID = sid
	p.mu.Unlock()
	return tok.JWT, nil
}

// clerkUser is the part of a Clerk user the provider reads.
type clerkUser struct {
	ID           string `json:"id"`
	LastActiveAt *int64 `json:"last_active_at"`
}

// userList reads GET /v1/users, a bare JSON array.
type userList []clerkUser

func (*userList) Read(*clerksdk.APIResponse) {}

// activeSession picks the newest active session (by last_active_at) of the
// most recently active user that has one. Clerk's GET /sessions requires a
// user_id (or client_id), hence the walk over recently active users.
func (p *TokenProvider) activeSession(ctx context.Context) (string, error) {
	users, err := p.recentUsers(ctx)
	if err != nil {
		return "", err
	}
	for _, u := range users {
		var list *clerksdk.SessionList
		err := p.sdk.call(ctx, "GET /sessions", func(ctx context.Context) error {
			var err error
			list, err = p.sessions.List(ctx, &session.ListParams{
				ListParams: clerksdk.ListParams{Limit: clerksdk.Int64(20)},
				UserID:     clerksdk.String(u.ID),
				Status:     clerksdk.String("active"),
			})
			return err
		})
		if err != nil {
			return "", err
		}
		var best *clerksdk.Session
		for _, s := range list.Sessions {
			// The status filter is applied again: the original service
			// took any session, and an ended one yields 4xx tokens.
			if s != nil && s.Status == "active" && (best == nil || s.LastActiveAt > best.LastActiveAt) {
				best = s
			}
		}
		if best != nil {
			return best.ID, nil
		}
	}
	return "", ErrNoActiveSession
}

// recentUsers lists users, most recently active first. It calls the SDK
// backend directly: user.Client.List also calls GET /users/count, which
// is not needed here.
func (p *TokenProvider) recentUsers(ctx context.Context) ([]clerkUser, error) {
	var users userList
	err := p.sdk.call(ctx, "GET /users", func(ctx context.Context) error {
		users = nil
		req := clerksdk.NewAPIRequest(http.MethodGet, "/users")
		req.SetParams(&usersParams{})
		return p.sdk.backend.Call(ctx, req, &users)
	})
	if err != nil {
		return nil, fmt.Errorf("list Clerk users: %w", err)
	}
	return users, nil
}

type usersParams struct{ clerksdk.APIParams }

func (*usersParams) ToQuery() url.Values {
	return url.Values{"limit": {strconv.Itoa(usersScanned)}, "order_by": {"-last_active_at"}}
}
