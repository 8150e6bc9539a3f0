package main

import (
	"strings"
	"testing"
)

// stream is a govulncheck -format json output in miniature: one standard
// library vulnerability called, the same id called through x/net too, one
// module vulnerability called, and one only imported.
const stream = `{"config":{"go_version":"go1.26.8","scan_level":"symbol"}}
{"osv":{"id":"GO-1","summary":"net/http bug"}}
{"osv":{"id":"GO-2","summary":"jose bug"}}
{"osv":{"id":"GO-3","summary":"unused bug"}}
{"finding":{"osv":"GO-1","fixed_version":"v1.26.9","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http","function":"Serve","receiver":"*Server"},{"module":"example.com/m","package":"example.com/m/app","function":"Run","position":{"filename":"app/app.go","line":7}}]}}
{"finding":{"osv":"GO-2","fixed_version":"v3.0.5","trace":[{"module":"github.com/go-jose/go-jose/v3","version":"v3.0.4","package":"github.com/go-jose/go-jose/v3","function":"ParseSigned"},{"module":"example.com/m","package":"example.com/m/auth","function":"Verify","position":{"filename":"auth/auth.go","line":3}}]}}
{"finding":{"osv":"GO-3","trace":[{"module":"golang.org/x/text","version":"v0.3.7","package":"golang.org/x/text/language"}]}}
`

func TestRun(t *testing.T) {
	const xnet = `{"finding":{"osv":"GO-1","fixed_version":"v0.60.0","trace":[{"module":"golang.org/x/net","version":"v0.50.0","package":"golang.org/x/net/http2","function":"ServeConn","receiver":"*Server"},{"module":"example.com/m","package":"example.com/m/app","function":"Run"}]}}` + "\n"
	for _, c := range []struct {
		name, in string
		accept   []string
		strict   bool
		wantErr  bool
		want     []string
	}{
		{"module finding fails", stream, []string{"GO-1"}, false, true,
			[]string{"GO-1 ACCEPTED", "GO-2 FAIL: jose bug", "github.com/go-jose/go-jose/v3@v3.0.4, fixed in v3.0.5",
				"auth/auth.go:3: auth.Verify → go-jose/v3.ParseSigned", "app/app.go:7: app.Run → http.Server.Serve",
				"2 vulnerabilities in called code (1 failing, 1 accepted), 1 more"}},
		{"module ids cannot be accepted", stream, []string{"GO-1", "GO-2"}, false, true, []string{"GO-2 FAIL"}},
		{"only accepted stdlib: passes", stdlibOnly(), []string{"GO-1", "GO-9"}, false, false,
			[]string{"GO-1 ACCEPTED", "accepted id GO-9 is not reported any more", "(0 failing, 1 accepted)"}},
		{"strict accepts nothing", stdlibOnly(), []string{"GO-1"}, true, true, []string{"GO-1 FAIL"}},
		{"the same id in x/net is not covered by the stdlib acceptance", stdlibOnly() + xnet, []string{"GO-1"}, false, true,
			[]string{"GO-1 ACCEPTED", "GO-1 FAIL", "golang.org/x/net@v0.50.0"}},
		{"nothing found", `{"config":{"go_version":"go1.26.8"}}`, nil, false, false, []string{"0 vulnerabilities in called code"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out strings.Builder
			err := run(strings.NewReader(c.in), &out, c.accept, c.strict)
			if (err != nil) != c.wantErr {
				t.Fatalf("run = %v, want error %v\n%s", err, c.wantErr, out.String())
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	if err := run(strings.NewReader("{not json"), &strings.Builder{}, nil, false); err == nil {
		t.Error("unreadable input passed")
	}
}

func stdlibOnly() string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(stream, "\n") {
		if !strings.Contains(line, `"osv":"GO-2"`) {
			b.WriteString(line)
		}
	}
	return b.String()
}
