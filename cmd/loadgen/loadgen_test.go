package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/intake"
	"github.com/df-middleware/df-middleware/internal/sandbox"
	"github.com/df-middleware/df-middleware/internal/sync"
)

// scripts/lib.sh repeats the sandbox's development credentials (run.sh and
// bench.sh give them to the service); they must not drift apart.
func TestLibShSandboxCredentials(t *testing.T) {
	b, err := os.ReadFile("../../scripts/lib.sh")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"SANDBOX_DEV_GHL_API_KEY":       sandbox.DevGHLAPIKey,
		"SANDBOX_DEV_GHL_LOCATION_ID":   sandbox.DevGHLLocationID,
		"SANDBOX_DEV_ALOWARE_API_TOKEN": sandbox.DevAlowareToken,
		"SANDBOX_DEV_VERITY_API_KEY":    sandbox.DevVerityAPIKey,
		"SANDBOX_DEV_CLERK_SECRET_KEY":  sandbox.DevClerkSecretKey,
	}
	for name, v := range want {
		m := regexp.MustCompile(`(?m)^` + name + `=(.*)$`).FindSubmatch(b)
		if m == nil {
			t.Errorf("scripts/lib.sh does not set %s", name)
			continue
		}
		if got := string(m[1]); got != v {
			t.Errorf("scripts/lib.sh: %s=%s, internal/sandbox has %q", name, got, v)
		}
	}
}

func TestBenchPhoneUniqueE164(t *testing.T) {
	if got := benchPhone(0); got != "+13105550000" {
		t.Errorf("benchPhone(0) = %s, want +13105550000", got)
	}
	seen := map[string]bool{}
	for _, n := range []int64{0, 1, 9_999, 10_000, 4_449_999, 4_450_000, maxBenchPhones - 1} {
		p := benchPhone(n)
		if seen[p] {
			t.Errorf("benchPhone(%d) = %s repeats", n, p)
		}
		seen[p] = true
		if got := sync.NormalizePhone(p, "US"); got != p {
			t.Errorf("benchPhone(%d) = %s normalises to %q", n, p, got)
		}
	}
	run := map[string]bool{}
	for n := range int64(30_000) {
		p := benchPhone(n)
		if run[p] {
			t.Fatalf("benchPhone(%d) = %s repeats", n, p)
		}
		run[p] = true
	}
}

// The GHL bodies must pass the service's own verification and parsing, be
// unique per sequence number and carry a fresh timestamp.
func TestGHLBuilderAcceptedByIntake(t *testing.T) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	build := ghlBuilder(key, sandbox.DevGHLLocationID, "bench_t", 42)
	v := intake.GHLVerifier{Ed25519: pub}
	keys := map[string]bool{}
	for seq := range uint64(3) {
		body, name, sig := build(seq)
		h := http.Header{}
		h.Set(name, sig)
		if err := v.Verify(h, body); err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		p, err := intake.ParseGHL(body)
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		if p.EventType != "ContactCreate" || p.EntityID == "" || keys[p.DedupeKey] {
			t.Errorf("seq %d: parsed %+v (dedupe key repeated: %v)", seq, p, keys[p.DedupeKey])
		}
		keys[p.DedupeKey] = true
		if d := time.Since(p.Timestamp); d < 0 || d > time.Minute {
			t.Errorf("seq %d: timestamp %v is not fresh", seq, p.Timestamp)
		}
		var c ghlContactCreate
		if err := json.Unmarshal(body, &c); err != nil {
			t.Fatal(err)
		}
		if want := benchPhone(42 + int64(seq)); c.Phone != want {
			t.Errorf("seq %d: phone %s, want %s", seq, c.Phone, want)
		}
	}
}
