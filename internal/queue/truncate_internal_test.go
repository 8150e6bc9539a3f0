package queue

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// Error text is stored in PostgreSQL text columns: it must stay valid UTF-8
// without NUL bytes, or one row fails the whole completion batch.
func TestTruncateKeepsValidUTF8(t *testing.T) {
	cases := []string{
		strings.Repeat("é", 1500),         // the 2000-byte cut falls inside a character
		strings.Repeat("a", 1999) + "日本語", // a 3-byte character straddles the limit
		"bad \xff\xfe bytes and a NUL \x00 here",
		"short",
	}
	for _, in := range cases {
		got := truncate(in)
		if !utf8.ValidString(got) || strings.ContainsRune(got, 0) {
			t.Errorf("truncate(%.20q…) = invalid text %.40q", in, got)
		}
		if len(got) > maxErrorLen+len("…") {
			t.Errorf("truncate kept %d bytes", len(got))
		}
	}
}
