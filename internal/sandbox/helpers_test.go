package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	tGHLToken = "ghl-test-token"
	tLocation = "loc-test-1"
	tAloToken = "aloware-test-token"
	tVerKey   = "verity-test-key"
	tClerkKey = "sk_test_sandbox"
)

// clock is a settable clock for rate-limit and token-expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t   *testing.T
	sb  *Server
	srv *httptest.Server
	clk *clock
}

func testConfig() Config {
	return Config{
		GHLToken: tGHLToken, GHLLocationID: tLocation, AlowareToken: tAloToken,
		VerityAPIKey: tVerKey, ClerkSecretKey: tClerkKey, Seed: true,
	}
}

// newEnv starts a sandbox over HTTP; fake selects the settable clock.
func newEnv(t *testing.T, fake bool, mod func(*Config)) *env {
	t.Helper()
	cfg := testConfig()
	e := &env{t: t}
	if fake {
		e.clk = &clock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}
		cfg.Now = e.clk.Now
	}
	if mod != nil {
		mod(&cfg)
	}
	e.sb = New(cfg)
	e.srv = httptest.NewServer(e.sb)
	t.Cleanup(e.srv.Close)
	return e
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("response is not JSON: %v: %s", err, r.body)
	}
	return v
}

func (r resp) obj(t *testing.T) map[string]any {
	t.Helper()
	m, ok := r.json(t).(map[string]any)
	if !ok {
		t.Fatalf("response is not a JSON object: %s", r.body)
	}
	return m
}

// do sends a request; hdr values "" are skipped.
func (e *env) do(method, path string, hdr map[string]string, body string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func ghlHdr(version string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tGHLToken, "Version": version}
}

var (
	hContacts = ghlHdr(GHLVersionContacts)
	hConvs    = ghlHdr(GHLVersionConversations)
)

// anyValue in an expectation matches any present value.
const anyValue = "<any>"

// matchJSON checks got against want: objects by the keys of want (extra
// keys in got are allowed unless exact), arrays and scalars exactly.
func matchJSON(want, got any, exact bool) error {
	if s, ok := want.(string); ok && s == anyValue {
		return nil
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("want object, got %T %v", got, got)
		}
		if exact && len(g) != len(w) {
			return fmt.Errorf("want keys %v, got keys %v", keys(w), keys(g))
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				return fmt.Errorf("missing key %q in %v", k, g)
			}
			if err := matchJSON(wv, gv, exact); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		return nil
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("want %v, got %v", w, got)
		}
		for i := range w {
			if err := matchJSON(w[i], g[i], exact); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return nil
	}
	if !reflect.DeepEqual(want, got) {
		return fmt.Errorf("want %#v, got %#v", want, got)
	}
	return nil
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// expect checks status and body: wantBody is JSON text, compared exactly
// when exact, else as a subset ("<any>" matches any value).
func expect(t *testing.T, name string, r resp, status int, wantBody string, exact bool) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d; body %s", name, r.status, status, r.body)
		return
	}
	if wantBody == "" {
		return
	}
	var want any
	if err := json.Unmarshal([]byte(wantBody), &want); err != nil {
		t.Fatalf("%s: bad expectation %s: %v", name, wantBody, err)
	}
	var got any
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Errorf("%s: body is not JSON: %s", name, r.body)
		return
	}
	if err := matchJSON(want, got, exact); err != nil {
		t.Errorf("%s: body %s: %v", name, r.body, err)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q", name, ct)
	}
}

// step is one request of a table and what it must answer.
type step struct {
	name   string
	method string
	path   string
	hdr    map[string]string
	body   string
	status int
	want   string // JSON; "" = status only
	exact  bool
}

func (e *env) run(steps []step) {
	e.t.Helper()
	for _, s := range steps {
		expect(e.t, s.name, e.do(s.method, s.path, s.hdr, s.body), s.status, s.want, s.exact)
	}
}
