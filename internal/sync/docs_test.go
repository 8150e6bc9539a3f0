package sync

import (
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/sync-handlers.md")

func TestHandlerDocsAreCurrent(t *testing.T) {
	const path = "../../docs/sync-handlers.md"
	want := Docs()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/sync -update)", err)
	}
	if string(got) != want {
		t.Fatal("docs/sync-handlers.md is stale: run go test ./internal/sync -update")
	}
}

func TestNormalizePhone(t *testing.T) {
	cases := map[string]string{
		"(310) 555-0100":  "+13105550100",
		"+1 310 555 0100": "+13105550100",
		"3105550100":      "+13105550100",
		"+919509597501":   "+919509597501",
		"":                "",
		"not a phone":     "",
		"12":              "",
	}
	for in, want := range cases {
		if got := NormalizePhone(in, "US"); got != want {
			t.Errorf("NormalizePhone(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNormalizeAlowareEvent(t *testing.T) {
	for _, in := range []string{"Contact Created", "contact-created", "ContactCreated", "CONTACT_CREATED"} {
		if got := NormalizeAlowareEvent(in); got != "contactcreated" {
			t.Errorf("NormalizeAlowareEvent(%q) = %q", in, got)
		}
	}
}

func TestContactFingerprintIgnoresCaseAndSpace(t *testing.T) {
	a := contactFingerprint("Ana", "Ruiz", "Ana@Example.com ", "+13105550100")
	b := contactFingerprint(" ana", "RUIZ", "ana@example.com", "+13105550100")
	c := contactFingerprint("Ana María", "Ruiz", "ana@example.com", "+13105550100")
	if a != b || a == c {
		t.Fatalf("fingerprints: %s %s %s", a, b, c)
	}
}
