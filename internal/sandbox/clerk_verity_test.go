package sandbox

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/jwks"
	"github.com/clerk/clerk-sdk-go/v2/jwt"
	"github.com/clerk/clerk-sdk-go/v2/session"
	"github.com/clerk/clerk-sdk-go/v2/user"
)

var hClerk = map[string]string{"Authorization": "Bearer " + tClerkKey}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

// mintToken gets a session token through the Clerk API.
func (e *env) mintToken(sessionID string) string {
	e.t.Helper()
	r := e.do("POST", "/clerk/v1/sessions/"+sessionID+"/tokens", hClerk, "")
	if r.status != 200 {
		e.t.Fatalf("create token: %d %s", r.status, r.body)
	}
	return r.obj(e.t)["jwt"].(string)
}

func decodeSegment(t *testing.T, seg string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestClerkAPI(t *testing.T) {
	e := newEnv(t, true, nil)
	clerkErr := func(code string) string {
		return `{"errors":[{"message":"<any>","long_message":"<any>","code":"` + code + `"}],"clerk_trace_id":"<any>"}`
	}
	e.run([]step{
		{name: "no key", method: "GET", path: "/clerk/v1/sessions?user_id=" + SeedActiveUserID,
			status: 401, want: clerkErr("authentication_invalid"), exact: true},
		{name: "wrong key", method: "GET", path: "/clerk/v1/users", hdr: bearer("sk_test_wrong"),
			status: 401, want: clerkErr("authentication_invalid"), exact: true},
		{name: "sessions need user_id or client_id", method: "GET", path: "/clerk/v1/sessions?status=active&paginated=true",
			hdr: hClerk, status: 422, want: clerkErr("form_param_missing"), exact: true},
		{name: "active sessions of alice", method: "GET", hdr: hClerk,
			path:   "/clerk/v1/sessions?paginated=true&status=active&user_id=" + SeedActiveUserID + "&limit=10",
			status: 200, want: `{"data":[{"object":"session","id":"` + SeedActiveSessionID + `","user_id":"` + SeedActiveUserID +
				`","client_id":"<any>","status":"active","last_active_at":"<any>","expire_at":"<any>","abandon_at":"<any>","created_at":"<any>","updated_at":"<any>"}],"total_count":1}`, exact: true},
		{name: "active sessions of bob", method: "GET", hdr: hClerk,
			path: "/clerk/v1/sessions?paginated=true&status=active&user_id=" + SeedEndedUserID, status: 200, want: `{"data":[],"total_count":0}`, exact: true},
		{name: "all sessions of bob, unpaginated = bare array", method: "GET", hdr: hClerk,
			path: "/clerk/v1/sessions?user_id=" + SeedEndedUserID, status: 200, want: `[{"id":"` + SeedEndedSessionID + `","status":"ended"}]`},
		{name: "bad limit", method: "GET", hdr: hClerk, path: "/clerk/v1/sessions?user_id=x&limit=0", status: 422},
		{name: "get session", method: "GET", hdr: hClerk, path: "/clerk/v1/sessions/" + SeedEndedSessionID,
			status: 200, want: `{"object":"session","status":"ended"}`},
		{name: "token of an ended session", method: "POST", hdr: hClerk, path: "/clerk/v1/sessions/" + SeedEndedSessionID + "/tokens",
			status: 404, want: clerkErr("resource_not_found"), exact: true},
		{name: "token of an unknown session", method: "POST", hdr: hClerk, path: "/clerk/v1/sessions/sess_nope/tokens",
			status: 404, want: clerkErr("resource_not_found"), exact: true},
		{name: "token from an unknown template", method: "POST", hdr: hClerk, path: "/clerk/v1/sessions/" + SeedActiveSessionID + "/tokens/tmpl",
			status: 404},
		{name: "token needs the key", method: "POST", path: "/clerk/v1/sessions/" + SeedActiveSessionID + "/tokens", status: 401},
		{name: "users ordered by last activity", method: "GET", hdr: hClerk, path: "/clerk/v1/users?order_by=-last_active_at&limit=10",
			status: 200, want: `[{"id":"` + SeedActiveUserID + `","object":"user","first_name":"Alice"},{"id":"` + SeedEndedUserID + `"},{"id":"` + SeedNoSessionUserID + `","last_active_at":null}]`},
		{name: "users default order newest first, paged", method: "GET", hdr: hClerk, path: "/clerk/v1/users?limit=1&offset=1",
			status: 200, want: `[{"id":"` + SeedEndedUserID + `"}]`},
		{name: "users count", method: "GET", hdr: hClerk, path: "/clerk/v1/users/count",
			status: 200, want: `{"object":"total_count","total_count":3}`, exact: true},
		{name: "users bad order", method: "GET", hdr: hClerk, path: "/clerk/v1/users?order_by=-shoe_size", status: 422},
		{name: "get user", method: "GET", hdr: hClerk, path: "/clerk/v1/users/" + SeedNoSessionUserID,
			status: 200, want: `{"id":"` + SeedNoSessionUserID + `","email_addresses":[{"email_address":"carol@sandbox.example"}]}`},
		{name: "unknown route", method: "GET", hdr: hClerk, path: "/clerk/v1/organizations", status: 404, want: clerkErr("resource_not_found")},
	})

	// The token: RS256 with the JWKS kid, sub/sid/iss/iat/nbf/exp, exp = iat + 60.
	r := e.do("POST", "/clerk/v1/sessions/"+SeedActiveSessionID+"/tokens", hClerk, "")
	expect(t, "token", r, 200, `{"object":"token","jwt":"<any>"}`, true)
	tok := r.obj(t)["jwt"].(string)
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("jwt %q", tok)
	}
	hdr, claims := decodeSegment(t, parts[0]), decodeSegment(t, parts[1])
	jw := e.do("GET", "/clerk/v1/jwks", hClerk, "").obj(t)
	key := jw["keys"].([]any)[0].(map[string]any)
	if hdr["alg"] != "RS256" || hdr["kid"] != key["kid"] || key["kty"] != "RSA" || key["use"] != "sig" || key["alg"] != "RS256" {
		t.Errorf("header %v / jwk %v", hdr, key)
	}
	now := float64(e.clk.Now().Unix())
	if claims["sub"] != SeedActiveUserID || claims["sid"] != SeedActiveSessionID || claims["iss"] != DefaultClerkIssuer ||
		claims["iat"] != now || claims["exp"] != now+60 || claims["nbf"].(float64) > now {
		t.Errorf("claims %v", claims)
	}
	// Verify the signature with the JWKS key only.
	n, _ := base64.RawURLEncoding.DecodeString(key["n"].(string))
	eb, _ := base64.RawURLEncoding.DecodeString(key["e"].(string))
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(eb).Int64())}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		t.Errorf("signature does not verify with the JWKS key: %v", err)
	}
	// expires_in_seconds is honoured.
	r = e.do("POST", "/clerk/v1/sessions/"+SeedActiveSessionID+"/tokens", hClerk, `{"expires_in_seconds":300}`)
	if c := decodeSegment(t, strings.Split(r.obj(t)["jwt"].(string), ".")[1]); c["exp"] != now+300 {
		t.Errorf("expires_in_seconds: %v", c)
	}
}

func TestVerityAuth(t *testing.T) {
	e := newEnv(t, true, nil)
	unauthorized := `{"error":"Unauthorized"}`
	good := e.mintToken(SeedActiveSessionID)
	ended, err := e.sb.IssueSessionToken(SeedEndedSessionID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := e.sb.IssueSessionToken(SeedActiveSessionID, -time.Second)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	now := e.clk.Now()
	forged, _ := signRS256(other, e.sb.ClerkKeyID(), SessionClaims{Subject: SeedActiveUserID, SessionID: SeedActiveSessionID,
		Issuer: DefaultClerkIssuer, IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Add(time.Minute).Unix()})
	wrongSub, _ := signRS256(e.sb.ClerkSigningKey(), e.sb.ClerkKeyID(), SessionClaims{Subject: SeedEndedUserID, SessionID: SeedActiveSessionID,
		Issuer: DefaultClerkIssuer, IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Add(time.Minute).Unix()})
	wrongIss, _ := signRS256(e.sb.ClerkSigningKey(), e.sb.ClerkKeyID(), SessionClaims{Subject: SeedActiveUserID, SessionID: SeedActiveSessionID,
		Issuer: "https://evil.example", IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Add(time.Minute).Unix()})
	if _, err := e.sb.IssueSessionToken("sess_nope", 0); err == nil {
		t.Error("IssueSessionToken of an unknown session succeeded")
	}

	const list = "/verity/api/comms/broadcasts"
	e.run([]step{
		{name: "active session token", method: "GET", path: list, hdr: bearer(good), status: 200},
		{name: "no token", method: "GET", path: list, status: 401, want: unauthorized, exact: true},
		{name: "garbage", method: "GET", path: list, hdr: bearer("abc.def.ghi"), status: 401, want: unauthorized, exact: true},
		{name: "ended session", method: "GET", path: list, hdr: bearer(ended), status: 401, want: unauthorized, exact: true},
		{name: "expired", method: "GET", path: list, hdr: bearer(expired), status: 401, want: unauthorized, exact: true},
		{name: "other key", method: "GET", path: list, hdr: bearer(forged), status: 401, want: unauthorized, exact: true},
		{name: "sub of another user", method: "GET", path: list, hdr: bearer(wrongSub), status: 401},
		{name: "other issuer", method: "GET", path: list, hdr: bearer(wrongIss), status: 401},
		{name: "the API key is not a session token", method: "GET", path: list, hdr: map[string]string{"X-API-Key": tVerKey}, status: 401},
		{name: "send-message", method: "POST", path: "/verity/api/comms/send-message", hdr: map[string]string{"X-API-Key": tVerKey},
			body: `{"to":"+13105550100","body":"hello"}`, status: 202, want: `{"messageId":"vmsg_000001","status":"queued"}`, exact: true},
		{name: "send-message bad key", method: "POST", path: "/verity/api/comms/send-message", hdr: map[string]string{"X-API-Key": "nope"},
			body: `{"to":"+13105550100","body":"hello"}`, status: 401, want: unauthorized, exact: true},
		{name: "send-message with a session token only", method: "POST", path: "/verity/api/comms/send-message", hdr: bearer(good),
			body: `{"to":"+13105550100","body":"hello"}`, status: 401},
		{name: "send-message without body text", method: "POST", path: "/verity/api/comms/send-message", hdr: map[string]string{"X-API-Key": tVerKey},
			body: `{"to":"+13105550100"}`, status: 400, want: `{"error":"body is required"}`, exact: true},
		{name: "send-message bad JSON", method: "POST", path: "/verity/api/comms/send-message", hdr: map[string]string{"X-API-Key": tVerKey},
			body: `nope`, status: 400},
	})
	// The API token expires 60 s after issue.
	e.clk.Advance(61 * time.Second)
	expect(t, "after 61 s", e.do("GET", list, bearer(good), ""), 401, unauthorized, true)
	fresh := e.mintToken(SeedActiveSessionID)
	expect(t, "fresh token", e.do("GET", list, bearer(fresh), ""), 200, "", false)
	// Ending the session kills its tokens at once.
	if err := e.sb.SetSessionStatus(SeedActiveSessionID, "ended"); err != nil {
		t.Fatal(err)
	}
	expect(t, "session ended", e.do("GET", list, bearer(fresh), ""), 401, unauthorized, true)
	if n := len(e.sb.State().VerityMessages); n != 1 {
		t.Errorf("%d verity messages stored", n)
	}
}

func TestVerityData(t *testing.T) {
	e := newEnv(t, true, nil)
	h := bearer(e.mintToken(SeedActiveSessionID))
	// Pagination: follow nextCursor until null.
	var ids []string
	cur := ""
	for i := 0; ; i++ {
		path := "/verity/api/comms/broadcasts?limit=2"
		if cur != "" {
			path += "&cursor=" + cur
		}
		r := e.do("GET", path, h, "")
		if r.status != 200 {
			t.Fatalf("page %d: %d %s", i, r.status, r.body)
		}
		m := r.obj(t)
		for _, b := range m["broadcasts"].([]any) {
			ids = append(ids, b.(map[string]any)["id"].(string))
		}
		if m["nextCursor"] == nil {
			break
		}
		cur = m["nextCursor"].(string)
		if i > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if strings.Join(ids, ",") != "bc_0005,bc_0004,bc_0003,bc_0002,bc_0001" {
		t.Errorf("broadcast order: %v", ids)
	}
	e.run([]step{
		{name: "first page", method: "GET", path: "/verity/api/comms/broadcasts?limit=5", hdr: h, status: 200,
			want: `{"broadcasts":"<any>","nextCursor":null}`, exact: true},
		{name: "status filter", method: "GET", path: "/verity/api/comms/broadcasts?status=completed", hdr: h, status: 200,
			want: `{"broadcasts":[{"id":"bc_0002"},{"id":"bc_0001"}],"nextCursor":null}`},
		{name: "bad cursor", method: "GET", path: "/verity/api/comms/broadcasts?cursor=bm90LWpzb24", hdr: h, status: 400, want: `{"error":"Invalid cursor"}`, exact: true},
		{name: "bad limit", method: "GET", path: "/verity/api/comms/broadcasts?limit=1000", hdr: h, status: 400},
		{name: "get", method: "GET", path: "/verity/api/comms/broadcasts/bc_0001", hdr: h, status: 200,
			want: `{"broadcast":{"id":"bc_0001","name":"March promo","status":"completed","channel":"sms","audienceSize":1200,` +
				`"scheduledAt":"2026-03-10T15:00:00Z","sentAt":"2026-03-10T15:00:00Z","createdAt":"2026-03-01T15:00:00Z"}}`, exact: true},
		{name: "draft has null times", method: "GET", path: "/verity/api/comms/broadcasts/bc_0005", hdr: h, status: 200,
			want: `{"broadcast":{"scheduledAt":null,"sentAt":null}}`},
		{name: "get unknown", method: "GET", path: "/verity/api/comms/broadcasts/bc_9999", hdr: h, status: 404, want: `{"error":"Broadcast not found"}`, exact: true},
		{name: "analytics", method: "GET", path: "/verity/api/comms/broadcasts/bc_0001/analytics", hdr: h, status: 200,
			want: `{"broadcastId":"bc_0001","sent":1200,"delivered":1150,"failed":50,"replied":84,"optedOut":6,"updatedAt":"<any>"}`, exact: true},
		{name: "analytics unknown", method: "GET", path: "/verity/api/comms/broadcasts/bc_9999/analytics", hdr: h, status: 404, want: `{"error":"Broadcast not found"}`, exact: true},
		{name: "calls", method: "GET", path: "/verity/api/calls", hdr: h, status: 200,
			want: `{"calls":[{"id":"call_0002","direction":"inbound","from":"+13105550101","to":"+18555550199","durationSeconds":42,"disposition":"Left voicemail","startedAt":"<any>"},` +
				`{"id":"call_0001","direction":"outbound","from":"+18555550199","to":"+13105550100","durationSeconds":184,"disposition":"Interested","startedAt":"<any>"}],"nextCursor":null}`, exact: true},
		{name: "calls paged", method: "GET", path: "/verity/api/calls?limit=1", hdr: h, status: 200,
			want: `{"calls":[{"id":"call_0002"}],"nextCursor":"<any>"}`},
		{name: "unknown route", method: "GET", path: "/verity/api/nothing", hdr: h, status: 404, want: `{"error":"Not found"}`, exact: true},
	})
	// Data is mutable through the Go API only; a cursor survives inserts.
	r := e.do("GET", "/verity/api/comms/broadcasts?limit=2", h, "").obj(t)
	e.sb.AddBroadcast(Broadcast{ID: "bc_0100", Name: "New", CreatedAt: "2026-04-01T00:00:00Z"})
	e.sb.SetBroadcastAnalytics(BroadcastAnalytics{BroadcastID: "bc_0100", Sent: 7})
	r2 := e.do("GET", "/verity/api/comms/broadcasts?limit=2&cursor="+r["nextCursor"].(string), h, "").obj(t)
	if got := r2["broadcasts"].([]any)[0].(map[string]any)["id"]; got != "bc_0003" {
		t.Errorf("page after insert starts at %v", got)
	}
	expect(t, "added analytics", e.do("GET", "/verity/api/comms/broadcasts/bc_0100/analytics", h, ""), 200, `{"sent":7}`, false)
	expect(t, "added broadcast first", e.do("GET", "/verity/api/comms/broadcasts?limit=1", h, ""), 200,
		`{"broadcasts":[{"id":"bc_0100","status":"draft","channel":"sms"}]}`, false)
}

// TestClerkSDK checks that clerk-sdk-go v2 parses the imitation's answers.
func TestClerkSDK(t *testing.T) {
	e := newEnv(t, false, nil)
	ctx := context.Background()
	cfg := &clerk.ClientConfig{BackendConfig: clerk.BackendConfig{
		URL: clerk.String(e.srv.URL + PrefixClerk), Key: clerk.String(tClerkKey), HTTPClient: e.srv.Client(),
	}}
	sc := session.NewClient(cfg)
	list, err := sc.List(ctx, &session.ListParams{UserID: clerk.String(SeedActiveUserID), Status: clerk.String("active"),
		ListParams: clerk.ListParams{Limit: clerk.Int64(10)}})
	if err != nil {
		t.Fatalf("session.List: %v", err)
	}
	if list.TotalCount != 1 || len(list.Sessions) != 1 || list.Sessions[0].ID != SeedActiveSessionID ||
		list.Sessions[0].Status != "active" || list.Sessions[0].LastActiveAt == 0 || list.Sessions[0].UserID != SeedActiveUserID {
		t.Errorf("session.List: %+v", list)
	}
	tok, err := sc.CreateToken(ctx, &session.CreateTokenParams{ID: SeedActiveSessionID})
	if err != nil || tok.Object != "token" || tok.JWT == "" {
		t.Fatalf("session.CreateToken: %+v %v", tok, err)
	}
	_, err = sc.CreateToken(ctx, &session.CreateTokenParams{ID: SeedEndedSessionID})
	var apiErr *clerk.APIErrorResponse
	if !asAPIError(err, &apiErr) || apiErr.HTTPStatusCode != 404 || len(apiErr.Errors) != 1 || apiErr.Errors[0].Code != "resource_not_found" || apiErr.TraceID == "" {
		t.Errorf("CreateToken of an ended session: %v", err)
	}

	users, err := user.NewClient(cfg).List(ctx, &user.ListParams{OrderBy: clerk.String("-last_active_at"),
		ListParams: clerk.ListParams{Limit: clerk.Int64(2)}})
	if err != nil {
		t.Fatalf("user.List: %v", err)
	}
	if users.TotalCount != 3 || len(users.Users) != 2 || users.Users[0].ID != SeedActiveUserID ||
		users.Users[0].LastActiveAt == nil || len(users.Users[0].EmailAddresses) != 1 ||
		users.Users[0].PrimaryEmailAddressID == nil || *users.Users[0].PrimaryEmailAddressID != users.Users[0].EmailAddresses[0].ID {
		t.Errorf("user.List: %+v", users)
	}

	// The SDK's own JWT verification accepts the token with the served JWKS.
	jc := jwks.NewClient(cfg)
	claims, err := jwt.Verify(ctx, &jwt.VerifyParams{Token: tok.JWT, JWKSClient: jc})
	if err != nil {
		t.Fatalf("jwt.Verify: %v", err)
	}
	if claims.Subject != SeedActiveUserID || claims.SessionID != SeedActiveSessionID {
		t.Errorf("claims %+v", claims)
	}
	// And the token opens Verity.
	expect(t, "SDK token at Verity", e.do("GET", "/verity/api/calls", bearer(tok.JWT), ""), 200, "", false)

	bad := &clerk.ClientConfig{BackendConfig: clerk.BackendConfig{
		URL: clerk.String(e.srv.URL + PrefixClerk), Key: clerk.String("sk_test_wrong"), HTTPClient: e.srv.Client(),
	}}
	_, err = session.NewClient(bad).List(ctx, &session.ListParams{UserID: clerk.String(SeedActiveUserID)})
	if !asAPIError(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusUnauthorized || apiErr.Errors[0].Code != "authentication_invalid" {
		t.Errorf("wrong secret key: %v", err)
	}
}

func asAPIError(err error, target **clerk.APIErrorResponse) bool {
	e, ok := err.(*clerk.APIErrorResponse)
	if ok {
		*target = e
	}
	return ok
}
