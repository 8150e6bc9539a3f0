package observe

import (
	"errors"
	"fmt"
	"testing"
)

type upstreamErr struct{ msg string }

func (e *upstreamErr) Error() string { return e.msg }

func TestFingerprintGroupsByKindNotByID(t *testing.T) {
	same := [][2]error{
		{fmt.Errorf("sync contact 6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b: %w", &upstreamErr{"aloware POST /api/v1/webhook/forms: 422 phone 3105550100 is invalid"}),
			fmt.Errorf("sync contact 0f9e8d7c-6b5a-4c3d-2e1f-0a9b8c7d6e5f: %w", &upstreamErr{"aloware POST /api/v1/webhook/forms: 422 phone 4155550123 is invalid"})},
		{errors.New(`no handler for event "abc123def456"`), errors.New(`no handler for event "ffff00001111"`)},
		{errors.New("lease of 5a5a5a5a5a5a expired after 3 attempts"), errors.New("lease of 7b7b7b7b7b7b expired after 10 attempts")},
		{errors.New("contact ana@example.com rejected"), errors.New("contact bob.smith@example.org rejected")},
	}
	for i, p := range same {
		a, b := Fingerprint("sync", p[0]), Fingerprint("sync", p[1])
		if a.Fingerprint != b.Fingerprint {
			t.Errorf("pair %d: %q and %q grouped apart (%q vs %q)", i, p[0], p[1], a.Message, b.Message)
		}
	}
	different := [][2]error{
		{&upstreamErr{"ghl POST /contacts/upsert: 401 Invalid JWT"}, &upstreamErr{"ghl POST /contacts/upsert: 422 phone must be valid"}},
		{errors.New("connection refused"), &upstreamErr{"connection refused"}}, // different type chain
		{errors.New("timeout"), errors.New("deadline exceeded")},
	}
	for i, p := range different {
		if Fingerprint("sync", p[0]).Fingerprint == Fingerprint("sync", p[1]).Fingerprint {
			t.Errorf("pair %d: %q and %q grouped together", i, p[0], p[1])
		}
	}
	if Fingerprint("queue", errors.New("x")).Fingerprint == Fingerprint("sync", errors.New("x")).Fingerprint {
		t.Error("the same message in two components grouped together")
	}
}

func TestNormalizeMessage(t *testing.T) {
	cases := map[string]string{
		"attempt 3 failed after 1.5s":                "attempt <n> failed after <n>s",
		"event 6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b": "event <uuid>",
		"token dead0beefcafe rejected":               "token <hex> rejected",
		"facade added":                               "facade added", // letters-only words are not ids
		"a dead end":                                 "a dead end",
	}
	for in, want := range cases {
		if got := NormalizeMessage(in); got != want {
			t.Errorf("NormalizeMessage(%q) = %q, want %q", in, got, want)
		}
	}
}
