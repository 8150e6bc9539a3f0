package gateway

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
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
		// other hosts, however spelled
		{"GET", "https://evil.example/api/calls", ""},
		{"GET", "HTTP://evil.example/api/calls", ""},
		{"GET", "http:/api/calls", ""},
		{"GET", "@evil.example/api/calls", ""},
		{"GET", "/@evil.example/api/calls", ""},
		{"GET", "///evil.example/api/calls", ""},
		{"GET", "/\\evil.example/api/calls", ""},
		{"GET", "\\\\evil.example\\api\\calls", ""},
		{"GET", "/api/comms/broadcasts/evil.example", ""},
		// traversal, plain and encoded
		{"GET", "/api/comms/broadcasts/bc1/analytics/..", ""},
		{"GET", "/api/comms/broadcasts/.", ""},
		{"GET", "/api/./calls", ""},
		{"GET", "/api/comms/broadcasts/%2E%2E", ""},
		{"GET", "/api/comms/broadcasts/.%2e", ""},
		{"GET", "/api/comms/broadcasts/%252e%252e", ""},
		{"GET", "/api/comms/broadcasts/..%2f..%2fadmin", ""},
		{"GET", "/api/comms/broadcasts/%2f", ""},
		{"GET", "/api/comms/broadcasts/..\\..\\admin", ""},
		{"GET", "/api/comms/broadcasts/\uff0e\uff0e", ""}, // fullwidth dots
		// header and request-line injection, odd bytes
		{"GET", "/api/calls\r\nHost: evil.example", ""},
		{"GET", "/api/calls\x00", ""},
		{"GET", "/api/calls;x=1", ""},
		{"GET", "/api/calls//", ""},
		{"GET", "/api/comms/broadcasts//analytics", ""},
		{"GET", "/api/comms/broadcasts/" + strings.Repeat("a", 129), ""},
		// outside the catalogue: other paths, case, methods
		{"GET", "/api/CALLS", ""},
		{"GET", "/api/calls/extra", ""},
		{"GET", "/api/comms/send-message", ""},
		{"PUT", "/api/comms/send-message", ""},
		{"CONNECT", "/api/calls", ""},
		{"GET POST", "/api/calls", ""},
		// accepted spellings of catalogued calls
		{" post ", "/api/comms/send-message", "/api/comms/send-message"},
		{"GET", "/api/comms/broadcasts/" + strings.Repeat("a", 128), "/api/comms/broadcasts/" + strings.Repeat("a", 128)},
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
	for _, ep := range Catalog {
		f.Add(ep.Method, strings.ReplaceAll(ep.Path, "{id}", "bc_0001"))
		f.Add(strings.ToLower(ep.Method), strings.ReplaceAll(ep.Path, "{id}", "a-b")+"/")
	}
	for _, s := range []string{"/api/calls", "/api/comms/broadcasts/x/analytics", "/../", "//h/x", "/api/comms/broadcasts/%2e",
		"/api/comms/broadcasts/" + strings.Repeat("a", 129), "/api/comms/broadcasts/\u212a", "/api/calls//", "/"} {
		f.Add("GET", s)
	}
	f.Add(" post\t", "/api/comms/send-message")
	f.Fuzz(func(t *testing.T, method, endpoint string) {
		path, err := Resolve(method, endpoint)
		if err != nil {
			if !errors.Is(err, ErrNotCatalogued) || path != "" {
				t.Fatalf("Resolve(%q, %q) = %q, %v: want \"\" and ErrNotCatalogued", method, endpoint, path, err)
			}
			return
		}
		// Whatever resolves is a catalogued shape: absolute, no traversal, no escapes.
		if path == "" || path[0] != '/' || len(path) > 1 && path[1] == '/' {
			t.Fatalf("resolved %q to %q", endpoint, path)
		}
		for _, bad := range []string{"..", "%", "?", "#", "\\", " ", "//", "@", ":"} {
			if contains(path, bad) {
				t.Fatalf("resolved %q to %q containing %q", endpoint, path, bad)
			}
		}
		// ... of the catalogue entry for that method: each {id} one safe
		// segment, every other segment literal.
		m := strings.ToUpper(strings.TrimSpace(method))
		if m == "" {
			m = http.MethodGet
		}
		if !slices.ContainsFunc(Catalog, func(ep Endpoint) bool { return ep.Method == m && matchesTemplate(ep.Path, path) }) {
			t.Fatalf("Resolve(%q, %q) = %q, which is no catalogued %s endpoint", method, endpoint, path, m)
		}
		// The path is the endpoint less at most a trailing slash, and
		// resolving it again changes nothing.
		if path != endpoint && path+"/" != endpoint {
			t.Fatalf("Resolve(%q, %q) = %q: more than a trailing slash changed", method, endpoint, path)
		}
		if again, err := Resolve(m, path); err != nil || again != path {
			t.Fatalf("Resolve(%q, %q) = %q, %v: not stable", m, path, again, err)
		}
		// Appended to the configured base URL (as internal/upstream does), it
		// stays on that host, with no query or fragment.
		const base = "https://verity.example.com/v1"
		if u, err := url.Parse(base + path); err != nil || u.Host != "verity.example.com" || u.Path != "/v1"+path ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			t.Fatalf("path %q escapes the base URL %s: %v, %v", path, base, u, err)
		}
	})
}

// matchesTemplate is an independent check of a path against a catalogue
// template: {id} is 1-128 of [A-Za-z0-9_-].
func matchesTemplate(tmpl, path string) bool {
	ts, ps := strings.Split(tmpl, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		if ts[i] != "{id}" {
			if ts[i] != ps[i] {
				return false
			}
			continue
		}
		if len(ps[i]) < 1 || len(ps[i]) > 128 {
			return false
		}
		for _, c := range []byte(ps[i]) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return false
			}
		}
	}
	return true
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
