package sandbox

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The Clerk imitation: Backend API v1 — users, sessions, session tokens
// (RS256 JWTs) and the JWKS that verifies them.

// SessionTokenTTL is the lifetime of a session token created through the
// API (Clerk's 60 s).
const SessionTokenTTL = 60 * time.Second

// clockSkew is the allowance before iat written into nbf (Clerk's default
// "allowed clock skew" of its session tokens).
const clockSkew = 5 * time.Second

var (
	sharedKeyOnce sync.Once
	sharedKeyVal  *rsa.PrivateKey
)

// sharedKey returns the process-wide signing key of Servers configured
// without one (generating a 2048-bit key per Server would slow tests).
func sharedKey() *rsa.PrivateKey {
	sharedKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic("sandbox: generating the Clerk signing key: " + err.Error())
		}
		sharedKeyVal = k
	})
	return sharedKeyVal
}

// keyID derives a stable kid from the public key.
func keyID(pub *rsa.PublicKey) string {
	sum := sha256.Sum256(pub.N.Bytes())
	return "ins_sandbox_" + hex.EncodeToString(sum[:8])
}

// ClerkSigningKey returns the RSA key that signs session tokens (its public
// half is served at /clerk/v1/jwks).
func (s *Server) ClerkSigningKey() *rsa.PrivateKey { return s.key }

// ClerkKeyID returns the kid of the signing key.
func (s *Server) ClerkKeyID() string { return s.kid }

// ClerkIssuer returns the `iss` of the tokens the sandbox issues.
func (s *Server) ClerkIssuer() string { return s.cfg.ClerkIssuer }

// IssueSessionToken mints a session token for an existing session of any
// status (so tests can hold a token of an ended session): iat now, exp
// now+ttl (ttl 0 = 60 s; a negative ttl mints an already expired token).
func (s *Server) IssueSessionToken(sessionID string, ttl time.Duration) (string, error) {
	s.mu.Lock()
	sess, ok := s.sessionLocked(sessionID)
	now := s.now()
	s.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("no Clerk session %q", sessionID)
	}
	if ttl == 0 {
		ttl = SessionTokenTTL
	}
	return s.signSessionToken(sess, now, ttl)
}

func (s *Server) sessionLocked(id string) (ClerkSession, bool) {
	for _, c := range s.d.clerkSessions {
		if c.ID == id {
			return c, true
		}
	}
	return ClerkSession{}, false
}

// SessionClaims are the claims of a session token.
type SessionClaims struct {
	Subject   string `json:"sub"`
	SessionID string `json:"sid"`
	Issuer    string `json:"iss"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	Expiry    int64  `json:"exp"`
	Azp       string `json:"azp,omitempty"`
	Version   int    `json:"v,omitempty"`
}

func (s *Server) signSessionToken(sess ClerkSession, now time.Time, ttl time.Duration) (string, error) {
	iat := now.Unix()
	claims := SessionClaims{
		Subject: sess.UserID, SessionID: sess.ID, Issuer: s.cfg.ClerkIssuer,
		IssuedAt: iat, NotBefore: now.Add(-clockSkew).Unix(), Expiry: now.Add(ttl).Unix(), Version: 2,
	}
	return signRS256(s.key, s.kid, claims)
}

func signRS256(key *rsa.PrivateKey, kid string, claims any) (string, error) {
	hdr, err := json.Marshal(map[string]string{"alg": "RS256", "kid": kid, "typ": "JWT"})
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(hdr) + "." + enc.EncodeToString(body)
	digest := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", err
	}
	return signing + "." + enc.EncodeToString(sig), nil
}

var errBadToken = errors.New("invalid session token")

// verifySessionToken checks signature, kid, issuer and time claims and
// returns the claims. Whether the session is active is the caller's part.
func (s *Server) verifySessionToken(tok string, now time.Time) (SessionClaims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return SessionClaims{}, errBadToken
	}
	enc := base64.RawURLEncoding
	hb, err1 := enc.DecodeString(parts[0])
	cb, err2 := enc.DecodeString(parts[1])
	sig, err3 := enc.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return SessionClaims{}, errBadToken
	}
	var hdr struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if json.Unmarshal(hb, &hdr) != nil || hdr.Alg != "RS256" || hdr.Kid != s.kid {
		return SessionClaims{}, errBadToken
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&s.key.PublicKey, crypto.SHA256, digest[:], sig) != nil {
		return SessionClaims{}, errBadToken
	}
	var c SessionClaims
	if json.Unmarshal(cb, &c) != nil {
		return SessionClaims{}, errBadToken
	}
	t := now.Unix()
	switch {
	case c.Issuer != s.cfg.ClerkIssuer, c.SessionID == "", c.Subject == "":
		return SessionClaims{}, errBadToken
	case c.Expiry <= t:
		return SessionClaims{}, errors.New("session token expired")
	case c.NotBefore > t+int64(clockSkew/time.Second):
		return SessionClaims{}, errors.New("session token not valid yet")
	}
	return c, nil
}

// ---- HTTP -----------------------------------------------------------------

func (s *Server) clerkRoutes() {
	s.route(UpstreamClerk, "GET /sessions", s.clerkListSessions)
	s.route(UpstreamClerk, "GET /sessions/{id}", s.clerkGetSession)
	s.route(UpstreamClerk, "POST /sessions/{id}/tokens", s.clerkCreateToken)
	s.route(UpstreamClerk, "POST /sessions/{id}/tokens/{template}", s.clerkCreateTemplateToken)
	s.route(UpstreamClerk, "GET /users", s.clerkListUsers)
	s.route(UpstreamClerk, "GET /users/count", s.clerkCountUsers)
	s.route(UpstreamClerk, "GET /users/{id}", s.clerkGetUser)
	s.route(UpstreamClerk, "GET /jwks", s.clerkJWKS)
}

func writeClerkError(w http.ResponseWriter, status int, code, msg, long string) {
	writeJSON(w, status, map[string]any{
		"errors":         []map[string]any{{"message": msg, "long_message": long, "code": code}},
		"clerk_trace_id": newTraceID(),
	})
}

func newTraceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// clerkGate checks the secret key; false means it answered.
func (s *Server) clerkGate(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") == "" {
		writeClerkError(w, http.StatusUnauthorized, "authentication_invalid", "Invalid authentication",
			"Unable to authenticate the request, you need to supply an active API key")
		return false
	}
	if !bearerIs(r, s.cfg.ClerkSecretKey) {
		writeClerkError(w, http.StatusUnauthorized, "authentication_invalid", "Invalid authentication",
			"The provided secret key is invalid. Make sure that your secret key is correct.")
		return false
	}
	return true
}

// listWindow reads limit (1..500, default 10) and offset (>= 0); false
// means it answered 422.
func listWindow(w http.ResponseWriter, r *http.Request) (limit, offset int, ok bool) {
	limit, offset = 10, 0
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			writeClerkError(w, http.StatusUnprocessableEntity, "form_param_value_invalid", "is invalid",
				"limit must be an integer between 1 and 500")
			return 0, 0, false
		}
		limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeClerkError(w, http.StatusUnprocessableEntity, "form_param_value_invalid", "is invalid",
				"offset must be an integer greater or equal to 0")
			return 0, 0, false
		}
		offset = n
	}
	return limit, offset, true
}

func page[T any](items []T, limit, offset int) []T {
	if offset >= len(items) {
		return []T{}
	}
	return items[offset:min(offset+limit, len(items))]
}

// clerkListSessions serves GET /sessions. Like Clerk, it needs client_id
// or user_id, and answers {data, total_count} with paginated=true (what
// clerk-sdk-go sends) and a bare array otherwise. Newest activity first.
func (s *Server) clerkListSessions(w http.ResponseWriter, r *http.Request, _ []byte) {
	q := r.URL.Query()
	userID, clientID, status := q.Get("user_id"), q.Get("client_id"), q.Get("status")
	if userID == "" && clientID == "" {
		writeClerkError(w, http.StatusUnprocessableEntity, "form_param_missing", "missing query parameter",
			"Either client_id or user_id must be provided")
		return
	}
	limit, offset, ok := listWindow(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	var all []ClerkSession
	for _, c := range s.d.clerkSessions {
		if (userID == "" || c.UserID == userID) && (clientID == "" || c.ClientID == clientID) &&
			(status == "" || c.Status == status) {
			all = append(all, c)
		}
	}
	s.mu.Unlock()
	slices.SortStableFunc(all, func(a, b ClerkSession) int {
		if a.LastActiveAt != b.LastActiveAt {
			return cmpInt64(b.LastActiveAt, a.LastActiveAt)
		}
		return cmpInt64(b.CreatedAt, a.CreatedAt)
	})
	data := page(nonNil(all), limit, offset)
	if q.Get("paginated") == "true" {
		writeJSON(w, http.StatusOK, map[string]any{"data": data, "total_count": len(all)})
		return
	}
	writeJSON(w, http.StatusOK, data)
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *Server) clerkGetSession(w http.ResponseWriter, r *http.Request, _ []byte) {
	s.mu.Lock()
	sess, ok := s.sessionLocked(r.PathValue("id"))
	s.mu.Unlock()
	if !ok {
		writeClerkError(w, http.StatusNotFound, "resource_not_found", "not found", "No session was found with id "+r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, sess)
}

// clerkCreateToken serves POST /sessions/{id}/tokens: 404 for an unknown
// session and for one that is not active.
func (s *Server) clerkCreateToken(w http.ResponseWriter, r *http.Request, body []byte) {
	var in struct {
		ExpiresInSeconds *int64 `json:"expires_in_seconds"`
	}
	if len(strings.TrimSpace(string(body))) > 0 && json.Unmarshal(body, &in) != nil {
		writeClerkError(w, http.StatusBadRequest, "request_body_invalid", "Request body invalid",
			"The request body is invalid. Please consult the API documentation for more information.")
		return
	}
	ttl := SessionTokenTTL
	if in.ExpiresInSeconds != nil {
		if *in.ExpiresInSeconds < 30 || *in.ExpiresInSeconds > 315_360_000 {
			writeClerkError(w, http.StatusUnprocessableEntity, "form_param_value_invalid", "is invalid",
				"expires_in_seconds must be between 30 and 315360000")
			return
		}
		ttl = time.Duration(*in.ExpiresInSeconds) * time.Second
	}
	id := r.PathValue("id")
	s.mu.Lock()
	sess, ok := s.sessionLocked(id)
	now := s.now()
	s.mu.Unlock()
	switch {
	case !ok:
		writeClerkError(w, http.StatusNotFound, "resource_not_found", "not found", "No session was found with id "+id)
		return
	case sess.Status != "active":
		writeClerkError(w, http.StatusNotFound, "resource_not_found", "not found",
			fmt.Sprintf("No active session was found with id %s (status %s)", id, sess.Status))
		return
	}
	jwt, err := s.signSessionToken(sess, now, ttl)
	if err != nil {
		writeClerkError(w, http.StatusInternalServerError, "internal_clerk_error", "Oops, an unexpected error occurred", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "token", "jwt": jwt})
}

func (s *Server) clerkCreateTemplateToken(w http.ResponseWriter, r *http.Request, _ []byte) {
	writeClerkError(w, http.StatusNotFound, "resource_not_found", "not found",
		"No JWT template was found with name "+r.PathValue("template"))
}

// clerkUserJSON renders a user in Clerk's user object shape.
func clerkUserJSON(u ClerkUser) map[string]any {
	var lastActive, lastSignIn any
	if u.LastActiveAt != 0 {
		lastActive, lastSignIn = u.LastActiveAt, u.LastActiveAt
	}
	nullable := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	emails := []map[string]any{}
	var primary any
	if u.Email != "" {
		id := "idn_" + strings.TrimPrefix(u.ID, "user_")
		primary = id
		emails = append(emails, map[string]any{
			"id": id, "object": "email_address", "email_address": u.Email, "reserved": false,
			"verification": map[string]any{"status": "verified", "strategy": "email_code", "attempts": 1, "expire_at": nil},
			"linked_to":    []any{},
		})
	}
	return map[string]any{
		"object": "user", "id": u.ID, "username": nil,
		"first_name": nullable(u.FirstName), "last_name": nullable(u.LastName),
		"image_url": "https://img.clerk.com/sandbox", "has_image": false,
		"primary_email_address_id": primary, "primary_phone_number_id": nil, "primary_web3_wallet_id": nil,
		"password_enabled": true, "two_factor_enabled": false, "totp_enabled": false, "backup_code_enabled": false,
		"email_addresses": emails, "phone_numbers": []any{}, "web3_wallets": []any{},
		"external_accounts": []any{}, "saml_accounts": []any{},
		"public_metadata": map[string]any{}, "private_metadata": map[string]any{}, "unsafe_metadata": map[string]any{},
		"external_id": nil, "last_sign_in_at": lastSignIn, "banned": false, "locked": false,
		"lockout_expires_in_seconds": nil, "verification_attempts_remaining": 100,
		"delete_self_enabled": true, "create_organization_enabled": true,
		"last_active_at": lastActive, "legal_accepted_at": nil,
		"created_at": u.CreatedAt, "updated_at": u.UpdatedAt,
	}
}

// filterUsers applies the user list filters Clerk supports that matter
// here (user_id, email_address, query) and order_by.
func (s *Server) filterUsers(w http.ResponseWriter, r *http.Request) ([]ClerkUser, bool) {
	q := r.URL.Query()
	ids, emails := q["user_id"], q["email_address"]
	query := strings.ToLower(q.Get("query"))
	s.mu.Lock()
	var out []ClerkUser
	for _, u := range s.d.clerkUsers {
		if len(ids) > 0 && !slices.Contains(ids, u.ID) {
			continue
		}
		if len(emails) > 0 && !slices.ContainsFunc(emails, func(e string) bool { return strings.EqualFold(e, u.Email) }) {
			continue
		}
		if query != "" && !strings.Contains(strings.ToLower(u.ID+" "+u.FirstName+" "+u.LastName+" "+u.Email), query) {
			continue
		}
		out = append(out, u)
	}
	s.mu.Unlock()
	order := q.Get("order_by")
	if order == "" {
		order = "-created_at"
	}
	desc := !strings.HasPrefix(order, "+")
	if !strings.HasPrefix(order, "-") && !strings.HasPrefix(order, "+") {
		desc = false
	}
	field := strings.TrimLeft(order, "+-")
	key := map[string]func(ClerkUser) int64{
		"created_at":     func(u ClerkUser) int64 { return u.CreatedAt },
		"updated_at":     func(u ClerkUser) int64 { return u.UpdatedAt },
		"last_active_at": func(u ClerkUser) int64 { return u.LastActiveAt },
		"last_sign_in_at": func(u ClerkUser) int64 {
			return u.LastActiveAt
		},
	}[field]
	if key == nil {
		writeClerkError(w, http.StatusUnprocessableEntity, "form_param_value_invalid", "is invalid",
			"order_by must be one of created_at, updated_at, last_active_at, last_sign_in_at, prefixed with + or -")
		return nil, false
	}
	slices.SortStableFunc(out, func(a, b ClerkUser) int {
		// Users without a value sort last either way, as in Clerk.
		ka, kb := key(a), key(b)
		if (ka == 0) != (kb == 0) {
			if ka == 0 {
				return 1
			}
			return -1
		}
		if desc {
			return cmpInt64(kb, ka)
		}
		return cmpInt64(ka, kb)
	})
	return out, true
}

// clerkListUsers serves GET /users: a bare array, as Clerk does (the SDK
// gets the total from /users/count).
func (s *Server) clerkListUsers(w http.ResponseWriter, r *http.Request, _ []byte) {
	limit, offset, ok := listWindow(w, r)
	if !ok {
		return
	}
	users, ok := s.filterUsers(w, r)
	if !ok {
		return
	}
	out := []map[string]any{}
	for _, u := range page(users, limit, offset) {
		out = append(out, clerkUserJSON(u))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) clerkCountUsers(w http.ResponseWriter, r *http.Request, _ []byte) {
	users, ok := s.filterUsers(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "total_count", "total_count": len(users)})
}

func (s *Server) clerkGetUser(w http.ResponseWriter, r *http.Request, _ []byte) {
	id := r.PathValue("id")
	s.mu.Lock()
	idx := slices.IndexFunc(s.d.clerkUsers, func(u ClerkUser) bool { return u.ID == id })
	var u ClerkUser
	if idx >= 0 {
		u = s.d.clerkUsers[idx]
	}
	s.mu.Unlock()
	if idx < 0 {
		writeClerkError(w, http.StatusNotFound, "resource_not_found", "not found", "No user was found with id "+id)
		return
	}
	writeJSON(w, http.StatusOK, clerkUserJSON(u))
}

func (s *Server) clerkJWKS(w http.ResponseWriter, r *http.Request, _ []byte) {
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]any{s.JWK()}})
}

// JWK returns the public signing key as a JSON Web Key.
func (s *Server) JWK() map[string]any {
	pub := &s.key.PublicKey
	return map[string]any{
		"use": "sig", "kty": "RSA", "kid": s.kid, "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}
