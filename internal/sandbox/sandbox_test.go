package sandbox

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFaultsOutage(t *testing.T) {
	e := newEnv(t, false, nil)
	e.sb.SetFaults("all", Faults{Outage: true})
	e.run([]step{
		{name: "ghl", method: "GET", path: "/ghl/contacts/x", hdr: hContacts, status: 503,
			want: `{"statusCode":503,"message":"Service Unavailable","error":"Service Unavailable"}`, exact: true},
		{name: "ghl without credentials is down too", method: "GET", path: "/ghl/contacts/x", status: 503},
		{name: "aloware", method: "GET", path: "/aloware/api/v1/webhook/users?api_token=" + tAloToken, status: 503,
			want: `{"message":"Service Unavailable"}`, exact: true},
		{name: "verity", method: "GET", path: "/verity/api/calls", status: 503, want: `{"error":"Service Unavailable"}`, exact: true},
		{name: "clerk", method: "GET", path: "/clerk/v1/jwks", hdr: hClerk, status: 503,
			want: `{"errors":[{"message":"Service Unavailable","long_message":"Service Unavailable","code":"internal_clerk_error"}],"clerk_trace_id":"<any>"}`, exact: true},
		{name: "control routes are never faulted", method: "GET", path: "/_sandbox/state", status: 200},
	})
	r := e.do("GET", "/ghl/contacts/x", hContacts, "")
	if r.header.Get("X-RateLimit-Remaining") == "" || r.header.Get("X-RateLimit-Max") == "" {
		t.Errorf("outage answer without the GHL rate-limit headers: %v", r.header)
	}
	e.sb.SetFaults(UpstreamAloware, Faults{Outage: true, Status: 502})
	expect(t, "status", e.do("GET", "/aloware/api/v1/webhook/users?api_token="+tAloToken, nil, ""), 502, `{"message":"Bad Gateway"}`, true)
	e.sb.SetFaults("all", Faults{})
	expect(t, "cleared", e.do("GET", "/aloware/api/v1/webhook/users?api_token="+tAloToken, nil, ""), 200, "", false)
	if got := e.sb.State().Calls["ghl GET /contacts/{id}"]; got != 3 {
		t.Errorf("faulted calls are counted too: %d", got)
	}
}

func TestFaultsRates(t *testing.T) {
	e := newEnv(t, false, nil)
	e.sb.SetFaults(UpstreamGHL, Faults{Rate429: 1})
	r := e.do("GET", "/ghl/contacts/x", hContacts, "")
	expect(t, "429", r, 429, `{"statusCode":429,"message":"Too Many Requests"}`, true)
	if r.header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	e.sb.SetFaults(UpstreamGHL, Faults{ErrorRate: 1})
	expect(t, "500", e.do("GET", "/ghl/contacts/x", hContacts, ""), 500, `{"statusCode":500,"error":"Internal Server Error"}`, false)
	e.sb.SetFaults(UpstreamGHL, Faults{ErrorRate: 1, Status: 502})
	expect(t, "502", e.do("GET", "/ghl/contacts/x", hContacts, ""), 502, "", false)
	e.sb.SetFaults(UpstreamAloware, Faults{Rate429: 1})
	expect(t, "aloware 429", e.do("GET", "/aloware/api/v1/webhook/users?api_token="+tAloToken, nil, ""), 429, `{"message":"Too Many Attempts."}`, true)

	// Rates are drawn per request.
	e.sb.SetFaults(UpstreamGHL, Faults{ErrorRate: 0.5})
	draws := []float64{0.9, 0.1, 0.7, 0.2}
	var mu sync.Mutex
	e.sb.rand = func() float64 { mu.Lock(); defer mu.Unlock(); v := draws[0]; draws = draws[1:]; return v }
	var got []int
	for range 4 {
		got = append(got, e.do("GET", "/ghl/contacts/x", hContacts, "").status)
	}
	if fmt.Sprint(got) != "[400 500 400 500]" {
		t.Errorf("statuses %v", got)
	}
}

func TestFaultsLatency(t *testing.T) {
	e := newEnv(t, false, nil)
	e.sb.SetFaults(UpstreamVerity, Faults{Latency: 150 * time.Millisecond})
	start := time.Now()
	r := e.do("GET", "/verity/api/calls", nil, "")
	if d := time.Since(start); d < 150*time.Millisecond || r.status != 401 {
		t.Errorf("latency: %v, status %d", d, r.status)
	}
	start = time.Now()
	e.do("GET", "/ghl/contacts/x", hContacts, "")
	e.do("GET", "/_sandbox/state", nil, "")
	if d := time.Since(start); d > 140*time.Millisecond {
		t.Errorf("other upstreams and control routes are delayed: %v", d)
	}
	// A client that gives up is not kept waiting.
	e.sb.SetFaults(UpstreamVerity, Faults{Latency: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/verity/api/calls", nil)
	start = time.Now()
	if _, err := e.srv.Client().Do(req); err == nil {
		t.Error("request did not time out")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancel took %v", d)
	}
}

func TestControlSurface(t *testing.T) {
	e := newEnv(t, false, nil)
	e.run([]step{
		{name: "set faults", method: "POST", path: "/_sandbox/faults",
			body:   `{"upstream":"ghl","error_rate":0.25,"status":502,"rate_429":0.5,"latency_ms":20,"outage":false}`,
			status: 200, want: `{"ghl":{"error_rate":0.25,"status":502,"rate_429":0.5,"latency_ms":20,"outage":false}}`, exact: true},
		{name: "unknown upstream", method: "POST", path: "/_sandbox/faults", body: `{"upstream":"hubspot","outage":true}`, status: 400},
		{name: "bad rate", method: "POST", path: "/_sandbox/faults", body: `{"upstream":"ghl","error_rate":2}`, status: 400},
		{name: "bad status", method: "POST", path: "/_sandbox/faults", body: `{"upstream":"ghl","status":200}`, status: 400},
		{name: "unknown field", method: "POST", path: "/_sandbox/faults", body: `{"upstream":"ghl","latency":"1s"}`, status: 400},
		{name: "all", method: "POST", path: "/_sandbox/faults", body: `{"upstream":"all","outage":true}`, status: 200,
			want: `{"ghl":{"outage":true},"aloware":{"outage":true},"verity":{"outage":true},"clerk":{"outage":true}}`},
		{name: "get", method: "GET", path: "/_sandbox/faults", status: 200, want: `{"clerk":{"outage":true}}`},
		{name: "clear one", method: "DELETE", path: "/_sandbox/faults?upstream=clerk", status: 200},
		{name: "clerk answers again", method: "GET", path: "/clerk/v1/jwks", hdr: hClerk, status: 200},
		{name: "clear all", method: "DELETE", path: "/_sandbox/faults", status: 200, want: `{}`, exact: true},
		{name: "ghl answers again", method: "GET", path: "/ghl/contacts/x", hdr: hContacts, status: 400},
		{name: "unknown control route", method: "GET", path: "/_sandbox/nope", status: 404},
		{name: "unknown prefix", method: "GET", path: "/hubspot/x", status: 404},
	})
	e.do("POST", "/ghl/contacts/upsert", hContacts, `{"locationId":"`+tLocation+`","email":"x@example.com"}`)
	r := e.do("GET", "/_sandbox/state", nil, "").obj(t)
	if len(r["ghl_contacts"].(map[string]any)) != 1 || len(r["broadcasts"].([]any)) != 5 || len(r["clerk_sessions"].([]any)) != 2 ||
		r["calls"].(map[string]any)["ghl POST /contacts/upsert"] != float64(1) {
		t.Errorf("state: %v", r)
	}
	for _, k := range []string{"ghl_notes", "ghl_tags", "ghl_conversations", "ghl_messages", "aloware_contacts", "aloware_sms",
		"aloware_users", "broadcast_analytics", "verity_calls", "verity_messages", "clerk_users", "faults"} {
		if r[k] == nil {
			t.Errorf("state lacks %s (or it is null)", k)
		}
	}
	e.sb.SetFaults(UpstreamGHL, Faults{Outage: true})
	expect(t, "reset", e.do("POST", "/_sandbox/reset", nil, ""), 200, `{"ok":true}`, true)
	st := e.sb.State()
	if len(st.GHLContacts) != 0 || len(st.Calls) != 0 || len(st.Faults) != 0 || len(st.Broadcasts) != 5 || len(st.ClerkUsers) != 3 {
		t.Errorf("after reset: %+v", st)
	}
	// Ids start over after a reset.
	r2 := e.do("POST", "/ghl/contacts/upsert", hContacts, `{"locationId":"`+tLocation+`","email":"y@example.com"}`).obj(t)
	if id := r2["contact"].(map[string]any)["id"]; id != "sbxcontact0000000001" {
		t.Errorf("id after reset %v", id)
	}
}

func TestStateIsACopy(t *testing.T) {
	e := newEnv(t, false, nil)
	c := e.sb.AddGHLContact(GHLContact{Email: "a@example.com", Tags: []string{"x"}})
	st := e.sb.State()
	st.GHLContacts[c.ID].Tags[0] = "mutated"
	st.Broadcasts[0].Name = "mutated"
	*st.Broadcasts[0].SentAt = "mutated"
	st2 := e.sb.State()
	if st2.GHLContacts[c.ID].Tags[0] != "x" || st2.Broadcasts[0].Name == "mutated" || *st2.Broadcasts[0].SentAt == "mutated" {
		t.Error("State shares memory with the server")
	}
	if New(Config{}).State().Broadcasts == nil || len(New(Config{}).State().Broadcasts) != 0 {
		t.Error("unseeded server has data or null slices")
	}
}

func TestConcurrentUpserts(t *testing.T) {
	e := newEnv(t, false, func(c *Config) { c.GHLBurst = -1 })
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// 20 distinct emails, each upserted twice concurrently.
			body := fmt.Sprintf(`{"locationId":"%s","email":"u%d@example.com"}`, tLocation, i%20)
			if r := e.do("POST", "/ghl/contacts/upsert", hContacts, body); r.status != 200 {
				t.Errorf("upsert: %d %s", r.status, r.body)
			}
			e.do("GET", "/_sandbox/state", nil, "")
		}()
	}
	wg.Wait()
	st := e.sb.State()
	if len(st.GHLContacts) != 20 || st.Calls["ghl POST /contacts/upsert"] != 40 {
		t.Errorf("%d contacts, %d calls", len(st.GHLContacts), st.Calls["ghl POST /contacts/upsert"])
	}
}

func TestSetFaultsPanicsOnUnknownUpstream(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	New(Config{}).SetFaults("hubspot", Faults{Outage: true})
}

func TestSampleWebhooks(t *testing.T) {
	key, created, err := LoadOrCreateEd25519Key(filepath.Join(t.TempDir(), "sub", "ghl.pem"))
	if err != nil || !created {
		t.Fatal(err, created)
	}
	sec := WebhookSecrets{GHLKey: key, GHLLocationID: tLocation, VerityWebhookSecret: "s3cret", AlowareBearerToken: "bt"}
	now := time.Date(2026, 3, 10, 17, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	for _, kind := range WebhookKinds {
		for seq := range 3 {
			w, err := SampleWebhook(kind, "abcd1234", seq, now, sec)
			if err != nil {
				t.Fatal(kind, err)
			}
			if seen[string(w.Body)] {
				t.Errorf("%s %d: repeated body", kind, seq)
			}
			seen[string(w.Body)] = true
			var m map[string]any
			if err := json.Unmarshal(w.Body, &m); err != nil {
				t.Fatal(err)
			}
			switch kind {
			case KindGHLContact:
				sig, _ := base64.StdEncoding.DecodeString(w.Header.Get("X-GHL-Signature"))
				if !ed25519.Verify(key.Public().(ed25519.PublicKey), w.Body, sig) || w.Path != "/api/webhooks/ghl" {
					t.Errorf("ghl signature/path: %v %s", w.Header, w.Path)
				}
				if m["timestamp"] != "2026-03-10T17:00:00Z" || m["webhookId"] != fmt.Sprintf("sbx-abcd1234-%06d", seq) ||
					m["type"] != "ContactCreate" || m["locationId"] != tLocation || !ghlPhoneRE.MatchString(m["phone"].(string)) {
					t.Errorf("ghl body %v", m)
				}
			case KindAlowareCall:
				if w.Header.Get("Authorization") != "Bearer bt" || m["event"] != "OutboundPhoneCall-DispositionCompleted" {
					t.Errorf("aloware %v %v", w.Header, m)
				}
			default:
				name := "X-Texting-Signature"
				if kind == KindBroadcastAnalytics {
					name = "X-Broadcast-Signature"
					if !strings.HasPrefix(m["broadcastId"].(string), "bc_000") || m["eventType"] != "analytics_updated" {
						t.Errorf("broadcast body %v", m)
					}
				} else if m["eventType"] == "" || m["messageId"] == "" {
					t.Errorf("texting body %v", m)
				}
				mac := hmac.New(sha256.New, []byte("s3cret"))
				mac.Write(w.Body)
				if w.Header.Get(name) != hex.EncodeToString(mac.Sum(nil)) {
					t.Errorf("%s: %s wrong", kind, name)
				}
			}
		}
	}
	if _, err := SampleWebhook("nope", "r", 0, now, sec); err == nil {
		t.Error("unknown kind accepted")
	}
	if _, err := SampleWebhook(KindTextingStop, "r", 0, now, WebhookSecrets{}); err == nil || !strings.Contains(err.Error(), "VERITY_WEBHOOK_SECRET") {
		t.Errorf("missing secret: %v", err)
	}
	if _, err := SampleWebhook(KindAlowareCall, "r", 0, now, WebhookSecrets{AlowareBasicUser: "u", AlowareBasicPass: "p"}); err != nil {
		t.Errorf("basic: %v", err)
	}
}

func TestLoadOrCreateEd25519Key(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.pem")
	k1, created, err := LoadOrCreateEd25519Key(path)
	if err != nil || !created {
		t.Fatal(err)
	}
	k2, created, err := LoadOrCreateEd25519Key(path)
	if err != nil || created || !k1.Equal(k2) {
		t.Fatal("reload gave another key", err, created)
	}
	pub, err := Ed25519PublicKeyBase64(k1)
	if err != nil || !strings.HasPrefix(pub, "MCowBQYDK2VwAyEA") {
		t.Errorf("SPKI %q %v", pub, err)
	}
	if _, err := ParseEd25519PrivateKey([]byte("junk")); err == nil {
		t.Error("junk parsed")
	}
}
