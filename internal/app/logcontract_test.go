package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/sandbox"
	"github.com/df-middleware/df-middleware/internal/store"
)

const gatewayKey = "gateway-key-for-tests-0005" // DF_MIDDLEWARE_API_KEY in startSynced

// waitTerminal waits until the event is done, skipped or error.
func (h *harness) waitTerminal(id string) store.Event {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ev, err := h.st.GetEvent(context.Background(), id)
		if err == nil && (ev.Status == store.StatusDone || ev.Status == store.StatusSkipped || ev.Status == store.StatusError) {
			return ev
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("event %s still %q (err %v)", id, ev.Status, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEveryLogLineKeepsTheContract runs webhooks of all four sources (one of
// them failing upstream), admin calls and a shutdown at debug level, then
// checks every line written: one JSON object with exactly the contract's
// keys, and no configured secret, phone number or email in it.
func TestEveryLogLineKeepsTheContract(t *testing.T) {
	t.Parallel()
	h, sb := startSynced(t, map[string]string{"LOG_LEVEL": "debug"})

	// GHL, with an email and a phone in the body, for a contact GHL has.
	ana := sb.AddGHLContact(sandbox.GHLContact{FirstName: "Ana", LastName: "Ruiz", Email: "ana@example.com", Phone: "+13105550100"})
	ghlID := h.post("ghl", ghlContactBody("ContactCreate", ana.ID, "Ana", "(310) 555-0100"))
	h.waitStatus(ghlID, store.StatusDone)
	// Aloware, the same person.
	alo := h.post("aloware", []byte(`{"event":"Contact Updated","body":{"id":987654,"first_name":"Ana","last_name":"Ruiz","email":"ana@example.com","phone_number":"+13105550100"}}`))
	h.waitTerminal(alo)
	// Texting: an inbound message, a HELP (logged with the phone, masked)
	// and a STOP from that number.
	h.waitTerminal(h.post("texting", []byte(`{"eventType":"message.received","messageId":"txt_log_0","conversationId":"conv_log","from":"+13105550100","to":"+18555550199","body":"HELP","timestamp":"2026-03-10T17:09:00Z"}`)))
	h.waitTerminal(h.post("texting", []byte(`{"eventType":"message.received","messageId":"txt_log_1","conversationId":"conv_log","from":"+13105550100","to":"+18555550199","body":"hello, write to ana@example.com","timestamp":"2026-03-10T17:10:00Z"}`)))
	h.waitTerminal(h.post("texting", []byte(`{"eventType":"message.received","messageId":"txt_log_2","conversationId":"conv_log","from":"+13105550100","to":"+18555550199","body":"STOP","timestamp":"2026-03-10T17:11:00Z"}`)))
	// Broadcast.
	h.waitTerminal(h.post("broadcast", []byte(`{"eventType":"analytics_updated","broadcastId":"bc_log","analytics":{"sent":10}}`)))

	// A failing one: Aloware refuses every write.
	sb.SetFaults(sandbox.UpstreamAloware, sandbox.Faults{Outage: true, Status: http.StatusUnprocessableEntity})
	failID := h.post("ghl", ghlContactBody("ContactCreate", "log-c2", "Bea", "+14155550123"))
	h.waitStatus(failID, store.StatusError)
	sb.SetFaults(sandbox.UpstreamAloware, sandbox.Faults{})

	// The admin API, with the secret (and once without), and the gateway.
	if r := h.admin("GET", "/api/admin/events?limit=20", ""); r.code != http.StatusOK {
		t.Fatalf("admin list: %d %s", r.code, r.raw)
	}
	if r := h.admin("GET", "/api/admin/events/"+failID, ""); r.code != http.StatusOK {
		t.Fatalf("admin get: %d %s", r.code, r.raw)
	}
	if r := h.admin("POST", "/api/admin/events/"+failID+"/replay", ""); r.code != http.StatusOK {
		t.Fatalf("admin replay: %d %s", r.code, r.raw)
	}
	h.waitStatus(failID, store.StatusDone)
	if r := h.do("GET", "/api/admin/events", http.Header{"Authorization": {"Bearer wrong-" + adminSecret}}, nil); r.code != http.StatusUnauthorized {
		t.Fatalf("admin with a wrong secret: %d", r.code)
	}
	h.do("GET", "/api/verity", http.Header{"X-API-Key": {gatewayKey}}, nil)
	h.do("GET", "/health", nil, nil)
	time.Sleep(1200 * time.Millisecond) // one error-group flush

	// Shut down, so the shutdown lines are checked too.
	h.stop()
	<-h.stopped

	secrets := map[string]string{
		"admin secret": adminSecret, "webhook secret": webhookSecret,
		"Aloware bearer": alowareBearer, "Aloware basic password": alowarePass,
		"GHL API key": sandbox.DevGHLAPIKey, "Aloware API token": sandbox.DevAlowareToken,
		"Verity API key": sandbox.DevVerityAPIKey, "Clerk secret key": sandbox.DevClerkSecretKey,
		"gateway key": gatewayKey,
	}
	pii := []string{
		"+13105550100", "3105550100", "(310) 555-0100", "310-555-0100", "ana@example.com",
		"+14155550123", "4155550123", "bea@example.com",
	}
	levels := map[string]int{}
	components := map[string]bool{}
	n := 0
	sc := bufio.NewScanner(strings.NewReader(h.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		n++
		if err := checkContractLine(line); err != nil {
			t.Errorf("line %d: %v\n%s", n, err, line)
			continue
		}
		var l struct{ Level, Component string }
		_ = json.Unmarshal([]byte(line), &l)
		levels[l.Level]++
		components[l.Component] = true
		for name, v := range secrets {
			if strings.Contains(line, v) {
				t.Errorf("line %d carries the %s:\n%s", n, name, line)
			}
		}
		for _, v := range pii {
			if strings.Contains(line, v) {
				t.Errorf("line %d carries %q unmasked:\n%s", n, v, line)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 20 || levels["debug"] == 0 || levels["info"] == 0 {
		t.Fatalf("%d lines, levels %v: the run logged less than expected", n, levels)
	}
	if logs := h.logs.String(); !strings.Contains(logs, `"phone":"+1310***0100"`) {
		t.Errorf("no line shows the HELP requester's phone masked: the PII check above proved nothing")
	}
	for _, c := range []string{"intake", "queue", "sync", "http"} {
		if !components[c] {
			t.Errorf("no line from component %q (components %v)", c, components)
		}
	}
	t.Logf("%d lines checked; levels %v", n, levels)
	if t.Failed() {
		t.Log(h.logs.String())
	}
}

// checkContractLine reports how line breaks the log contract, if it does.
func checkContractLine(line string) error {
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		return fmt.Errorf("not one JSON object: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("more than one JSON value on the line")
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"component", "level", "message", "metadata", "service", "timestamp"}; !slices.Equal(keys, want) {
		return fmt.Errorf("top-level keys %v, want exactly %v", keys, want)
	}
	var ts, level, service, component, message string
	for k, dst := range map[string]*string{"timestamp": &ts, "level": &level, "service": &service, "component": &component, "message": &message} {
		if err := json.Unmarshal(obj[k], dst); err != nil {
			return fmt.Errorf("%s is not a string: %s", k, obj[k])
		}
	}
	when, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return fmt.Errorf("timestamp %q is not RFC 3339: %v", ts, err)
	}
	if _, off := when.Zone(); off != 0 || !strings.HasSuffix(ts, "Z") {
		return fmt.Errorf("timestamp %q is not UTC", ts)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, level) {
		return fmt.Errorf("level %q", level)
	}
	if service != "df-middleware" {
		return fmt.Errorf("service %q", service)
	}
	if component == "" {
		return fmt.Errorf("empty component")
	}
	if md := bytes.TrimSpace(obj["metadata"]); len(md) == 0 || md[0] != '{' {
		return fmt.Errorf("metadata is not an object: %s", obj["metadata"])
	}
	return nil
}
