// Sequential clients of the official TypeScript MCP SDK against a Streamable HTTP endpoint,
// each one closed the way the SDK closes (no DELETE of its session):
//   node ts_clients.mjs URL TOKEN COUNT TOOL ARGS_JSON
// prints one JSON line per client: {"n", "tools": [...], "text": "..."} or {"n", "error"}
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token, count, tool, argsJson] = process.argv.slice(2);
for (let n = 0; n < Number(count); n++) {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name: "callgate-test", version: "0" });
  try {
    await client.connect(transport);
    const tools = (await client.listTools()).tools.map((t) => t.name);
    const result = await client.callTool({ name: tool, arguments: JSON.parse(argsJson) });
    console.log(JSON.stringify({ n, tools, text: result.content?.[0]?.text ?? "" }));
  } catch (e) {
    console.log(JSON.stringify({ n, error: String(e) }));
  } finally {
    await client.close();
  }
}
