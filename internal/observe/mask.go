package observe

import (
	"cmp"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Go's regexp is RE2: matching is linear in the input, so none of these
// patterns can blow up on hostile log text.
var (
	emailRE = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`)

	// phoneRE finds phone number candidates; maskPhones then checks that a
	// candidate stands alone (RE2 has no look-around). Alternatives are
	// tried in order at the same start, so the longest forms come first:
	//  1. E.164-ish with a leading +: 10–15 digits, each optionally preceded
	//     by up to two of space . - ( )   (+919509597501, +1 (310) 555-0100)
	//  2. a bare run of 12–15 digits not starting with 0 or 1 (international
	//     without +; unix-millisecond timestamps start with 1 and are kept)
	//  3. North American numbers with optional 1 prefix, area code and
	//     exchange starting 2–9: 3105550100, (310) 555-0100, 1-310-555-0100.
	//     Unix-second timestamps fail the 2–9 rules and are kept.
	phoneRE = regexp.MustCompile(
		`\+[1-9](?:[ .\-()]{0,2}\d){9,14}` +
			`|[2-9]\d{11,14}` +
			`|(?:1[ .\-]?)?(?:\([2-9]\d{2}\)|[2-9]\d{2})[ .\-]?[2-9]\d{2}[ .\-]?\d{4}`)
)

// minPhoneDigits is the fewest digits any phoneRE alternative matches; text
// with fewer digits is skipped without running the regexp.
const minPhoneDigits = 10

// MaskPII masks every email address and phone number in s.
func MaskPII(s string) string {
	return MaskPhone(MaskEmail(s))
}

// MaskEmail masks every email address in s, keeping the first character of
// the local part and the domain: john.doe@gmail.com → j***@gmail.com.
func MaskEmail(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return emailRE.ReplaceAllStringFunc(s, func(addr string) string {
		at := strings.LastIndexByte(addr, '@')
		return addr[:1] + "***" + addr[at:]
	})
}

// MaskPhone masks every phone number in s that stands alone (bounded by
// non-alphanumeric characters), keeping a leading +, up to four leading
// digits and the last four: +13105550100 → +1310***0100. Digit runs inside
// identifiers (UUIDs, hex ids) are left alone.
func MaskPhone(s string) string {
	if countDigits(s) < minPhoneDigits {
		return s
	}
	var b strings.Builder
	last := 0 // end of the text already copied to b
	for pos := 0; pos < len(s); {
		loc := phoneRE.FindStringIndex(s[pos:])
		if loc == nil {
			break
		}
		start, end := pos+loc[0], pos+loc[1]
		if !standsAlone(s, start, end) {
			// Any candidate starting inside the same word is rejected too:
			// resume at the next non-word character.
			pos = nextNonWord(s, start+1)
			continue
		}
		b.WriteString(s[last:start])
		b.WriteString(maskedPhone(s[start:end]))
		last, pos = end, end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// maskedPhone renders a matched phone number as [+]prefix***last4.
func maskedPhone(match string) string {
	digits := make([]byte, 0, 15)
	for i := 0; i < len(match); i++ {
		if c := match[i]; c >= '0' && c <= '9' {
			digits = append(digits, c)
		}
	}
	keep := min(4, len(digits)-7) // 10 digits keep 3, 11+ keep 4
	var b strings.Builder
	if match[0] == '+' {
		b.WriteByte('+')
	}
	b.Write(digits[:keep])
	b.WriteString("***")
	b.Write(digits[len(digits)-4:])
	return b.String()
}

// standsAlone reports whether s[start:end] is not part of a larger word:
// no word character directly before or after it, and no "-" or "." joining
// it to a hex digit (the all-digit last group of a UUID, "v1.3105550100").
func standsAlone(s string, start, end int) bool {
	if start > 0 {
		r, n := utf8.DecodeLastRuneInString(s[:start])
		if isWord(r) {
			return false
		}
		if (r == '-' || r == '.') && start-n > 0 && isHex(s[start-n-1]) {
			return false
		}
	}
	if end < len(s) {
		r, n := utf8.DecodeRuneInString(s[end:])
		if isWord(r) {
			return false
		}
		if (r == '-' || r == '.') && end+n < len(s) && isHex(s[end+n]) {
			return false
		}
	}
	return true
}

func nextNonWord(s string, i int) int {
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !isWord(r) {
			return i
		}
		i += n
	}
	return i
}

func isWord(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func countDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			n++
		}
	}
	return n
}

// Redacted replaces secret values in log output.
const Redacted = "[REDACTED]"

// redactor replaces every configured secret value with Redacted.
type redactor struct {
	r *strings.Replacer // nil when no secrets are configured
}

func newRedactor(secrets []string) redactor {
	vals := make([]string, 0, len(secrets))
	for _, s := range secrets {
		if s != "" {
			vals = append(vals, s)
		}
	}
	if len(vals) == 0 {
		return redactor{}
	}
	// strings.Replacer tries its old strings in argument order at each
	// position; longest first makes a secret that extends another win.
	slices.SortFunc(vals, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b))
	})
	vals = slices.Compact(vals)
	pairs := make([]string, 0, 2*len(vals))
	for _, v := range vals {
		pairs = append(pairs, v, Redacted)
	}
	return redactor{r: strings.NewReplacer(pairs...)}
}

// scrub redacts secrets first (masking could otherwise alter a secret that
// looks like a phone number or email and let it through), then masks PII.
func (rd redactor) scrub(s string) string {
	if rd.r != nil {
		s = rd.r.Replace(s)
	}
	return MaskPII(s)
}

// NewRedactor returns the scrubbing the log writer applies to every string:
// configured secret values replaced with Redacted, then emails and phone
// numbers masked. Text leaving the process by another road (Sentry events,
// error_groups samples) goes through it too.
func NewRedactor(secrets []string) func(string) string {
	return newRedactor(secrets).scrub
}
