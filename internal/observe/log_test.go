package observe

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

var contractKeys = []string{"timestamp", "level", "service", "component", "message", "metadata"}

// parseLines decodes every line of out, checking each is one JSON object
// with exactly the contract keys, in contract order.
func parseLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	for sc.Scan() {
		raw := sc.Bytes()
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		// Check key order with the token stream.
		var keys []string
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("line %q does not start an object", raw)
		}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Fatalf("line %q: %v", raw, err)
			}
			keys = append(keys, tok.(string))
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				t.Fatalf("line %q: %v", raw, err)
			}
		}
		if strings.Join(keys, ",") != strings.Join(contractKeys, ",") {
			t.Fatalf("line %q has keys %v, want %v", raw, keys, contractKeys)
		}
		var m map[string]any
		dec = json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("line %q: %v", raw, err)
		}
		if _, ok := m["metadata"].(map[string]any); !ok {
			t.Fatalf("line %q: metadata is not an object", raw)
		}
		if m["service"] != ServiceName {
			t.Fatalf("line %q: service = %v", raw, m["service"])
		}
		lines = append(lines, m)
	}
	return lines
}

func newTestLogger(t *testing.T, level string, secrets ...string) (zerolog.Logger, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	l, err := NewLogger(&buf, level, secrets)
	if err != nil {
		t.Fatal(err)
	}
	return l, &buf
}

func TestLogLineShape(t *testing.T) {
	l, buf := newTestLogger(t, "debug")
	c := Component(l, "queue")
	c.Info().Str("event_id", "e1").Str("request_id", "r1").Int("attempts", 10).
		Err(errors.New("boom")).Msg("claimed")
	l.Warn().Msg("no component")
	w := Component(c, "worker")
	w.Debug().Send()
	c.Error().Dict("metadata", zerolog.Dict().Str("trace_id", "t1").Str("event_id", "old")).
		Str("event_id", "e2").Msg("merged")

	lines := parseLines(t, buf.String())
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want 4:\n%s", len(lines), buf)
	}
	tsRE := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	for _, ln := range lines {
		ts := ln["timestamp"].(string)
		if !tsRE.MatchString(ts) {
			t.Errorf("timestamp %q is not RFC 3339 UTC with milliseconds", ts)
		}
		if _, err := time.Parse(time.RFC3339, ts); err != nil {
			t.Errorf("timestamp %q: %v", ts, err)
		}
	}

	tests := []struct {
		name             string
		line             map[string]any
		level, comp, msg string
		meta             map[string]any
	}{
		{"fields to metadata", lines[0], "info", "queue", "claimed", map[string]any{
			"event_id": "e1", "request_id": "r1", "attempts": json.Number("10"), "error": "boom"}},
		{"default component", lines[1], "warn", "main", "no component", map[string]any{}},
		{"last component wins, empty message", lines[2], "debug", "worker", "", map[string]any{}},
		{"metadata merged, top level wins", lines[3], "error", "queue", "merged", map[string]any{
			"trace_id": "t1", "event_id": "e2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.line["level"] != tt.level || tt.line["component"] != tt.comp || tt.line["message"] != tt.msg {
				t.Errorf("got level=%v component=%v message=%v, want %s %s %q",
					tt.line["level"], tt.line["component"], tt.line["message"], tt.level, tt.comp, tt.msg)
			}
			got := fmt.Sprint(tt.line["metadata"])
			if want := fmt.Sprint(tt.meta); got != want {
				t.Errorf("metadata = %s, want %s", got, want)
			}
		})
	}
}

func TestMaskingAndRedactionInLines(t *testing.T) {
	const secret = "sk_live_0123456789abcdef"
	const short = "pw1"
	l, buf := newTestLogger(t, "info", secret, short, "")
	wrapped := fmt.Errorf("calling ghl with key %s: %w", secret, errors.New("contact +13105550100 rejected"))
	l.Info().
		Str("phone", "(310) 555-0100").
		Str("email", "john.doe@gmail.com").
		Str("event_id", "123e4567-e89b-12d3-a456-426614174000").
		Str("received_at", "2024-01-15T10:30:00.000Z").
		Str("hex", "5f3a9c3105550100ab").
		Int("attempts", 10).
		Int64("big", 3105550100).
		Dict("nested", zerolog.Dict().Str("auth", "Bearer "+secret).
			Strs("list", []string{"x@y.com", short})).
		Errs("errors", []error{wrapped}).
		Err(wrapped).
		Msgf("sync for jane@example.org at +919509597501 with %s", secret)

	lines := parseLines(t, buf.String())
	if len(lines) != 1 {
		t.Fatalf("got %d lines", len(lines))
	}
	raw := buf.String()
	for _, leak := range []string{secret, "john.doe", "555-0100", "+13105550100", "jane@", "9509597501", "x@y.com", `"pw1"`} {
		if strings.Contains(raw, leak) {
			t.Errorf("output contains %q: %s", leak, raw)
		}
	}
	ln := lines[0]
	md := ln["metadata"].(map[string]any)
	checks := []struct {
		name      string
		got, want any
	}{
		{"message", ln["message"], "sync for j***@example.org at +9195***7501 with [REDACTED]"},
		{"phone", md["phone"], "310***0100"},
		{"email", md["email"], "j***@gmail.com"},
		{"uuid untouched", md["event_id"], "123e4567-e89b-12d3-a456-426614174000"},
		{"timestamp untouched", md["received_at"], "2024-01-15T10:30:00.000Z"},
		{"hex untouched", md["hex"], "5f3a9c3105550100ab"},
		{"count untouched", md["attempts"], json.Number("10")},
		{"numbers are not masked", md["big"], json.Number("3105550100")},
		{"nested secret", md["nested"].(map[string]any)["auth"], "Bearer [REDACTED]"},
		{"nested list", fmt.Sprint(md["nested"].(map[string]any)["list"]), "[x***@y.com [REDACTED]]"},
		{"error string", md["error"], "calling ghl with key [REDACTED]: contact +1310***0100 rejected"},
		{"errors array", fmt.Sprint(md["errors"]), "[calling ghl with key [REDACTED]: contact +1310***0100 rejected]"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestLevelFiltering(t *testing.T) {
	tests := []struct {
		level string
		want  []string
	}{
		{"debug", []string{"debug", "info", "warn", "error"}},
		{"info", []string{"info", "warn", "error"}},
		{"WARN", []string{"warn", "error"}},
		{" warning ", []string{"warn", "error"}},
		{"error", []string{"error"}},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			l, buf := newTestLogger(t, tt.level)
			l.Debug().Msg("d")
			l.Info().Msg("i")
			l.Warn().Msg("w")
			l.Error().Msg("e")
			var got []string
			for _, ln := range parseLines(t, buf.String()) {
				got = append(got, ln["level"].(string))
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("levels %v, want %v", got, tt.want)
			}
		})
	}
}

func TestInvalidLevel(t *testing.T) {
	for _, lvl := range []string{"", "verbose", "trace", "fatal"} {
		var buf bytes.Buffer
		l, err := NewLogger(&buf, lvl, nil)
		if err == nil {
			t.Errorf("NewLogger(%q) returned no error", lvl)
		}
		l.Debug().Msg("hidden")
		l.Info().Msg("shown")
		if lines := parseLines(t, buf.String()); len(lines) != 1 {
			t.Errorf("NewLogger(%q): fallback logger wrote %d lines, want 1 (info)", lvl, len(lines))
		}
	}
}

func TestUnparseableInput(t *testing.T) {
	tests := []struct {
		name, in, wantRaw string
	}{
		{"plain text", "hello +13105550100 sk_test_secret\n", "hello +1310***0100 [REDACTED]"},
		{"array", "[1,2]\n", "[1,2]"},
		{"null", "null\n", "null"},
		{"trailing garbage", `{"level":"info"} x` + "\n", `{"level":"info"} x`},
		{"truncated", `{"level":"info","message":"a@b.com`, `{"level":"info","message":"a***@b.com`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := newContractWriter(&buf, []string{"sk_test_secret"})
			n, err := w.Write([]byte(tt.in))
			if err != nil || n != len(tt.in) {
				t.Fatalf("Write = %d, %v", n, err)
			}
			lines := parseLines(t, buf.String())
			if len(lines) != 1 {
				t.Fatalf("got %d lines", len(lines))
			}
			ln := lines[0]
			if ln["level"] != "error" || ln["component"] != "observe" || ln["message"] != "unparseable log line" {
				t.Errorf("got %v", ln)
			}
			if raw := ln["metadata"].(map[string]any)["raw"]; raw != tt.wantRaw {
				t.Errorf("raw = %q, want %q", raw, tt.wantRaw)
			}
		})
	}
}

func TestWriterHandlesSeveralLinesAndOddFields(t *testing.T) {
	var buf bytes.Buffer
	w := newContractWriter(&buf, nil)
	in := `{"level":"fatal","timestamp":1700000000,"message":42,"service":"other","metadata":"str","a":{"b":[1,"c@d.io"]}}` + "\n\n" +
		`{"level":"trace","component":"x","message":"<&>"}` + "\n"
	if _, err := w.Write([]byte(in)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), `\u003c`) {
		t.Errorf("HTML escaping in output: %s", buf.String())
	}
	lines := parseLines(t, buf.String())
	if len(lines) != 2 {
		t.Fatalf("got %d lines", len(lines))
	}
	md := lines[0]["metadata"].(map[string]any)
	if lines[0]["level"] != "error" || md["timestamp"] != json.Number("1700000000") ||
		md["message"] != json.Number("42") || md["metadata"] != "str" ||
		fmt.Sprint(md["a"]) != "map[b:[1 c***@d.io]]" {
		t.Errorf("first line = %v", lines[0])
	}
	if lines[1]["level"] != "debug" || lines[1]["component"] != "x" || lines[1]["message"] != "<&>" {
		t.Errorf("second line = %v", lines[1])
	}
}

// lineCountingWriter records each Write call so the test can check one call
// carries whole lines only.
type lineCountingWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	broken int
}

func (w *lineCountingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(p) == 0 || p[len(p)-1] != '\n' || bytes.Count(p, []byte("\n")) != 1 {
		w.broken++
	}
	return w.buf.Write(p)
}

func TestConcurrentWritesProduceWholeLines(t *testing.T) {
	out := &lineCountingWriter{}
	root, err := NewLogger(out, "info", []string{"topsecret"})
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, perG = 16, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			l := Component(root, fmt.Sprintf("g%d", g))
			for i := range perG {
				l.Info().Int("i", i).Str("payload", strings.Repeat("x", 200)).
					Str("k", "topsecret").Msg("concurrent")
			}
		})
	}
	wg.Wait()
	if out.broken != 0 {
		t.Errorf("%d writes were not exactly one line", out.broken)
	}
	lines := parseLines(t, out.buf.String())
	if len(lines) != goroutines*perG {
		t.Errorf("got %d lines, want %d", len(lines), goroutines*perG)
	}
}

func TestRequestID(t *testing.T) {
	id := NewRequestID()
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(id) {
		t.Errorf("NewRequestID() = %q", id)
	}
	if NewRequestID() == id {
		t.Error("two request ids are equal")
	}
	ctx := context.Background()
	if RequestID(ctx) != "" {
		t.Error("empty context has a request id")
	}
	if got := RequestID(WithRequestID(ctx, id)); got != id {
		t.Errorf("RequestID = %q, want %q", got, id)
	}
}

func BenchmarkLogLine(b *testing.B) {
	var buf bytes.Buffer
	l, _ := NewLogger(&buf, "info", []string{"sk_live_0123456789abcdef"})
	l = Component(l, "bench")
	for b.Loop() {
		buf.Reset()
		l.Info().Str("event_id", "123e4567-e89b-12d3-a456-426614174000").Str("request_id", "0123456789abcdef").
			Int("attempts", 3).Msg("event processed")
	}
}
