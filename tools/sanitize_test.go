package tools

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSanitize(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"plain text is kept", `{"body": "Hello, world"}`, `{"body": "Hello, world"}`},
		{"non-Latin text and emoji are kept", "Grüße, 日本語, مرحبا 👋", "Grüße, 日本語, مرحبا 👋"},
		{"tab and newline are kept", "a\tb\nc", "a\tb\nc"},
		{"CRLF becomes LF, lone CR too", "a\r\nb\rc", "a\nb\nc"},
		{"bidi override U+202E", "invoice\u202Egpj.exe", "invoicegpj.exe"},
		{"bidi embeddings and isolates", "a\u202Ab\u202Bc\u202Cd\u202De\u2066f\u2067g\u2068h\u2069i", "abcdefghi"},
		{"LRM RLM and Arabic letter mark", "a\u200Eb\u200Fc\u061Cd", "abcd"},
		{"zero-width space, joiners, word joiner", "ig\u200Bno\u200Cre\u200D all\u2060 previous", "ignore all previous"},
		{"BOM at start and inside", "\uFEFFhello\uFEFF", "hello"},
		{"soft hyphen", "pass\u00ADword", "password"},
		{"Unicode tag characters (ASCII smuggling)", "ok\U000E0049\U000E0067\U000E006E\U000E006F\U000E0072\U000E0065", "ok"},
		{"variation selectors", "a\uFE0Fb\U000E0100c", "abc"},
		{"Hangul filler and combining grapheme joiner", "a\u3164b\u034Fc", "abc"},
		{"line and paragraph separators", "a\u2028b\u2029c", "abc"},
		{"ANSI colour (CSI)", "\x1b[31mred\x1b[0m text", "red text"},
		{"ANSI cursor movement and erase", "a\x1b[2Jb\x1b[10;20Hc\x1b[?25ld", "abcd"},
		{"OSC title and hyperlink", "\x1b]0;evil title\x07x\x1b]8;;http://e.vil\x1b\\link\x1b]8;;\x1b\\", "xlink"},
		{"two-byte escape", "a\x1b7b\x1b=c", "abc"},
		{"C1 CSI", "a\u009b31mb", "ab"},
		{"other C0 controls and DEL", "a\x00b\x07c\x08d\x7fe", "abcde"},
		{"C1 controls", "a\u0085b\u0090c", "abc"},
		{"invalid UTF-8 becomes U+FFFD", "a\xffb", "a\uFFFDb"},
		{"truncated escape at end", "abc\x1b[", "abc"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, cut := sanitize(c.in, 1<<20)
			if got != c.want || cut {
				t.Errorf("sanitize(%q) = %q, %v; want %q, false", c.in, got, cut, c.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("result is not valid UTF-8: %q", got)
			}
		})
	}
}

func TestSanitizeBoundsOnRuneBoundaries(t *testing.T) {
	in := strings.Repeat("é", 100) // 2 bytes each
	got, cut := sanitize(in, 51)
	if !cut || len(got) != 50 || !utf8.ValidString(got) {
		t.Fatalf("sanitize to 51 bytes = %d bytes (valid %v), cut %v", len(got), utf8.ValidString(got), cut)
	}
	if got, cut := sanitize("short", 5); got != "short" || cut {
		t.Fatalf("exact fit: %q %v", got, cut)
	}
	if got := clean(strings.Repeat("x", 20), 10); got != strings.Repeat("x", 10)+"…" {
		t.Fatalf("clean marks a cut: %q", got)
	}
	// Stripped characters do not count against the bound.
	if got, cut := sanitize(strings.Repeat("\u200B", 100)+"abc", 3); got != "abc" || cut {
		t.Fatalf("invisible characters counted: %q %v", got, cut)
	}
	u := untrustedText(strings.Repeat("a", maxPayloadBytes+10), maxPayloadBytes)
	if !u.Untrusted || !u.Truncated || len(u.Text) != maxPayloadBytes || u.Bytes != maxPayloadBytes+10 {
		t.Fatalf("untrustedText = untrusted %v truncated %v len %d bytes %d", u.Untrusted, u.Truncated, len(u.Text), u.Bytes)
	}
}

func FuzzSanitize(f *testing.F) {
	for _, s := range []string{"a\x1b[31mb", "\u202E\u200B\uFEFF", "\xff\xfe", "\x1b]8;;x\x07"} {
		f.Add(s, 64)
	}
	f.Fuzz(func(t *testing.T, s string, limit int) {
		if limit < 0 || limit > 1<<16 {
			return
		}
		got, _ := sanitize(s, limit)
		if len(got) > limit || !utf8.ValidString(got) {
			t.Fatalf("sanitize(%q, %d) = %q", s, limit, got)
		}
		for _, r := range got {
			if invisible(r) && r != '\n' && r != '\t' || r == 0x1b {
				t.Fatalf("sanitize(%q) kept %U", s, r)
			}
		}
	})
}
