package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/store"
)

type sourceCase struct {
	source    string
	body      func(i int) []byte // a valid delivery; different i, different event
	unknown   []byte             // valid, signed, but no handler wants it
	sign      func(h *harness, body []byte) http.Header
	badSign   http.Header // a present but wrong credential
	bodyBound bool        // the credential signs the body (not Aloware's static auth)
	wantType  string
	wantKind  string
	wantIDOf0 string
}

func sourceCases() []sourceCase {
	return []sourceCase{
		{
			source:   "ghl",
			body:     func(i int) []byte { return nowGHL("ContactCreate", fmt.Sprintf("c%d", i)) },
			unknown:  nowGHL("SomethingNew", "x1"),
			sign:     func(h *harness, b []byte) http.Header { return h.signGHL(b) },
			badSign:  http.Header{"X-Ghl-Signature": {"c2lnbmF0dXJl"}},
			wantType: "ContactCreate", wantKind: "contact", wantIDOf0: "c0", bodyBound: true,
		},
		{
			source: "aloware",
			body: func(i int) []byte {
				return fmt.Appendf(nil, `{"event":"InboundSMS-DispositionCompleted","body":{"id":%d,"contact_id":4321,"body":"hi"}}`, 100+i)
			},
			unknown:  []byte(`{"event":"BrandNewEvent","body":{"id":1}}`),
			sign:     func(h *harness, b []byte) http.Header { return alowareBearerAuth(b) },
			badSign:  http.Header{"Authorization": {"Bearer not-the-token"}},
			wantType: "InboundSMS-DispositionCompleted", wantKind: "message", wantIDOf0: "100",
		},
		{
			source: "texting",
			body: func(i int) []byte {
				return fmt.Appendf(nil, `{"eventType":"message.received","messageId":"txt_%d","conversationId":"conv","from":"+13105550100","to":"+18555550199","body":"hi"}`, i)
			},
			unknown:  []byte(`{"eventType":"message.teleported","messageId":"m-x"}`),
			sign:     func(h *harness, b []byte) http.Header { return signTexting(b) },
			badSign:  http.Header{"X-Texting-Signature": {"00" + string(bytes.Repeat([]byte("ab"), 31))}},
			wantType: "message.received", wantKind: "message", wantIDOf0: "txt_0", bodyBound: true,
		},
		{
			source: "broadcast",
			body: func(i int) []byte {
				return fmt.Appendf(nil, `{"eventType":"analytics_updated","broadcastId":"bc_%d","analytics":{"sent":10}}`, i)
			},
			unknown:  []byte(`{"eventType":"broadcast_exploded","broadcastId":"bc_x"}`),
			sign:     func(h *harness, b []byte) http.Header { return signBroadcast(b) },
			badSign:  http.Header{"X-Broadcast-Signature": {"sha256=" + string(bytes.Repeat([]byte("0"), 64))}},
			wantType: "analytics_updated", wantKind: "broadcast", wantIDOf0: "bc_0", bodyBound: true,
		},
	}
}

func TestIntakePerSource(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	for _, c := range sourceCases() {
		t.Run(c.source, func(t *testing.T) {
			path := "/api/webhooks/" + c.source
			before := h.count("source = $1", c.source)

			// Valid delivery: 202 with the new id, stored with what intake extracted.
			body := c.body(0)
			r := h.do("POST", path, c.sign(h, body), body)
			if r.code != http.StatusAccepted || r.body["status"] != "accepted" {
				t.Fatalf("valid delivery: %d %s", r.code, r.raw)
			}
			id := r.body["id"].(string)
			ev, err := h.st.GetEvent(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if ev.EventType != c.wantType || ev.EntityType != c.wantKind || ev.EntityID != c.wantIDOf0 || ev.RequestID == "" {
				t.Fatalf("stored %s/%s/%s req %q, want %s/%s/%s", ev.EventType, ev.EntityType, ev.EntityID, ev.RequestID, c.wantType, c.wantKind, c.wantIDOf0)
			}

			// The same delivery again: 200 with the existing id, one row.
			r = h.do("POST", path, c.sign(h, body), body)
			if r.code != http.StatusOK || r.body["status"] != "duplicate" || r.body["id"] != id {
				t.Fatalf("duplicate delivery: %d %s, want 200 duplicate of %s", r.code, r.raw, id)
			}

			// Refusals store nothing.
			other := c.body(1)
			refusals := []struct {
				name   string
				header http.Header
				body   []byte
				want   int
			}{
				{"missing signature", nil, other, http.StatusUnauthorized},
				{"wrong signature", c.badSign, other, http.StatusUnauthorized},
				{"signature of another body", c.sign(h, c.body(2)), other, http.StatusUnauthorized},
				{"malformed JSON", c.sign(h, []byte(`{"eventType":`)), []byte(`{"eventType":`), http.StatusBadRequest},
				{"JSON array", c.sign(h, []byte(`[1,2]`)), []byte(`[1,2]`), http.StatusBadRequest},
				{"oversize", c.sign(h, oversize()), oversize(), http.StatusRequestEntityTooLarge},
			}
			for _, ref := range refusals {
				if ref.name == "signature of another body" && !c.bodyBound {
					continue
				}
				r := h.do("POST", path, ref.header, ref.body)
				if r.code != ref.want || r.body["error"] == nil || r.body["request_id"] == nil {
					t.Errorf("%s: %d %.200s, want %d with error and request_id", ref.name, r.code, r.raw, ref.want)
				}
			}
			if got := h.count("source = $1", c.source); got != before+1 {
				t.Fatalf("%d rows for %s after refusals, want %d", got, c.source, before+1)
			}

			// An event no handler wants is stored, then skipped with the reason.
			r = h.do("POST", path, c.sign(h, c.unknown), c.unknown)
			if r.code != http.StatusAccepted {
				t.Fatalf("unknown event: %d %s", r.code, r.raw)
			}
			ev = h.waitStatus(r.body["id"].(string), store.StatusSkipped)
			if !contains(ev.ErrorMessage, "no handler registered for "+c.source+"/") {
				t.Fatalf("skip reason %q", ev.ErrorMessage)
			}
		})
	}
}

func oversize() []byte {
	return append(append([]byte(`{"eventType":"message.received","broadcastId":"b","event":"x","pad":"`), bytes.Repeat([]byte("x"), 1<<20)...), []byte(`"}`)...)
}

func TestGHLReplayProtectionAndLegacySignature(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	stale := []byte(`{"type":"ContactCreate","id":"old","timestamp":"` + time.Now().Add(-6*time.Minute).UTC().Format(time.RFC3339) + `","webhookId":"wh-old"}`)
	if r := h.do("POST", "/api/webhooks/ghl", h.signGHL(stale), stale); r.code != http.StatusUnauthorized {
		t.Fatalf("stale timestamp: %d %s, want 401", r.code, r.raw)
	}
	future := []byte(`{"type":"ContactCreate","id":"fut","timestamp":"` + time.Now().Add(6*time.Minute).UTC().Format(time.RFC3339) + `"}`)
	if r := h.do("POST", "/api/webhooks/ghl", h.signGHL(future), future); r.code != http.StatusUnauthorized {
		t.Fatalf("future timestamp: %d %s, want 401", r.code, r.raw)
	}
	legacy := nowGHL("ContactUpdate", "leg")
	if r := h.do("POST", "/api/webhooks/ghl", h.signGHLLegacy(legacy), legacy); r.code != http.StatusAccepted {
		t.Fatalf("legacy RSA signature: %d %s, want 202", r.code, r.raw)
	}
	// A repeated webhookId is a duplicate even when the body differs.
	first := []byte(`{"type":"ContactUpdate","id":"a","webhookId":"wh-same","timestamp":"` + time.Now().UTC().Format(time.RFC3339) + `"}`)
	second := []byte(`{"type":"ContactUpdate","id":"a","webhookId":"wh-same","timestamp":"` + time.Now().Add(time.Second).UTC().Format(time.RFC3339) + `"}`)
	r1 := h.do("POST", "/api/webhooks/ghl", h.signGHL(first), first)
	r2 := h.do("POST", "/api/webhooks/ghl", h.signGHL(second), second)
	if r1.code != http.StatusAccepted || r2.code != http.StatusOK || r2.body["id"] != r1.body["id"] {
		t.Fatalf("repeated webhookId: %d then %d %s", r1.code, r2.code, r2.raw)
	}
	if n := h.count("source = 'ghl'"); n != 2 {
		t.Fatalf("%d GHL rows, want 2 (legacy + one of the repeated webhookId)", n)
	}
}

// Every documented GHL example, doc slips included, is stored without a 5xx.
func TestGHLDocExamplesAreAllStored(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	files, err := filepath.Glob("../intake/testdata/fixtures/ghl-docs/*.json")
	if err != nil || len(files) < 60 {
		t.Fatalf("found %d GHL doc examples (err %v), want the 69 in internal/intake/testdata", len(files), err)
	}
	for _, f := range files {
		body := freshTimestamp(t, f)
		r := h.do("POST", "/api/webhooks/ghl", h.signGHL(body), body)
		if r.code != http.StatusAccepted && r.code != http.StatusOK {
			t.Errorf("%s: %d %s", filepath.Base(f), r.code, r.raw)
		}
	}
}

func TestAlowareBasicAuthAndAllowlist(t *testing.T) {
	t.Parallel()
	h := start(t, map[string]string{"ALOWARE_WEBHOOK_ALLOWED_EVENTS": "InboundSMS-DispositionCompleted"})
	ok := []byte(`{"event":"InboundSMS-DispositionCompleted","body":{"id":1}}`)
	if r := h.do("POST", "/api/webhooks/aloware", alowareBasicAuth(ok), ok); r.code != http.StatusAccepted {
		t.Fatalf("basic auth: %d %s", r.code, r.raw)
	}
	wrong := http.Header{"Authorization": {"Basic " + "YWxvd2FyZS11c2VyOndyb25n"}}
	if r := h.do("POST", "/api/webhooks/aloware", wrong, ok); r.code != http.StatusUnauthorized {
		t.Fatalf("wrong basic password: %d", r.code)
	}
	other := []byte(`{"event":"Contact-Created","body":{"id":2}}`)
	r := h.do("POST", "/api/webhooks/aloware", alowareBearerAuth(other), other)
	if r.code != http.StatusAccepted {
		t.Fatalf("event outside allowlist: %d %s", r.code, r.raw)
	}
	ev, err := h.st.GetEvent(t.Context(), r.body["id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Status != store.StatusSkipped || !contains(ev.ErrorMessage, "ALOWARE_WEBHOOK_ALLOWED_EVENTS") || ev.Attempts != 0 {
		t.Fatalf("event outside allowlist stored as %s %q attempts %d", ev.Status, ev.ErrorMessage, ev.Attempts)
	}
}

func TestUnconfiguredSourcesAnswer503NamingTheVariable(t *testing.T) {
	t.Parallel()
	h := start(t, map[string]string{"VERITY_WEBHOOK_SECRET": "", "ALOWARE_WEBHOOK_BEARER_TOKEN": "",
		"ALOWARE_WEBHOOK_BASIC_USER": "", "ALOWARE_WEBHOOK_BASIC_PASS": ""})
	for source, variable := range map[string]string{"texting": "VERITY_WEBHOOK_SECRET", "broadcast": "VERITY_WEBHOOK_SECRET", "aloware": "ALOWARE_WEBHOOK_BEARER_TOKEN"} {
		body := []byte(`{"eventType":"x","broadcastId":"b","event":"x"}`)
		r := h.do("POST", "/api/webhooks/"+source, nil, body)
		if r.code != http.StatusServiceUnavailable || !contains(r.raw, variable) {
			t.Errorf("%s unconfigured: %d %s, want 503 naming %s", source, r.code, r.raw, variable)
		}
	}
	if r := h.do("POST", "/api/webhooks/zapier", nil, []byte(`{}`)); r.code != http.StatusNotFound {
		t.Errorf("unknown source: %d", r.code)
	}
	if n := h.count("true"); n != 0 {
		t.Fatalf("%d rows stored by refused requests", n)
	}
}

// freshTimestamp reads a GHL doc example and, when it carries a delivery
// timestamp, moves it to now: the docs' 2025 dates are outside the replay
// window, as they should be.
func freshTimestamp(t *testing.T, path string) []byte {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if _, ok := m["timestamp"].(string); !ok {
		return raw
	}
	m["timestamp"] = time.Now().UTC().Format(time.RFC3339)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
