package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

var (
	errEmptyBody     = malformed("empty body: a webhook body must be a JSON object")
	errNotObject     = malformed("body is not a JSON object")
	errNotUTF8       = malformed("body is not valid UTF-8")
	errNULEscape     = malformed(`body contains \u0000, which PostgreSQL cannot store in jsonb`)
	errLoneSurrogate = malformed(`body contains an unpaired UTF-16 surrogate escape (\ud800-\udfff), which PostgreSQL rejects`)
	errBigNumber     = malformed("body contains a number outside PostgreSQL's numeric range")
	errUnterminated  = malformed("malformed JSON: unterminated string")
)

// decodeObject decodes body, which must be one JSON object, into v (a
// pointer to one of the *Body structs) and checks that PostgreSQL can store
// it as jsonb.
//
// json.Unmarshal validates the whole input before it decodes anything, so no
// separate json.Valid pass is needed. The struct fields tolerate any JSON
// value, except nested objects (nestedID): a non-object there is a type
// mismatch that Unmarshal reports after decoding everything else, and that
// decodeObject ignores, so `"appointment": "x"` does not make a payload
// unparseable.
func decodeObject(body []byte, v any) error {
	i := skipSpace(body, 0)
	if i == len(body) {
		return errEmptyBody
	}
	if body[i] != '{' {
		var syn *json.SyntaxError
		if err := json.Unmarshal(body, &struct{}{}); errors.As(err, &syn) {
			return syntaxError(syn)
		}
		return errNotObject
	}
	if err := json.Unmarshal(body, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) {
			var syn *json.SyntaxError
			if errors.As(err, &syn) {
				return syntaxError(syn)
			}
			return malformed("malformed JSON: " + err.Error())
		}
	}
	return CheckStorableJSON(body)
}

func syntaxError(err *json.SyntaxError) error {
	return malformed("malformed JSON: " + err.Error() + " (at byte " + strconv.FormatInt(err.Offset, 10) + ")")
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// The field types below decode themselves from the raw JSON value without
// copying it, and never fail: a value of the wrong JSON type leaves the
// field empty, so one odd field cannot make a delivery unparseable.

// textValue holds a JSON string; any other value leaves it empty.
type textValue string

func (v *textValue) UnmarshalJSON(data []byte) error {
	*v = ""
	if s, ok := jsonString(data); ok {
		*v = textValue(s)
	}
	return nil
}

// idValue holds a JSON string, or the literal text of a JSON number (as
// json.Number would); any other value leaves it empty.
type idValue string

func (v *idValue) UnmarshalJSON(data []byte) error {
	*v = ""
	if s, ok := jsonString(data); ok {
		*v = idValue(s)
	} else if len(data) > 0 && (data[0] == '-' || isDigit(data[0])) {
		*v = idValue(json.Number(data))
	}
	return nil
}

// presence records that a key is present with a non-null value.
type presence bool

func (p *presence) UnmarshalJSON(data []byte) error {
	*p = presence(!bytes.Equal(data, []byte("null")))
	return nil
}

// nestedID reads the `id` of a nested object (GHL's appointment and
// webhookPayload, Aloware's body).
type nestedID struct {
	ID idValue `json:"id"`
}

// tsValue holds a GHL `timestamp`: an RFC 3339 string, or epoch seconds or
// milliseconds as a number or a string of digits. Anything else is zero.
type tsValue struct{ t time.Time }

func (v *tsValue) UnmarshalJSON(data []byte) error {
	v.t = time.Time{}
	if s, ok := jsonString(data); ok {
		s = strings.TrimSpace(s)
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			v.t = t.UTC()
		} else {
			v.t = epochTime(s)
		}
	} else if len(data) > 0 && (data[0] == '-' || isDigit(data[0])) {
		v.t = epochTime(string(data))
	}
	return nil
}

// Epoch values below 1e11 are seconds (up to the year 5138), below 1e14
// milliseconds; anything else (zero, negative, larger) is unusable.
const (
	maxEpochSeconds = 1e11
	maxEpochMillis  = 1e14
)

func epochTime(s string) time.Time {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch {
		case n <= 0:
			return time.Time{}
		case n < maxEpochSeconds:
			return time.Unix(n, 0).UTC()
		case n < maxEpochMillis:
			return time.UnixMilli(n).UTC()
		}
		return time.Time{}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f > 0) || f >= maxEpochMillis { // !(f > 0) also rejects NaN
		return time.Time{}
	}
	if f >= maxEpochSeconds {
		f /= 1000
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}

// jsonString decodes data when it is a JSON string literal.
func jsonString(data []byte) (string, bool) {
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' {
		return "", false
	}
	inner := data[1 : len(data)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), true
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return "", false
	}
	return s, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// cleanText trims s, drops control characters and invalid UTF-8, and cuts
// the result to at most max runes. Values from a payload become text columns
// and log fields; PostgreSQL rejects NUL and invalid UTF-8 in text.
func cleanText(s string, max int) string {
	s = strings.TrimSpace(s)
	if len(s) <= max && isPrintableASCII(s) {
		return s
	}
	b := make([]byte, 0, min(len(s), max*utf8.UTFMax))
	n := 0
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			continue
		}
		if n == max {
			break
		}
		b = utf8.AppendRune(b, r)
		n++
	}
	return strings.TrimSpace(string(b))
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// isCleanText reports whether s is valid UTF-8 without control characters.
func isCleanText(s string) bool {
	if isPrintableASCII(s) {
		return true
	}
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// Conservative bounds of PostgreSQL's numeric type (131072 digits before
// the decimal point, 16383 after), which jsonb uses for every number.
const (
	maxNumericIntDigits  = 131000
	maxNumericFracDigits = 16000
	maxExponentDigits    = 6
)

// CheckStorableJSON reports, as an ErrMalformed error, why PostgreSQL would
// refuse body as jsonb although Go's decoder accepts it: invalid UTF-8, a
// \u0000 escape, an unpaired surrogate escape, or a number beyond numeric's
// range. Intake batches several rows into one INSERT, where one such body
// would fail the whole batch, so every parser runs this check.
//
// body should already be valid JSON (the parsers check that first); on
// other input CheckStorableJSON does not panic but its verdict means little.
func CheckStorableJSON(body []byte) error {
	if !utf8.Valid(body) {
		return errNotUTF8
	}
	for i := 0; i < len(body); {
		c := body[i]
		switch {
		case c == '"':
			j, err := scanString(body, i+1)
			if err != nil {
				return err
			}
			i = j
		case c == '-' || isDigit(c):
			j, err := scanNumber(body, i)
			if err != nil {
				return err
			}
			i = j
		default:
			i++
		}
	}
	return nil
}

// scanString checks the string whose content starts at body[i] and returns
// the index after its closing quote.
func scanString(body []byte, i int) (int, error) {
	for i < len(body) {
		switch body[i] {
		case '"':
			return i + 1, nil
		case '\\':
			if i+1 >= len(body) {
				return 0, errUnterminated
			}
			if body[i+1] != 'u' {
				i += 2
				continue
			}
			r, ok := hex4(body, i+2)
			if !ok {
				i += 2 // not a valid escape; syntax is the decoder's business
				continue
			}
			switch {
			case r == 0:
				return 0, errNULEscape
			case r >= 0xDC00 && r <= 0xDFFF:
				return 0, errLoneSurrogate
			case r >= 0xD800 && r <= 0xDBFF:
				if i+7 >= len(body) || body[i+6] != '\\' || body[i+7] != 'u' {
					return 0, errLoneSurrogate
				}
				lo, ok := hex4(body, i+8)
				if !ok || lo < 0xDC00 || lo > 0xDFFF {
					return 0, errLoneSurrogate
				}
				i += 12
			default:
				i += 6
			}
		default:
			i++
		}
	}
	return 0, errUnterminated
}

// hex4 decodes the four hex digits at body[i:i+4].
func hex4(body []byte, i int) (rune, bool) {
	if i+4 > len(body) {
		return 0, false
	}
	var r rune
	for _, c := range body[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// scanNumber checks the number starting at body[i] against numeric's range
// and returns the index after it.
func scanNumber(body []byte, i int) (int, error) {
	if body[i] == '-' {
		i++
	}
	start := i
	for i < len(body) && isDigit(body[i]) {
		i++
	}
	intDigits := i - start
	fracDigits := 0
	if i < len(body) && body[i] == '.' {
		i++
		start = i
		for i < len(body) && isDigit(body[i]) {
			i++
		}
		fracDigits = i - start
	}
	exp := 0
	if i < len(body) && (body[i] == 'e' || body[i] == 'E') {
		i++
		neg := false
		if i < len(body) && (body[i] == '+' || body[i] == '-') {
			neg = body[i] == '-'
			i++
		}
		for i < len(body) && body[i] == '0' {
			i++
		}
		start = i
		for i < len(body) && isDigit(body[i]) {
			if i-start == maxExponentDigits {
				return 0, errBigNumber
			}
			exp = exp*10 + int(body[i]-'0')
			i++
		}
		if neg {
			exp = -exp
		}
	}
	if intDigits+exp > maxNumericIntDigits || fracDigits-exp > maxNumericFracDigits {
		return 0, errBigNumber
	}
	return i, nil
}
