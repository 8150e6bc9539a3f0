// Package sandbox serves local stand-ins for the four upstream APIs the
// service calls — GHL (LeadConnector v2), Aloware, Verity and the Clerk
// Backend API — on one http.Handler, under the prefixes /ghl, /aloware,
// /verity and /clerk/v1, plus a control surface under /_sandbox. The
// contract it imitates is docs/upstreams.md: authentication, the providers'
// error bodies, rate limits with their headers and 429s, duplicate-contact
// behaviour, Clerk sessions and RS256 session tokens, Verity data.
//
// Tests start it with httptest.NewServer(sandbox.New(cfg)); cmd/sandbox
// serves it for `make run` and the benchmarks. Everything is in memory,
// guarded by one mutex; ids are deterministic (counters reset by Reset).
package sandbox

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Upstream names, as used by SetFaults, /_sandbox/faults and the call counts.
const (
	UpstreamGHL     = "ghl"
	UpstreamAloware = "aloware"
	UpstreamVerity  = "verity"
	UpstreamClerk   = "clerk"
)

// Upstreams lists the imitated upstreams.
var Upstreams = []string{UpstreamGHL, UpstreamAloware, UpstreamVerity, UpstreamClerk}

// Route prefixes of the imitations (the base URLs the service is given are
// the sandbox URL plus these).
const (
	PrefixGHL     = "/ghl"
	PrefixAloware = "/aloware"
	PrefixVerity  = "/verity"
	PrefixClerk   = "/clerk/v1"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultGHLBurst         = 100
	DefaultGHLInterval      = 10 * time.Second
	DefaultGHLDailyLimit    = 200_000
	DefaultAlowarePerMinute = 5000
	DefaultClerkIssuer      = "https://sandbox.clerk.accounts.dev"
)

// GHL API versions, per endpoint group.
const (
	GHLVersionContacts      = "2021-07-28"
	GHLVersionConversations = "2021-04-15"
)

// maxBody bounds every request body the imitations read.
const maxBody = 1 << 20

// Config configures a Server. Zero values get the defaults noted.
type Config struct {
	GHLToken      string // Bearer the GHL imitation accepts
	GHLLocationID string // the one location the GHL imitation owns
	AlowareToken  string // api_token the Aloware imitation accepts
	VerityAPIKey  string // X-API-Key accepted by Verity send-message
	// ClerkSecretKey is the Bearer the Clerk imitation accepts.
	ClerkSecretKey string

	// Seed loads the seed data on New and Reset: three Clerk users (one
	// with an active session, one with only an ended session, one with
	// none), five Verity broadcasts with analytics, two Verity calls and
	// two Aloware users.
	Seed bool

	GHLBurst      int           // requests per GHLInterval; 0 = 100, < 0 = unlimited
	GHLInterval   time.Duration // 0 = 10 s
	GHLDailyLimit int           // requests per UTC day; 0 = 200,000, < 0 = unlimited
	// AlowarePerMinute is Aloware's limit; 0 = 5,000, < 0 = unlimited.
	AlowarePerMinute int

	Now func() time.Time // clock; nil = time.Now

	// ClerkIssuer is the `iss` of session tokens; "" = DefaultClerkIssuer.
	ClerkIssuer string
	// ClerkKey signs session tokens; nil = one 2048-bit key generated per
	// process and shared by every Server that gets none.
	ClerkKey *rsa.PrivateKey
}

// Server is the sandbox: an http.Handler serving every imitation and the
// control surface. Safe for concurrent use.
type Server struct {
	cfg  Config
	mux  *http.ServeMux
	key  *rsa.PrivateKey
	kid  string
	now  func() time.Time
	rand func() float64

	mu      sync.Mutex
	d       *data
	faults  map[string]Faults
	ghlRate window
	ghlDay  daily
	aloRate window
}

// New returns a Server configured by cfg, seeded when cfg.Seed is set.
func New(cfg Config) *Server {
	if cfg.GHLBurst == 0 {
		cfg.GHLBurst = DefaultGHLBurst
	}
	if cfg.GHLInterval <= 0 {
		cfg.GHLInterval = DefaultGHLInterval
	}
	if cfg.GHLDailyLimit == 0 {
		cfg.GHLDailyLimit = DefaultGHLDailyLimit
	}
	if cfg.AlowarePerMinute == 0 {
		cfg.AlowarePerMinute = DefaultAlowarePerMinute
	}
	if cfg.ClerkIssuer == "" {
		cfg.ClerkIssuer = DefaultClerkIssuer
	}
	s := &Server{cfg: cfg, now: cfg.Now, rand: rand.Float64}
	if s.now == nil {
		s.now = time.Now
	}
	s.key = cfg.ClerkKey
	if s.key == nil {
		s.key = sharedKey()
	}
	s.kid = keyID(&s.key.PublicKey)
	s.mux = http.NewServeMux()
	s.routes()
	s.resetLocked()
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Reset returns the server to its initial state: seed data (when
// Config.Seed), no faults, fresh rate-limit windows, zero call counts and
// id counters. The Clerk signing key is kept.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

func (s *Server) resetLocked() {
	s.d = newData()
	s.faults = map[string]Faults{}
	s.ghlRate = window{limit: s.cfg.GHLBurst, interval: s.cfg.GHLInterval}
	s.ghlDay = daily{limit: s.cfg.GHLDailyLimit}
	s.aloRate = window{limit: s.cfg.AlowarePerMinute, interval: time.Minute}
	if s.cfg.Seed {
		s.seedLocked(s.now())
	}
}

// Faults are the failures injected into one upstream's answers. Latency
// is added before answering; with Outage every call is answered with
// Status (default 503) and the provider's error body; otherwise Rate429
// and ErrorRate are drawn per request (ErrorRate answers Status, default
// 500). With Match set, only the calls whose path, query string or body
// contains Match are faulted (one poison record: a phone number, an id);
// the others are answered normally. The control routes are never faulted.
type Faults struct {
	ErrorRate float64
	Status    int
	Rate429   float64
	Latency   time.Duration
	Outage    bool
	Match     string
}

type faultsJSON struct {
	ErrorRate float64 `json:"error_rate"`
	Status    int     `json:"status"`
	Rate429   float64 `json:"rate_429"`
	LatencyMS float64 `json:"latency_ms"`
	Outage    bool    `json:"outage"`
	Match     string  `json:"match,omitempty"`
}

// MarshalJSON renders the /_sandbox/faults shape (latency in ms).
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{
		ErrorRate: f.ErrorRate, Status: f.Status, Rate429: f.Rate429,
		LatencyMS: float64(f.Latency) / float64(time.Millisecond), Outage: f.Outage, Match: f.Match,
	})
}

// UnmarshalJSON reads the /_sandbox/faults shape.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var j faultsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*f = j.faults()
	return nil
}

func (j faultsJSON) faults() Faults {
	return Faults{ErrorRate: j.ErrorRate, Status: j.Status, Rate429: j.Rate429,
		Latency: time.Duration(j.LatencyMS * float64(time.Millisecond)), Outage: j.Outage, Match: j.Match}
}

// Validate reports a fault setting that cannot be applied.
func (f Faults) Validate() error {
	switch {
	case f.ErrorRate < 0 || f.ErrorRate > 1:
		return fmt.Errorf("error_rate %v is not within 0..1", f.ErrorRate)
	case f.Rate429 < 0 || f.Rate429 > 1:
		return fmt.Errorf("rate_429 %v is not within 0..1", f.Rate429)
	case f.Status != 0 && (f.Status < 400 || f.Status > 599):
		return fmt.Errorf("status %d is not an HTTP error status (400..599)", f.Status)
	case f.Latency < 0 || f.Latency > 10*time.Minute:
		return fmt.Errorf("latency %v is not within 0..10m", f.Latency)
	case f.Match != "" && f == (Faults{Match: f.Match}):
		return fmt.Errorf("match %q without a fault to inject", f.Match)
	}
	return nil
}

func (f Faults) zero() bool { return f == Faults{} }

// SetFaults sets the faults of one upstream ("ghl", "aloware", "verity",
// "clerk", or "all"); a zero Faults clears them. It panics on an unknown
// upstream name or an invalid setting (a programming error in a test).
func (s *Server) SetFaults(upstream string, f Faults) {
	if err := s.setFaults(upstream, f); err != nil {
		panic("sandbox.SetFaults: " + err.Error())
	}
}

func (s *Server) setFaults(upstream string, f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	names, err := upstreamNames(upstream)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		if f.zero() {
			delete(s.faults, n)
		} else {
			s.faults[n] = f
		}
	}
	return nil
}

func upstreamNames(upstream string) ([]string, error) {
	switch u := strings.ToLower(strings.TrimSpace(upstream)); u {
	case "all", "*":
		return Upstreams, nil
	case UpstreamGHL, UpstreamAloware, UpstreamVerity, UpstreamClerk:
		return []string{u}, nil
	}
	return nil, fmt.Errorf("unknown upstream %q (want ghl, aloware, verity, clerk or all)", upstream)
}

// ---- routing ----------------------------------------------------------

// handlerFunc is an imitation's endpoint: the request body is already read.
type handlerFunc func(w http.ResponseWriter, r *http.Request, body []byte)

// route registers pattern ("METHOD /path" relative to the upstream's
// prefix) with the per-upstream pipeline: call count, faults, auth, rate
// limit, then h.
func (s *Server) route(upstream, pattern string, h handlerFunc) {
	method, path, _ := strings.Cut(pattern, " ")
	key := upstream + " " + strings.ReplaceAll(pattern, "{$}", "")
	s.mux.HandleFunc(method+" "+prefixOf(upstream)+path, func(w http.ResponseWriter, r *http.Request) {
		s.serveUpstream(w, r, upstream, key, path, h)
	})
}

func prefixOf(upstream string) string {
	switch upstream {
	case UpstreamGHL:
		return PrefixGHL
	case UpstreamAloware:
		return PrefixAloware
	case UpstreamVerity:
		return PrefixVerity
	}
	return PrefixClerk
}

func (s *Server) routes() {
	s.ghlRoutes()
	s.alowareRoutes()
	s.verityRoutes()
	s.clerkRoutes()
	// Anything else under a prefix: the provider's 404, after counting and faults.
	for _, up := range Upstreams {
		s.mux.HandleFunc(prefixOf(up)+"/", func(w http.ResponseWriter, r *http.Request) {
			s.serveUpstream(w, r, up, up+" unmatched", "", nil)
		})
	}
	s.controlRoutes()
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{
			"error": "no sandbox upstream at " + r.URL.Path + "; prefixes are /ghl, /aloware, /verity, /clerk/v1 and /_sandbox",
		})
	})
}

func (s *Server) serveUpstream(w http.ResponseWriter, r *http.Request, upstream, key, path string, h handlerFunc) {
	s.mu.Lock()
	s.d.counts[key]++
	f := s.faults[upstream]
	s.mu.Unlock()

	if upstream == UpstreamGHL {
		s.ghlPeekHeaders(w)
	} else if upstream == UpstreamAloware {
		s.alowarePeekHeaders(w)
	}
	var body []byte
	read := false
	if f.Match != "" { // the body decides whether this call is faulted
		var err error
		if body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody)); err != nil {
			writeUpstreamError(w, upstream, http.StatusRequestEntityTooLarge, "request body too large")
			return
		}
		read = true
		if !matches(r, body, f.Match) {
			f = Faults{}
		}
	}
	if !s.injectFaults(w, r, upstream, f) {
		return
	}
	if h == nil {
		s.notFound(w, r, upstream)
		return
	}
	if !read {
		var err error
		if body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody)); err != nil {
			writeUpstreamError(w, upstream, http.StatusRequestEntityTooLarge, "request body too large")
			return
		}
	}
	switch upstream {
	case UpstreamGHL:
		if !s.ghlGate(w, r, path) {
			return
		}
	case UpstreamAloware:
		if !s.alowareGate(w, r, body) {
			return
		}
	case UpstreamVerity:
		if !s.verityGate(w, r, path) {
			return
		}
	case UpstreamClerk:
		if !s.clerkGate(w, r) {
			return
		}
	}
	h(w, r, body)
}

// injectFaults applies f; false means the request has been answered (or
// its client went away during the added latency).
func (s *Server) injectFaults(w http.ResponseWriter, r *http.Request, upstream string, f Faults) bool {
	if f.zero() {
		return true
	}
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return false
		}
	}
	if f.Outage {
		st := f.Status
		if st == 0 {
			st = http.StatusServiceUnavailable
		}
		writeUpstreamError(w, upstream, st, "")
		return false
	}
	if f.Rate429 > 0 && s.rand() < f.Rate429 {
		w.Header().Set("Retry-After", "1")
		writeUpstreamError(w, upstream, http.StatusTooManyRequests, "")
		return false
	}
	if f.ErrorRate > 0 && s.rand() < f.ErrorRate {
		st := f.Status
		if st == 0 {
			st = http.StatusInternalServerError
		}
		writeUpstreamError(w, upstream, st, "")
		return false
	}
	return true
}

// matches reports whether the request's path, query string (decoded, so a
// phone number's '+' matches either way) or body contains sub.
func matches(r *http.Request, body []byte, sub string) bool {
	if strings.Contains(r.URL.Path, sub) || strings.Contains(r.URL.RawQuery, sub) || bytes.Contains(body, []byte(sub)) {
		return true
	}
	for _, vs := range r.URL.Query() {
		for _, v := range vs {
			if strings.Contains(v, sub) {
				return true
			}
		}
	}
	return false
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request, upstream string) {
	switch upstream {
	case UpstreamGHL: // NestJS
		rel := strings.TrimPrefix(r.URL.Path, PrefixGHL)
		writeJSON(w, http.StatusNotFound, map[string]any{
			"statusCode": 404, "message": "Cannot " + r.Method + " " + rel, "error": "Not Found"})
	case UpstreamAloware:
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found."})
	case UpstreamVerity:
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "Not found"})
	default:
		writeClerkError(w, http.StatusNotFound, "resource_not_found", "not found", "Resource not found")
	}
}

// writeUpstreamError answers status with the provider's error shape; msg
// "" uses the status text.
func writeUpstreamError(w http.ResponseWriter, upstream string, status int, msg string) {
	if msg == "" {
		msg = http.StatusText(status)
	}
	switch upstream {
	case UpstreamGHL:
		body := map[string]any{"statusCode": status, "message": msg}
		if status != http.StatusTooManyRequests {
			body["error"] = http.StatusText(status)
		}
		writeJSON(w, status, body)
	case UpstreamAloware:
		if status == http.StatusTooManyRequests {
			msg = "Too Many Attempts."
		}
		writeJSON(w, status, map[string]any{"message": msg})
	case UpstreamVerity:
		writeJSON(w, status, map[string]any{"error": msg})
	default:
		code := "internal_clerk_error"
		switch {
		case status == http.StatusTooManyRequests:
			code = "too_many_requests"
		case status < 500:
			code = "request_error"
		}
		writeClerkError(w, status, code, msg, msg)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"sandbox: cannot encode response"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// ---- control surface --------------------------------------------------

func (s *Server) controlRoutes() {
	s.mux.HandleFunc("GET /_sandbox/state", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.State())
	})
	s.mux.HandleFunc("GET /_sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.State().Faults)
	})
	s.mux.HandleFunc("POST /_sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Upstream string `json:"upstream"`
			faultsJSON
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "body must be a JSON object with upstream, error_rate, status, rate_429, latency_ms, outage: " + err.Error()})
			return
		}
		f := req.faultsJSON.faults()
		if err := s.setFaults(req.Upstream, f); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, s.State().Faults)
	})
	s.mux.HandleFunc("DELETE /_sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		up := r.URL.Query().Get("upstream")
		if up == "" {
			up = "all"
		}
		if err := s.setFaults(up, Faults{}); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, s.State().Faults)
	})
	s.mux.HandleFunc("POST /_sandbox/reset", func(w http.ResponseWriter, r *http.Request) {
		s.Reset()
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	})
	s.mux.HandleFunc("/_sandbox/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{
			"error": "control routes: GET /_sandbox/state, GET|POST|DELETE /_sandbox/faults, POST /_sandbox/reset"})
	})
}

// Development credentials: what cmd/sandbox accepts when the environment
// sets none (the service, pointed at the sandbox by `make run`, gets the
// same values).
const (
	DevGHLAPIKey      = "sandbox-ghl-api-key"
	DevGHLLocationID  = "sandbox-location"
	DevAlowareToken   = "sandbox-aloware-token"
	DevVerityAPIKey   = "sandbox-verity-api-key"
	DevClerkSecretKey = "sk_test_sandbox"
)
