package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
)

const testAPIKey = "gateway-test-api-key-0123"

// fakeVerity records what the gateway forwards.
type fakeVerity struct {
	mu    sync.Mutex
	calls []string // "METHOD path?query"
}

func (f *fakeVerity) Raw(_ context.Context, method, path string, query url.Values, _ []byte) (int, string, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, method+" "+path+"?"+query.Encode())
	return http.StatusOK, "application/json", []byte(`{"ok":true}`), nil
}

type fakeTokens struct{}

func (fakeTokens) Verify(_ context.Context, token string) (string, error) {
	if token == "good.jwt.token" {
		return "user_1", nil
	}
	return "", errors.New("clerk: invalid token")
}

func TestProxyForwardsOnlyAuthorizedCataloguedCalls(t *testing.T) {
	tests := []struct {
		name     string
		apiKey   string // configured DF_MIDDLEWARE_API_KEY
		header   map[string]string
		body     string
		wantCode int
		wantCall string // "" = Verity must not be called
	}{
		{"gateway off without a key", "", map[string]string{"X-API-Key": testAPIKey}, `{"endpoint":"/api/calls"}`, http.StatusServiceUnavailable, ""},
		{"no key", testAPIKey, nil, `{"endpoint":"/api/calls"}`, http.StatusUnauthorized, ""},
		{"wrong key", testAPIKey, map[string]string{"X-API-Key": "gateway-test-api-key-0124"}, `{"endpoint":"/api/calls"}`, http.StatusUnauthorized, ""},
		{"key prefix", testAPIKey, map[string]string{"X-API-Key": testAPIKey[:10]}, `{"endpoint":"/api/calls"}`, http.StatusUnauthorized, ""},
		{"key with a suffix", testAPIKey, map[string]string{"X-API-Key": testAPIKey + "x"}, `{"endpoint":"/api/calls"}`, http.StatusUnauthorized, ""},
		{"basic scheme", testAPIKey, map[string]string{"Authorization": "Basic " + testAPIKey}, `{"endpoint":"/api/calls"}`, http.StatusUnauthorized, ""},
		{"bad user token", testAPIKey, map[string]string{"X-API-Key": testAPIKey, "X-User-Token": "bad.jwt.token"}, `{"endpoint":"/api/calls"}`, http.StatusUnauthorized, ""},
		{"absolute url", testAPIKey, map[string]string{"X-API-Key": testAPIKey}, `{"endpoint":"https://evil.example/api/calls"}`, http.StatusBadRequest, ""},
		{"scheme-relative", testAPIKey, map[string]string{"X-API-Key": testAPIKey}, `{"endpoint":"//evil.example/api/calls"}`, http.StatusBadRequest, ""},
		{"traversal", testAPIKey, map[string]string{"X-API-Key": testAPIKey}, `{"endpoint":"/api/comms/broadcasts/../../admin"}`, http.StatusBadRequest, ""},
		{"encoded traversal", testAPIKey, map[string]string{"X-API-Key": testAPIKey}, `{"endpoint":"/api/comms/broadcasts/%2e%2e"}`, http.StatusBadRequest, ""},
		{"backslash", testAPIKey, map[string]string{"X-API-Key": testAPIKey}, `{"endpoint":"/api/comms/broadcasts/a\\b"}`, http.StatusBadRequest, ""},
		{"uncatalogued path", testAPIKey, map[string]string{"X-API-Key": testAPIKey}, `{"endpoint":"/api/admin/users"}`, http.StatusBadRequest, ""},
		{"uncatalogued method", testAPIKey, map[string]string{"X-API-Key": testAPIKey}, `{"endpoint":"/api/calls","method":"DELETE"}`, http.StatusBadRequest, ""},
		{"unknown query parameter", testAPIKey, map[string]string{"X-API-Key": testAPIKey}, `{"endpoint":"/api/calls","query":{"token":"x"}}`, http.StatusBadRequest, ""},
		{"not json", testAPIKey, map[string]string{"X-API-Key": testAPIKey}, `endpoint=/api/calls`, http.StatusBadRequest, ""},

		{"key header", testAPIKey, map[string]string{"X-API-Key": testAPIKey}, `{"endpoint":"/api/calls","query":{"limit":"5"}}`, http.StatusOK, "GET /api/calls?limit=5"},
		{"bearer key", testAPIKey, map[string]string{"Authorization": "Bearer " + testAPIKey}, `{"endpoint":"/api/comms/broadcasts/bc_1/analytics"}`, http.StatusOK, "GET /api/comms/broadcasts/bc_1/analytics?"},
		{"good user token", testAPIKey, map[string]string{"X-API-Key": testAPIKey, "X-User-Token": "good.jwt.token"}, `{"endpoint":"/api/calls"}`, http.StatusOK, "GET /api/calls?"},
		// The method forwarded is the one Resolve checked, spaces and case aside.
		{"method spelled loosely", testAPIKey, map[string]string{"X-API-Key": testAPIKey}, `{"endpoint":"/api/comms/send-message","method":" post ","body":{"to":"+1"}}`, http.StatusOK, "POST /api/comms/send-message?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &fakeVerity{}
			h := New(tt.apiKey, v, fakeTokens{}, zerolog.Nop())
			req := httptest.NewRequest(http.MethodPost, "/api/verity", strings.NewReader(tt.body))
			for k, val := range tt.header {
				req.Header.Set(k, val)
			}
			rec := httptest.NewRecorder()
			h.ServeProxy(rec, req)
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d %s, want %d", rec.Code, rec.Body, tt.wantCode)
			}
			if strings.Contains(rec.Body.String(), testAPIKey[:10]) {
				t.Errorf("answer %s carries the API key", rec.Body)
			}
			switch {
			case tt.wantCall == "" && len(v.calls) > 0:
				t.Errorf("Verity was called: %q", v.calls)
			case tt.wantCall != "" && (len(v.calls) != 1 || v.calls[0] != tt.wantCall):
				t.Errorf("Verity calls %q, want [%q]", v.calls, tt.wantCall)
			}
			if tt.wantCode == http.StatusUnauthorized && rec.Header().Get("Content-Type") != "application/json" {
				t.Errorf("401 is not JSON: %q", rec.Header().Get("Content-Type"))
			}
		})
	}
}

func TestCatalogNeedsTheKey(t *testing.T) {
	h := New(testAPIKey, &fakeVerity{}, nil, zerolog.Nop())
	for key, want := range map[string]int{"": http.StatusUnauthorized, "nope": http.StatusUnauthorized, testAPIKey: http.StatusOK} {
		req := httptest.NewRequest(http.MethodGet, "/api/verity", nil)
		if key != "" {
			req.Header.Set("X-API-Key", key)
		}
		rec := httptest.NewRecorder()
		h.ServeCatalog(rec, req)
		if rec.Code != want {
			t.Errorf("key %q: status %d, want %d", key, rec.Code, want)
		}
	}
}
