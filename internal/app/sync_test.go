package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/sandbox"
	"github.com/df-middleware/df-middleware/internal/store"
)

// startSynced runs the service against a sandbox of the four upstreams.
func startSynced(t *testing.T, extra map[string]string) (*harness, *sandbox.Server) {
	t.Helper()
	sb := sandbox.New(sandbox.Config{
		GHLToken: sandbox.DevGHLAPIKey, GHLLocationID: sandbox.DevGHLLocationID,
		AlowareToken: sandbox.DevAlowareToken, VerityAPIKey: sandbox.DevVerityAPIKey,
		ClerkSecretKey: sandbox.DevClerkSecretKey, Seed: true,
	})
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	env := map[string]string{
		"GHL_API_KEY": sandbox.DevGHLAPIKey, "GHL_LOCATION_ID": sandbox.DevGHLLocationID,
		"GHL_BASE_URL":      srv.URL + sandbox.PrefixGHL,
		"ALOWARE_API_TOKEN": sandbox.DevAlowareToken, "ALOWARE_BASE_URL": srv.URL + sandbox.PrefixAloware,
		"VERITY_BASE_URL": srv.URL + sandbox.PrefixVerity, "VERITY_API_KEY": sandbox.DevVerityAPIKey,
		"CLERK_SECRET_KEY": sandbox.DevClerkSecretKey, "CLERK_API_URL": srv.URL + sandbox.PrefixClerk,
		"DF_MIDDLEWARE_API_KEY": "gateway-key-for-tests-0005",
		"DF_RETRY_BASE":         "100ms", "DF_BREAKER_COOLDOWN": "500ms", "DF_WORKERS": "4",
	}
	for k, v := range extra {
		env[k] = v
	}
	return start(t, env), sb
}

func (h *harness) post(source string, body []byte) string {
	h.t.Helper()
	var hdr http.Header
	switch source {
	case "ghl":
		hdr = h.signGHL(body)
	case "aloware":
		hdr = alowareBearerAuth(body)
	case "texting":
		hdr = signTexting(body)
	case "broadcast":
		hdr = signBroadcast(body)
	}
	r := h.do("POST", "/api/webhooks/"+source, hdr, body)
	if r.code != http.StatusAccepted {
		h.t.Fatalf("POST %s: %d %s", source, r.code, r.raw)
	}
	return r.body["id"].(string)
}

func (h *harness) syncLog(eventID string) []store.SyncLogEntry {
	h.t.Helper()
	rows, err := h.st.SyncLogForEvent(context.Background(), eventID)
	if err != nil {
		h.t.Fatal(err)
	}
	return rows
}

func ghlContactBody(typ, id, first, phone string) []byte {
	email := strings.ToLower(strings.Fields(first)[0]) + "@example.com"
	return fmt.Appendf(nil, `{"type":%q,"locationId":"sandbox-location","id":%q,"firstName":%q,"lastName":"Ruiz","email":%q,"phone":%q,"timestamp":%q,"webhookId":"wh-%s-%d"}`,
		typ, id, first, email, phone, time.Now().UTC().Format(time.RFC3339), id, time.Now().UnixNano())
}

func TestGHLContactReachesAlowareAndItsEchoIsSkipped(t *testing.T) {
	t.Parallel()
	h, sb := startSynced(t, nil)

	id := h.post("ghl", ghlContactBody("ContactCreate", "ghl-c1", "Ana", "(310) 555-0100"))
	h.waitStatus(id, store.StatusDone)

	var alo sandbox.AlowareContact
	for _, c := range sb.State().AlowareContacts {
		alo = c
	}
	if alo.PhoneNumber != "+13105550100" || alo.FirstName != "Ana" || alo.LeadSource != "GHL" {
		t.Fatalf("Aloware contact = %+v, want Ana with the E.164 phone", alo)
	}
	alowareID := strconv.Itoa(alo.ID)
	m, err := h.st.MappingBy(context.Background(), "ghl_id", "ghl-c1")
	if err != nil || m.AlowareID != alowareID || m.PhoneE164 != "+13105550100" {
		t.Fatalf("mapping = %+v, %v; want ghl-c1 ↔ %s", m, err, alowareID)
	}
	logs := h.syncLog(id)
	if len(logs) != 1 || logs[0].Status != "success" || logs[0].Direction != "ghl_to_aloware" ||
		logs[0].SourceID != "ghl-c1" || logs[0].TargetID != alowareID || logs[0].FinishedAt == nil {
		t.Fatalf("sync_log = %+v", logs)
	}

	// Aloware reports the contact we just wrote: our own echo, skipped.
	echo := fmt.Appendf(nil, `{"event":"Contact Updated","body":{"id":%d,"first_name":"Ana","last_name":"Ruiz","email":"ana@example.com","phone_number":"+13105550100"}}`, alo.ID)
	echoID := h.post("aloware", echo)
	ev := h.waitStatus(echoID, store.StatusSkipped)
	if !strings.Contains(ev.ErrorMessage, "echo of the middleware's own write") {
		t.Fatalf("echo skipped with %q", ev.ErrorMessage)
	}
	if n := len(sb.State().GHLContacts); n != 0 {
		t.Fatalf("the echo reached GHL: %d contacts there", n)
	}

	// A real edit in Aloware is not an echo: it goes to GHL, and GHL's echo
	// of that write is skipped in turn.
	edit := fmt.Appendf(nil, `{"event":"Contact Updated","body":{"id":%d,"first_name":"Ana María","last_name":"Ruiz","email":"ana@example.com","phone_number":"+13105550100"}}`, alo.ID)
	h.waitStatus(h.post("aloware", edit), store.StatusDone)
	var ghlID string
	for id, c := range sb.State().GHLContacts {
		if c.FirstName == "Ana María" {
			ghlID = id
		}
	}
	if ghlID == "" {
		t.Fatalf("Aloware edit did not reach GHL: %+v", sb.State().GHLContacts)
	}
	back := ghlContactBody("ContactUpdate", ghlID, "Ana María", "+13105550100")
	ev = h.waitStatus(h.post("ghl", back), store.StatusSkipped)
	if !strings.Contains(ev.ErrorMessage, "echo") {
		t.Fatalf("GHL echo ended %s %q", ev.Status, ev.ErrorMessage)
	}
}

func TestAlowareCallBecomesGHLNote(t *testing.T) {
	t.Parallel()
	h, sb := startSynced(t, nil)
	call := []byte(`{"event":"OutboundPhoneCall-DispositionCompleted","body":{"id":"55501","contact_id":"4321","user_id":"12","direction":"outbound","disposition":"Interested","duration":184,"talk_time":150,"has_recording":true,"recording_url":"https://recordings.example.invalid/55501.mp3","created_at":"2026-03-10 17:05:00","contact":{"id":"4321","phone_number":"+13105550100","first_name":"Ana"}}}`)
	id := h.post("aloware", call)
	h.waitStatus(id, store.StatusDone)
	st := sb.State()
	if len(st.GHLContacts) != 1 || len(st.GHLNotes) != 1 {
		t.Fatalf("GHL has %d contacts and %d notes, want 1 and 1", len(st.GHLContacts), len(st.GHLNotes))
	}
	note := st.GHLNotes[0]
	for _, want := range []string{"outbound call 55501", "Interested", "184s", "recordings.example.invalid/55501.mp3"} {
		if !strings.Contains(note.Body, want) {
			t.Errorf("note %q lacks %q", note.Body, want)
		}
	}
	if m, err := h.st.MappingBy(context.Background(), "aloware_id", "4321"); err != nil || m.GHLID != note.ContactID {
		t.Fatalf("mapping %+v %v, want aloware 4321 ↔ %s", m, err, note.ContactID)
	}
	// Replaying the event does not write a second note.
	if r := h.admin("POST", "/api/admin/events/"+id+"/replay", ""); r.code != http.StatusOK {
		t.Fatalf("replay: %d", r.code)
	}
	h.waitStatus(id, store.StatusDone)
	if n := len(sb.State().GHLNotes); n != 1 {
		t.Fatalf("replay wrote %d notes, want still 1", n)
	}
}

func TestTextingStopSetsOptOutAndGHLDND(t *testing.T) {
	t.Parallel()
	h, sb := startSynced(t, nil)
	c := sb.AddGHLContact(sandbox.GHLContact{FirstName: "Ana", Phone: "+13105550100"})
	// The texting fixture: an inbound "STOP".
	id := h.post("texting", []byte(`{"eventType":"message.received","messageId":"txt_msg_0001","conversationId":"conv_0001","from":"+13105550100","to":"+18555550199","body":"STOP","timestamp":"2026-03-10T17:10:00Z"}`))
	h.waitStatus(id, store.StatusDone)
	o, err := h.st.GetOptOut(context.Background(), "+13105550100")
	if err != nil || o.Status != "opted_out" || o.Keyword != "STOP" || o.Source != "texting" {
		t.Fatalf("opt-out = %+v, %v", o, err)
	}
	got := sb.State().GHLContacts[c.ID]
	if got.DNDSettings["SMS"].Status != "active" {
		t.Fatalf("GHL DND settings = %+v, want SMS active", got.DNDSettings)
	}
	// The explicit opt-out event works the same way for a number GHL does not know.
	id = h.post("texting", []byte(`{"eventType":"optout.stop","from":"+13105550199","keyword":"STOP"}`))
	ev := h.waitStatus(id, store.StatusSkipped)
	if !strings.Contains(ev.ErrorMessage, "GHL has no contact") {
		t.Fatalf("unknown-number opt-out: %q", ev.ErrorMessage)
	}
	if o, err := h.st.GetOptOut(context.Background(), "+13105550199"); err != nil || o.Status != "opted_out" {
		t.Fatalf("opt-out of unknown number = %+v %v", o, err)
	}
}

func TestRateLimitStormDelaysButLosesNothing(t *testing.T) {
	t.Parallel()
	h, sb := startSynced(t, map[string]string{"DF_MAX_ATTEMPTS": "30"})
	sb.SetFaults(sandbox.UpstreamAloware, sandbox.Faults{Rate429: 0.6})
	const n = 20
	var ids []string
	for i := range n {
		ids = append(ids, h.post("ghl", ghlContactBody("ContactCreate", fmt.Sprintf("storm-%d", i), "Storm", fmt.Sprintf("+1310555%04d", 1000+i))))
	}
	for _, id := range ids {
		h.waitStatusWithin(id, store.StatusDone, 90*time.Second)
	}
	st := sb.State()
	if len(st.AlowareContacts) != n {
		t.Fatalf("%d Aloware contacts after the storm, want %d", len(st.AlowareContacts), n)
	}
	if st.Calls["aloware POST /api/v1/webhook/forms"] <= n {
		t.Fatalf("no 429 was answered (calls %v): the storm did not happen", st.Calls)
	}
}

func TestPermanentRefusalEndsInErrorAndReplaySucceeds(t *testing.T) {
	t.Parallel()
	h, sb := startSynced(t, nil)
	sb.SetFaults(sandbox.UpstreamAloware, sandbox.Faults{Outage: true, Status: http.StatusUnprocessableEntity})
	id := h.post("ghl", ghlContactBody("ContactCreate", "perm-1", "Pat", "+13105550111"))
	ev := h.waitStatus(id, store.StatusError)
	if ev.Attempts != 1 || !strings.Contains(ev.ErrorMessage, "422") || !strings.Contains(ev.ErrorMessage, "replay event "+id) {
		t.Fatalf("error event: attempts %d, message %q", ev.Attempts, ev.ErrorMessage)
	}
	if logs := h.syncLog(id); len(logs) != 1 || logs[0].Status != "error" {
		t.Fatalf("sync_log = %+v", logs)
	}
	// The failure is grouped where it happened: the upstream call, the sync
	// operation and the job (flushed about once a second).
	deadline := time.Now().Add(10 * time.Second)
	for {
		var components []string
		rows, err := h.st.Pool.Query(context.Background(), `SELECT component FROM error_groups ORDER BY component`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var c string
			_ = rows.Scan(&c)
			components = append(components, c)
		}
		rows.Close()
		if strings.Join(components, ",") == "queue,sync:ghl_to_aloware,upstream:aloware" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("error_groups components = %v", components)
		}
		time.Sleep(100 * time.Millisecond)
	}
	sb.SetFaults(sandbox.UpstreamAloware, sandbox.Faults{})
	if r := h.admin("POST", "/api/admin/events/"+id+"/replay", ""); r.code != http.StatusOK {
		t.Fatalf("replay: %d %s", r.code, r.raw)
	}
	h.waitStatus(id, store.StatusDone)
	if n := len(sb.State().AlowareContacts); n != 1 {
		t.Fatalf("%d Aloware contacts after replay", n)
	}
}

func TestBreakerOpensAndRecovers(t *testing.T) {
	t.Parallel()
	h, sb := startSynced(t, map[string]string{"DF_MAX_ATTEMPTS": "50"})
	sb.SetFaults(sandbox.UpstreamAloware, sandbox.Faults{Outage: true, Status: http.StatusServiceUnavailable})
	id := h.post("ghl", ghlContactBody("ContactCreate", "brk-1", "Bo", "+13105550122"))

	deadline := time.Now().Add(20 * time.Second)
	for {
		r := h.do("GET", "/health", nil, nil)
		check := r.body["checks"].(map[string]any)["aloware_api"].(map[string]any)
		if strings.Contains(fmt.Sprint(check["message"]), "open") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("breaker never reported open; last aloware check %v", check)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ev, _ := h.st.GetEvent(context.Background(), id)
	if ev.Status == store.StatusDone || ev.Status == store.StatusError {
		t.Fatalf("event ended %s during the outage", ev.Status)
	}
	sb.SetFaults(sandbox.UpstreamAloware, sandbox.Faults{})
	h.waitStatusWithin(id, store.StatusDone, 30*time.Second)
	r := h.do("GET", "/health", nil, nil)
	if got := r.body["dependencies"].(map[string]any)["aloware_api"]; got != "ok" {
		t.Fatalf("aloware_api after recovery = %v", got)
	}
}

func TestHealthReportsUpstreams(t *testing.T) {
	t.Parallel()
	h, _ := startSynced(t, nil)
	r := h.do("GET", "/health", nil, nil)
	deps := r.body["dependencies"].(map[string]any)
	for _, name := range []string{"database", "job_queue", "ghl_api", "aloware_api", "verity_api"} {
		if deps[name] != "ok" {
			t.Errorf("%s = %v, want ok (%s)", name, deps[name], r.raw)
		}
	}
	plain := start(t, nil)
	deps = plain.do("GET", "/health", nil, nil).body["dependencies"].(map[string]any)
	if deps["ghl_api"] != "not_configured" || deps["verity_api"] != "not_configured" {
		t.Fatalf("unconfigured upstreams reported %v", deps)
	}
}

func TestGatewayRefusesBadKeyBadJWTAndUncataloguedPaths(t *testing.T) {
	t.Parallel()
	h, sb := startSynced(t, nil)
	key := http.Header{"X-Api-Key": {"gateway-key-for-tests-0005"}}
	call := func(hdr http.Header, body string) reply { return h.do("POST", "/api/verity", hdr, []byte(body)) }

	r := call(key, `{"endpoint":"/api/comms/broadcasts","method":"GET","query":{"limit":"2"}}`)
	if r.code != http.StatusOK || len(r.body["broadcasts"].([]any)) != 2 {
		t.Fatalf("catalogued call: %d %s", r.code, r.raw)
	}
	if r := call(http.Header{"X-Api-Key": {"wrong"}}, `{"endpoint":"/api/calls"}`); r.code != http.StatusUnauthorized {
		t.Fatalf("bad key: %d", r.code)
	}
	if r := call(nil, `{"endpoint":"/api/calls"}`); r.code != http.StatusUnauthorized {
		t.Fatalf("no key: %d", r.code)
	}
	bad := key.Clone()
	bad.Set("X-User-Token", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	if r := call(bad, `{"endpoint":"/api/calls"}`); r.code != http.StatusUnauthorized {
		t.Fatalf("bad JWT: %d %s", r.code, r.raw)
	}
	sess := ""
	for _, s := range sb.State().ClerkSessions {
		if s.Status == "active" {
			sess = s.ID
		}
	}
	tok, err := sb.IssueSessionToken(sess, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	good := key.Clone()
	good.Set("X-User-Token", tok)
	if r := call(good, `{"endpoint":"/api/calls"}`); r.code != http.StatusOK {
		t.Fatalf("valid JWT: %d %s", r.code, r.raw)
	}
	for _, ep := range []string{`{"endpoint":"/api/comms/broadcasts/../../admin"}`, `{"endpoint":"http://evil.example/x"}`,
		`{"endpoint":"/api/secret"}`, `{"endpoint":"/api/calls","method":"DELETE"}`, `{"endpoint":"/api/calls","query":{"token":"x"}}`} {
		if r := call(key, ep); r.code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", ep, r.code)
		}
	}
	if r := h.do("GET", "/api/verity", key, nil); r.code != http.StatusOK || len(r.body["endpoints"].([]any)) == 0 {
		t.Fatalf("catalogue: %d %s", r.code, r.raw)
	}
}

func (h *harness) waitStatusWithin(id, status string, d time.Duration) store.Event {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ev, err := h.st.GetEvent(context.Background(), id)
		if err == nil && ev.Status == status {
			return ev
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("event %s: status %q (attempts %d, %q), want %q", id, ev.Status, ev.Attempts, ev.ErrorMessage, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An SMS STOP is a compliance record: kept even when GHL is not configured.
func TestTextingStopIsRecordedWithoutGHL(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	id := h.post("texting", []byte(`{"eventType":"message.received","messageId":"stop-no-ghl","from":"+13105550177","body":"stop"}`))
	ev := h.waitStatus(id, store.StatusSkipped)
	if !strings.Contains(ev.ErrorMessage, "opt-out recorded locally") {
		t.Fatalf("skip reason %q", ev.ErrorMessage)
	}
	if o, err := h.st.GetOptOut(context.Background(), "+13105550177"); err != nil || o.Status != "opted_out" || o.Keyword != "STOP" {
		t.Fatalf("opt-out = %+v, %v", o, err)
	}
}

// /mcp admits a Clerk session JWT only for users named in
// DF_MCP_ALLOWED_USERS. (No MCP server is mounted in this test, so a request
// that passes authentication gets 404.)
func TestMCPClerkAuthHonoursAllowlist(t *testing.T) {
	t.Parallel()
	h, sb := startSynced(t, map[string]string{"DF_MCP_ALLOWED_USERS": sandbox.SeedActiveUserID})
	// A second active session for a user who is not an operator.
	sb.AddClerkSession(sandbox.ClerkSession{ID: "sess_customer", UserID: sandbox.SeedNoSessionUserID, Status: "active"})
	token := func(session string) http.Header {
		tok, err := sb.IssueSessionToken(session, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return http.Header{"Authorization": {"Bearer " + tok}}
	}
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	if r := h.do("POST", "/mcp", token(sandbox.SeedActiveSessionID), body); r.code != http.StatusNotFound {
		t.Fatalf("allowed operator: %d %s, want past auth (404: no MCP mounted here)", r.code, r.raw)
	}
	if r := h.do("POST", "/mcp", token("sess_customer"), body); r.code != http.StatusForbidden {
		t.Fatalf("valid token of a non-operator: %d %s, want 403", r.code, r.raw)
	}
	if r := h.do("POST", "/mcp", http.Header{"Authorization": {"Bearer a.b.c"}}, body); r.code != http.StatusUnauthorized {
		t.Fatalf("forged token: %d, want 401", r.code)
	}
	if r := h.do("POST", "/mcp", nil, body); r.code != http.StatusUnauthorized {
		t.Fatalf("no token: %d, want 401", r.code)
	}
}

// The echo of a write can be processed before the writer has recorded the
// id the upstream assigned: the fingerprint recorded under the phone before
// the write still recognises it.
func TestEchoRecognisedBeforeTheNewIDIsRecorded(t *testing.T) {
	t.Parallel()
	h, sb := startSynced(t, nil)
	id := h.post("ghl", ghlContactBody("ContactCreate", "ghl-race", "Rae", "+13105550166"))
	h.waitStatus(id, store.StatusDone)
	var alo sandbox.AlowareContact
	for _, c := range sb.State().AlowareContacts {
		alo = c
	}
	// As if the echo came in before the writer's id-keyed record committed.
	if _, err := h.st.Pool.Exec(context.Background(), `DELETE FROM sync_echoes WHERE system = 'aloware' AND entity_id = $1`, strconv.Itoa(alo.ID)); err != nil {
		t.Fatal(err)
	}
	echo := fmt.Appendf(nil, `{"event":"Contact Created","body":{"id":%d,"first_name":"Rae","last_name":"Ruiz","email":"rae@example.com","phone_number":"+13105550166"}}`, alo.ID)
	ev := h.waitStatus(h.post("aloware", echo), store.StatusSkipped)
	if !strings.Contains(ev.ErrorMessage, "echo") || len(sb.State().GHLContacts) != 0 {
		t.Fatalf("echo not recognised: %q, GHL contacts %d", ev.ErrorMessage, len(sb.State().GHLContacts))
	}
}
