package sandbox

import (
	"testing"
	"time"
)

func TestAloware(t *testing.T) {
	e := newEnv(t, false, nil)
	tok := `"api_token":"` + tAloToken + `"`
	e.run([]step{
		{name: "users", method: "GET", path: "/aloware/api/v1/webhook/users?api_token=" + tAloToken,
			status: 200, want: `[{"id":12,"name":"Dana Agent","email":"dana@sandbox.example"},{"id":13,"name":"Eli Agent","email":"eli@sandbox.example"}]`, exact: true},
		{name: "users without token", method: "GET", path: "/aloware/api/v1/webhook/users",
			status: 401, want: `{"message":"Invalid api token."}`, exact: true},
		{name: "users with the token in a header only", method: "GET", path: "/aloware/api/v1/webhook/users",
			hdr: map[string]string{"Authorization": "Bearer " + tAloToken}, status: 401},
		{name: "POST with the token in the query is refused", method: "POST",
			path: "/aloware/api/v1/webhook/forms?api_token=" + tAloToken, body: `{"phone_number":"+13105550100"}`,
			status: 401, want: `{"message":"Invalid api token."}`, exact: true},
		{name: "POST with a wrong body token", method: "POST", path: "/aloware/api/v1/webhook/forms",
			body: `{"api_token":"nope","phone_number":"+13105550100"}`, status: 401},
		{name: "create", method: "POST", path: "/aloware/api/v1/webhook/forms",
			body:   `{` + tok + `,"phone_number":"+13105550100","first_name":"Ana","last_name":"Ruiz","email":"ana@example.com","lead_source":"GHL","force_update":true}`,
			status: 200, want: `{"message":"Contact has been created.","contact":{"id":1001,"first_name":"Ana","last_name":"Ruiz","email":"ana@example.com",` +
				`"phone_number":"+13105550100","lead_source":"GHL","created_at":"<any>","updated_at":"<any>"}}`, exact: true},
		{name: "existing phone without force_update", method: "POST", path: "/aloware/api/v1/webhook/forms",
			body:   `{` + tok + `,"phone_number":"(310) 555-0100","first_name":"Other"}`,
			status: 409, want: `{"message":"Contact already exists.","contact":{"id":1001}}`, exact: true},
		{name: "existing phone with force_update false", method: "POST", path: "/aloware/api/v1/webhook/forms",
			body: `{` + tok + `,"phone_number":"+13105550100","force_update":false}`, status: 409},
		{name: "update", method: "POST", path: "/aloware/api/v1/webhook/forms",
			body:   `{` + tok + `,"phone_number":"310.555.0100","first_name":"Anita","force_update":"1"}`,
			status: 200, want: `{"message":"Contact has been updated.","contact":{"id":1001,"first_name":"Anita","last_name":"Ruiz","phone_number":"+13105550100"}}`},
		{name: "second contact", method: "POST", path: "/aloware/api/v1/webhook/forms",
			body: `{` + tok + `,"phone_number":"+447700900123","force_update":true}`, status: 200, want: `{"contact":{"id":1002}}`},
		{name: "phone required", method: "POST", path: "/aloware/api/v1/webhook/forms",
			body:   `{` + tok + `,"first_name":"Nobody"}`,
			status: 422, want: `{"message":"The given data was invalid.","errors":{"phone_number":["The phone number field is required."]}}`, exact: true},
		{name: "phone invalid", method: "POST", path: "/aloware/api/v1/webhook/forms",
			body: `{` + tok + `,"phone_number":"call me"}`, status: 422, want: `{"errors":{"phone_number":["The phone number format is invalid."]}}`},
		{name: "lookup", method: "GET", path: "/aloware/api/v1/webhook/contacts/phone-number?api_token=" + tAloToken + "&phone_number=%2B13105550100",
			status: 200, want: `{"contact":{"id":1001,"first_name":"Anita"}}`},
		{name: "lookup with an unescaped +", method: "GET", path: "/aloware/api/v1/webhook/contacts/phone-number?api_token=" + tAloToken + "&phone_number=+447700900123",
			status: 200, want: `{"contact":{"id":1002}}`},
		{name: "lookup absent", method: "GET", path: "/aloware/api/v1/webhook/contacts/phone-number?api_token=" + tAloToken + "&phone_number=%2B19995550000",
			status: 404, want: `{"message":"Contact not found."}`, exact: true},
		{name: "lookup without phone", method: "GET", path: "/aloware/api/v1/webhook/contacts/phone-number?api_token=" + tAloToken,
			status: 422, want: `{"errors":{"phone_number":["The phone number field is required."]}}`},
		{name: "lookup with the token in the body is refused", method: "GET", path: "/aloware/api/v1/webhook/contacts/phone-number?phone_number=%2B13105550100",
			body: `{` + tok + `}`, status: 401},
		{name: "sms", method: "POST", path: "/aloware/api/v1/webhook/sms-gateway/send",
			body:   `{` + tok + `,"from":"+18555550199","to":"+13105550100","message":"hi"}`,
			status: 200, want: `{"message":"Message sent.","id":5001}`, exact: true},
		{name: "sms missing fields", method: "POST", path: "/aloware/api/v1/webhook/sms-gateway/send",
			body:   `{` + tok + `,"to":"+13105550100"}`,
			status: 422, want: `{"message":"The given data was invalid.","errors":{"from":["The from field is required."],"message":["The message field is required."]}}`, exact: true},
		{name: "sms token in query", method: "POST", path: "/aloware/api/v1/webhook/sms-gateway/send?api_token=" + tAloToken,
			body: `{"from":"+18555550199","to":"+13105550100","message":"hi"}`, status: 401},
		{name: "unknown route", method: "GET", path: "/aloware/api/v1/nothing", status: 404, want: `{"message":"Not Found."}`, exact: true},
	})
	st := e.sb.State()
	if len(st.AlowareContacts) != 2 || st.AlowareContacts["1001"].FirstName != "Anita" || len(st.AlowareSMS) != 1 {
		t.Errorf("state: %+v %+v", st.AlowareContacts, st.AlowareSMS)
	}
	if got := e.sb.AddAlowareContact(AlowareContact{PhoneNumber: "3105550111"}); got.ID != 1003 || got.PhoneNumber != "+13105550111" {
		t.Errorf("AddAlowareContact: %+v", got)
	}
}

func TestAlowareFormBody(t *testing.T) {
	e := newEnv(t, false, nil)
	r := e.do("POST", "/aloware/api/v1/webhook/forms",
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
		"api_token="+tAloToken+"&phone_number=%2B13105550100&force_update=1")
	expect(t, "form body", r, 200, `{"message":"Contact has been created.","contact":{"id":1001}}`, false)
}

func TestAlowareRateLimit(t *testing.T) {
	e := newEnv(t, true, func(c *Config) { c.AlowarePerMinute = 2 })
	get := func() resp { return e.do("GET", "/aloware/api/v1/webhook/users?api_token="+tAloToken, nil, "") }
	for i, want := range []string{"1", "0"} {
		r := get()
		if r.status != 200 || r.header.Get("X-RateLimit-Limit") != "2" || r.header.Get("X-RateLimit-Remaining") != want {
			t.Fatalf("request %d: %d %v", i, r.status, r.header)
		}
	}
	e.clk.Advance(15 * time.Second)
	r := get()
	expect(t, "429", r, 429, `{"message":"Too Many Attempts."}`, true)
	if r.header.Get("Retry-After") != "45" || r.header.Get("X-RateLimit-Remaining") != "0" || r.header.Get("X-RateLimit-Reset") == "" {
		t.Errorf("429 headers: %v", r.header)
	}
	// A refused token neither consumes nor escapes the headers.
	r = e.do("GET", "/aloware/api/v1/webhook/users", nil, "")
	if r.status != 401 || r.header.Get("X-RateLimit-Limit") != "2" {
		t.Errorf("401: %d %v", r.status, r.header)
	}
	e.clk.Advance(45 * time.Second)
	if r := get(); r.status != 200 || r.header.Get("X-RateLimit-Remaining") != "1" {
		t.Errorf("after the minute: %d %v", r.status, r.header)
	}
}
