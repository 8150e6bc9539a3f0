package errgroups_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/df-middleware/df-middleware/internal/errgroups"
	"github.com/df-middleware/df-middleware/internal/observe"
	"github.com/df-middleware/df-middleware/internal/testdb"
)

// sentryIngest is a stand-in for Sentry's envelope endpoint: it keeps every
// event item it receives, and the raw bodies.
type sentryIngest struct {
	mu     sync.Mutex
	events []map[string]any
	raw    []string
	paths  []string
}

func (s *sentryIngest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw = append(s.raw, string(body))
	s.paths = append(s.paths, r.URL.Path)
	// An envelope: a header line, then (item header line, payload line)*.
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sc.Scan() // envelope header
	for sc.Scan() {
		var item struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(sc.Bytes(), &item)
		if !sc.Scan() {
			break
		}
		if item.Type == "event" {
			var ev map[string]any
			if err := json.Unmarshal(sc.Bytes(), &ev); err == nil {
				s.events = append(s.events, ev)
			}
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (s *sentryIngest) snapshot() ([]map[string]any, string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.events...), strings.Join(s.raw, "\n"), append([]string(nil), s.paths...)
}

func TestSentryGetsTheSameFingerprintsAndNoSecret(t *testing.T) {
	t.Parallel()
	ingest := &sentryIngest{}
	srv := httptest.NewServer(ingest)
	defer srv.Close()
	dsn := "http://publickey0123@" + strings.TrimPrefix(srv.URL, "http://") + "/1"

	const secret = "upstream-api-key-s3cr3t-0099"
	fwd, err := errgroups.NewSentry(dsn, errgroups.SentryOptions{Environment: "test", ServerName: "test-instance"})
	if err != nil {
		t.Fatal(err)
	}
	st := testdb.New(t)
	rec := errgroups.New(st, zerolog.Nop(), errgroups.WithForwarder(fwd),
		errgroups.WithRedact(observe.NewRedactor([]string{secret, dsn})))
	ctx := context.Background()

	// Record: two errors differing only in an id (and the phone number), one different.
	a := rec.Record(ctx, "sync", fmt.Errorf("contact 6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b: 422 phone +13105550100 invalid (key %s)", secret), "")
	b := rec.Record(ctx, "sync", fmt.Errorf("contact 0f9e8d7c-6b5a-4c3d-2e1f-0a9b8c7d6e5f: 422 phone +14155550123 invalid (key %s)", secret), "")
	c := rec.Record(ctx, "sync", errors.New("aloware unreachable: connection refused for ana@example.com"), "")
	// Add/Flush: 5 occurrences of one group become one event with count 5.
	for i := range 5 {
		rec.Add("upstream:aloware", fmt.Errorf("aloware POST /api/v1/webhook/forms: 503 attempt %d token=%s", i, secret), "")
	}
	rec.Flush(ctx)
	d := observe.Fingerprint("upstream:aloware", errors.New("aloware POST /api/v1/webhook/forms: 503 attempt 0 token=[REDACTED]"))
	rec.Close(5 * time.Second)
	rec.Close(time.Second) // a second Close is harmless
	rec.Record(ctx, "sync", errors.New("after close"), "")

	if a.Fingerprint != b.Fingerprint || a.Fingerprint == c.Fingerprint {
		t.Fatalf("fingerprints a=%s b=%s c=%s", a.Fingerprint, b.Fingerprint, c.Fingerprint)
	}
	events, raw, paths := ingest.snapshot()
	if len(events) != 4 {
		t.Fatalf("Sentry got %d events, want 4 (3 Record + 1 flushed group); paths %v\n%s", len(events), paths, raw)
	}
	for _, p := range paths {
		if p != "/api/1/envelope/" {
			t.Errorf("posted to %s, want the project's envelope endpoint", p)
		}
	}
	byFP := map[string][]map[string]any{}
	for _, ev := range events {
		fp, _ := ev["fingerprint"].([]any)
		if len(fp) != 1 {
			t.Fatalf("event fingerprint %v, want exactly one value", ev["fingerprint"])
		}
		byFP[fp[0].(string)] = append(byFP[fp[0].(string)], ev)
	}
	if len(byFP[a.Fingerprint]) != 2 || len(byFP[c.Fingerprint]) != 1 {
		t.Fatalf("events by fingerprint: %d for the id-only pair (want 2), %d for the other (want 1)", len(byFP[a.Fingerprint]), len(byFP[c.Fingerprint]))
	}
	flushed := byFP[d.Fingerprint]
	if len(flushed) != 1 {
		t.Fatalf("the Add group %s: %d events, want 1", d.Fingerprint, len(flushed))
	}
	grp, _ := flushed[0]["contexts"].(map[string]any)["error_group"].(map[string]any)
	if n, _ := grp["count"].(float64); n != 5 {
		t.Errorf("flushed group's count = %v, want 5", grp["count"])
	}
	tags, _ := byFP[a.Fingerprint][0]["tags"].(map[string]any)
	if tags["component"] != "sync" || tags["error_class"] != a.Class {
		t.Errorf("tags %v, want component=sync error_class=%s", tags, a.Class)
	}
	for _, leak := range []string{secret, "+13105550100", "3105550100", "+14155550123", "ana@example.com", "after close"} {
		if strings.Contains(raw, leak) {
			t.Errorf("Sentry received %q", leak)
		}
	}
	if !strings.Contains(raw, observe.Redacted) || !strings.Contains(raw, "a***@example.com") {
		t.Errorf("samples not redacted the log way:\n%s", raw)
	}
}
