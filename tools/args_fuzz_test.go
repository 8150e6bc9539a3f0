package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/rs/zerolog"
)

// paramDecoders decodes a call's arguments into the params type of each
// registered tool, exactly as its handler does (handle → bindArgs into P),
// but without running the handler, so no database is needed. A tool added
// to the registry needs a line here: TestParamDecodersCoverRegistry fails
// until it has one, and FuzzToolArguments checks each line against the
// tool's real handler.
var paramDecoders = map[string]func(mcp.Tool, mcp.CallToolRequest) (any, error){
	// ops
	"check_health":       decodeAs[noParams],
	"get_queue_status":   decodeAs[queueStatusParams],
	"list_alerts":        decodeAs[listAlertsParams],
	"list_error_groups":  decodeAs[listErrorGroupsParams],
	"get_db_performance": decodeAs[dbPerformanceParams],
	// events
	"search_events":    decodeAs[searchEventsParams],
	"get_event":        decodeAs[eventIDParams],
	"replay_event":     decodeAs[transitionParams],
	"quarantine_event": decodeAs[transitionParams],
	"release_event":    decodeAs[transitionParams],
	"replay_events":    decodeAs[replayEventsParams],
	"process_pending":  decodeAs[processPendingParams],
	// sync
	"get_sync_stats":          decodeAs[syncStatsParams],
	"list_sync_errors":        decodeAs[listSyncErrorsParams],
	"get_contact_sync_status": decodeAs[contactParams],
	// broadcasts
	"list_broadcasts":         decodeAs[listBroadcastsParams],
	"get_broadcast":           decodeAs[broadcastIDParams],
	"get_broadcast_analytics": decodeAs[broadcastIDParams],
}

func decodeAs[P any](t mcp.Tool, req mcp.CallToolRequest) (any, error) {
	var p P
	err := bindArgs(t, req, &p)
	return p, err
}

func TestParamDecodersCoverRegistry(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range toolDefs() {
		seen[d.tool.Name] = true
		if paramDecoders[d.tool.Name] == nil {
			t.Errorf("tool %s has no entry in paramDecoders (args_fuzz_test.go): add its params type", d.tool.Name)
		}
	}
	for name := range paramDecoders {
		if !seen[name] {
			t.Errorf("paramDecoders names %s, which is not a registered tool", name)
		}
	}
}

// exampleArgs builds a valid argument object for t from its input schema.
func exampleArgs(t mcp.Tool) map[string]any {
	args := map[string]any{}
	for name, raw := range t.InputSchema.Properties {
		prop, _ := raw.(map[string]any)
		switch typ, _ := prop["type"].(string); typ {
		case "string":
			s := "x"
			if enum := stringsOf(prop["enum"]); len(enum) > 0 {
				s = enum[len(enum)-1]
			} else if m, ok := number(prop["minLength"]); ok && m > 1 {
				s = strings.Repeat("x", int(m))
			}
			args[name] = s
		case "integer":
			v := 1.0
			if m, ok := number(prop["maximum"]); ok {
				v = m
			}
			args[name] = v
		case "boolean":
			args[name] = true
		}
	}
	return args
}

// decodeWithNumbers decodes one JSON value as bindArgs does (numbers as json.Number).
func decodeWithNumbers(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// FuzzToolArguments feeds arbitrary bytes, as the JSON arguments of a
// tools/call, through the argument decoding of every registered tool, in
// the three ways a request can carry them: parsed from the wire by mcp-go,
// raw bytes, and a Go value set by an in-process caller. Properties: no
// panic; a refusal is an error naming the tool; an accepted call had known
// names only, every required one, and each decoded value is the one sent
// and satisfies the published schema (type, enum, length, range).
func FuzzToolArguments(f *testing.F) {
	defs := toolDefs()
	for _, d := range defs {
		b, err := json.Marshal(exampleArgs(d.tool))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		``, `null`, `{}`, `[]`, `"x"`, `7`, ` {"limit": 5} `, `{"limit": 20.0}`, `{"limit": 2.5}`, `{"limit": 1e400}`,
		`{"limit": -0}`, `{"limit": 9007199254740993}`, `{"limit": "5"}`, `{"limit": null, "cursor": null}`,
		`{"sauce": "ghl", "limit": 5}`, `{"status": "failed"}`, `{"dry_run": "no"}`, `{"id": 7}`, `{"id": "\ud800"}`,
		`{"id": "x", "reason": ""}`, `{"window": "7d", "since": "1h", "until": "2025-01-31T14:00:00Z"}`,
		`{"a":{"b":[1,{"c":null}]}}`, `{"limit": 1, "limit": 2}`, `{"ID": "x"}`, `{} trailing`, `{"id": "x"`,
		strings.Repeat(`[`, 100) + strings.Repeat(`]`, 100),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var wire mcp.CallToolRequest // parsed from the wire, as the server does
		wireOK := json.Unmarshal(append(append([]byte(`{"name":"fuzz","arguments":`), raw...), '}'), &wire.Params) == nil
		var rawReq mcp.CallToolRequest // raw bytes, whatever they are
		rawReq.Params.RawArguments = raw
		var goReq mcp.CallToolRequest // a Go value, as an in-process caller sets it
		var goValue any
		goOK := json.Unmarshal(raw, &goValue) == nil
		goReq.Params.Arguments = goValue

		for _, d := range defs {
			decode := paramDecoders[d.tool.Name]
			if decode == nil {
				continue // TestParamDecodersCoverRegistry reports it
			}
			reqs := []mcp.CallToolRequest{rawReq}
			if wireOK {
				reqs = append(reqs, wire)
			}
			if goOK {
				reqs = append(reqs, goReq)
			}
			for i, req := range reqs {
				p, err := decode(d.tool, req)
				if err != nil {
					checkRefusal(t, d, req, err)
					continue
				}
				argBytes := req.Params.RawArguments
				if i == 2 {
					argBytes, _ = json.Marshal(goValue)
				}
				checkAccepted(t, d.tool, argBytes, p)
			}
		}
	})
}

// checkRefusal checks an argument error, and that the tool's real handler
// refuses the same call with the same message (so paramDecoders has the
// handler's params type). The handler runs on empty dependencies: it must
// stop at the arguments, before anything would use them.
func checkRefusal(t *testing.T, d toolDef, req mcp.CallToolRequest, err error) {
	t.Helper()
	if err.Error() == "" || !strings.Contains(err.Error(), d.tool.Name) {
		t.Fatalf("%s: error %q does not name the tool", d.tool.Name, err)
	}
	var res *mcp.CallToolResult
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("%s: the handler went past arguments that paramDecoders refuses (%v): fix its entry", d.tool.Name, r)
			}
		}()
		var herr error
		res, herr = d.bind(&Deps{Log: zerolog.Nop()})(context.Background(), req)
		if herr != nil {
			t.Fatalf("%s: handler returned a protocol error %v", d.tool.Name, herr)
		}
	}()
	if !res.IsError || resultText(res) != err.Error() {
		t.Fatalf("%s: handler answered %q (isError %v), paramDecoders %q: fix its entry", d.tool.Name, resultText(res), res.IsError, err)
	}
}

// checkAccepted checks a call whose arguments decoded into p.
func checkAccepted(t *testing.T, tool mcp.Tool, argBytes []byte, p any) {
	t.Helper()
	args := map[string]any{}
	if trimmed := bytes.TrimSpace(argBytes); len(trimmed) > 0 && !bytes.Equal(trimmed, []byte("null")) {
		v, err := decodeWithNumbers(trimmed)
		obj, ok := v.(map[string]any)
		if err != nil || !ok || !json.Valid(trimmed) {
			t.Fatalf("%s: accepted arguments %q that are not a JSON object", tool.Name, argBytes)
		}
		args = obj
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatalf("%s: decoded params do not encode: %v", tool.Name, err)
	}
	decoded, _ := decodeWithNumbers(b)
	got, _ := decoded.(map[string]any)

	for _, name := range tool.InputSchema.Required {
		if args[name] == nil {
			t.Fatalf("%s: accepted %q without the required %s", tool.Name, argBytes, name)
		}
	}
	names := make([]string, 0, len(args))
	for name := range args {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		in := args[name]
		prop, known := tool.InputSchema.Properties[name].(map[string]any)
		if !known {
			t.Fatalf("%s: accepted the unknown argument %q", tool.Name, name)
		}
		if in == nil {
			continue // null is the same as leaving it out
		}
		out, present := got[name]
		if !present {
			t.Fatalf("%s: argument %s was accepted but not decoded into the params", tool.Name, name)
		}
		if problem := schemaProblem(prop, in, out); problem != "" {
			t.Fatalf("%s: argument %s = %v decoded to %v: %s", tool.Name, name, in, out, problem)
		}
	}
}

// schemaProblem says how a decoded value out (of the sent value in) breaks
// its property schema, "" when it does not.
func schemaProblem(prop map[string]any, in, out any) string {
	switch typ, _ := prop["type"].(string); typ {
	case "string":
		s, ok := out.(string)
		if !ok || s != in {
			return "not the string sent"
		}
		if enum := stringsOf(prop["enum"]); len(enum) > 0 && !slices.Contains(enum, s) {
			return "not in the enum"
		}
		n := float64(utf8.RuneCountInString(s))
		if m, ok := number(prop["minLength"]); ok && n < m {
			return "shorter than minLength"
		}
		if m, ok := number(prop["maxLength"]); ok && n > m {
			return "longer than maxLength"
		}
	case "integer":
		o, ok := out.(json.Number)
		if !ok {
			return "not a number"
		}
		i, ierr := o.Int64()
		want, werr := in.(json.Number).Float64()
		if ierr != nil || werr != nil || float64(i) != want || want != math.Trunc(want) {
			return fmt.Sprintf("not the whole number sent (%v)", o)
		}
		if m, ok := number(prop["minimum"]); ok && float64(i) < m {
			return "below minimum"
		}
		if m, ok := number(prop["maximum"]); ok && float64(i) > m {
			return "above maximum"
		}
	case "boolean":
		if b, ok := out.(bool); !ok || b != in {
			return "not the boolean sent"
		}
	}
	return ""
}

// FuzzTimeArguments fuzzes the helpers tools use to read time arguments
// (since/until, window): never a panic; refusals are toolErrors naming the
// argument; a relative time is never in the future; a window is a whole
// number of units within the bound; an accepted range is ordered.
func FuzzTimeArguments(f *testing.F) {
	for _, s := range []string{"", " ", "90m", "24h", "7d", "0.5d", "-5m", "-0s", "0", "1e300d", "NaNd", "Infd", "+Infd", "-1d",
		"2025-01-31T14:00:00Z", "2025-05-31T10:00:00+02:00", "2025-13-01", "9999-12-31T23:59:59.999999999Z",
		"2562047h47m16.854775807s", "2562048h", "1e-400d", "0x10d", "1_0d", ".d", "d"} {
		f.Add(s, "1h")
	}
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, since, until string) {
		isRefusal := func(err error, name string) {
			t.Helper()
			var te *toolError
			if !errors.As(err, &te) || !strings.Contains(err.Error(), name) {
				t.Fatalf("error %v is not a toolError naming %s", err, name)
			}
		}
		got, err := parseTime("since", since, now)
		switch s := strings.TrimSpace(since); {
		case err != nil:
			isRefusal(err, "since")
		case s == "":
			if !got.IsZero() {
				t.Fatalf("parseTime(%q) = %v, want the zero time", since, got)
			}
		default:
			if abs, perr := time.Parse(time.RFC3339Nano, s); perr == nil {
				if !got.Equal(abs) {
					t.Fatalf("parseTime(%q) = %v, want %v", since, got, abs)
				}
			} else if got.After(now) {
				t.Fatalf("parseTime(%q) = %v: a duration back from now ended in the future", since, got)
			}
		}

		for _, w := range []struct{ def, max, unit time.Duration }{
			{15 * time.Minute, 24 * time.Hour, time.Minute}, // get_queue_status
			{24 * time.Hour, 7 * 24 * time.Hour, time.Hour}, // get_sync_stats
		} {
			n, err := parseWindow(since, w.def, w.max, w.unit)
			if err != nil {
				isRefusal(err, "window")
				continue
			}
			if maxUnits := int((w.max + w.unit - 1) / w.unit); n < 1 || n > maxUnits {
				t.Fatalf("parseWindow(%q) = %d, outside 1..%d", since, n, maxUnits)
			}
		}

		s, u, err := timeRange(since, until)
		if err != nil {
			var te *toolError
			if !errors.As(err, &te) {
				t.Fatalf("timeRange error %v is not a toolError", err)
			}
		} else if !s.IsZero() && !u.IsZero() && !s.Before(u) {
			t.Fatalf("timeRange(%q, %q) = %v, %v: not ordered", since, until, s, u)
		}
	})
}
