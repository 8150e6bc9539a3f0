package upstream

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

const (
	maxMessageLen = 500
	maxErrorBody  = 4 << 10
)

// errorMessage extracts the provider's message from an error body. It knows
// the shapes of the four upstreams:
//
//	GHL      {"statusCode":422,"message":"…" | ["…"],"error":"Unprocessable Entity"}
//	Laravel  {"message":"The given data was invalid.","errors":{"phone_number":["…"]}}
//	Verity   {"error":"Broadcast not found"}
//	Clerk    {"errors":[{"message":"…","long_message":"…","code":"…"}]}
//
// and falls back to the body's text. The result is bounded and free of
// control characters.
func errorMessage(body []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return clean(string(body))
	}
	var parts []string
	if msg := jsonText(m["message"]); msg != "" {
		parts = append(parts, msg)
	} else if msg := jsonText(m["msg"]); msg != "" {
		parts = append(parts, msg)
	} else if msg := jsonText(m["error"]); msg != "" {
		parts = append(parts, msg)
	}
	if details := errorsField(m["errors"]); details != "" {
		parts = append(parts, details)
	}
	if len(parts) == 0 {
		return clean(string(body))
	}
	return clean(strings.Join(parts, ": "))
}

// jsonText reads a string, a list of strings, or an object with a message.
func jsonText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return strings.Join(list, "; ")
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) == nil {
		return jsonText(obj["message"])
	}
	return ""
}

// errorsField renders Clerk's error list or Laravel's field → messages map.
func errorsField(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var list []struct {
		Message     string `json:"message"`
		LongMessage string `json:"long_message"`
	}
	if json.Unmarshal(raw, &list) == nil {
		var out []string
		for _, e := range list {
			if e.LongMessage != "" {
				out = append(out, e.LongMessage)
			} else if e.Message != "" {
				out = append(out, e.Message)
			}
		}
		return strings.Join(out, "; ")
	}
	var fields map[string][]string
	if json.Unmarshal(raw, &fields) == nil {
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var out []string
		for _, k := range keys {
			out = append(out, k+": "+strings.Join(fields[k], " "))
		}
		return strings.Join(out, "; ")
	}
	return ""
}

// clean collapses whitespace, drops control characters and truncates to
// maxMessageLen runes.
func clean(s string) string {
	var b strings.Builder
	space := false
	n := 0
	for _, r := range strings.TrimSpace(s) {
		if r == utf8.RuneError || (unicode.IsControl(r) && !unicode.IsSpace(r)) {
			continue
		}
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
			n++
		}
		space = false
		if n >= maxMessageLen {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// retryAfter parses Retry-After as delay-seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// scrub replaces every configured secret in s.
func scrub(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, "[REDACTED]")
		}
	}
	return s
}
