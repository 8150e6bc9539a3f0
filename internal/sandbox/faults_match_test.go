package sandbox

import (
	"encoding/json"
	"testing"
)

// A fault with Match hits only the calls that mention it (one poison
// contact) and leaves every other call alone; the forms endpoint counts the
// writes it accepts per phone.
func TestFaultsMatchAndAlowareWrites(t *testing.T) {
	e := newEnv(t, false, nil)
	const poison, healthy = "+13105559999", "+13105550101"
	e.sb.SetFaults(UpstreamAloware, Faults{ErrorRate: 1, Status: 500, Match: poison})
	form := func(phone string) string {
		return `{"api_token":"` + tAloToken + `","phone_number":"` + phone + `","force_update":true}`
	}
	e.run([]step{
		{name: "poison body", method: "POST", path: "/aloware/api/v1/webhook/forms", body: form(poison), status: 500},
		{name: "poison again", method: "POST", path: "/aloware/api/v1/webhook/forms", body: form(poison), status: 500},
		{name: "healthy body", method: "POST", path: "/aloware/api/v1/webhook/forms", body: form(healthy), status: 200},
		{name: "healthy update", method: "POST", path: "/aloware/api/v1/webhook/forms", body: form(healthy), status: 200},
		{name: "poison in the query (decoded)", method: "GET",
			path: "/aloware/api/v1/webhook/contacts/phone-number?api_token=" + tAloToken + "&phone_number=%2B13105559999", status: 500},
		{name: "other lookup", method: "GET",
			path: "/aloware/api/v1/webhook/contacts/phone-number?api_token=" + tAloToken + "&phone_number=%2B13105550101", status: 200},
		{name: "match shown", method: "GET", path: "/_sandbox/faults", status: 200,
			want: `{"aloware":{"error_rate":1,"status":500,"rate_429":0,"latency_ms":0,"outage":false,"match":"+13105559999"}}`, exact: true},
		{name: "match alone is refused", method: "POST", path: "/_sandbox/faults", body: `{"upstream":"ghl","match":"x"}`, status: 400},
		{name: "match over HTTP", method: "POST", path: "/_sandbox/faults",
			body: `{"upstream":"ghl","outage":true,"match":"poison-id"}`, status: 200},
		{name: "ghl unmatched", method: "GET", path: "/ghl/contacts/healthy-id", hdr: hContacts, status: 400},
		{name: "ghl matched", method: "GET", path: "/ghl/contacts/poison-id", hdr: hContacts, status: 503},
	})
	st := e.sb.State()
	if st.AlowareWrites[healthy] != 2 || st.AlowareWrites[poison] != 0 {
		t.Errorf("aloware_writes %v, want %s: 2 and nothing for the poison", st.AlowareWrites, healthy)
	}
	b, _ := json.Marshal(st)
	var raw map[string]any
	_ = json.Unmarshal(b, &raw)
	if raw["aloware_writes"] == nil {
		t.Error("state JSON lacks aloware_writes")
	}
	e.sb.Reset()
	if n := len(e.sb.State().AlowareWrites); n != 0 {
		t.Errorf("Reset kept %d write counts", n)
	}
}
