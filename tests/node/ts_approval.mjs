// One client of the official TypeScript MCP SDK that approves an Elevate late: it declares
// form elicitation, answers the proxy's approval question after DELAY_MS, and calls TOOL
// with a request timeout of TIMEOUT_MS, with or without progress (resetTimeoutOnProgress):
//   node ts_approval.mjs URL TOKEN TOOL ARGS_JSON DELAY_MS TIMEOUT_MS progress|plain
// prints one JSON line: {"text", "isError", "progress", "asked"} or {"error", "progress", "asked"}
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const [url, token, tool, argsJson, delayMs, timeoutMs, how] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "callgate-test", version: "0" }, { capabilities: { elicitation: { form: {} } } });
let progress = 0;
let asked = 0;
client.setRequestHandler(ElicitRequestSchema, async () => {
  asked += 1;
  await new Promise((resolve) => setTimeout(resolve, Number(delayMs)));
  return { action: "accept", content: { approve: true } };
});
const options = { timeout: Number(timeoutMs) };
if (how === "progress") {
  options.onprogress = () => { progress += 1; };
  options.resetTimeoutOnProgress = true;
}
try {
  await client.connect(transport);
  const result = await client.callTool({ name: tool, arguments: JSON.parse(argsJson) }, undefined, options);
  console.log(JSON.stringify({ text: result.content?.[0]?.text ?? "", isError: !!result.isError, progress, asked }));
} catch (e) {
  console.log(JSON.stringify({ error: String(e), progress, asked }));
} finally {
  await client.close();
}
