package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/df-middleware/df-middleware/internal/mcpctx"
)

const testMCPToken = "mcp-token-for-auth-tests-0001"

type fakeVerifier struct{}

func (fakeVerifier) Verify(_ context.Context, token string) (string, error) {
	switch token {
	case "op.jwt.sig":
		return "user_operator", nil
	case "cust.jwt.sig":
		return "user_customer", nil
	}
	return "", errors.New("signature does not verify")
}

// The caller /mcp admits is the one audit_log records (tools read it from
// the context through mcpctx): the Clerk subject of a session JWT, "token"
// for DF_MCP_HTTP_TOKEN (one shared secret: no finer identity exists).
func TestMCPAuthRecordsTheCaller(t *testing.T) {
	tests := []struct {
		name       string
		token      string   // DF_MCP_HTTP_TOKEN
		verifier   bool     // Clerk configured
		allowed    []string // DF_MCP_ALLOWED_USERS
		auth       string   // Authorization header
		wantCode   int
		wantCaller string
	}{
		{"static token", testMCPToken, true, []string{"user_operator"}, "Bearer " + testMCPToken, http.StatusOK, "token"},
		{"clerk operator", testMCPToken, true, []string{"user_operator"}, "Bearer op.jwt.sig", http.StatusOK, "clerk:user_operator"},
		{"clerk only", "", true, []string{"user_operator"}, "Bearer op.jwt.sig", http.StatusOK, "clerk:user_operator"},
		{"clerk user not allowed", testMCPToken, true, []string{"user_operator"}, "Bearer cust.jwt.sig", http.StatusForbidden, ""},
		{"forged jwt", testMCPToken, true, []string{"user_operator"}, "Bearer a.b.c", http.StatusUnauthorized, ""},
		{"jwt without clerk", testMCPToken, false, nil, "Bearer op.jwt.sig", http.StatusUnauthorized, ""},
		{"wrong token", testMCPToken, true, nil, "Bearer " + testMCPToken + "x", http.StatusUnauthorized, ""},
		{"token prefix", testMCPToken, false, nil, "Bearer " + testMCPToken[:8], http.StatusUnauthorized, ""},
		{"basic scheme", testMCPToken, false, nil, "Basic " + testMCPToken, http.StatusUnauthorized, ""},
		{"no header", testMCPToken, false, nil, "", http.StatusUnauthorized, ""},
		{"no auth configured (loopback only)", "", false, nil, "", http.StatusOK, "unauthenticated-loopback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *mcpctx.Caller
			mcp := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c := mcpctx.CallerFrom(r.Context())
				got = &c
			})
			d := Deps{MCP: func() http.Handler { return mcp }, MCPToken: tt.token, MCPAllowedUsers: tt.allowed, Log: zerolog.Nop()}
			if tt.verifier {
				d.MCPVerifier = fakeVerifier{}
			}
			req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(`{}`))
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			New(d).ServeHTTP(rec, req)
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d %s, want %d", rec.Code, rec.Body, tt.wantCode)
			}
			if strings.Contains(rec.Body.String(), testMCPToken) {
				t.Errorf("answer %s carries the token", rec.Body)
			}
			switch {
			case tt.wantCaller == "" && got != nil:
				t.Errorf("refused request reached the MCP handler as %+v", *got)
			case tt.wantCaller != "" && (got == nil || got.Name != tt.wantCaller || got.Interface != mcpctx.HTTP):
				t.Errorf("caller %+v, want %s over %s", got, tt.wantCaller, mcpctx.HTTP)
			}
		})
	}
}
