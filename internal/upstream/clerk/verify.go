package clerk

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	clerksdk "github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/jwks"
	clerkjwt "github.com/clerk/clerk-sdk-go/v2/jwt"
	"github.com/df-middleware/df-middleware/internal/upstream"
	josejwt "github.com/go-jose/go-jose/v3/jwt"
	"golang.org/x/sync/singleflight"
)

// ErrInvalidToken is the cause of every rejected session JWT (as opposed to
// a failure to fetch the keys, which is an *upstream.Error).
var ErrInvalidToken = errors.New("invalid Clerk session token")

const (
	jwksTTL        = time.Hour
	jwksMinRefetch = time.Minute // on an unknown kid
	verifyLeeway   = 60 * time.Second
)

// Claims are the verified claims the gateway uses.
type Claims struct {
	Subject   string // Clerk user id
	SessionID string // sid
	Expiry    time.Time
}

// Verifier verifies Clerk session JWTs (RS256) against the instance's JWKS.
type Verifier struct {
	sdk     *sdk
	jwks    *jwks.Client
	issuer  string // exact iss required when set
	anyIss  bool   // no issuer check (a stand-in Clerk has no Clerk domain)
	now     func() time.Time
	fetches singleflight.Group

	mu        sync.Mutex
	keys      map[string]*clerksdk.JSONWebKey
	fetchedAt time.Time // last successful fetch
	triedAt   time.Time // last fetch attempt
}

// VerifierOption adjusts a Verifier.
type VerifierOption func(*Verifier)

// WithIssuer requires tokens' iss to equal issuer exactly (the instance's
// Frontend API URL, e.g. https://clerk.example.com).
func WithIssuer(issuer string) VerifierOption {
	return func(v *Verifier) { v.issuer = issuer }
}

// NewVerifier returns a verifier for the Clerk instance at apiURL. Keys come
// from GET {apiURL}/jwks, cached by kid for an hour and refetched (at most
// once a minute) when a token names an unknown kid. Without WithIssuer,
// tokens from Clerk's own API are held to clerk-sdk-go's issuer rule (a
// Clerk domain), and tokens from another API URL (the sandbox) are not
// issuer-checked: the JWKS fetched with the secret key already binds them
// to the instance.
func NewVerifier(apiURL, secretKey string, o upstream.Options, opts ...VerifierOption) *Verifier {
	s, err := newSDK(apiURL, secretKey, o)
	v := &Verifier{sdk: s, now: time.Now, keys: map[string]*clerksdk.JSONWebKey{}}
	for _, opt := range opts {
		opt(v)
	}
	if err != nil {
		v.sdk = nil // Verify reports the configuration error
		return v
	}
	v.jwks = jwks.NewClient(s.config)
	v.anyIss = v.issuer == "" && !strings.HasSuffix(s.apiURL.Hostname(), "clerk.com")
	return v
}

// BreakerState returns the Clerk breaker's state ("closed" when unconfigured).
func (v *Verifier) BreakerState() string {
	if v.sdk == nil {
		return "closed"
	}
	return v.sdk.http.BreakerState()
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidToken, fmt.Sprintf(format, args...))
}

// Verify checks token's signature (RS256 only, key by kid from the JWKS),
// exp and nbf (60s leeway) and issuer, and returns its claims. A rejected
// token's error wraps ErrInvalidToken; failing to fetch the keys is an
// *upstream.Error (retryable if the fetch was).
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if v.sdk == nil {
		return Claims{}, errors.New("clerk: CLERK_API_URL must be an absolute URL")
	}
	parsed, err := josejwt.ParseSigned(token)
	if err != nil || len(parsed.Headers) != 1 {
		return Claims{}, invalid("not a signed JWT")
	}
	hdr := parsed.Headers[0]
	// Checked before any key lookup so "none" and HMAC tokens (the classic
	// algorithm-confusion attacks) never reach a verifier.
	if hdr.Algorithm != "RS256" {
		return Claims{}, invalid("algorithm %q is not RS256", hdr.Algorithm)
	}
	if hdr.KeyID == "" {
		return Claims{}, invalid("no kid header")
	}
	key, err := v.key(ctx, hdr.KeyID)
	if err != nil {
		return Claims{}, err
	}
	params := &clerkjwt.VerifyParams{
		Token:       token,
		JWK:         key,
		Clock:       clock(v.now),
		Leeway:      verifyLeeway,
		IsSatellite: v.anyIss, // skips only the SDK's issuer rule
	}
	if v.issuer != "" {
		params.ProxyURL = clerksdk.String(v.issuer) // exact iss match
	}
	claims, err := clerkjwt.Verify(ctx, params)
	if err != nil {
		return Claims{}, invalid("%v", err)
	}
	if claims.Expiry == nil {
		return Claims{}, invalid("no exp claim")
	}
	return Claims{Subject: claims.Subject, SessionID: claims.SessionID, Expiry: time.Unix(*claims.Expiry, 0)}, nil
}

type clock func() time.Time

func (c clock) Now() time.Time { return c() }

// key returns the JWK for kid, fetching the JWKS when the cache is older
// than an hour, or when kid is unknown and no fetch happened in the last
// minute (a key rotation; also bounds what forged kids can cost us).
func (v *Verifier) key(ctx context.Context, kid string) (*clerksdk.JSONWebKey, error) {
	v.mu.Lock()
	k, ok := v.keys[kid]
	now := v.now()
	stale := now.Sub(v.fetchedAt) > jwksTTL
	mayFetch := stale || (!ok && now.Sub(v.triedAt) >= jwksMinRefetch)
	v.mu.Unlock()
	if ok && !stale {
		return k, nil
	}
	if mayFetch {
		ch := v.fetches.DoChan("jwks", func() (any, error) { return nil, v.fetch(context.WithoutCancel(ctx)) })
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case r := <-ch:
			if r.Err != nil && !ok {
				return nil, r.Err
			}
		}
		v.mu.Lock()
		k, ok = v.keys[kid]
		v.mu.Unlock()
	}
	if !ok {
		return nil, invalid("unknown signing key %q", kid)
	}
	return k, nil
}

func (v *Verifier) fetch(ctx context.Context) error {
	v.mu.Lock()
	v.triedAt = v.now()
	v.mu.Unlock()
	var set *clerksdk.JSONWebKeySet
	err := v.sdk.call(ctx, "GET /jwks", func(ctx context.Context) error {
		var err error
		set, err = v.jwks.Get(ctx, &jwks.GetParams{})
		return err
	})
	if err != nil {
		return err
	}
	keys := map[string]*clerksdk.JSONWebKey{}
	for _, k := range set.Keys {
		if k == nil || k.KeyID == "" {
			continue
		}
		if _, isRSA := k.Key.(*rsa.PublicKey); !isRSA {
			continue
		}
		if k.Algorithm == "" { // alg is optional in a JWK; the key is RSA
			k.Algorithm = "RS256"
		}
		if k.Algorithm != "RS256" {
			continue
		}
		keys[k.KeyID] = k
	}
	v.mu.Lock()
	v.keys, v.fetchedAt = keys, v.now()
	v.mu.Unlock()
	return nil
}
