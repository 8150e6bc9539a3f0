package sandbox

import (
	"strconv"
	"testing"
	"time"
)

func TestGHLAuthAndVersion(t *testing.T) {
	e := newEnv(t, false, nil)
	upsert := `{"locationId":"` + tLocation + `","email":"a@example.com"}`
	e.run([]step{
		{name: "no token", method: "GET", path: "/ghl/contacts/x", hdr: map[string]string{"Version": GHLVersionContacts},
			status: 401, want: `{"statusCode":401,"message":"Invalid JWT"}`, exact: true},
		{name: "wrong token", method: "GET", path: "/ghl/contacts/x",
			hdr:    map[string]string{"Authorization": "Bearer nope", "Version": GHLVersionContacts},
			status: 401, want: `{"statusCode":401,"message":"Invalid JWT"}`, exact: true},
		{name: "basic scheme", method: "GET", path: "/ghl/contacts/x",
			hdr:    map[string]string{"Authorization": "Basic " + tGHLToken, "Version": GHLVersionContacts},
			status: 401, want: `{"statusCode":401,"message":"Invalid JWT"}`, exact: true},
		{name: "contacts without Version", method: "POST", path: "/ghl/contacts/upsert",
			hdr: map[string]string{"Authorization": "Bearer " + tGHLToken}, body: upsert,
			status: 400, want: `{"statusCode":400,"message":"Version header is missing or invalid"}`, exact: true},
		{name: "contacts with the conversations Version", method: "POST", path: "/ghl/contacts/upsert",
			hdr: hConvs, body: upsert,
			status: 400, want: `{"statusCode":400,"message":"Version header is missing or invalid"}`, exact: true},
		{name: "conversations with the contacts Version", method: "GET", path: "/ghl/conversations/search?locationId=" + tLocation,
			hdr:    hContacts,
			status: 400, want: `{"statusCode":400,"message":"Version header is missing or invalid"}`, exact: true},
		{name: "conversations with their Version", method: "GET", path: "/ghl/conversations/search?locationId=" + tLocation,
			hdr: hConvs, status: 200, want: `{"conversations":[],"total":0}`, exact: true},
		{name: "unknown route", method: "GET", path: "/ghl/opportunities/search", hdr: hContacts,
			status: 404, want: `{"statusCode":404,"message":"Cannot GET /opportunities/search","error":"Not Found"}`, exact: true},
		{name: "wrong method is NestJS's 404", method: "DELETE", path: "/ghl/contacts/upsert", hdr: hContacts,
			status: 404, want: `{"statusCode":404,"error":"Not Found"}`},
	})
}

func TestGHLContacts(t *testing.T) {
	e := newEnv(t, false, nil)
	const c1, c2 = "sbxcontact0000000001", "sbxcontact0000000002"
	loc := `"locationId":"` + tLocation + `"`
	e.run([]step{
		{name: "get unknown", method: "GET", path: "/ghl/contacts/nope", hdr: hContacts,
			status: 400, want: `{"statusCode":400,"message":"Contact not found"}`, exact: true},
		{name: "upsert creates", method: "POST", path: "/ghl/contacts/upsert", hdr: hContacts,
			body:   `{` + loc + `,"firstName":"Ana","lastName":"Ruiz","email":"Ana@Example.com","phone":"+13105550100","tags":["lead"],"source":"test"}`,
			status: 200, want: `{"new":true,"traceId":"<any>","contact":{"id":"` + c1 + `","locationId":"` + tLocation +
				`","firstName":"Ana","lastName":"Ruiz","name":"Ana Ruiz","email":"Ana@Example.com","phone":"+13105550100","tags":["lead"],` +
				`"dnd":false,"dndSettings":{},"source":"test","dateAdded":"<any>","dateUpdated":"<any>"}}`, exact: true},
		{name: "upsert matches by email, case-insensitively", method: "POST", path: "/ghl/contacts/upsert", hdr: hContacts,
			body:   `{` + loc + `,"email":"ana@example.com","phone":"+13105550199","firstName":"Anita"}`,
			status: 200, want: `{"new":false,"contact":{"id":"` + c1 + `","firstName":"Anita","lastName":"Ruiz","name":"Anita Ruiz","phone":"+13105550199"}}`},
		{name: "upsert matches by phone when the email is new", method: "POST", path: "/ghl/contacts/upsert", hdr: hContacts,
			body:   `{` + loc + `,"email":"other@example.com","phone":"+13105550199"}`,
			status: 200, want: `{"new":false,"contact":{"id":"` + c1 + `","email":"other@example.com"}}`},
		{name: "upsert without match creates a second", method: "POST", path: "/ghl/contacts/upsert", hdr: hContacts,
			body: `{` + loc + `,"phone":"+447700900123"}`, status: 200, want: `{"new":true,"contact":{"id":"` + c2 + `"}}`},
		{name: "invalid phone", method: "POST", path: "/ghl/contacts/upsert", hdr: hContacts,
			body:   `{` + loc + `,"phone":"310-555-0100"}`,
			status: 422, want: `{"statusCode":422,"message":["phone must be a valid phone number"],"error":"Unprocessable Entity"}`, exact: true},
		{name: "too short phone", method: "POST", path: "/ghl/contacts/upsert", hdr: hContacts,
			body: `{` + loc + `,"phone":"+1234567"}`, status: 422, want: `{"message":["phone must be a valid phone number"]}`},
		{name: "invalid email", method: "POST", path: "/ghl/contacts/upsert", hdr: hContacts,
			body: `{` + loc + `,"email":"nope"}`, status: 422, want: `{"message":["email must be an email"]}`},
		{name: "other location", method: "POST", path: "/ghl/contacts/upsert", hdr: hContacts,
			body:   `{"locationId":"elsewhere","email":"x@example.com"}`,
			status: 403, want: `{"statusCode":403,"message":"The token does not have access to this location.","error":"Forbidden"}`, exact: true},
		{name: "no location", method: "POST", path: "/ghl/contacts/upsert", hdr: hContacts,
			body: `{"email":"x@example.com"}`, status: 422, want: `{"statusCode":422,"message":["locationId should not be empty"]}`},
		{name: "malformed JSON", method: "POST", path: "/ghl/contacts/upsert", hdr: hContacts,
			body: `{"locationId":`, status: 400, want: `{"statusCode":400,"error":"Bad Request"}`},
		{name: "get", method: "GET", path: "/ghl/contacts/" + c1, hdr: hContacts,
			status: 200, want: `{"contact":{"id":"` + c1 + `","email":"other@example.com","phone":"+13105550199"}}`},
		{name: "update dnd", method: "PUT", path: "/ghl/contacts/" + c1, hdr: hContacts,
			body:   `{"dnd":true,"dndSettings":{"SMS":{"status":"active","message":"STOP received","code":"stop"}}}`,
			status: 200, want: `{"succeded":true,"contact":{"id":"` + c1 + `","dnd":true,"dndSettings":{"SMS":{"status":"active","message":"STOP received","code":"stop"}}}}`},
		{name: "update keeps other dnd channels and replaces tags", method: "PUT", path: "/ghl/contacts/" + c1, hdr: hContacts,
			body:   `{"dndSettings":{"Call":{"status":"inactive"}},"tags":["a","b"]}`,
			status: 200, want: `{"contact":{"dndSettings":{"SMS":{"status":"active","message":"STOP received","code":"stop"},"Call":{"status":"inactive"}},"tags":["a","b"]}}`},
		{name: "update rejects locationId", method: "PUT", path: "/ghl/contacts/" + c1, hdr: hContacts,
			body: `{` + loc + `,"dnd":false}`, status: 422, want: `{"message":["property locationId should not exist"]}`},
		{name: "update bad phone", method: "PUT", path: "/ghl/contacts/" + c1, hdr: hContacts,
			body: `{"phone":"12"}`, status: 422, want: `{"message":["phone must be a valid phone number"]}`},
		{name: "update unknown", method: "PUT", path: "/ghl/contacts/nope", hdr: hContacts,
			body: `{"dnd":true}`, status: 400, want: `{"statusCode":400,"message":"Contact not found"}`, exact: true},
		{name: "duplicate by number (escaped +)", method: "GET", hdr: hContacts,
			path:   "/ghl/contacts/search/duplicate?locationId=" + tLocation + "&number=%2B13105550199",
			status: 200, want: `{"contact":{"id":"` + c1 + `"}}`},
		{name: "duplicate by number (raw +)", method: "GET", hdr: hContacts,
			path:   "/ghl/contacts/search/duplicate?locationId=" + tLocation + "&number=+447700900123",
			status: 200, want: `{"contact":{"id":"` + c2 + `"}}`},
		{name: "duplicate by email first", method: "GET", hdr: hContacts,
			path:   "/ghl/contacts/search/duplicate?locationId=" + tLocation + "&email=OTHER@example.com&number=%2B447700900123",
			status: 200, want: `{"contact":{"id":"` + c1 + `"}}`},
		{name: "duplicate none", method: "GET", hdr: hContacts,
			path:   "/ghl/contacts/search/duplicate?locationId=" + tLocation + "&number=%2B19995550000",
			status: 200, want: `{"contact":null}`, exact: true},
		{name: "duplicate other location", method: "GET", hdr: hContacts,
			path: "/ghl/contacts/search/duplicate?locationId=x&number=%2B1", status: 403},
		{name: "note", method: "POST", path: "/ghl/contacts/" + c1 + "/notes", hdr: hContacts,
			body:   `{"body":"Call disposed: Interested","userId":"u1"}`,
			status: 201, want: `{"note":{"id":"sbxnote0000000000001","body":"Call disposed: Interested","contactId":"` + c1 + `","userId":"u1","dateAdded":"<any>"}}`, exact: true},
		{name: "note empty", method: "POST", path: "/ghl/contacts/" + c1 + "/notes", hdr: hContacts,
			body: `{"body":""}`, status: 422, want: `{"statusCode":422,"message":["body should not be empty"],"error":"Unprocessable Entity"}`, exact: true},
		{name: "note unknown contact", method: "POST", path: "/ghl/contacts/nope/notes", hdr: hContacts,
			body: `{"body":"x"}`, status: 400, want: `{"statusCode":400,"message":"Contact not found"}`, exact: true},
		{name: "tags merge", method: "POST", path: "/ghl/contacts/" + c1 + "/tags", hdr: hContacts,
			body: `{"tags":["b","c"]}`, status: 201, want: `{"tags":["a","b","c"]}`, exact: true},
		{name: "tags empty", method: "POST", path: "/ghl/contacts/" + c1 + "/tags", hdr: hContacts,
			body: `{"tags":[]}`, status: 422},
		{name: "tags unknown contact", method: "POST", path: "/ghl/contacts/nope/tags", hdr: hContacts,
			body: `{"tags":["x"]}`, status: 400, want: `{"message":"Contact not found"}`},
	})
	st := e.sb.State()
	if len(st.GHLContacts) != 2 || len(st.GHLNotes) != 1 {
		t.Errorf("state: %d contacts, %d notes", len(st.GHLContacts), len(st.GHLNotes))
	}
	if got := st.GHLTags[c1]; len(got) != 3 {
		t.Errorf("tags of %s: %v", c1, got)
	}
	if st.Calls["ghl POST /contacts/upsert"] != 10 || st.Calls["ghl GET /contacts/{id}"] != 2 {
		t.Errorf("call counts: %v", st.Calls)
	}
}

func TestGHLConversations(t *testing.T) {
	e := newEnv(t, false, nil)
	c := e.sb.AddGHLContact(GHLContact{FirstName: "Ana", Phone: "+13105550100"})
	const conv = "sbxconvo000000000001"
	loc := `"locationId":"` + tLocation + `"`
	e.run([]step{
		{name: "search none", method: "GET", path: "/ghl/conversations/search?locationId=" + tLocation + "&contactId=" + c.ID,
			hdr: hConvs, status: 200, want: `{"conversations":[],"total":0}`, exact: true},
		{name: "search needs location", method: "GET", path: "/ghl/conversations/search?contactId=" + c.ID,
			hdr: hConvs, status: 422},
		{name: "create", method: "POST", path: "/ghl/conversations/", hdr: hConvs,
			body:   `{` + loc + `,"contactId":"` + c.ID + `"}`,
			status: 201, want: `{"success":true,"conversation":{"id":"` + conv + `","contactId":"` + c.ID + `","locationId":"` + tLocation + `"}}`, exact: true},
		{name: "create again", method: "POST", path: "/ghl/conversations/", hdr: hConvs,
			body:   `{` + loc + `,"contactId":"` + c.ID + `"}`,
			status: 400, want: `{"statusCode":400,"message":"Conversation already exists","conversationId":"` + conv + `"}`, exact: true},
		{name: "create unknown contact", method: "POST", path: "/ghl/conversations", hdr: hConvs,
			body: `{` + loc + `,"contactId":"nope"}`, status: 400, want: `{"message":"Contact not found"}`},
		{name: "search finds", method: "GET", path: "/ghl/conversations/search?locationId=" + tLocation + "&contactId=" + c.ID,
			hdr: hConvs, status: 200, want: `{"conversations":[{"id":"` + conv + `","contactId":"` + c.ID + `","locationId":"` + tLocation + `"}],"total":1}`, exact: true},
		{name: "outbound", method: "POST", path: "/ghl/conversations/messages", hdr: hConvs,
			body:   `{"type":"SMS","contactId":"` + c.ID + `","message":"hello","toNumber":"+13105550100"}`,
			status: 201, want: `{"conversationId":"` + conv + `","messageId":"sbxmsg00000000000001","msg":"Message queued"}`, exact: true},
		{name: "outbound bad type", method: "POST", path: "/ghl/conversations/messages", hdr: hConvs,
			body: `{"type":"Pigeon","contactId":"` + c.ID + `","message":"x"}`, status: 422},
		{name: "outbound unknown contact", method: "POST", path: "/ghl/conversations/messages", hdr: hConvs,
			body: `{"type":"SMS","contactId":"nope","message":"x"}`, status: 400, want: `{"message":"Contact not found"}`},
		{name: "inbound needs provider", method: "POST", path: "/ghl/conversations/messages/inbound", hdr: hConvs,
			body:   `{"type":"SMS","conversationId":"` + conv + `","message":"hi","direction":"inbound"}`,
			status: 422, want: `{"statusCode":422,"message":["conversationProviderId should not be empty"],"error":"Unprocessable Entity"}`, exact: true},
		{name: "inbound needs both", method: "POST", path: "/ghl/conversations/messages/inbound", hdr: hConvs,
			body:   `{"type":"SMS","message":"hi"}`,
			status: 422, want: `{"message":["conversationId should not be empty","conversationProviderId should not be empty"]}`},
		{name: "inbound", method: "POST", path: "/ghl/conversations/messages/inbound", hdr: hConvs,
			body:   `{"type":"SMS","conversationId":"` + conv + `","conversationProviderId":"prov1","message":"hi","direction":"inbound","date":"2026-03-10T17:10:00Z"}`,
			status: 200, want: `{"success":true,"conversationId":"` + conv + `","messageId":"sbxmsg00000000000002","message":"<any>"}`, exact: true},
		{name: "inbound unknown conversation", method: "POST", path: "/ghl/conversations/messages/inbound", hdr: hConvs,
			body: `{"type":"SMS","conversationId":"nope","conversationProviderId":"p","message":"hi"}`, status: 400},
	})
	st := e.sb.State()
	if len(st.GHLMessages) != 2 || st.GHLMessages[0].Direction != "outbound" || st.GHLMessages[1].Direction != "inbound" ||
		st.GHLMessages[1].ContactID != c.ID {
		t.Errorf("messages: %+v", st.GHLMessages)
	}
}

func TestGHLRateLimit(t *testing.T) {
	e := newEnv(t, true, func(c *Config) { c.GHLBurst = 3; c.GHLInterval = 10 * time.Second; c.GHLDailyLimit = 5 })
	get := func() resp { return e.do("GET", "/ghl/contacts/x", hContacts, "") }
	check := func(name string, r resp, status int, remaining, daily string) {
		t.Helper()
		if r.status != status {
			t.Fatalf("%s: status %d, want %d: %s", name, r.status, status, r.body)
		}
		for h, want := range map[string]string{
			"X-RateLimit-Limit-Daily": "5", "X-RateLimit-Daily-Remaining": daily,
			"X-RateLimit-Interval-Milliseconds": "10000", "X-RateLimit-Max": "3", "X-RateLimit-Remaining": remaining,
		} {
			if got := r.header.Get(h); got != want {
				t.Errorf("%s: %s = %q, want %q", name, h, got, want)
			}
		}
	}
	check("1", get(), 400, "2", "4")
	// A 401 carries the headers and consumes nothing.
	check("401", e.do("GET", "/ghl/contacts/x", map[string]string{"Version": GHLVersionContacts}, ""), 401, "2", "4")
	check("2", get(), 400, "1", "3")
	e.clk.Advance(4 * time.Second)
	check("3", get(), 400, "0", "2")
	r := get()
	check("4 is over the burst", r, 429, "0", "2")
	expect(t, "429 body", r, 429, `{"statusCode":429,"message":"Too Many Requests"}`, true)
	if got := r.header.Get("Retry-After"); got != "6" { // the window opened 4 s ago
		t.Errorf("Retry-After %q, want 6", got)
	}
	e.clk.Advance(2500 * time.Millisecond)
	if got := get().header.Get("Retry-After"); got != "4" { // 3.5 s rounds up
		t.Errorf("Retry-After %q, want 4", got)
	}
	e.clk.Advance(8 * time.Second) // window rolled over
	check("5", get(), 400, "2", "1")
	check("6", get(), 400, "1", "0")
	r = get()
	check("daily exhausted", r, 429, "0", "0")
	if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); ra < 1 {
		t.Errorf("daily 429 Retry-After %q", r.header.Get("Retry-After"))
	}
}

func TestGHLUnlimited(t *testing.T) {
	e := newEnv(t, false, func(c *Config) { c.GHLBurst = -1; c.GHLDailyLimit = -1 })
	for i := range 150 {
		if r := e.do("GET", "/ghl/contacts/x", hContacts, ""); r.status != 400 {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
}
