package tools

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mark3labs/mcp-go/mcp"
)

// bindArgs checks a call's arguments against the tool's own input schema and
// decodes them into dst. mcp-go validates arguments only when the server
// opts in to WithInputSchemaValidation, and then answers unknown names
// without listing the valid ones; this check runs for every call whatever
// the server options, reports every problem at once, and says how to fix
// each. It reads the same schema that tools/list publishes, so the two
// cannot drift apart.
func bindArgs(t mcp.Tool, req mcp.CallToolRequest, dst any) error {
	raw := req.Params.RawArguments
	if len(raw) == 0 && req.Params.Arguments != nil {
		var err error
		if raw, err = json.Marshal(req.Params.Arguments); err != nil {
			return fmt.Errorf("the arguments of %s could not be read: %v", t.Name, err)
		}
	}
	args := map[string]any{}
	if trimmed := bytes.TrimSpace(raw); len(trimmed) > 0 && !bytes.Equal(trimmed, []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("the arguments of %s are not valid JSON: %v", t.Name, err)
		}
		// Decode reads one value: anything after it makes the whole invalid.
		if _, err := dec.Token(); err != io.EOF {
			return fmt.Errorf("the arguments of %s are not valid JSON: unexpected data after the top-level value", t.Name)
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("the arguments of %s must be a JSON object of named arguments (valid names: %s)", t.Name, validNames(t))
		}
		args = obj
	}

	var unknown []string
	for name := range args {
		if _, ok := t.InputSchema.Properties[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("unknown argument%s %s for %s; valid arguments: %s; call again without %s",
			plural(len(unknown)), quoteList(unknown), t.Name, validNames(t), pronoun(len(unknown)))
	}

	var problems []string
	clean := map[string]any{}
	for name, v := range args {
		if v == nil {
			continue // null is the same as leaving the argument out
		}
		prop, _ := t.InputSchema.Properties[name].(map[string]any)
		nv, problem := checkValue(name, prop, v)
		if problem != "" {
			problems = append(problems, problem)
			continue
		}
		clean[name] = nv
	}
	for _, name := range t.InputSchema.Required {
		if _, ok := clean[name]; !ok && !slices.ContainsFunc(problems, func(p string) bool { return strings.HasPrefix(p, name+" ") }) {
			problems = append(problems, fmt.Sprintf("%s is required", name))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("invalid arguments for %s: %s; fix %s and call again",
			t.Name, strings.Join(problems, "; "), pronoun(len(problems)))
	}
	b, err := json.Marshal(clean)
	if err != nil {
		return fmt.Errorf("the arguments of %s could not be read: %v", t.Name, err)
	}
	if err := json.Unmarshal(b, dst); err != nil {
		return fmt.Errorf("the arguments of %s could not be read: %v", t.Name, err)
	}
	return nil
}

// checkValue validates one argument against its property schema and returns
// it normalised (integers as int64), or a sentence describing the problem.
func checkValue(name string, prop map[string]any, v any) (any, string) {
	typ, _ := prop["type"].(string)
	switch typ {
	case "string":
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Sprintf("%s must be a string (got %s)", name, describe(v))
		}
		if enum := stringsOf(prop["enum"]); len(enum) > 0 && !slices.Contains(enum, s) {
			return nil, fmt.Sprintf("%s must be one of %s (got %q)", name, strings.Join(enum, ", "), s)
		}
		n := utf8.RuneCountInString(s)
		if m, ok := number(prop["minLength"]); ok && float64(n) < m {
			if m == 1 {
				return nil, fmt.Sprintf("%s must not be empty", name)
			}
			return nil, fmt.Sprintf("%s must be at least %d characters", name, int(m))
		}
		if m, ok := number(prop["maxLength"]); ok && float64(n) > m {
			return nil, fmt.Sprintf("%s must be at most %d characters (got %d)", name, int(m), n)
		}
		return s, ""
	case "integer":
		num, ok := v.(json.Number)
		if !ok {
			return nil, fmt.Sprintf("%s must be an integer (got %s)", name, describe(v))
		}
		f, err := num.Float64()
		if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return nil, fmt.Sprintf("%s must be a whole number (got %s)", name, num)
		}
		lo, hasLo := number(prop["minimum"])
		hi, hasHi := number(prop["maximum"])
		if (hasLo && f < lo) || (hasHi && f > hi) {
			switch {
			case hasLo && hasHi:
				return nil, fmt.Sprintf("%s must be between %s and %s (got %s)", name, fmtNum(lo), fmtNum(hi), num)
			case hasLo:
				return nil, fmt.Sprintf("%s must be at least %s (got %s)", name, fmtNum(lo), num)
			default:
				return nil, fmt.Sprintf("%s must be at most %s (got %s)", name, fmtNum(hi), num)
			}
		}
		return int64(f), ""
	case "boolean":
		if _, ok := v.(bool); !ok {
			return nil, fmt.Sprintf("%s must be true or false (got %s)", name, describe(v))
		}
		return v, ""
	default:
		return v, ""
	}
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", truncateRunes(x, 40))
	case json.Number:
		return "the number " + x.String()
	case bool:
		return strconv.FormatBool(x)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func stringsOf(v any) []string {
	switch x := v.(type) {
	case []string:
		return x
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func validNames(t mcp.Tool) string {
	if len(t.InputSchema.Properties) == 0 {
		return "none (call it with no arguments)"
	}
	names := make([]string, 0, len(t.InputSchema.Properties))
	for n := range t.InputSchema.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func pronoun(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

// Parameter options shared by several tools.

func limitParam(def, maxLimit int, what string) mcp.ToolOption {
	return mcp.WithInteger("limit",
		mcp.Description(fmt.Sprintf("How many %s to return (default %d, at most %d).", what, def, maxLimit)),
		mcp.Min(1), mcp.Max(maxLimit), mcp.DefaultNumber(def))
}

func cursorParam() mcp.ToolOption {
	return mcp.WithString("cursor",
		mcp.Description("next_cursor of the previous page, to continue where it stopped. Leave out for the first (newest) page; pass it back unchanged with the same filters."),
		mcp.MaxLength(500))
}

func timeParam(name, what string) mcp.ToolOption {
	return mcp.WithString(name,
		mcp.Description(what+" An RFC 3339 time (2025-01-31T14:00:00Z) or a duration back from now (90m, 24h, 7d)."),
		mcp.MaxLength(64))
}

// withDefault returns v, or def when v is zero.
func withDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// parseTime reads an RFC 3339 time or a duration back from now ("90m",
// "24h", "7d"); "" is the zero time.
func parseTime(name, s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseFloat(days, 64); err == nil && n >= 0 {
			return now.Add(-time.Duration(n * 24 * float64(time.Hour))), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fail("%s %q is neither an RFC 3339 time (2025-01-31T14:00:00Z) nor a duration back from now (90m, 24h, 7d); fix it and call again", name, s)
}

// parseWindow reads a window length — a Go duration ("90m", "24h") or days
// ("7d") — and returns it in whole units, rounded up; "" is def.
func parseWindow(s string, def, maxWindow, unit time.Duration) (int, error) {
	s = strings.TrimSpace(s)
	d := def
	if s != "" {
		var err error
		if days, ok := strings.CutSuffix(s, "d"); ok {
			var n float64
			if n, err = strconv.ParseFloat(days, 64); err == nil {
				d = time.Duration(n * 24 * float64(time.Hour))
			}
		} else {
			d, err = time.ParseDuration(s)
		}
		if err != nil {
			return 0, fail("window %q is not a duration; give one like 90m, 24h or 7d and call again", s)
		}
	}
	if d <= 0 || d > maxWindow {
		return 0, fail("window %q must be longer than 0 and at most %s; call again with a window in that range", s, fmtWindow(maxWindow))
	}
	return int((d + unit - 1) / unit), nil
}

func fmtWindow(d time.Duration) string {
	switch {
	case d > 24*time.Hour && d%(24*time.Hour) == 0:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	default:
		return d.String()
	}
}

// timeRange parses since/until and checks their order.
func timeRange(since, until string) (time.Time, time.Time, error) {
	now := time.Now()
	s, err := parseTime("since", since, now)
	if err != nil {
		return s, time.Time{}, err
	}
	u, err := parseTime("until", until, now)
	if err != nil {
		return s, u, err
	}
	if !s.IsZero() && !u.IsZero() && !s.Before(u) {
		return s, u, fail("since (%s) must be before until (%s); swap or widen them and call again", s.Format(time.RFC3339), u.Format(time.RFC3339))
	}
	return s, u, nil
}
