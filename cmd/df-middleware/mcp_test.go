package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/df-middleware/df-middleware/internal/intake"
	"github.com/df-middleware/df-middleware/internal/testdb"
)

// The tool names of DESIGN.md are a contract.
var contractTools = []string{
	"check_health", "get_queue_status", "list_alerts", "list_error_groups", "get_db_performance",
	"search_events", "get_event", "replay_event", "replay_events", "quarantine_event", "release_event", "process_pending",
	"get_sync_stats", "list_sync_errors", "get_contact_sync_status",
	"list_broadcasts", "get_broadcast", "get_broadcast_analytics",
}

var mutatingTools = []string{"replay_event", "replay_events", "quarantine_event", "release_event", "process_pending"}

const mcpWebhookSecret = "mcp-test-webhook-secret"

func mcpEnv(t *testing.T, dbURL, addr string, extra ...string) []string {
	env := append(os.Environ(), "DATABASE_URL="+dbURL, "DF_LISTEN_ADDR="+addr,
		"VERITY_WEBHOOK_SECRET="+mcpWebhookSecret, "DF_WORKERS=0", "LOG_LEVEL=debug")
	return append(env, extra...)
}

func initialize(t *testing.T, ctx context.Context, c *client.Client) *mcp.InitializeResult {
	t.Helper()
	req := mcp.InitializeRequest{}
	req.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	req.Params.ClientInfo = mcp.Implementation{Name: "df-middleware-test", Version: "1"}
	res, err := c.Initialize(ctx, req)
	if err != nil {
		t.Fatalf("initialize: %v", err)
	}
	return res
}

func callTool(t *testing.T, ctx context.Context, c *client.Client, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	res, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	return res
}

func toolNames(t *testing.T, ctx context.Context, c *client.Client) []string {
	t.Helper()
	res, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

func sendTexting(t *testing.T, addr, messageID string) string {
	t.Helper()
	body := []byte(fmt.Sprintf(`{"eventType":"message.received","messageId":%q,"from":"+13105550100","body":"hi"}`, messageID))
	req, _ := http.NewRequest("POST", "http://"+addr+"/api/webhooks/texting", bytes.NewReader(body))
	req.Header.Set("X-Texting-Signature", intake.SignHMAC(body, []byte(mcpWebhookSecret)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&r)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("intake: %d", resp.StatusCode)
	}
	return r.ID
}

func auditInterfaces(t *testing.T, dbURL, target string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT interface || ':' || actor FROM audit_log WHERE target = $1 ORDER BY id`, target)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A real MCP client drives `df-middleware mcp` over stdio with the sidecar
// running in the same process.
func TestMCPOverStdio(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	dbURL := testdb.NewURL(t)
	addr := freePort(t)
	c, err := client.NewStdioMCPClient(bin, mcpEnv(t, dbURL, addr), "mcp")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	init := initialize(t, ctx, c)
	if init.ServerInfo.Name != "df-middleware" || init.Instructions == "" {
		t.Fatalf("server info %+v, instructions %q", init.ServerInfo, init.Instructions)
	}
	names := toolNames(t, ctx, c)
	for _, want := range contractTools {
		if !slices.Contains(names, want) {
			t.Errorf("tool %s missing (have %v)", want, names)
		}
	}
	waitReady(t, addr)
	id := sendTexting(t, addr, "mcp-stdio-1")

	res := callTool(t, ctx, c, "search_events", map[string]any{"source": "texting"})
	if res.IsError || !strings.Contains(fmt.Sprint(res.StructuredContent), id) {
		t.Fatalf("search_events did not find %s: %+v", id, res)
	}
	res = callTool(t, ctx, c, "quarantine_event", map[string]any{"id": id, "reason": "held for review"})
	if res.IsError {
		t.Fatalf("quarantine_event: %+v", res.Content)
	}
	if got := auditInterfaces(t, dbURL, "event:"+id); !slices.Equal(got, []string{"mcp-stdio:local"}) {
		t.Fatalf("audit rows %v, want one from mcp-stdio", got)
	}
	res = callTool(t, ctx, c, "get_event", map[string]any{"id": "00000000-0000-0000-0000-000000000000"})
	if !res.IsError {
		t.Fatalf("get_event of a missing id should be an isError result: %+v", res)
	}
	res = callTool(t, ctx, c, "check_health", map[string]any{"bogus": true})
	if !res.IsError {
		t.Fatalf("unknown argument should be reported: %+v", res)
	}

	exerciseEverything(t, ctx, c, id)
}

// exerciseEverything calls every tool, reads every resource and gets every
// prompt the server lists, over whatever transport c uses. id is an event in
// quarantine; it is released at the end.
func exerciseEverything(t *testing.T, ctx context.Context, c *client.Client, id string) {
	t.Helper()
	// Every tool answers over the real transport: a result for the happy path,
	// an isError result (never a protocol error) where the service cannot
	// serve it here — Verity is not configured in this test.
	list, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]any{"id": id, "reason": "transport tour", "status": "error", "phone": "+13105550100"}
	for _, tool := range list.Tools {
		args := map[string]any{}
		for _, name := range tool.InputSchema.Required {
			v, ok := values[name]
			if !ok {
				t.Fatalf("no test value for required argument %s of %s", name, tool.Name)
			}
			args[name] = v
		}
		if tool.Name == "get_contact_sync_status" {
			args["phone"] = values["phone"]
		}
		if tool.Name == "release_event" || tool.Name == "replay_event" || tool.Name == "quarantine_event" {
			continue // exercised below and in the tools package; they depend on the event's status
		}
		res := callTool(t, ctx, c, tool.Name, args)
		// Broadcast tools: Verity is not configured here. get_contact_sync_status:
		// no worker ran, so nothing is known of the phone yet — a missing row
		// is an isError result by design.
		wantError := strings.Contains(tool.Name, "broadcast") || tool.Name == "get_contact_sync_status"
		if res.IsError != wantError {
			t.Errorf("%s(%v): isError=%v, want %v: %+v", tool.Name, args, res.IsError, wantError, res.Content)
		}
		if !res.IsError && tool.OutputSchema.Type != "" && res.StructuredContent == nil {
			t.Errorf("%s declares an output schema but returned no structured content", tool.Name)
		}
	}
	res := callTool(t, ctx, c, "release_event", map[string]any{"id": id})
	if res.IsError {
		t.Fatalf("release_event of the quarantined event: %+v", res.Content)
	}

	resources, err := c.ListResources(ctx, mcp.ListResourcesRequest{})
	if err != nil || len(resources.Resources) == 0 {
		t.Fatalf("resources: %v %v", resources, err)
	}
	for _, r := range resources.Resources {
		req := mcp.ReadResourceRequest{}
		req.Params.URI = r.URI
		if _, err := c.ReadResource(ctx, req); err != nil {
			t.Errorf("read %s: %v", r.URI, err)
		}
	}
	req := mcp.ReadResourceRequest{}
	req.Params.URI = "events://" + id
	if got, err := c.ReadResource(ctx, req); err != nil || len(got.Contents) == 0 {
		t.Fatalf("read events://%s: %v", id, err)
	}
	prompts, err := c.ListPrompts(ctx, mcp.ListPromptsRequest{})
	if err != nil || len(prompts.Prompts) < 6 {
		t.Fatalf("prompts: %v %v", prompts, err)
	}
	for _, p := range prompts.Prompts {
		req := mcp.GetPromptRequest{}
		req.Params.Name = p.Name
		req.Params.Arguments = map[string]string{}
		for _, a := range p.Arguments {
			if a.Required {
				req.Params.Arguments[a.Name] = id
			}
		}
		if got, err := c.GetPrompt(ctx, req); err != nil || len(got.Messages) == 0 {
			t.Errorf("prompt %s: %v", p.Name, err)
		}
	}
}

// Stdout of `df-middleware mcp` carries JSON-RPC and nothing else, even with
// debug logging and the sidecar running; stderr carries contract log lines.
func TestMCPStdoutIsOnlyJSONRPC(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	dbURL := testdb.NewURL(t)
	addr := freePort(t)
	cmd := exec.Command(bin, "mcp")
	cmd.Env = mcpEnv(t, dbURL, addr)
	stdin, _ := cmd.StdinPipe()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	send := func(s string) { _, _ = io.WriteString(stdin, s+"\n") }
	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_queue_status","arguments":{}}}`)
	send(`{"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri":"errors://recent"}}`)
	waitReady(t, addr)
	sendTexting(t, addr, "stdout-1")
	send(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"search_events","arguments":{}}}`)
	time.Sleep(1500 * time.Millisecond)
	stdin.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("mcp did not exit after stdin closed")
	}
	answered := map[float64]bool{}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 4<<20), 4<<20)
	for sc.Scan() {
		var msg map[string]any
		if err := json.Unmarshal(sc.Bytes(), &msg); err != nil || msg["jsonrpc"] != "2.0" {
			t.Fatalf("stdout line is not JSON-RPC: %.200q", sc.Text())
		}
		if id, ok := msg["id"].(float64); ok {
			answered[id] = true
		}
	}
	for id := 1.0; id <= 5; id++ {
		if !answered[id] {
			t.Errorf("request %v got no answer on stdout", id)
		}
	}
	sc = bufio.NewScanner(&stderr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	lines := 0
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("stderr line is not JSON: %.200q", sc.Text())
		}
		for _, k := range []string{"timestamp", "level", "service", "component", "message", "metadata"} {
			if _, ok := line[k]; !ok {
				t.Fatalf("stderr line lacks %s: %s", k, sc.Text())
			}
		}
		lines++
	}
	if lines == 0 {
		t.Fatal("no log lines on stderr")
	}
	// Debug logging of a full session: no configured secret and no unmasked
	// phone number of the webhook that went through.
	for _, leak := range []string{mcpWebhookSecret, "3105550100"} {
		if strings.Contains(stderr.String(), leak) {
			t.Errorf("stderr contains %q", leak)
		}
	}
}

func TestMCPReadOnlyRegistersNoMutatingTool(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	dbURL := testdb.NewURL(t)
	for _, variant := range [][]string{{"mcp", "--no-sidecar", "--read-only"}, {"mcp", "--no-sidecar"}} {
		env := mcpEnv(t, dbURL, freePort(t))
		if variant[len(variant)-1] != "--read-only" {
			env = append(env, "DF_MCP_READ_ONLY=true")
		}
		c, err := client.NewStdioMCPClient(bin, env, variant...)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		initialize(t, ctx, c)
		names := toolNames(t, ctx, c)
		for _, m := range mutatingTools {
			if slices.Contains(names, m) {
				t.Errorf("%v: mutating tool %s registered in read-only mode", variant, m)
			}
		}
		if !slices.Contains(names, "search_events") {
			t.Errorf("%v: read-only mode lost search_events", variant)
		}
		cancel()
		c.Close()
	}
}

// `serve` exposes MCP over streamable HTTP at /mcp behind DF_MCP_HTTP_TOKEN.
func TestMCPOverHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	dbURL := testdb.NewURL(t)
	addr := freePort(t)
	const token = "mcp-http-token-for-tests-0006"
	startServe(t, bin, mcpEnv(t, dbURL, addr, "DF_MCP_HTTP_TOKEN="+token))
	waitReady(t, addr)
	url := "http://" + addr + "/mcp"

	for name, hdr := range map[string]string{"no token": "", "wrong token": "Bearer nope", "basic": "Basic " + token} {
		req, _ := http.NewRequest("POST", url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if hdr != "" {
			req.Header.Set("Authorization", hdr)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, resp.StatusCode)
		}
	}

	c, err := client.NewStreamableHttpClient(url, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	initialize(t, ctx, c)
	names := toolNames(t, ctx, c)
	if !slices.Contains(names, "replay_event") {
		t.Fatalf("tools over HTTP: %v", names)
	}
	id := sendTexting(t, addr, "mcp-http-1")
	res := callTool(t, ctx, c, "quarantine_event", map[string]any{"id": id, "reason": "from http"})
	if res.IsError {
		t.Fatalf("quarantine over HTTP: %+v", res.Content)
	}
	if got := auditInterfaces(t, dbURL, "event:"+id); !slices.Equal(got, []string{"mcp-http:token"}) {
		t.Fatalf("audit rows %v, want one from mcp-http:token", got)
	}
	exerciseEverything(t, ctx, c, id)
	// DNS-rebinding protection: a loopback listener refuses a foreign Host.
	req, _ := http.NewRequest("POST", url, strings.NewReader(`{}`))
	req.Host = "evil.example"
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign Host header: %d, want 403", resp.StatusCode)
	}
}

func TestServeRefusesOpenMCPOffLoopback(t *testing.T) {
	env := map[string]string{"DATABASE_URL": testdb.NewURL(t), "DF_LISTEN_ADDR": "0.0.0.0:0"}
	var out, errOut bytes.Buffer
	code := run([]string{"serve"}, func(k string) string { return env[k] }, nil, &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "DF_MCP_HTTP_TOKEN") {
		t.Fatalf("exit %d, stderr %s", code, errOut.String())
	}
}

// The official TypeScript SDK client interoperates over both transports.
func TestMCPInteropTypeScriptSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed: `make test` installs the interop client when Node is present")
	}
	script, _ := filepath.Abs("../../interop/client.mjs")
	if _, err := os.Stat(filepath.Join(filepath.Dir(script), "node_modules", "@modelcontextprotocol", "sdk")); err != nil {
		if os.Getenv("CI") != "" || os.Getenv("DF_REQUIRE_INTEROP") != "" {
			t.Fatal("interop/node_modules missing: run `make interop-deps` (make test does)")
		}
		t.Skip("interop/node_modules missing: run `make interop-deps`")
	}
	bin := buildBinary(t)
	dbURL := testdb.NewURL(t)
	check := func(out []byte) {
		t.Helper()
		var got struct {
			Tools           []string
			CheckHealth     struct{ IsError, Structured bool }
			GetMissingEvent struct{ IsError bool }
			Resources       []string
			Templates       []string
			Prompts         []string
			PromptMessages  int
		}
		if err := json.Unmarshal(bytes.TrimSpace(out), &got); err != nil {
			t.Fatalf("interop client output %q: %v", out, err)
		}
		for _, want := range contractTools {
			if !slices.Contains(got.Tools, want) {
				t.Errorf("TS client does not see tool %s", want)
			}
		}
		if got.CheckHealth.IsError || !got.CheckHealth.Structured || !got.GetMissingEvent.IsError ||
			!slices.Contains(got.Resources, "errors://recent") || len(got.Templates) == 0 || len(got.Prompts) < 6 || got.PromptMessages == 0 {
			t.Fatalf("TS client saw %+v", got)
		}
	}
	addr := freePort(t)
	cmd := exec.Command(node, script, "stdio", bin, "mcp", "--no-sidecar")
	cmd.Env = mcpEnv(t, dbURL, addr)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("TS client over stdio: %v", err)
	}
	check(out)

	const token = "interop-http-token-0007"
	startServe(t, bin, mcpEnv(t, dbURL, addr, "DF_MCP_HTTP_TOKEN="+token))
	waitReady(t, addr)
	out, err = exec.Command(node, script, "http", "http://"+addr+"/mcp", token).Output()
	if err != nil {
		t.Fatalf("TS client over HTTP: %v", err)
	}
	check(out)
}
