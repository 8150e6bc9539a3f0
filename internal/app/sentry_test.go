package app_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/df-middleware/df-middleware/internal/sandbox"
	"github.com/df-middleware/df-middleware/internal/store"
)

// TestFailuresReachSentryWithTheirGroupFingerprint: with SENTRY_DSN set, a
// failed job's error groups are sent to Sentry (flushed at shutdown at the
// latest) under the fingerprints stored in error_groups, without secrets or
// unmasked phone numbers.
func TestFailuresReachSentryWithTheirGroupFingerprint(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var bodies []string
	ingest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	defer ingest.Close()
	dsn := "http://sentrypublickey@" + strings.TrimPrefix(ingest.URL, "http://") + "/7"
	h, sb := startSynced(t, map[string]string{"SENTRY_DSN": dsn})
	sb.SetFaults(sandbox.UpstreamAloware, sandbox.Faults{Outage: true, Status: http.StatusUnprocessableEntity})
	id := h.post("ghl", ghlContactBody("ContactCreate", "sentry-1", "Sam", "+13105550177"))
	h.waitStatus(id, store.StatusError)
	h.stop()
	<-h.stopped // Run's shutdown flushes the error groups, then Sentry

	rows, err := h.st.Pool.Query(context.Background(), `SELECT fingerprint FROM error_groups`)
	if err != nil {
		t.Fatal(err)
	}
	var fps []string
	for rows.Next() {
		var fp string
		_ = rows.Scan(&fp)
		fps = append(fps, fp)
	}
	rows.Close()
	mu.Lock()
	all := strings.Join(bodies, "\n")
	mu.Unlock()
	if len(fps) == 0 {
		t.Fatal("no error group recorded")
	}
	for _, fp := range fps {
		if !strings.Contains(all, `"fingerprint":["`+fp+`"]`) {
			t.Errorf("group %s not sent to Sentry; received:\n%s", fp, all)
		}
	}
	for _, leak := range []string{adminSecret, webhookSecret, sandbox.DevAlowareToken, sandbox.DevGHLAPIKey, gatewayKey, "+13105550177", "3105550177", "sam@example.com"} {
		if strings.Contains(all, leak) {
			t.Errorf("Sentry received %q", leak)
		}
	}
}
