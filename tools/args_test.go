package tools

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

func toolNamed(t *testing.T, name string) mcp.Tool {
	t.Helper()
	for _, d := range toolDefs() {
		if d.tool.Name == name {
			return d.tool
		}
	}
	t.Fatalf("no tool %s", name)
	return mcp.Tool{}
}

func rawCall(args string) mcp.CallToolRequest {
	var req mcp.CallToolRequest
	if err := json.Unmarshal([]byte(`{"name":"x","arguments":`+args+`}`), &req.Params); err != nil {
		panic(err)
	}
	return req
}

func TestBindArgs(t *testing.T) {
	cases := []struct {
		name, tool, args string
		wantErr          []string // substrings; none means success
	}{
		{"no arguments", "search_events", `{}`, nil},
		{"null arguments", "search_events", `null`, nil},
		{"null values are left out", "search_events", `{"source": null, "limit": null}`, nil},
		{"integer written as 20.0", "search_events", `{"limit": 20.0}`, nil},
		{"unknown argument named with the valid ones", "search_events", `{"sauce": "ghl", "limit": 5}`,
			[]string{`unknown argument "sauce" for search_events`, "valid arguments: cursor, entity_id, entity_type, event_type, limit, payload_contains, since, source, status, until", "without it"}},
		{"several unknown", "check_health", `{"a": 1, "b": 2}`, []string{`unknown arguments "a", "b"`, "valid arguments: none"}},
		{"not an object", "search_events", `[1, 2]`, []string{"must be a JSON object", "valid names"}},
		{"wrong type", "search_events", `{"limit": "ten"}`, []string{`limit must be an integer (got the string "ten")`}},
		{"fraction", "search_events", `{"limit": 2.5}`, []string{"limit must be a whole number"}},
		{"out of range", "search_events", `{"limit": 500}`, []string{"limit must be between 1 and 100 (got 500)"}},
		{"zero", "search_events", `{"limit": 0}`, []string{"limit must be between 1 and 100 (got 0)"}},
		{"enum", "search_events", `{"status": "failed"}`, []string{"status must be one of pending, processing, done, skipped, error, quarantined", `"failed"`}},
		{"boolean", "replay_events", `{"status": "error", "dry_run": "no"}`, []string{"dry_run must be true or false"}},
		{"required", "get_event", `{}`, []string{"id is required"}},
		{"required with wrong type reports the type", "get_event", `{"id": 7}`, []string{"id must be a string"}},
		{"too long", "search_events", `{"payload_contains": "` + strings.Repeat("x", 201) + `"}`, []string{"payload_contains must be at most 200 characters"}},
		{"too short", "search_events", `{"payload_contains": "ab"}`, []string{"payload_contains must be at least 3 characters"}},
		{"empty required reason", "quarantine_event", `{"id": "x", "reason": ""}`, []string{"reason must not be empty"}},
		{"every problem at once", "search_events", `{"limit": 0, "status": "x"}`, []string{"limit must be", "status must be", "fix them"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p map[string]any
			err := bindArgs(toolNamed(t, c.tool), rawCall(c.args), &p)
			if len(c.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want an error containing %q", c.wantErr)
			}
			for _, w := range c.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestBindArgsDecodesIntoParams(t *testing.T) {
	var p replayEventsParams
	if err := bindArgs(toolNamed(t, "replay_events"), rawCall(`{"status":"error","max":250.0,"dry_run":false,"source":null}`), &p); err != nil {
		t.Fatal(err)
	}
	if p.Status != "error" || p.Max != 250 || p.DryRun == nil || *p.DryRun || p.Source != "" {
		t.Fatalf("bound %+v", p)
	}
	// Arguments set programmatically (not from the wire) are read too.
	req := mcp.CallToolRequest{}
	req.Params.Arguments = map[string]any{"status": "done", "max": 3}
	p = replayEventsParams{}
	if err := bindArgs(toolNamed(t, "replay_events"), req, &p); err != nil || p.Max != 3 || p.DryRun != nil {
		t.Fatalf("bound %+v, %v", p, err)
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2025-05-31T10:00:00Z":      time.Date(2025, 5, 31, 10, 0, 0, 0, time.UTC),
		"2025-05-31T10:00:00+02:00": time.Date(2025, 5, 31, 8, 0, 0, 0, time.UTC),
		"90m":                       now.Add(-90 * time.Minute),
		"24h":                       now.Add(-24 * time.Hour),
		"7d":                        now.Add(-7 * 24 * time.Hour),
		"":                          {},
	} {
		got, err := parseTime("since", in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "-5m", "2025-13-01"} {
		if _, err := parseTime("since", bad, now); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
			t.Errorf("parseTime(%q) error = %v", bad, err)
		}
	}
	if _, _, err := timeRange("1h", "2h"); err == nil || !strings.Contains(err.Error(), "must be before until") {
		t.Errorf("inverted range: %v", err)
	}
}

func TestParseWindow(t *testing.T) {
	for _, c := range []struct {
		in   string
		unit time.Duration
		want int
	}{
		{"", time.Hour, 24}, {"24h", time.Hour, 24}, {"90m", time.Hour, 2}, {"7d", time.Hour, 168}, {"0.5d", time.Hour, 12},
		{"15m", time.Minute, 15}, {"90s", time.Minute, 2}, {"1h", time.Minute, 60},
	} {
		maxWindow := 7 * 24 * time.Hour
		got, err := parseWindow(c.in, 24*time.Hour, maxWindow, c.unit)
		if err != nil || got != c.want {
			t.Errorf("parseWindow(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for in, want := range map[string]string{"8d": "at most 7d", "-1h": "longer than 0", "0s": "longer than 0", "soon": "not a duration"} {
		if _, err := parseWindow(in, time.Hour, 7*24*time.Hour, time.Hour); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseWindow(%q) error = %v, want %q", in, err, want)
		}
	}
}
