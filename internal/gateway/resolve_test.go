package gateway

import (
	"errors"
	"testing"
)

func TestResolve(t *testing.T) {
	cases := []struct {
		method, endpoint, want string
	}{
		{"GET", "/api/comms/broadcasts", "/api/comms/broadcasts"},
		{"get", "/api/comms/broadcasts/", "/api/comms/broadcasts"},
		{"", "/api/calls", "/api/calls"},
		{"GET", "/api/comms/broadcasts/bc_0001", "/api/comms/broadcasts/bc_0001"},
		{"GET", "/api/comms/broadcasts/bc-1/analytics", "/api/comms/broadcasts/bc-1/analytics"},
		{"POST", "/api/comms/send-message", "/api/comms/send-message"},
		// refused
		{"POST", "/api/comms/broadcasts", ""},
		{"DELETE", "/api/comms/broadcasts/bc1", ""},
		{"GET", "/api/comms/broadcasts/../../admin", ""},
		{"GET", "/api/comms/broadcasts/..", ""},
		{"GET", "/api/comms/broadcasts/%2e%2e", ""},
		{"GET", "http://evil.example/api/calls", ""},
		{"GET", "//evil.example/api/calls", ""},
		{"GET", "api/calls", ""},
		{"GET", "/api/calls?x=1", ""},
		{"GET", "/api/calls#frag", ""},
		{"GET", "/api/comms/broadcasts/a/b/analytics", ""},
		{"GET", "/api/comms/broadcasts/a b", ""},
		{"GET", "/api/comms/broadcasts/a\\b", ""},
		{"GET", "/api/admin", ""},
		{"GET", "", ""},
	}
	for _, c := range cases {
		got, err := Resolve(c.method, c.endpoint)
		if c.want == "" {
			if !errors.Is(err, ErrNotCatalogued) {
				t.Errorf("Resolve(%q, %q) = %q, %v; want refusal", c.method, c.endpoint, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Resolve(%q, %q) = %q, %v; want %q", c.method, c.endpoint, got, err, c.want)
		}
	}
}

func FuzzResolve(f *testing.F) {
	for _, s := range []string{"/api/calls", "/api/comms/broadcasts/x/analytics", "/../", "//h/x", "/api/comms/broadcasts/%2e"} {
		f.Add("GET", s)
	}
	f.Fuzz(func(t *testing.T, method, endpoint string) {
		path, err := Resolve(method, endpoint)
		if err != nil {
			return
		}
		// Whatever resolves is a catalogued shape: absolute, no traversal, no escapes.
		if path == "" || path[0] != '/' || len(path) > 1 && path[1] == '/' {
			t.Fatalf("resolved %q to %q", endpoint, path)
		}
		for _, bad := range []string{"..", "%", "?", "#", "\\", " "} {
			if contains(path, bad) {
				t.Fatalf("resolved %q to %q containing %q", endpoint, path, bad)
			}
		}
	})
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
