package intake

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// seedParseCorpus adds every fixture and a few edge cases as seeds.
func seedParseCorpus(f *testing.F, patterns ...string) {
	for _, p := range patterns {
		for _, file := range fixtureFiles(f, p) {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	for _, s := range []string{
		``, `{}`, `[]`, `null`, `{"type":"ContactCreate","id":1e5,"webhookId":"w","timestamp":1714032441000}`,
		`{"appointment":"x","webhookPayload":[],"body":7}`, `{"a":"\ud83d\ude00\u0000"}`, `{"n":1e131073}`,
		`{"eventType":"optout.received","from":"+1","messageId":"a:b"}`, `{"broadcastId":"b","eventType":"e"}`,
		"{\"type\":\"\xff\"}", `{"type":"Contact\u0007"}`,
	} {
		f.Add([]byte(s))
	}
}

// isStorableObject is the oracle of "a body intake must accept": one JSON
// object that PostgreSQL can store as jsonb.
func isStorableObject(body []byte) bool {
	i := skipSpace(body, 0)
	return i < len(body) && body[i] == '{' && json.Valid(body) && CheckStorableJSON(body) == nil
}

func checkCleanField(t *testing.T, name, s string, maxRunes int) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("%s %q is not valid UTF-8", name, s)
	}
	if n := utf8.RuneCountInString(s); n > maxRunes {
		t.Fatalf("%s has %d runes, more than %d", name, n, maxRunes)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		t.Fatalf("%s %q contains a control character", name, s)
	}
	if s != strings.TrimSpace(s) {
		t.Fatalf("%s %q has surrounding space", name, s)
	}
}

// checkParse runs one parser on body and checks the invariants every parser
// upholds.
func checkParse(t *testing.T, source string, parse func([]byte) (Parsed, error), body []byte, requiredErr error) {
	_ = CheckStorableJSON(body) // must not panic on any input
	p, err := parse(body)
	p2, err2 := Parse(source, body)
	if !reflect.DeepEqual(p, p2) || (err == nil) != (err2 == nil) {
		t.Fatalf("parse and Parse(%q) disagree: %+v, %v vs %+v, %v", source, p, err, p2, err2)
	}
	if err != nil {
		if !errors.Is(err, ErrMalformed) || err.Error() == "" {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		if isStorableObject(body) && (requiredErr == nil || err != requiredErr) {
			t.Fatalf("storable JSON object rejected: %v", err)
		}
		return
	}
	if !isStorableObject(body) {
		t.Fatalf("accepted a body that is not a storable JSON object: %+v", p)
	}
	if p.EventType == "" {
		t.Fatal("empty EventType")
	}
	checkCleanField(t, "EventType", p.EventType, MaxEventTypeLen)
	checkCleanField(t, "EntityID", p.EntityID, MaxEntityIDLen)
	// Longest: "texting:" + event type + ":" + a 200-byte message id.
	checkCleanField(t, "DedupeKey", p.DedupeKey, len("texting::")+MaxEventTypeLen+maxKeyPartLen)
	if !strings.HasPrefix(p.DedupeKey, source+":") || len(p.DedupeKey) <= len(source)+1 {
		t.Fatalf("DedupeKey %q is not prefixed with %q", p.DedupeKey, source+":")
	}
	if !slices.Contains(allowedEntityTypes, p.EntityType) {
		t.Fatalf("unexpected EntityType %q", p.EntityType)
	}
	if source != SourceGHL && !p.Timestamp.IsZero() {
		t.Fatalf("non-GHL source returned a timestamp %v", p.Timestamp)
	}
	if again, _ := parse(body); !reflect.DeepEqual(p, again) {
		t.Fatalf("parse is not deterministic: %+v vs %+v", p, again)
	}
}

func FuzzParseGHL(f *testing.F) {
	seedParseCorpus(f, "ghl-*.json", "ghl-docs/*.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		checkParse(t, SourceGHL, ParseGHL, body, nil)
	})
}

func FuzzParseAloware(f *testing.F) {
	seedParseCorpus(f, "aloware-*.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		checkParse(t, SourceAloware, ParseAloware, body, nil)
	})
}

func FuzzParseTexting(f *testing.F) {
	seedParseCorpus(f, "texting-*.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		checkParse(t, SourceTexting, ParseTexting, body, errTextingNeedsEventType)
	})
}

func FuzzParseBroadcast(f *testing.F) {
	seedParseCorpus(f, "broadcast-*.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		checkParse(t, SourceBroadcast, ParseBroadcast, body, errBroadcastNeedsFields)
	})
}

// The seed corpus also lives in testdata/fixtures; make sure the fuzz seeds
// exist so an emptied directory cannot silently turn the fuzzers into no-ops.
func TestFuzzSeedsPresent(t *testing.T) {
	for _, p := range []string{"ghl-*.json", "ghl-docs/*.json", "aloware-*.json", "texting-*.json", "broadcast-*.json"} {
		if files, _ := filepath.Glob(filepath.Join(fixtureDir, p)); len(files) == 0 {
			t.Errorf("no fuzz seeds match %s", p)
		}
	}
}
