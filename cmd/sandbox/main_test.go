package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/intake"
	"github.com/df-middleware/df-middleware/internal/sandbox"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// syncBuffer is a bytes.Buffer safe for a writer and a poller.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// checkLogLines: every line of stderr but the listening line is a JSON log
// line of the contract shape.
func checkLogLines(t *testing.T, stderr string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "sandbox listening on http://") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("stderr line is not JSON: %q", line)
			continue
		}
		for _, k := range []string{"timestamp", "level", "service", "component", "message"} {
			if m[k] == nil || m[k] == "" {
				t.Errorf("log line lacks %s: %s", k, line)
			}
		}
	}
}

func TestGHLPublicKey(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "dev", "ghl.pem")
	var out1, out2, errb bytes.Buffer
	if code := run(context.Background(), []string{"ghl-public-key", "--ghl-signing-key", keyFile}, envOf(nil), &out1, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	checkLogLines(t, errb.String())
	if code := run(context.Background(), []string{"ghl-public-key"}, envOf(map[string]string{"SANDBOX_GHL_SIGNING_KEY": keyFile}), &out2, &errb); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if out1.String() != out2.String() || strings.Count(out1.String(), "\n") != 1 {
		t.Errorf("outputs %q / %q", out1.String(), out2.String())
	}
	if _, err := intake.ParseEd25519PublicKey(strings.TrimSpace(out1.String())); err != nil {
		t.Errorf("the service cannot read the printed key: %v", err)
	}
}

// receiver imitates the service's intake with its own verifiers.
type receiver struct {
	t        *testing.T
	ghl      intake.GHLVerifier
	aloware  intake.AlowareAuth
	secret   []byte
	mu       sync.Mutex
	got      map[string]int // source → accepted
	dedupe   map[string]bool
	refuse   bool
	failures []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	source := strings.TrimPrefix(r.URL.Path, "/api/webhooks/")
	fail := func(msg string) {
		rc.mu.Lock()
		rc.failures = append(rc.failures, source+": "+msg)
		rc.mu.Unlock()
		http.Error(w, msg, http.StatusUnauthorized)
	}
	if rc.refuse {
		http.Error(w, `{"error":"nope"}`, http.StatusUnauthorized)
		return
	}
	var err error
	switch source {
	case intake.SourceGHL:
		err = rc.ghl.Verify(r.Header, body)
	case intake.SourceAloware:
		err = rc.aloware.Verify(r.Header)
	case intake.SourceTexting:
		err = intake.VerifyHMAC(r.Header, body, rc.secret, intake.TextingSignatureHeaders...)
	case intake.SourceBroadcast:
		err = intake.VerifyHMAC(r.Header, body, rc.secret, intake.BroadcastSignatureHeaders...)
	default:
		fail("unknown path " + r.URL.Path)
		return
	}
	if err != nil {
		fail(err.Error())
		return
	}
	p, err := intake.Parse(source, body)
	if err != nil {
		fail(err.Error())
		return
	}
	if source == intake.SourceGHL {
		if p.Timestamp.IsZero() {
			fail("GHL delivery without timestamp")
			return
		}
		if err := intake.CheckTimestamp(p.Timestamp, time.Now(), 0); err != nil {
			fail(err.Error())
			return
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.dedupe[p.DedupeKey] {
		rc.failures = append(rc.failures, source+": duplicate "+p.DedupeKey)
	}
	rc.dedupe[p.DedupeKey] = true
	rc.got[source]++
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"id":"evt"}`))
}

func TestDeliver(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "ghl.pem")
	var pub bytes.Buffer
	if code := run(context.Background(), []string{"ghl-public-key", "--ghl-signing-key", keyFile}, envOf(nil), &pub, io.Discard); code != 0 {
		t.Fatal("ghl-public-key failed")
	}
	ghl, err := intake.NewGHLVerifier(strings.TrimSpace(pub.String()), "none")
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{t: t, ghl: ghl, aloware: intake.AlowareAuth{BearerToken: "alo-bearer"}, secret: []byte("verity-secret"),
		got: map[string]int{}, dedupe: map[string]bool{}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	vars := map[string]string{"VERITY_WEBHOOK_SECRET": "verity-secret", "ALOWARE_WEBHOOK_BEARER_TOKEN": "alo-bearer",
		"GHL_LOCATION_ID": "loc-x", "SANDBOX_GHL_SIGNING_KEY": keyFile}

	var stderr bytes.Buffer
	code := run(context.Background(), []string{"deliver", "--to", srv.URL + "/", "--kind", "all", "--count", "3"}, envOf(vars), io.Discard, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	checkLogLines(t, stderr.String())
	if len(rc.failures) > 0 {
		t.Errorf("refused: %v", rc.failures)
	}
	want := map[string]int{"ghl": 3, "aloware": 3, "texting": 6, "broadcast": 3}
	for k, n := range want {
		if rc.got[k] != n {
			t.Errorf("%s: %d accepted, want %d (%v)", k, rc.got[k], n, rc.got)
		}
	}
	// A second run is not a duplicate of the first.
	if code := run(context.Background(), []string{"deliver", "--to", srv.URL, "--kind", sandbox.KindGHLContact}, envOf(vars), io.Discard, io.Discard); code != 0 {
		t.Fatal("second run failed")
	}
	if len(rc.failures) > 0 {
		t.Errorf("second run: %v", rc.failures)
	}

	// Refused deliveries make the command fail, and missing secrets are named.
	rc.refuse = true
	stderr.Reset()
	if code := run(context.Background(), []string{"deliver", "--to", srv.URL, "--kind", "texting-stop"}, envOf(vars), io.Discard, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "delivery refused") {
		t.Errorf("refused: exit %d: %s", code, stderr.String())
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"deliver", "--to", srv.URL, "--kind", "broadcast-analytics"}, envOf(nil), io.Discard, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "VERITY_WEBHOOK_SECRET") {
		t.Errorf("no secret: exit %d: %s", code, stderr.String())
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"nope"}, 2},
		{[]string{"deliver"}, 2},
		{[]string{"deliver", "--kind", "ghl-contact", "--count", "0"}, 2},
		{[]string{"serve", "--bogus"}, 2},
		{[]string{"serve", "extra"}, 2},
		{[]string{"help"}, 0},
		{[]string{"serve", "-h"}, 0},
		{[]string{"serve", "--addr", "127.0.0.1:0", "--log-level", "loud"}, 1},
		{[]string{"serve", "--addr", "127.0.0.1:0", "--error-rate", "2"}, 1},
		{[]string{"serve", "--addr", "127.0.0.1:0", "--faults-upstream", "hubspot", "--latency", "1ms"}, 1},
	} {
		var stdout bytes.Buffer
		if code := run(context.Background(), tc.args, envOf(nil), &stdout, io.Discard); code != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.args, code, tc.code)
		}
		if stdout.Len() > 0 {
			t.Errorf("%v wrote to stdout: %q", tc.args, stdout.String())
		}
	}
}

func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout bytes.Buffer
	stderr := &syncBuffer{}
	vars := map[string]string{"GHL_API_KEY": "real-looking-ghl-key", "SANDBOX_ADDR": "127.0.0.1:0", "SANDBOX_LATENCY": "1ms"}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--log-level", "debug", "--ghl-burst", "2"}, envOf(vars), &stdout, stderr)
	}()
	var base string
	deadline := time.Now().Add(10 * time.Second)
	for base == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no listening line: %s", stderr.String())
		}
		for _, line := range strings.Split(stderr.String(), "\n") {
			if rest, ok := strings.CutPrefix(line, "sandbox listening on "); ok {
				base = rest
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	get := func(path string, hdr map[string]string) *http.Response {
		req, _ := http.NewRequest("GET", base+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	ghl := map[string]string{"Authorization": "Bearer real-looking-ghl-key", "Version": sandbox.GHLVersionContacts}
	if res := get("/ghl/contacts/x", ghl); res.StatusCode != 400 || res.Header.Get("X-RateLimit-Max") != "2" {
		t.Errorf("GHL with the env key: %d %v", res.StatusCode, res.Header)
	}
	if res := get("/ghl/contacts/x", map[string]string{"Authorization": "Bearer " + sandbox.DevGHLAPIKey, "Version": sandbox.GHLVersionContacts}); res.StatusCode != 401 {
		t.Errorf("the dev key is accepted although GHL_API_KEY is set: %d", res.StatusCode)
	}
	if res := get("/aloware/api/v1/webhook/users?api_token="+sandbox.DevAlowareToken, nil); res.StatusCode != 200 {
		t.Errorf("aloware with the dev token: %d", res.StatusCode)
	}
	if res := get("/_sandbox/faults", nil); res.StatusCode != 200 {
		t.Errorf("faults: %d", res.StatusCode)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	if stdout.Len() > 0 {
		t.Errorf("serve wrote to stdout: %q", stdout.String())
	}
	logs := stderr.String()
	checkLogLines(t, logs)
	if strings.Contains(logs, "real-looking-ghl-key") || strings.Contains(logs, sandbox.DevAlowareToken) {
		t.Error("a credential was logged")
	}
	for _, want := range []string{`"path":"/ghl/contacts/x"`, `"variable":"ALOWARE_API_TOKEN"`, `"GHL_BASE_URL":"` + base + `/ghl"`, "faults injected"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}
