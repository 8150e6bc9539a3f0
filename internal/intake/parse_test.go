package intake

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Fixtures are read from the package's testdata copies; sharedFixtureDir is
// the shared checkout they are copied from (a sibling of the repository).
const (
	fixtureDir       = "testdata/fixtures"
	sharedFixtureDir = "../../../shared/fixtures"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return b
}

func fixtureFiles(t testing.TB, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(fixtureDir, pattern))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures match %s (err %v)", pattern, err)
	}
	return files
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestFixtureCopiesMatchShared(t *testing.T) {
	if _, err := os.Stat(sharedFixtureDir); err != nil {
		t.Skipf("shared fixtures not checked out at %s", sharedFixtureDir)
	}
	for _, pattern := range []string{"*.json", "ghl-docs/*.json"} {
		shared, _ := filepath.Glob(filepath.Join(sharedFixtureDir, pattern))
		copies, _ := filepath.Glob(filepath.Join(fixtureDir, pattern))
		if len(shared) != len(copies) {
			t.Errorf("%s: %d shared fixtures, %d copies in testdata", pattern, len(shared), len(copies))
		}
		for _, s := range shared {
			rel, _ := filepath.Rel(sharedFixtureDir, s)
			want, _ := os.ReadFile(s)
			got, err := os.ReadFile(filepath.Join(fixtureDir, rel))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("testdata copy of %s is missing or differs: copy shared/fixtures again", rel)
			}
		}
	}
}

func TestParseTopLevelFixtures(t *testing.T) {
	tests := []struct {
		file, source string
		want         Parsed
		dedupe       string // DedupeKey; "<prefix>sha256:" means the body hash
	}{
		{"ghl-contact-create.json", SourceGHL, Parsed{
			EventType: "ContactCreate", EntityType: "contact", EntityID: "nmFmQEsNgz6AVpgLVUJ0",
			Timestamp: time.Date(2025, 1, 28, 14, 35, 0, 0, time.UTC),
		}, "ghl:wh:abc123xyz"},
		// GHL's SMS example has no messageId: the id falls back to conversationId.
		{"ghl-inbound-message.json", SourceGHL, Parsed{
			EventType: "InboundMessage", EntityType: "message", EntityID: "fcanlLgpbQgQhderivVs",
		}, "ghl:sha256:"},
		{"ghl-appointment-create.json", SourceGHL, Parsed{
			EventType: "AppointmentCreate", EntityType: "appointment", EntityID: "0007BWpSzSwfiuSl0tR2",
		}, "ghl:sha256:"},
		{"aloware-inbound-sms.json", SourceAloware, Parsed{
			EventType: "InboundSMS-DispositionCompleted", EntityType: "message", EntityID: "98765",
		}, "aloware:sha256:"},
		{"aloware-call-disposed.json", SourceAloware, Parsed{
			EventType: "OutboundPhoneCall-DispositionCompleted", EntityType: "call", EntityID: "55501",
		}, "aloware:sha256:"},
		{"texting-message-received.json", SourceTexting, Parsed{
			EventType: "message.received", EntityType: "message", EntityID: "txt_msg_0001",
		}, "texting:message.received:txt_msg_0001"},
		{"broadcast-analytics-updated.json", SourceBroadcast, Parsed{
			EventType: "analytics_updated", EntityType: "broadcast", EntityID: "bc_0001",
		}, "broadcast:sha256:"},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			body := readFixture(t, tt.file)
			got, err := Parse(tt.source, body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := tt.want
			want.DedupeKey = tt.dedupe
			if strings.HasSuffix(tt.dedupe, "sha256:") {
				want.DedupeKey += sha256Hex(body)
			}
			assertParsed(t, got, want)
		})
	}
	for _, f := range fixtureFiles(t, "*.json") {
		if !covered[filepath.Base(f)] {
			t.Errorf("fixture %s has no row in the table", filepath.Base(f))
		}
	}
}

func assertParsed(t *testing.T, got, want Parsed) {
	t.Helper()
	if got.EventType != want.EventType || got.EntityType != want.EntityType ||
		got.EntityID != want.EntityID || got.DedupeKey != want.DedupeKey || !got.Timestamp.Equal(want.Timestamp) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// ghlDocPages says, per GHL doc page, which entity the example is about and
// where its id sits (first present of the listed paths; none for app events),
// as documented in fixtures/ghl-docs/README.md.
var ghlDocPages = map[string]struct {
	entity  string
	idPaths []string
}{
	"AppInstall":                     {"app", nil},
	"AppUninstall":                   {"app", nil},
	"PlanChange":                     {"app", nil},
	"AppointmentCreate":              {"appointment", []string{"appointment.id"}},
	"AppointmentDelete":              {"appointment", []string{"appointment.id"}},
	"AppointmentUpdate":              {"appointment", []string{"appointment.id"}},
	"AssociationCreate":              {"association", []string{"id"}},
	"AssociationDelete":              {"association", []string{"id"}},
	"AssociationUpdate":              {"association", []string{"id"}},
	"CampaignStatusUpdate":           {"campaign", []string{"id"}},
	"ContactCreate":                  {"contact", []string{"id"}},
	"ContactDelete":                  {"contact", []string{"id"}},
	"ContactDndUpdate":               {"contact", []string{"id"}},
	"ContactTagUpdate":               {"contact", []string{"id"}},
	"ContactUpdate":                  {"contact", []string{"id"}},
	"ConversationUnreadWebhook":      {"conversation", []string{"id"}},
	"InboundMessage":                 {"message", []string{"messageId", "emailMessageId", "conversationId"}},
	"OutboundMessage":                {"message", []string{"messageId", "emailMessageId", "conversationId"}},
	"ProviderOutboundMessage":        {"message", []string{"messageId"}},
	"InvoiceCreate":                  {"invoice", []string{"_id"}},
	"InvoiceDelete":                  {"invoice", []string{"_id"}},
	"InvoicePaid":                    {"invoice", []string{"_id"}},
	"InvoicePartiallyPaid":           {"invoice", []string{"_id"}},
	"InvoiceSent":                    {"invoice", []string{"_id"}},
	"InvoiceUpdate":                  {"invoice", []string{"_id"}},
	"InvoiceVoid":                    {"invoice", []string{"_id"}},
	"LCEmailStats":                   {"email_stats", []string{"webhookPayload.id"}},
	"LocationCreate":                 {"location", []string{"id"}},
	"LocationUpdate":                 {"location", []string{"id"}},
	"NoteCreate":                     {"note", []string{"id"}},
	"NoteDelete":                     {"note", []string{"id"}},
	"NoteUpdate":                     {"note", []string{"id"}},
	"ObjectSchemaCreate":             {"object_schema", []string{"id"}},
	"ObjectSchemaUpdate":             {"object_schema", []string{"id"}},
	"OpportunityAssignedToUpdate":    {"opportunity", []string{"id"}},
	"OpportunityCreate":              {"opportunity", []string{"id"}},
	"OpportunityDelete":              {"opportunity", []string{"id"}},
	"OpportunityMonetaryValueUpdate": {"opportunity", []string{"id"}},
	"OpportunityStageUpdate":         {"opportunity", []string{"id"}},
	"OpportunityStatusUpdate":        {"opportunity", []string{"id"}},
	"OpportunityUpdate":              {"opportunity", []string{"id"}},
	"OrderCreate":                    {"order", []string{"_id"}},
	"OrderStatusUpdate":              {"order", []string{"_id"}},
	"PriceCreate":                    {"price", []string{"_id"}},
	"PriceDelete":                    {"price", []string{"_id"}},
	"PriceUpdate":                    {"price", []string{"_id"}},
	"ProductCreate":                  {"product", []string{"_id"}},
	"ProductDelete":                  {"product", []string{"_id"}},
	"ProductUpdate":                  {"product", []string{"_id"}},
	"RecordCreate":                   {"record", []string{"id"}},
	"RecordDelete":                   {"record", []string{"id"}},
	"RecordUpdate":                   {"record", []string{"id"}},
	"RelationCreate":                 {"relation", []string{"id"}},
	"RelationDelete":                 {"relation", []string{"id"}},
	"TaskComplete":                   {"task", []string{"id"}},
	"TaskCreate":                     {"task", []string{"id"}},
	"TaskDelete":                     {"task", []string{"id"}},
	"UserCreate":                     {"user", []string{"id"}},
}

// lookupString follows a dotted path through decoded JSON objects.
func lookupString(m map[string]any, path string) string {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = obj[k]
	}
	s, _ := v.(string)
	return s
}

func TestParseGHLDocExamples(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range fixtureFiles(t, "ghl-docs/*.json") {
		name := filepath.Base(f)
		page, _, _ := strings.Cut(strings.TrimSuffix(name, ".json"), ".")
		seen[page] = true
		t.Run(name, func(t *testing.T) {
			spec, ok := ghlDocPages[page]
			if !ok {
				t.Fatalf("page %s has no row in ghlDocPages", page)
			}
			body := readFixture(t, "ghl-docs/"+name)
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			got, err := ParseGHL(body)
			if err != nil {
				t.Fatalf("ParseGHL: %v", err)
			}

			wantType, _ := m["type"].(string)
			if wantType == "" {
				wantType = UnknownEventType
			}
			wantID := ""
			for _, p := range spec.idPaths {
				if wantID = lookupString(m, p); wantID != "" {
					break
				}
			}
			if len(spec.idPaths) > 0 && wantID == "" {
				t.Fatalf("fixture has no id at %v", spec.idPaths)
			}
			var wantTS time.Time
			if s, ok := m["timestamp"].(string); ok {
				wantTS, _ = time.Parse(time.RFC3339, s)
			}
			assertParsed(t, got, Parsed{
				EventType: wantType, EntityType: spec.entity, EntityID: wantID,
				DedupeKey: "ghl:sha256:" + sha256Hex(body), Timestamp: wantTS,
			})
		})
	}
	for page := range ghlDocPages {
		if !seen[page] {
			t.Errorf("ghlDocPages lists %s, which has no fixture", page)
		}
	}
}

func TestParseGHLFields(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct {
		name string
		body string
		want Parsed // DedupeKey "" means the body hash
	}{
		{"no type", `{"id":"c1"}`, Parsed{EventType: "unknown", EntityID: "c1"}},
		{"type not a string", `{"type":7,"id":"c1"}`, Parsed{EventType: "unknown", EntityID: "c1"}},
		{"empty type", `{"type":"  ","id":"c1"}`, Parsed{EventType: "unknown", EntityID: "c1"}},
		{"control characters stripped", `{"type":"Contact\u0001Cre\tate\u007f","id":"c1"}`,
			Parsed{EventType: "ContactCreate", EntityType: "contact", EntityID: "c1"}},
		{"escaped type", `{"type":"Note\u0043reate","id":"n1"}`, Parsed{EventType: "NoteCreate", EntityType: "note", EntityID: "n1"}},
		{"long type cut to 100", `{"type":"Task` + long + `"}`, Parsed{EventType: "Task" + long[:96], EntityType: "task"}},
		{"numeric id", `{"type":"ContactCreate","id":12345}`, Parsed{EventType: "ContactCreate", EntityType: "contact", EntityID: "12345"}},
		{"empty id falls through", `{"id":"","_id":"p1","product":"x"}`, Parsed{EventType: "unknown", EntityType: "price", EntityID: "p1"}},
		{"object id falls through", `{"id":{"a":1},"messageId":"m1"}`, Parsed{EventType: "unknown", EntityType: "message", EntityID: "m1"}},
		{"long id cut to 200", `{"id":"` + long + `"}`, Parsed{EventType: "unknown", EntityID: long[:200]}},
		{"multibyte id cut to 200 runes", `{"id":"` + strings.Repeat("é", 250) + `"}`,
			Parsed{EventType: "unknown", EntityID: strings.Repeat("é", 200)}},
		{"appointment not an object", `{"type":"AppointmentCreate","appointment":"x","webhookId":"w1"}`,
			Parsed{EventType: "AppointmentCreate", EntityType: "appointment", DedupeKey: "ghl:wh:w1"}},
		{"appointment array", `{"appointment":[1,2],"type":"AppointmentUpdate","id":"a9","webhookId":"w2"}`,
			Parsed{EventType: "AppointmentUpdate", EntityType: "appointment", EntityID: "a9", DedupeKey: "ghl:wh:w2"}},
		{"webhookPayload not an object", `{"type":"LCEmailStats","webhookPayload":5}`, Parsed{EventType: "LCEmailStats", EntityType: "email_stats"}},
		{"empty webhookId", `{"type":"ContactCreate","id":"c","webhookId":""}`, Parsed{EventType: "ContactCreate", EntityType: "contact", EntityID: "c"}},
		{"numeric webhookId is not a webhookId", `{"webhookId":17}`, Parsed{EventType: "unknown"}},
		{"long webhookId hashed", `{"webhookId":"` + long + `"}`,
			Parsed{EventType: "unknown", DedupeKey: "ghl:wh:sha256-" + sha256Hex([]byte(long))}},
		{"webhookId with control character hashed", `{"webhookId":"a\nb"}`,
			Parsed{EventType: "unknown", DedupeKey: "ghl:wh:sha256-" + sha256Hex([]byte("a\nb"))}},
		{"duplicate key: last wins", `{"type":"Nope","type":"UserCreate","id":"u"}`, Parsed{EventType: "UserCreate", EntityType: "user", EntityID: "u"}},
		{"app event", `{"type":"UNINSTALL","appId":"a","locationId":"l"}`, Parsed{EventType: "UNINSTALL", EntityType: "app"}},
		{"app shape", `{"appId":"a","companyId":"c"}`, Parsed{EventType: "unknown", EntityType: "app"}},
		{"unknown event keeps id", `{"type":"SomethingNew","id":"z"}`, Parsed{EventType: "SomethingNew", EntityID: "z"}},
		{"null values", `{"type":null,"id":null,"appointment":null,"owners":null}`, Parsed{EventType: "unknown"}},
		{"nested keys ignored", `{"data":{"type":"ContactCreate","id":"x","webhookId":"w"}}`, Parsed{EventType: "unknown"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseGHL([]byte(tt.body))
			if err != nil {
				t.Fatalf("ParseGHL: %v", err)
			}
			want := tt.want
			if want.DedupeKey == "" {
				want.DedupeKey = "ghl:sha256:" + sha256Hex([]byte(tt.body))
			}
			assertParsed(t, got, want)
		})
	}
}

func TestParseGHLTimestamp(t *testing.T) {
	at := time.Date(2024, 4, 25, 8, 7, 21, 0, time.UTC) // epoch 1714032441
	tests := []struct {
		raw  string
		want time.Time
	}{
		{`"2024-04-25T08:07:21Z"`, at},
		{`"2024-04-25T10:07:21+02:00"`, at},
		{`"2024-04-25T08:07:21.250Z"`, at.Add(250 * time.Millisecond)},
		{`1714032441`, at},
		{`1714032441000`, at},
		{`1714032441250`, at.Add(250 * time.Millisecond)},
		{`"1714032441"`, at},
		{`1714032441.5`, at.Add(500 * time.Millisecond)},
		{`1.714032441e9`, at},
		{`"yesterday"`, time.Time{}},
		{`"2024-04-25 08:07:21"`, time.Time{}},
		{`0`, time.Time{}},
		{`-5`, time.Time{}},
		{`1e30`, time.Time{}},
		{`"NaN"`, time.Time{}},
		{`"Inf"`, time.Time{}},
		{`true`, time.Time{}},
		{`{"t":1}`, time.Time{}},
		{`null`, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := ParseGHL([]byte(`{"type":"ContactCreate","timestamp":` + tt.raw + `}`))
			if err != nil {
				t.Fatal(err)
			}
			if !got.Timestamp.Equal(tt.want) {
				t.Errorf("Timestamp = %v, want %v", got.Timestamp, tt.want)
			}
		})
	}
}

func TestParseAlowareFields(t *testing.T) {
	tests := []struct {
		body string
		want Parsed
	}{
		{`{"event":"ContactCreated","body":{"id":"7"}}`, Parsed{EventType: "ContactCreated", EntityType: "contact", EntityID: "7"}},
		{`{"event":"AppointmentBooked","body":{"id":8}}`, Parsed{EventType: "AppointmentBooked", EntityType: "appointment", EntityID: "8"}},
		{`{"event":"OutboundSMS","body":{"id":-9}}`, Parsed{EventType: "OutboundSMS", EntityType: "message", EntityID: "-9"}},
		{`{"event":"PhoneCallStarted"}`, Parsed{EventType: "PhoneCallStarted", EntityType: "call"}},
		{`{"event":"TagAdded","body":{"id":true}}`, Parsed{EventType: "TagAdded"}},
		{`{"body":{"id":"5"}}`, Parsed{EventType: "unknown", EntityID: "5"}},
		{`{"event":"ContactUpdated","body":"not an object"}`, Parsed{EventType: "ContactUpdated", EntityType: "contact"}},
		{`{"event":"ContactUpdated","body":[{"id":"1"}]}`, Parsed{EventType: "ContactUpdated", EntityType: "contact"}},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			got, err := ParseAloware([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.DedupeKey = "aloware:sha256:" + sha256Hex([]byte(tt.body))
			assertParsed(t, got, want)
		})
	}
}

func TestParseTextingFields(t *testing.T) {
	hashKey := func(body string) string { return "texting:sha256:" + sha256Hex([]byte(body)) }
	tests := []struct {
		body string
		want Parsed
	}{
		{`{"eventType":"message.sent","messageId":"m1"}`, Parsed{EventType: "message.sent", EntityType: "message", EntityID: "m1", DedupeKey: "texting:message.sent:m1"}},
		{`{"eventType":"message.received"}`, Parsed{EventType: "message.received", EntityType: "message"}},
		{`{"eventType":"optout.received","from":"+13105550100","phone":"+1999"}`, Parsed{EventType: "optout.received", EntityType: "contact", EntityID: "+13105550100"}},
		{`{"eventType":"optout.received","phone":"+13105550100"}`, Parsed{EventType: "optout.received", EntityType: "contact", EntityID: "+13105550100"}},
		{`{"eventType":"optout.received","from":"","phone":"+1"}`, Parsed{EventType: "optout.received", EntityType: "contact", EntityID: "+1"}},
		{`{"eventType":"delivery.failed","messageId":42}`, Parsed{EventType: "delivery.failed", DedupeKey: "texting:delivery.failed:42"}},
		{`{"eventType":"a:b","messageId":"c"}`, Parsed{EventType: "a:b"}},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			got, err := ParseTexting([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want.DedupeKey == "" {
				want.DedupeKey = hashKey(tt.body)
			}
			assertParsed(t, got, want)
		})
	}
}

func TestParseRequiredFields(t *testing.T) {
	tests := []struct {
		source, body, msg string
	}{
		{SourceTexting, `{}`, "texting webhook needs eventType"},
		{SourceTexting, `{"eventType":""}`, "texting webhook needs eventType"},
		{SourceTexting, `{"eventType":"\u0001"}`, "texting webhook needs eventType"},
		{SourceTexting, `{"eventType":5,"messageId":"m"}`, "texting webhook needs eventType"},
		{SourceBroadcast, `{}`, "broadcast webhook needs broadcastId and eventType"},
		{SourceBroadcast, `{"eventType":"analytics_updated"}`, "broadcast webhook needs broadcastId and eventType"},
		{SourceBroadcast, `{"broadcastId":"b"}`, "broadcast webhook needs broadcastId and eventType"},
		{SourceBroadcast, `{"broadcastId":"","eventType":"x"}`, "broadcast webhook needs broadcastId and eventType"},
	}
	for _, tt := range tests {
		t.Run(tt.source+" "+tt.body, func(t *testing.T) {
			_, err := Parse(tt.source, []byte(tt.body))
			if !errors.Is(err, ErrMalformed) || err.Error() != tt.msg {
				t.Errorf("err = %v, want ErrMalformed %q", err, tt.msg)
			}
		})
	}
	got, err := ParseBroadcast([]byte(`{"broadcastId":77,"eventType":"sent"}`))
	if err != nil || got.EntityID != "77" || got.EntityType != "broadcast" {
		t.Errorf("numeric broadcastId: %+v, %v", got, err)
	}
}

func TestParseMalformed(t *testing.T) {
	tests := []struct {
		name, body, msgPrefix string
	}{
		{"empty", ``, "empty body"},
		{"blank", " \n\t", "empty body"},
		{"null", `null`, "body is not a JSON object"},
		{"array", `[{"type":"ContactCreate"}]`, "body is not a JSON object"},
		{"string", `"x"`, "body is not a JSON object"},
		{"number", ` 42`, "body is not a JSON object"},
		{"not JSON", `type=ContactCreate`, "malformed JSON: invalid character"},
		{"truncated", `{"type":"ContactCreate"`, "malformed JSON: unexpected end of JSON input"},
		{"trailing garbage", `{} {}`, "malformed JSON: invalid character '{' after top-level value"},
		{"trailing comma", `{"a":1,}`, "malformed JSON: invalid character '}'"},
		{"byte order mark", "\ufeff{}", "malformed JSON: invalid character"},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", "body is not valid UTF-8"},
		{"NUL escape", `{"a":"x\u0000"}`, `body contains \u0000`},
		{"lone high surrogate", `{"a":"\ud800"}`, "body contains an unpaired UTF-16 surrogate"},
		{"lone low surrogate", `{"a":"\uDC00x"}`, "body contains an unpaired UTF-16 surrogate"},
		{"high surrogate then non-surrogate", `{"a":"\ud800\u0041"}`, "body contains an unpaired UTF-16 surrogate"},
		{"huge exponent", `{"a":1e131073}`, "body contains a number outside"},
		{"tiny exponent", `{"a":1e-17000}`, "body contains a number outside"},
		{"long exponent", `{"a":[1E+0000001000000]}`, "body contains a number outside"},
	}
	for _, source := range []string{SourceGHL, SourceAloware, SourceTexting, SourceBroadcast} {
		for _, tt := range tests {
			t.Run(source+" "+tt.name, func(t *testing.T) {
				_, err := Parse(source, []byte(tt.body))
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				if !strings.HasPrefix(err.Error(), tt.msgPrefix) {
					t.Errorf("err = %q, want prefix %q", err, tt.msgPrefix)
				}
			})
		}
	}
}

func TestCheckStorableJSON(t *testing.T) {
	ok := []string{
		`{}`,
		`{"a":"\ud83d\ude00"}`,    // a surrogate pair is fine
		`{"a":"\\u0000"}`,         // an escaped backslash, then text
		`{"a":"\\\ud83d\ude00"}`,  // escaped backslash before a pair
		`{"a":"x\u0001\u001f"}`,   // other control escapes are stored
		`{"a":1e400,"b":-0.5E-3}`, // large but within numeric
		`{"a":1e-16000}`,
		`{"a":"1e999999"}`, // numbers inside strings are text
		`{"é":"✓"}`,
	}
	for _, s := range ok {
		if err := CheckStorableJSON([]byte(s)); err != nil {
			t.Errorf("CheckStorableJSON(%s) = %v, want nil", s, err)
		}
	}
	// Invalid JSON must not panic.
	for _, s := range []string{`"`, `"\`, `"\u12`, `"\ud800\u`, `-`, `1e`, `1e-`, `{"a":"\ud800\`} {
		_ = CheckStorableJSON([]byte(s))
	}
}

func TestParseUnknownSource(t *testing.T) {
	_, err := Parse("zapier", []byte(`{}`))
	if !errors.Is(err, ErrUnknownSource) || errors.Is(err, ErrMalformed) {
		t.Errorf("err = %v, want ErrUnknownSource", err)
	}
}

func TestCleanText(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"abc", 10, "abc"},
		{"  abc  ", 10, "abc"},
		{"a\x00b\x1bc\x7fd\u0085e", 10, "abcde"},
		{"ab\xffcd", 10, "abcd"},
		{"héllo wörld", 4, "héll"},
		{"abcdef", 3, "abc"},
		{"ab    cd", 3, "ab"},
		{"\u200bzero-width kept", 100, "\u200bzero-width kept"},
	}
	for _, tt := range tests {
		if got := cleanText(tt.in, tt.max); got != tt.want || !utf8.ValidString(got) {
			t.Errorf("cleanText(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

// allowedEntityTypes is every entity type a parser may return.
var allowedEntityTypes = []string{
	"", "contact", "appointment", "opportunity", "message", "call", "note", "task", "invoice",
	"order", "product", "price", "record", "relation", "association", "user", "location",
	"app", "broadcast", "conversation", "campaign", "object_schema", "email_stats",
}

func TestEntityTypesAreKnown(t *testing.T) {
	for _, e := range ghlEventPrefixes {
		if !slices.Contains(allowedEntityTypes, e.entity) {
			t.Errorf("ghlEventPrefixes maps %s to unlisted entity %q", e.prefix, e.entity)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	cases := []struct {
		name, source, file string
	}{
		{"ghl-contact", SourceGHL, "ghl-contact-create.json"},
		{"ghl-order", SourceGHL, "ghl-docs/OrderCreate.json"},
		{"ghl-email-stats", SourceGHL, "ghl-docs/LCEmailStats.json"},
		{"aloware-sms", SourceAloware, "aloware-inbound-sms.json"},
		{"texting", SourceTexting, "texting-message-received.json"},
		{"broadcast", SourceBroadcast, "broadcast-analytics-updated.json"},
	}
	for _, c := range cases {
		body := readFixture(b, c.file)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := Parse(c.source, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestDedupeKeyBounds(t *testing.T) {
	ev, id := strings.Repeat("é", 150), strings.Repeat("m", maxKeyPartLen)
	p, err := ParseTexting([]byte(`{"eventType":"` + ev + `","messageId":"` + id + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "texting:" + strings.Repeat("é", MaxEventTypeLen) + ":" + id; p.DedupeKey != want {
		t.Errorf("DedupeKey = %q, want %q", p.DedupeKey, want)
	}
	p, err = ParseTexting([]byte(`{"eventType":"message.sent","messageId":"` + id + `x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "texting:message.sent:sha256-" + sha256Hex([]byte(id+"x")); p.DedupeKey != want {
		t.Errorf("DedupeKey = %q, want %q", p.DedupeKey, want)
	}
}
