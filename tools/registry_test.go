package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/rs/zerolog"
)

var update = flag.Bool("update", false, "rewrite tools/testdata/schemas/*.json and docs/tools.md from the registry")

// The tool names are a contract with operators, prompts and docs.
var contractTools = map[string][]string{
	"ops":        {"check_health", "get_queue_status", "list_alerts", "list_error_groups", "get_db_performance"},
	"events":     {"search_events", "get_event", "replay_event", "replay_events", "quarantine_event", "release_event", "process_pending"},
	"sync":       {"get_sync_stats", "list_sync_errors", "get_contact_sync_status"},
	"broadcasts": {"list_broadcasts", "get_broadcast", "get_broadcast_analytics"},
}

var mutatingTools = []string{"replay_event", "replay_events", "quarantine_event", "release_event", "process_pending"}

func TestRegistryHoldsTheContractTools(t *testing.T) {
	got := map[string][]string{}
	for _, ts := range registry() {
		for _, d := range ts.tools {
			got[ts.name] = append(got[ts.name], d.tool.Name)
		}
	}
	for set, want := range contractTools {
		if !slices.Equal(got[set], want) {
			t.Errorf("toolset %s = %v, want %v", set, got[set], want)
		}
	}
	if len(got) != len(contractTools) {
		t.Errorf("toolsets = %v, want %v", ToolsetNames(), contractTools)
	}
	if want := []string{"ops", "events", "sync", "broadcasts"}; !slices.Equal(ToolsetNames(), want) {
		t.Errorf("ToolsetNames() = %v, want %v", ToolsetNames(), want)
	}
}

// TestAnnotationPolicy: every tool states all four hints and a title, and
// the hints agree with the registry's mutating flag.
func TestAnnotationPolicy(t *testing.T) {
	for _, d := range toolDefs() {
		a := d.tool.Annotations
		name := d.tool.Name
		if a.Title == "" || d.tool.Title == "" {
			t.Errorf("%s: missing title (annotations %q, tool %q)", name, a.Title, d.tool.Title)
		}
		for hint, v := range map[string]*bool{"readOnlyHint": a.ReadOnlyHint, "destructiveHint": a.DestructiveHint,
			"idempotentHint": a.IdempotentHint, "openWorldHint": a.OpenWorldHint} {
			if v == nil {
				t.Errorf("%s: %s is not set explicitly", name, hint)
			}
		}
		if a.ReadOnlyHint == nil || a.DestructiveHint == nil {
			continue
		}
		if *a.ReadOnlyHint == d.mutating {
			t.Errorf("%s: readOnlyHint=%v but mutating=%v", name, *a.ReadOnlyHint, d.mutating)
		}
		if *a.ReadOnlyHint && *a.DestructiveHint {
			t.Errorf("%s: a read-only tool cannot be destructive", name)
		}
		if d.mutating != slices.Contains(mutatingTools, name) {
			t.Errorf("%s: mutating=%v, want %v", name, d.mutating, !d.mutating)
		}
	}
}

// TestToolDefinitionRules checks the rules every tool definition follows.
func TestToolDefinitionRules(t *testing.T) {
	for _, d := range toolDefs() {
		tool := d.tool
		if tool.InputSchema.AdditionalProperties != false {
			t.Errorf("%s: inputSchema.additionalProperties = %v, want false", tool.Name, tool.InputSchema.AdditionalProperties)
		}
		if tool.InputSchema.Type != "object" {
			t.Errorf("%s: inputSchema.type = %q", tool.Name, tool.InputSchema.Type)
		}
		if tool.OutputSchema.Type != "object" || len(tool.OutputSchema.Properties) == 0 {
			t.Errorf("%s: no output schema", tool.Name)
		}
		if len(tool.Description) < 150 {
			t.Errorf("%s: description too short to act on (%d chars)", tool.Name, len(tool.Description))
		}
		if !strings.Contains(tool.Description, "Next:") && !strings.Contains(tool.Description, "Use it") {
			t.Errorf("%s: description should say when to use it and what to call next", tool.Name)
		}
		for name, p := range tool.InputSchema.Properties {
			pm, ok := p.(map[string]any)
			if !ok || pm["type"] == nil || pm["description"] == nil {
				t.Errorf("%s.%s: property needs a type and a description: %v", tool.Name, name, p)
			}
			if pm["type"] == "string" && pm["enum"] == nil && pm["maxLength"] == nil {
				t.Errorf("%s.%s: free-text string argument needs maxLength", tool.Name, name)
			}
			if pm["type"] == "integer" && (pm["minimum"] == nil || pm["maximum"] == nil) {
				t.Errorf("%s.%s: integer argument needs minimum and maximum", tool.Name, name)
			}
		}
		if _, ok := tool.InputSchema.Properties["limit"]; ok {
			if _, ok := tool.OutputSchema.Properties["truncated"]; !ok {
				t.Errorf("%s: a paginated tool must return truncated", tool.Name)
			}
		}
		if _, ok := tool.InputSchema.Properties["cursor"]; ok {
			if _, ok := tool.OutputSchema.Properties["next_cursor"]; !ok {
				t.Errorf("%s: a paginated tool must return next_cursor", tool.Name)
			}
		}
	}
}

func TestToolsetSelectionAndReadOnly(t *testing.T) {
	all := func() []string {
		var out []string
		for _, set := range []string{"ops", "events", "sync", "broadcasts"} {
			out = append(out, contractTools[set]...)
		}
		return out
	}
	cases := []struct {
		name string
		opts Options
		want []string
	}{
		{"default is all", Options{}, all()},
		{"all", Options{Toolsets: []string{"all"}}, all()},
		{"blanks mean all", Options{Toolsets: []string{" ", ""}}, all()},
		{"one", Options{Toolsets: []string{"sync"}}, contractTools["sync"]},
		{"two in registry order, any case", Options{Toolsets: []string{" Events", "ops"}}, append(slices.Clone(contractTools["ops"]), contractTools["events"]...)},
		{"read-only drops every mutating tool", Options{ReadOnly: true}, slices.DeleteFunc(all(), func(n string) bool { return slices.Contains(mutatingTools, n) })},
		{"read-only events", Options{Toolsets: []string{"events"}, ReadOnly: true}, []string{"search_events", "get_event"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := server.NewMCPServer("t", "0")
			names, err := Register(s, Deps{Log: zerolog.Nop()}, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names, c.want) {
				t.Fatalf("Register = %v, want %v", names, c.want)
			}
			listed := s.ListTools()
			if len(listed) != len(c.want) {
				t.Fatalf("server lists %d tools, want %d", len(listed), len(c.want))
			}
			for _, n := range c.want {
				if listed[n] == nil {
					t.Errorf("%s not registered", n)
				}
			}
		})
	}
}

func TestUnknownToolsetNamesTheValidOnes(t *testing.T) {
	_, err := Register(server.NewMCPServer("t", "0"), Deps{}, Options{Toolsets: []string{"ops", "evnts"}})
	if err == nil {
		t.Fatal("want an error for an unknown toolset")
	}
	for _, want := range []string{`"evnts"`, "ops, events, sync, broadcasts", "all"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestReadOnlyServerListsNoMutatingToolOverMCP(t *testing.T) {
	h := newHarness(t, withOptions(Options{ReadOnly: true}))
	res, err := h.client.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tools) != 13 {
		t.Errorf("read-only server lists %d tools, want 13", len(res.Tools))
	}
	for _, tool := range res.Tools {
		if slices.Contains(mutatingTools, tool.Name) {
			t.Errorf("read-only server lists mutating tool %s", tool.Name)
		}
		if tool.Annotations.ReadOnlyHint == nil || !*tool.Annotations.ReadOnlyHint {
			t.Errorf("read-only server lists %s without readOnlyHint", tool.Name)
		}
	}
	// A tool that is not registered is a protocol error (the request is
	// broken), not a tool result.
	req := mcp.CallToolRequest{}
	req.Params.Name = "replay_event"
	req.Params.Arguments = map[string]any{"id": "00000000-0000-0000-0000-000000000000"}
	if _, err := h.client.CallTool(context.Background(), req); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("calling an unregistered tool: %v", err)
	}
}

func TestInstructionsFollowTheSelection(t *testing.T) {
	full := Instructions(Options{})
	for _, want := range []string{"check_health", "get_queue_status", "search_events", "replay_events", "audit_log", "untrusted", "next_cursor"} {
		if !strings.Contains(full, want) {
			t.Errorf("instructions lack %q:\n%s", want, full)
		}
	}
	ro := Instructions(Options{ReadOnly: true})
	if !strings.Contains(ro, "Read-only mode") || strings.Contains(ro, "replay_event") || strings.Contains(ro, "process_pending,") {
		t.Errorf("read-only instructions:\n%s", ro)
	}
	ops := Instructions(Options{Toolsets: []string{"ops"}})
	if strings.Contains(ops, "search_events") || !strings.Contains(ops, "Not enabled: events, sync, broadcasts") {
		t.Errorf("ops-only instructions:\n%s", ops)
	}
	if strings.Index(full, "check_health") > strings.Index(full, "get_queue_status") || strings.Index(full, "get_queue_status") > strings.Index(full, "search_events") {
		t.Errorf("instructions should lead check_health → get_queue_status → search_events:\n%s", full)
	}
}

// TestSchemaSnapshots compares every tool's full definition with its
// golden file; `go test ./tools -update` rewrites them after an intended
// change.
func TestSchemaSnapshots(t *testing.T) {
	dir := filepath.Join("testdata", "schemas")
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]bool{}
	for _, d := range toolDefs() {
		want[d.tool.Name+".json"] = true
		got, err := json.MarshalIndent(d.tool, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, '\n')
		path := filepath.Join(dir, d.tool.Name+".json")
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		old, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: no snapshot (%v); run go test ./tools -update", d.tool.Name, err)
			continue
		}
		if !bytes.Equal(old, got) {
			t.Errorf("%s: definition differs from %s; if the change is intended, run go test ./tools -update and review the diff\n%s",
				d.tool.Name, path, firstDiff(string(old), string(got)))
		}
	}
	entries, _ := os.ReadDir(dir)
	var stale []string
	for _, e := range entries {
		if !want[e.Name()] {
			stale = append(stale, e.Name())
		}
	}
	sort.Strings(stale)
	for _, name := range stale {
		if *update {
			_ = os.Remove(filepath.Join(dir, name))
		} else {
			t.Errorf("snapshot %s has no tool; run go test ./tools -update", name)
		}
	}
}

// TestDocsAreCurrent fails when docs/tools.md differs from Docs().
func TestDocsAreCurrent(t *testing.T) {
	path := filepath.Join("..", "docs", "tools.md")
	got := Docs()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v; run go test ./tools -update", path, err)
	}
	if string(old) != got {
		t.Errorf("docs/tools.md is out of date; run go test ./tools -update\n%s", firstDiff(string(old), got))
	}
	for _, d := range toolDefs() {
		if !strings.Contains(got, "### `"+d.tool.Name+"`") {
			t.Errorf("docs lack %s", d.tool.Name)
		}
	}
}

// firstDiff shows the first differing line of two texts.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return "line " + strconv.Itoa(i+1) + ":\n- " + x + "\n+ " + y
		}
	}
	return ""
}

// TestEveryToolReportsBadArguments calls every tool over MCP with an
// unknown argument and, where it has one, a wrongly typed argument.
func TestEveryToolReportsBadArguments(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	res, err := h.client.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tools) != 18 {
		t.Fatalf("%d tools listed, want 18", len(res.Tools))
	}
	for _, tool := range res.Tools {
		if tool.OutputSchema.Type != "object" || tool.InputSchema.AdditionalProperties != false {
			t.Errorf("%s: listed without output schema or strict input schema", tool.Name)
		}
		msg := h.fails(tool.Name, map[string]any{"zz_unknown": 1})
		if !strings.Contains(msg, `unknown argument "zz_unknown" for `+tool.Name) || !strings.Contains(msg, "valid arguments:") {
			t.Errorf("%s: unknown argument reported as %q", tool.Name, msg)
		}
		for name, p := range tool.InputSchema.Properties {
			var wrong any = 12345
			if p.(map[string]any)["type"] != "string" {
				wrong = "not-a-number"
			}
			msg := h.fails(tool.Name, map[string]any{name: wrong})
			if !strings.Contains(msg, "invalid arguments for "+tool.Name) || !strings.Contains(msg, name+" must be") {
				t.Errorf("%s.%s: wrong type reported as %q", tool.Name, name, msg)
			}
			break
		}
	}
}
