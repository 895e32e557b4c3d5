// guard() on a server of the official TypeScript MCP SDK, called by the SDK's own client over
// Streamable HTTP: denied calls never reach a handler (the server's handler log), listings show
// only what a role could ever call, and every answer is the Python proxy's gate's.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { DENIED_PREFIX } from "../lib/mcp.mjs";
import { EXAMPLES, JS, compile, pythonScript, run, tempDir } from "./support.mjs";

const SERVER = join(JS, ".build", "test", "fixtures", "guarded_server.js");
const TSC = join(JS, "node_modules", "typescript", "bin", "tsc");

/** The fixture compiled by tsc, which also type-checks it against the package's declarations
 * (`npm test` runs tsc first; a test file run alone compiles what is missing). */
function buildFixture() {
  if (!existsSync(SERVER)) run(process.execPath, [TSC, "-p", join(JS, "test", "tsconfig.json")], { cwd: JS });
  assert.ok(existsSync(SERVER));
}

async function startServer(t, blob, log, resolver) {
  const child = spawn(process.execPath, [SERVER, blob, log, ...(resolver ? [resolver] : [])], { stdio: ["ignore", "pipe", "pipe"] });
  t.after(() => child.kill());
  let errors = "";
  child.stderr.on("data", (b) => { errors += b; });
  const port = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`the guarded server did not start: ${errors}`)), 15000);
    child.stdout.on("data", (b) => {
      out += b;
      const m = /listening (\d+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`the guarded server exited (${code}): ${errors}`)); });
  });
  return `http://127.0.0.1:${port}/mcp`;
}

/** An SDK client whose bearer token carries the identity (the fixture's stand-in for an auth middleware). */
async function clientAs(url, identity) {
  const token = Buffer.from(JSON.stringify(identity)).toString("base64url");
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
  const client = new Client({ name: "callgate-js-test", version: "0" });
  await client.connect(transport);
  return client;
}

const textOf = (result) => result.content?.[0]?.text ?? "";

test("the SDK client through guard(): out-of-policy calls are refused before their handlers, listings filtered, answers as the Python gate's", async (t) => {
  buildFixture();
  const dir = tempDir(t);
  const policyFile = join(EXAMPLES, "crm_policy.json");
  const policy = JSON.parse(readFileSync(policyFile, "utf8"));
  const blob = join(dir, "crm.blob");
  writeFileSync(blob, compile(policyFile, dir));
  const log = join(dir, "handlers.jsonl");
  writeFileSync(log, "");
  const url = await startServer(t, blob, log, "crm");
  const scenarios = JSON.parse(readFileSync(join(EXAMPLES, "crm_scenarios.json"), "utf8")).cases;
  const tools = [...new Set([...policy.tools.map((x) => (typeof x === "string" ? x : x.name)), ...scenarios.map((c) => c.tool)])].sort();
  // calls the model could send that no rule allows: an unknown tool, non-object arguments
  const extra = [
    { name: "an unknown tool", tool: "drop_database", args: {}, role: "admin", agent_attributes: { user_id: "adm-001" } },
  ];
  const calls = [...scenarios, ...extra];

  const answers = [];
  const listings = {};
  for (const c of calls) {
    const client = await clientAs(url, { role: c.role, agentAttributes: c.agent_attributes ?? {} });
    try {
      listings[c.role] ??= (await client.listTools()).tools.map((x) => x.name).sort();
      const result = await client.callTool({ name: c.tool, arguments: c.args ?? {} });
      answers.push({ c, result });
    } finally {
      await client.close();
    }
  }

  const python = JSON.parse(pythonScript(join(JS, "test", "python_engine.py"), ["gate"], JSON.stringify({
    policy, resolver: "callgate.demo.crm:resolve", tools,
    calls: calls.map((c) => ({ params: { name: c.tool, arguments: c.args ?? {} }, role: c.role, agent_attributes: c.agent_attributes ?? {} })),
  })));
  const ran = readFileSync(log, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const expectRan = [];
  let denied = 0;
  answers.forEach(({ c, result }, i) => {
    const want = python[i].reason; // null: the Python gate lets it run
    if (want === null) {
      assert.equal(result.isError ?? false, false, `${c.name}: runs`);
      assert.equal(textOf(result), `ran ${c.tool}`, `${c.name}: the handler answered`);
      expectRan.push({ tool: c.tool, args: c.args ?? {} });
    } else {
      denied += 1;
      assert.equal(result.isError, true, `${c.name}: refused`);
      assert.equal(textOf(result), DENIED_PREFIX + want, `${c.name}: the Python gate's reason`);
    }
    if (c.expected) assert.equal(want === null ? "Allow" : "Deny", c.expected === "Elevate" ? "Deny" : c.expected, `${c.name}: the scenario's decision`);
    assert.deepEqual(listings[c.role], python[i].visible, `tools/list as ${c.role}: the Python gate's listing`);
  });
  // the handler log is exactly the allowed calls, in order: no denied call reached a handler
  assert.deepEqual(ran, expectRan);
  assert.ok(denied >= 5 && expectRan.length >= 5, `${denied} denied, ${expectRan.length} ran`);
  // and a role sees fewer tools than the policy names (the listing is filtered, not passed through)
  assert.ok(listings.agent.length < tools.length, `agent sees ${listings.agent}`);
});

test("an Elevate through guard(): the SDK client's user approves (the handler runs) or declines (it does not), and a client that cannot ask is refused", async (t) => {
  const { ElicitRequestSchema } = await import("@modelcontextprotocol/sdk/types.js");
  buildFixture();
  const dir = tempDir(t);
  const policyFile = join(EXAMPLES, "ops_policy.json");
  const blob = join(dir, "ops.blob");
  writeFileSync(blob, compile(policyFile, dir));
  const log = join(dir, "handlers.jsonl");
  writeFileSync(log, "");
  const url = await startServer(t, blob, log);
  const who = { role: "agent", agentAttributes: {} };
  const call = { name: "deploy", arguments: { services: ["api"] } };
  // the engine's own reason for this Elevate, from Python
  const python_ = JSON.parse(pythonScript(join(JS, "test", "python_engine.py"), ["gate"], JSON.stringify({
    policy: JSON.parse(readFileSync(policyFile, "utf8")), tools: [],
    calls: [{ params: call, role: "agent", agent_attributes: {} }],
  })));
  const [engineReason] = python_[0].reason.split("; approval required");

  const asked = [];
  async function withUser(answer) {
    const token = Buffer.from(JSON.stringify(who)).toString("base64url");
    const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
    const client = new Client({ name: "callgate-js-test", version: "0" }, { capabilities: answer ? { elicitation: {} } : {} });
    if (answer) {
      client.setRequestHandler(ElicitRequestSchema, async (req) => {
        asked.push(req.params.message);
        return answer;
      });
    }
    await client.connect(transport);
    try {
      return await client.callTool(call);
    } finally {
      await client.close();
    }
  }

  const approved = await withUser({ action: "accept", content: { approve: true } });
  assert.equal(approved.isError ?? false, false);
  assert.equal(textOf(approved), "ran deploy");
  assert.equal(asked.length, 1);
  assert.match(asked[0], /^Approve this tool call\?\n\nTool: deploy\nArguments: \{"services":\["api"\]\}\nWhy approval is needed: /);
  assert.ok(asked[0].includes(engineReason), "the question quotes the engine's reason");

  const declined = await withUser({ action: "decline" });
  assert.equal(declined.isError, true);
  assert.equal(textOf(declined), `${DENIED_PREFIX}${engineReason}; approval required (1 approval): the user declined; `
    + 'attach 1 approval signed for this call in params._meta["callgate/approvals"]');

  const cannot = await withUser(null);
  assert.equal(cannot.isError, true);
  assert.equal(textOf(cannot), `${DENIED_PREFIX}${engineReason}; approval required (1 approval): the client cannot ask the user `
    + '(it did not declare the elicitation capability); attach 1 approval signed for this call in params._meta["callgate/approvals"]');

  // only the approved call reached the handler
  const ran = readFileSync(log, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  assert.deepEqual(ran, [{ tool: "deploy", args: { services: ["api"] } }]);
});

test("a tools/call sent as a notification (no id) never reaches a handler, even for an allowed tool", async (t) => {
  buildFixture();
  const dir = tempDir(t);
  const blob = join(dir, "crm.blob");
  writeFileSync(blob, compile(join(EXAMPLES, "crm_policy.json"), dir));
  const log = join(dir, "handlers.jsonl");
  writeFileSync(log, "");
  const url = await startServer(t, blob, log);
  const token = Buffer.from(JSON.stringify({ role: "admin", agentAttributes: { user_id: "adm-001" } })).toString("base64url");
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
  const client = new Client({ name: "callgate-js-test", version: "0" });
  await client.connect(transport);
  try {
    for (const name of ["view_customer", "delete_customer"]) {
      await transport.send({ jsonrpc: "2.0", method: "tools/call", params: { name, arguments: { customer_id: "C-1042" } } });
    }
    const result = await client.callTool({ name: "view_customer", arguments: { customer_id: "C-2038" } });
    assert.equal(textOf(result), "ran view_customer");
  } finally {
    await client.close();
  }
  const ran = readFileSync(log, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  assert.deepEqual(ran, [{ tool: "view_customer", args: { customer_id: "C-2038" } }]);
});
