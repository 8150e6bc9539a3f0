package observe

import (
	"strings"
	"testing"
)

func TestMaskPII(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"e164 us", "+13105550100", "+1310***0100"},
		{"e164 india", "+919509597501", "+9195***7501"},
		{"spaced e164", "+1 310 555 0100", "+1310***0100"},
		{"parenthesised with country", "call +1 (310) 555-0100 now", "call +1310***0100 now"},
		{"parenthesised", "(310) 555-0100", "310***0100"},
		{"bare ten digits", "phone=3105550100", "phone=310***0100"},
		{"dashes", "310-555-0100", "310***0100"},
		{"dots", "310.555.0100.", "310***0100."},
		{"us with 1 prefix", "1-310-555-0100", "1310***0100"},
		{"bare international", "919509597501", "9195***7501"},
		{"in json-ish text", `{"to":"+13105550100"}`, `{"to":"+1310***0100"}`},
		{"two phones", "3105550100,3105550101", "310***0100,310***0101"},
		{"email", "john.doe@gmail.com", "j***@gmail.com"},
		{"email in sentence", "sent to Jane_D+x@mail.example.co.uk.", "sent to J***@mail.example.co.uk."},
		{"email and phone", "a@b.io 3105550100", "a***@b.io 310***0100"},

		{"uuid", "123e4567-e89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456-426614174000"},
		{"uuid all digit groups", "22345678-2234-2234-2234-223456789012", "22345678-2234-2234-2234-223456789012"},
		{"iso timestamp", "2024-01-15T10:30:00.000Z", "2024-01-15T10:30:00.000Z"},
		{"space timestamp", "2024-01-15 10:30:00", "2024-01-15 10:30:00"},
		{"duration", "took 1h30m0.5s and 150ms", "took 1h30m0.5s and 150ms"},
		{"count", "attempts=10 rows=12345", "attempts=10 rows=12345"},
		{"unix seconds", "1712345678", "1712345678"},
		{"unix millis", "1712345678901", "1712345678901"},
		{"hex id with digits", "5f3a9c3105550100ab", "5f3a9c3105550100ab"},
		{"digits then hex", "3105550100abcdef", "3105550100abcdef"},
		{"word prefix", "id_3105550100", "id_3105550100"},
		{"too long", "31055501001234567", "31055501001234567"},
		{"version", "v1.3105550100", "v1.3105550100"},
		{"masked email stays", "j***@gmail.com", "j***@gmail.com"},
		{"no at no domain", "user@localhost", "user@localhost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MaskPII(tt.in); got != tt.want {
				t.Errorf("MaskPII(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestMaskPhoneIsIdempotent(t *testing.T) {
	once := MaskPII("+13105550100 john@example.com")
	if twice := MaskPII(once); twice != once {
		t.Errorf("second pass changed %q to %q", once, twice)
	}
}

func TestMaskPhoneLongInputIsLinear(t *testing.T) {
	// A long run of digits and separators must not trigger quadratic work;
	// this finishes in milliseconds when it is linear.
	in := strings.Repeat("1-2 3.4(5)6", 20000) + strings.Repeat("a1234567890", 20000)
	if got := MaskPhone(in); len(got) == 0 {
		t.Fatal("empty result")
	}
}

func TestRedactor(t *testing.T) {
	r := newRedactor([]string{"", "abc", "abcdef-secret", "abc"})
	got := r.scrub("k=abcdef-secret short=abc x=ab")
	want := "k=[REDACTED] short=[REDACTED] x=ab"
	if got != want {
		t.Errorf("scrub = %q, want %q", got, want)
	}
	if got := (redactor{}).scrub("plain"); got != "plain" {
		t.Errorf("empty redactor changed text: %q", got)
	}
}

func BenchmarkMaskPII(b *testing.B) {
	s := `request from +13105550100 for john.doe@gmail.com event 123e4567-e89b-12d3-a456-426614174000 at 2024-01-15T10:30:00Z`
	for b.Loop() {
		MaskPII(s)
	}
}
