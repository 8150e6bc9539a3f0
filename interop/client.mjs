// Interoperability check: the official TypeScript MCP SDK client talks to
// df-middleware over stdio (spawning the binary) or streamable HTTP.
//
//   node client.mjs stdio BINARY [args…]     (environment passed through)
//   node client.mjs http URL TOKEN
//
// Prints one JSON object: what the server offered and what the calls
// returned. Exits non-zero on any protocol failure.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [mode, target, ...rest] = process.argv.slice(2);
let transport;
if (mode === "stdio") {
  transport = new StdioClientTransport({ command: target, args: rest, env: process.env, stderr: "ignore" });
} else if (mode === "http") {
  const headers = rest[0] ? { Authorization: `Bearer ${rest[0]}` } : {};
  transport = new StreamableHTTPClientTransport(new URL(target), { requestInit: { headers } });
} else {
  console.error("usage: client.mjs stdio BINARY [args] | http URL TOKEN");
  process.exit(2);
}

const client = new Client({ name: "interop-ts", version: "1.0.0" });
await client.connect(transport);
const out = { server: client.getServerVersion(), instructions: Boolean(client.getInstructions()) };
const tools = await client.listTools();
out.tools = tools.tools.map((t) => t.name).sort();
out.toolsWithOutputSchema = tools.tools.filter((t) => t.outputSchema).length;
const health = await client.callTool({ name: "check_health", arguments: {} });
out.checkHealth = { isError: Boolean(health.isError), structured: Boolean(health.structuredContent) };
const bad = await client.callTool({ name: "get_event", arguments: { id: "00000000-0000-0000-0000-000000000000" } });
out.getMissingEvent = { isError: Boolean(bad.isError) };
out.resources = (await client.listResources()).resources.map((r) => r.uri).sort();
out.templates = (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate).sort();
const recent = await client.readResource({ uri: "errors://recent" });
out.errorsRecent = recent.contents.length;
out.prompts = (await client.listPrompts()).prompts.map((p) => p.name).sort();
const prompt = await client.getPrompt({ name: "queue_backup", arguments: {} });
out.promptMessages = prompt.messages.length;
await client.close();
console.log(JSON.stringify(out));
