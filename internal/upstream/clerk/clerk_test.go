package clerk

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
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
	jose "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v3/jwt"
)

const testSecret = "sk_test_SECRET_value"

var (
	keyOnce        sync.Once
	signKey, other *rsa.PrivateKey
)

func keys(t *testing.T) (*rsa.PrivateKey, *rsa.PrivateKey) {
	keyOnce.Do(func() {
		var err error
		if signKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if other, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return signKey, other
}

type fakeSession struct {
	ID, UserID, Status string
	LastActiveAt       int64
}

// fakeClerk imitates the Backend API calls the provider and verifier make,
// under a /clerk/v1 prefix like the sandbox.
type fakeClerk struct {
	t         *testing.T
	mu        sync.Mutex
	users     []string
	sessions  []*fakeSession // returned in this order, ignoring ?status
	ttl       time.Duration
	tokenPOST atomic.Int32
	listCalls atomic.Int32
	jwksCalls atomic.Int32
	delay     time.Duration
	lastSID   atomic.Value
}

func newFakeClerk(t *testing.T) (*fakeClerk, *httptest.Server) {
	keys(t)
	now := time.Now().Unix()
	f := &fakeClerk{t: t, ttl: 60 * time.Second, users: []string{"user_1"}, sessions: []*fakeSession{
		// Newer but ended: must not be chosen.
		{ID: "sess_ended", UserID: "user_1", Status: "ended", LastActiveAt: now * 1000},
		{ID: "sess_active", UserID: "user_1", Status: "active", LastActiveAt: (now - 60) * 1000},
	}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func clerkError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"errors":         []map[string]string{{"message": msg, "long_message": msg, "code": code}},
		"clerk_trace_id": "trace",
	})
}

func (f *fakeClerk) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if got := r.Header.Get("Authorization"); got != "Bearer "+testSecret {
		clerkError(w, 401, "authentication_invalid", "Invalid authentication: got "+got)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/clerk/v1")
	seg := strings.Split(strings.Trim(path, "/"), "/")
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == "GET" && path == "/users":
		var out []map[string]any
		for _, u := range f.users {
			out = append(out, map[string]any{"object": "user", "id": u, "last_active_at": time.Now().UnixMilli()})
		}
		json.NewEncoder(w).Encode(out)
	case r.Method == "GET" && path == "/sessions":
		f.listCalls.Add(1)
		uid := r.URL.Query().Get("user_id")
		if uid == "" {
			clerkError(w, 422, "form_param_missing", "Either client_id or user_id must be provided")
			return
		}
		f.mu.Lock()
		var data []map[string]any
		for _, s := range f.sessions {
			if s.UserID == uid {
				data = append(data, map[string]any{"object": "session", "id": s.ID, "user_id": s.UserID,
					"status": s.Status, "last_active_at": s.LastActiveAt})
			}
		}
		f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"data": data, "total_count": len(data)})
	case r.Method == "POST" && len(seg) == 3 && seg[0] == "sessions" && seg[2] == "tokens":
		f.tokenPOST.Add(1)
		time.Sleep(f.delay)
		f.mu.Lock()
		var found *fakeSession
		for _, s := range f.sessions {
			if s.ID == seg[1] {
				found = s
			}
		}
		ttl := f.ttl
		f.mu.Unlock()
		if found == nil || found.Status != "active" {
			clerkError(w, 404, "resource_not_found", "not found")
			return
		}
		f.lastSID.Store(found.ID)
		tok := sign(f.t, signKey, "k1", jwt.Claims{Subject: found.UserID, Issuer: "https://clerk.example.test",
			IssuedAt: jwt.NewNumericDate(time.Now()), NotBefore: jwt.NewNumericDate(time.Now()),
			Expiry: jwt.NewNumericDate(time.Now().Add(ttl))}, found.ID)
		json.NewEncoder(w).Encode(map[string]any{"object": "token", "jwt": tok})
	case r.Method == "GET" && path == "/jwks":
		f.jwksCalls.Add(1)
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &signKey.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"},
		}})
	default:
		clerkError(w, 404, "resource_not_found", "not found")
	}
}

func sign(t *testing.T, key any, kid string, c jwt.Claims, sid string) string {
	alg := jose.RS256
	if _, ok := key.([]byte); ok {
		alg = jose.HS256
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(c).Claims(map[string]any{"sid": sid}).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func options(obs upstream.Observer) upstream.Options {
	return upstream.Options{BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, Observer: obs}
}

func newProvider(t *testing.T, srv *httptest.Server, obs upstream.Observer) *TokenProvider {
	p, err := NewTokenProvider(srv.URL+"/clerk/v1", testSecret, options(obs))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type labels struct {
	mu   sync.Mutex
	seen map[string]int
}

func (l *labels) ObserveCall(_ context.Context, up, endpoint, method string, _ int, _ time.Duration, _ error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]int{}
	}
	l.seen[up+" "+method+" "+endpoint]++
}

func TestTokenSharedRefreshAndCache(t *testing.T) {
	f, srv := newFakeClerk(t)
	f.delay = 50 * time.Millisecond // keep the refresh in flight while callers pile up
	obs := &labels{}
	p := newProvider(t, srv, obs)
	var wg sync.WaitGroup
	toks := make([]string, 20)
	errs := make([]error, 20)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks[i], errs[i] = p.Token(context.Background())
		}()
	}
	wg.Wait()
	for i := range toks {
		if errs[i] != nil || toks[i] == "" || toks[i] != toks[0] {
			t.Fatalf("caller %d: %q %v", i, toks[i], errs[i])
		}
	}
	if n := f.tokenPOST.Load(); n != 1 {
		t.Fatalf("session-token POSTs = %d, want 1", n)
	}
	if sid := f.lastSID.Load(); sid != "sess_active" {
		t.Fatalf("token made for %v, want the active session", sid)
	}
	if tok, err := p.Token(context.Background()); err != nil || tok != toks[0] || f.tokenPOST.Load() != 1 {
		t.Fatalf("cached token not reused: %v, %d POSTs", err, f.tokenPOST.Load())
	}
	if obs.seen["clerk POST /sessions/{id}/tokens"] != 1 || obs.seen["clerk GET /sessions"] != 1 || obs.seen["clerk GET /users"] != 1 {
		t.Errorf("observed %v", obs.seen)
	}
}

func TestInvalidateForcesOneRefresh(t *testing.T) {
	f, srv := newFakeClerk(t)
	p := newProvider(t, srv, nil)
	ctx := context.Background()
	tok, err := p.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.Invalidate("some-other-token") // not the cached one: no effect
	if again, _ := p.Token(ctx); again != tok {
		t.Fatal("unrelated Invalidate dropped the token")
	}
	p.Invalidate(tok)
	if _, err := p.Token(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.tokenPOST.Load(); n != 2 {
		t.Errorf("POSTs = %d, want 2", n)
	}
	if n := f.listCalls.Load(); n != 1 {
		t.Errorf("session lists = %d, want 1 (the known session is reused)", n)
	}
}

func TestRefreshBeforeExpiry(t *testing.T) {
	f, srv := newFakeClerk(t)
	f.ttl = 5 * time.Second // inside the 10s margin: never served from cache
	p := newProvider(t, srv, nil)
	for i := 0; i < 2; i++ {
		if _, err := p.Token(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.tokenPOST.Load(); n != 2 {
		t.Errorf("POSTs = %d, want 2", n)
	}
}

func TestEndedSessionReplaced(t *testing.T) {
	f, srv := newFakeClerk(t)
	p := newProvider(t, srv, nil)
	ctx := context.Background()
	tok, err := p.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.sessions[1].Status = "ended"
	f.sessions = append(f.sessions, &fakeSession{ID: "sess_new", UserID: "user_1", Status: "active", LastActiveAt: time.Now().UnixMilli()})
	f.mu.Unlock()
	p.Invalidate(tok)
	if _, err := p.Token(ctx); err != nil {
		t.Fatal(err)
	}
	if sid := f.lastSID.Load(); sid != "sess_new" {
		t.Errorf("token for %v, want sess_new", sid)
	}
}

func TestNoActiveSession(t *testing.T) {
	f, srv := newFakeClerk(t)
	f.sessions = f.sessions[:1] // only the ended one
	p := newProvider(t, srv, nil)
	_, err := p.Token(context.Background())
	if !errors.Is(err, ErrNoActiveSession) || !strings.Contains(err.Error(), "sign in to Verity") {
		t.Fatalf("err = %v", err)
	}
	if f.tokenPOST.Load() != 0 {
		t.Error("token requested for an ended session")
	}
}

func TestWrongSecretNotLeaked(t *testing.T) {
	_, srv := newFakeClerk(t)
	p, err := NewTokenProvider(srv.URL+"/clerk/v1", "sk_test_WRONG_secret", options(nil))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Token(context.Background())
	if upstream.StatusOf(err) != 401 || upstream.IsRetryable(err) {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "sk_test_WRONG_secret") {
		t.Errorf("secret in error: %v", err)
	}
}

func TestVerifier(t *testing.T) {
	f, srv := newFakeClerk(t)
	_, otherKey := keys(t)
	p := newProvider(t, srv, nil)
	good, err := p.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	base := jwt.Claims{Subject: "user_1", IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
		Expiry: jwt.NewNumericDate(now.Add(time.Minute))}
	expired := base
	expired.IssuedAt, expired.NotBefore = jwt.NewNumericDate(now.Add(-10*time.Minute)), jwt.NewNumericDate(now.Add(-10*time.Minute))
	expired.Expiry = jwt.NewNumericDate(now.Add(-2 * time.Minute))
	future := base
	future.NotBefore = jwt.NewNumericDate(now.Add(5 * time.Minute))
	noneTok := b64(`{"alg":"none","kid":"k1","typ":"JWT"}`) + "." + b64(`{"sub":"user_1","exp":`+fmt.Sprint(now.Add(time.Minute).Unix())+`}`) + "."

	v := NewVerifier(srv.URL+"/clerk/v1", testSecret, options(nil))
	claims, err := v.Verify(context.Background(), good)
	if err != nil {
		t.Fatalf("valid token rejected: %v", err)
	}
	if claims.Subject != "user_1" || claims.SessionID != "sess_active" || claims.Expiry.Before(now) {
		t.Errorf("claims = %+v", claims)
	}
	tests := []struct {
		name, token string
	}{
		{"expired", sign(t, signKey, "k1", expired, "s")},
		{"not yet valid", sign(t, signKey, "k1", future, "s")},
		{"unknown kid", sign(t, otherKey, "k2", base, "s")},
		{"known kid, wrong key", sign(t, otherKey, "k1", base, "s")},
		{"HS256", sign(t, []byte("0123456789abcdef0123456789abcdef"), "k1", base, "s")},
		{"alg none", noneTok},
		{"garbage", "not.a.jwt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := v.Verify(context.Background(), tt.token); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("err = %v, want ErrInvalidToken", err)
			}
		})
	}
	if n := f.jwksCalls.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1 (cached; unknown kid refetch at most once a minute)", n)
	}
	v.now = func() time.Time { return time.Now().Add(61 * time.Second) }
	if _, err := v.Verify(context.Background(), sign(t, otherKey, "k2", base, "s")); !errors.Is(err, ErrInvalidToken) {
		t.Fatal(err)
	}
	if n := f.jwksCalls.Load(); n != 2 {
		t.Errorf("JWKS fetched %d times after a minute, want 2", n)
	}
}

func TestVerifierIssuer(t *testing.T) {
	_, srv := newFakeClerk(t)
	p := newProvider(t, srv, nil)
	tok, err := p.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewVerifier(srv.URL+"/clerk/v1", testSecret, options(nil), WithIssuer("https://clerk.example.test")).
		Verify(context.Background(), tok); err != nil {
		t.Errorf("matching issuer rejected: %v", err)
	}
	if _, err := NewVerifier(srv.URL+"/clerk/v1", testSecret, options(nil), WithIssuer("https://clerk.other.test")).
		Verify(context.Background(), tok); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("foreign issuer accepted: %v", err)
	}
}

func TestVerifierJWKSDown(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
	}))
	defer srv.Close()
	_, _ = keys(t)
	tok := sign(t, signKey, "k1", jwt.Claims{Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute))}, "s")
	_, err := NewVerifier(srv.URL, testSecret, options(nil)).Verify(context.Background(), tok)
	if errors.Is(err, ErrInvalidToken) || !upstream.IsRetryable(err) {
		t.Fatalf("err = %v, want a retryable upstream error, not an invalid token", err)
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
