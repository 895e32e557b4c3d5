// The audit trail: events with the Python trail's fields, hash-chained so that
// `callgate audit verify` accepts what every transport writes, and a chain Python and Node
// writers can continue from each other.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { test } from "node:test";
import { Callgate, rawJson } from "../lib/index.mjs";
import { Audit, canonical, consoleTransport, functionTransport, hex, httpTransport, link, GENESIS, sha256 } from "../lib/audit.mjs";
import { fileTransport } from "../lib/audit-file.mjs";
import { EXAMPLES, callgate, compile, python, tempDir } from "./support.mjs";

const CRM = join(EXAMPLES, "crm_policy.json");
const scenarios = JSON.parse(readFileSync(join(EXAMPLES, "crm_scenarios.json"), "utf8")).cases;

function verify(file) {
  const r = callgate("audit", "verify", file, "--json");
  return { status: r.status, report: JSON.parse(r.stdout || "{}"), stderr: r.stderr };
}

function records(file) {
  return readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l).record);
}

async function playScenarios(cg) {
  for (const c of scenarios) {
    cg.evaluate(c.tool, c.args, { role: c.role, agentAttributes: c.agent_attributes, resourceAttributes: c.resource_attributes, principal: `user:${c.agent_attributes.user_id ?? "anon"}` });
  }
}

test("SHA-256 of the package is node:crypto's, for every length around the block boundaries", () => {
  const bytes = new Uint8Array(300).map((_, i) => (i * 131 + 7) & 255);
  for (let n = 0; n <= 300; n++) {
    const data = bytes.subarray(0, n);
    assert.equal(hex(sha256(data)), createHash("sha256").update(data).digest("hex"), `length ${n}`);
  }
  assert.equal(hex(sha256("héllo ✓ 𝄞")), createHash("sha256").update("héllo ✓ 𝄞", "utf8").digest("hex"));
});

test("canonical JSON is the Python trail's bytes: sorted keys by code point, no whitespace, UTF-8 as is", () => {
  const value = { b: 1, a: [true, null, "x\u0001\n\"\\"], "é": { z: -2.5, y: 1e21 }, "𝄞": 0, "\uffff": 1, nested: { k: [{ b: 2, a: 1 }] } };
  const got = canonical(value);
  const want = python("import sys, json; from callgate.audit._canonical import canonical; sys.stdout.write(canonical(json.loads(sys.stdin.read())).decode())", [], JSON.stringify(value));
  assert.equal(got, want);
});

test("a JSONL file written by the package verifies with `callgate audit verify`, markers and all", async (t) => {
  const dir = tempDir(t);
  const file = join(dir, "audit.jsonl");
  const audit = new Audit(fileTransport(file));
  const cg = await Callgate.load(compile(CRM, dir), { audit });
  await playScenarios(cg);
  assert.throws(() => cg.evaluate("process_refund", rawJson('{"amount": 1, "amount": 2}'), { role: "agent" }));
  audit.recordApproval({ tool: "process_refund", args: { amount: 800 }, role: "agent", principal: "user:alice", decision: "Deny",
                         reason: "x; approval required (1 approval): the user declined", approval: { method: "elicitation", outcome: "declined", required: 1 } });
  await audit.close();
  const { status, report } = verify(file);
  assert.equal(status, 0, JSON.stringify(report));
  assert.equal(report.ok, true);
  assert.deepEqual(report.unclean_stops, []);
  assert.equal(report.records, scenarios.length + 4); // start marker, decisions, the refused request, the approval, stop marker
  const kinds = records(file).map((r) => r.kind);
  assert.deepEqual([kinds[0], kinds.at(-1)], ["writer", "writer"]);
  assert.equal(kinds.filter((k) => k === "decision").length, scenarios.length);
  assert.deepEqual(kinds.filter((k) => k === "error" || k === "approval"), ["error", "approval"]);
  const error = records(file).find((r) => r.kind === "error");
  assert.deepEqual([error.decision, error.error_code, error.tool, error.role], ["Deny", "duplicate_key", "process_refund", "agent"]);
});

test("a decision's event has the Python trail's fields and values, policy digest included", async (t) => {
  const dir = tempDir(t);
  const file = join(dir, "node.jsonl");
  const audit = new Audit(fileTransport(file));
  const cg = await Callgate.load(compile(CRM, dir), { audit });
  const call = { tool: "process_refund", args: { order_id: "ORD-8821", amount: 800 }, role: "agent", agent: { user_id: "agt-099" } };
  cg.evaluate(call.tool, call.args, { role: call.role, agentAttributes: call.agent, principal: "user:alice", traceId: "req-42",
                                      context: { risk: 0.5 }, extras: { risk_score: 0.7, session: "s-9" } });
  await audit.close();
  const pyFile = join(dir, "python.jsonl");
  python(`
import callgate
from callgate import audit
e = callgate.Engine.from_file(${JSON.stringify(CRM)}, audit=audit.JsonlSink(${JSON.stringify(pyFile)}))
e.evaluate("process_refund", {"order_id": "ORD-8821", "amount": 800}, role="agent", agent_attributes={"user_id": "agt-099"},
           principal="user:alice", trace_id="req-42", context={"risk": 0.5}, extras={"risk_score": 0.7, "session": "s-9"})
e.close()`);
  const node = records(file).find((r) => r.kind === "decision");
  const py = records(pyFile).find((r) => r.kind === "decision");
  assert.deepEqual(Object.keys(node).sort(), Object.keys(py).sort());
  for (const key of ["id", "timestamp"]) delete node[key], delete py[key];
  assert.deepEqual(node, py);
  const markerKeys = (f) => Object.keys(records(f)[0]).sort();
  assert.deepEqual(markerKeys(file), markerKeys(pyFile));
});

test("one chain across writers: Node continues a Python log, Python continues it, and it verifies", async (t) => {
  const dir = tempDir(t);
  const file = join(dir, "audit.jsonl");
  const pyWrite = (n) => python(`
import callgate
from callgate import audit
e = callgate.Engine.from_file(${JSON.stringify(CRM)}, audit=audit.JsonlSink(${JSON.stringify(file)}))
for i in range(${n}):
    e.evaluate("view_customer", {"customer_id": f"C-{i}"}, role="agent")
e.close()`);
  pyWrite(2);
  for (let round = 0; round < 2; round++) {
    const audit = new Audit(fileTransport(file));
    const cg = await Callgate.load(compile(CRM, dir), { audit });
    await playScenarios(cg);
    await audit.close();
  }
  pyWrite(1);
  const { status, report } = verify(file);
  assert.equal(status, 0, JSON.stringify(report));
  const all = records(file);
  assert.deepEqual(all.map((r) => r.seq), all.map((_, i) => i));
  assert.equal(new Set(all.map((r) => r.chain)).size, 1);
  assert.equal(report.records, 2 + 2 + 2 * (scenarios.length + 2) + 1 + 2);
});

test("a torn line left by a crash is vouched for by the next Node writer; an edited record is found", async (t) => {
  const dir = tempDir(t);
  const file = join(dir, "audit.jsonl");
  const write = async () => {
    const audit = new Audit(fileTransport(file));
    const cg = await Callgate.load(compile(CRM, dir), { audit });
    cg.evaluate("view_customer", { customer_id: "C-1042" }, { role: "agent" });
    await audit.close();
  };
  await write();
  appendFileSync(file, '{"hash":"00ab","rec');
  await write();
  const { status, report } = verify(file);
  assert.equal(status, 0, JSON.stringify(report));
  assert.equal(report.torn.length, 1);
  assert.match(report.torn[0], /accounted for by the writer that started at/);
  const text = readFileSync(file, "utf8").replace('"view_customer"', '"delete_customer"');
  writeFileSync(file, text);
  const edited = verify(file);
  assert.equal(edited.status, 1);
  assert.equal(edited.report.problem.kind, "modified");
});

test("the HTTP transport POSTs envelope lines with Idempotency-Key; what it delivered verifies", async (t) => {
  const dir = tempDir(t);
  const bodies = [];
  const keys = [];
  let failFirst = true;
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      if (failFirst) { // a receiver that fails once: the batch is sent again
        failFirst = false;
        res.writeHead(503).end();
        return;
      }
      assert.equal(req.headers["content-type"], "application/x-ndjson");
      bodies.push(body);
      keys.push(req.headers["idempotency-key"]);
      res.writeHead(204).end();
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  const url = `http://127.0.0.1:${server.address().port}/audit`;
  const audit = new Audit(httpTransport(url, { backoffMs: 1 }), { chain: "http-test" });
  const cg = await Callgate.load(compile(CRM, dir), { audit });
  await playScenarios(cg);
  await audit.close();
  const file = join(dir, "received.jsonl");
  writeFileSync(file, bodies.join(""));
  const { status, report } = verify(file);
  assert.equal(status, 0, JSON.stringify(report));
  assert.equal(report.records, scenarios.length + 2);
  bodies.forEach((b, i) => assert.equal(keys[i], JSON.parse(b.trim().split("\n").at(-1)).hash));
});

test("the console and function transports write the same chain: lines that verify, events whose hashes link", async (t) => {
  const dir = tempDir(t);
  let out = "";
  const audit = new Audit(consoleTransport({ write: (text) => (out += text) }), { chain: "console" });
  const cg = await Callgate.load(compile(CRM, dir), { audit });
  await playScenarios(cg);
  await audit.close();
  writeFileSync(join(dir, "console.jsonl"), out);
  const { status, report } = verify(join(dir, "console.jsonl"));
  assert.equal(status, 0, JSON.stringify(report));
  assert.equal(report.records, scenarios.length);
  const events = [];
  const fn = new Audit(functionTransport((e) => events.push(e)), { chain: "fn" });
  const cg2 = await Callgate.load(compile(CRM, dir), { audit: fn });
  await playScenarios(cg2);
  await fn.close();
  let prev = GENESIS;
  events.forEach((e, i) => {
    const { hash, ...record } = e;
    assert.equal(record.seq, i);
    prev = link(prev, canonical(record));
    assert.equal(hash, hex(prev));
  });
  assert.deepEqual(events.map((e) => e.decision), scenarios.map((c) => c.expected));
});

test("masks replace values (and scrub them from the reason) before hashing; hashArgs keeps only the arguments' SHA-256", async (t) => {
  const dir = tempDir(t);
  const file = join(dir, "audit.jsonl");
  const audit = new Audit(fileTransport(file), { masks: ["/args/amount", "/agent_attributes/user_id"] });
  const cg = await Callgate.load(compile(CRM, dir), { audit });
  cg.evaluate("process_refund", { order_id: "ORD-8821", amount: 800 }, { role: "agent", agentAttributes: { user_id: "agt-099" } });
  await audit.close();
  const event = records(file).find((r) => r.kind === "decision");
  assert.deepEqual(event.args, { order_id: "ORD-8821", amount: "***" });
  assert.equal(event.agent_attributes.user_id, "***");
  assert.equal(event.reason, "process_refund denied for role 'agent': Arguments.amount = *** is not <= 500 (rule 4)");
  assert.deepEqual(event.masked, ["/args/amount", "/agent_attributes/user_id"]);
  assert.equal(verify(file).status, 0);
  const hashed = new Audit(fileTransport(join(dir, "hashed.jsonl")), { hashArgs: true });
  const cg2 = await Callgate.load(compile(CRM, dir), { audit: hashed });
  cg2.evaluate("view_customer", { customer_id: "C-1042" }, { role: "agent" });
  await hashed.close();
  const h = records(join(dir, "hashed.jsonl")).find((r) => r.kind === "decision");
  assert.equal(h.args, undefined);
  assert.equal(h.args_sha256, createHash("sha256").update('{"customer_id":"C-1042"}').digest("hex"));
});

test("onFailure deny: once the transport fails, decisions are denied saying why; a full queue becomes a gap record", async (t) => {
  const dir = tempDir(t);
  let failing = true;
  const lines = [];
  const flaky = { name: "flaky", defaultChain: "flaky", writerMarkers: false, async open() { return null; },
                  async write(text) { if (failing) throw new Error("disk full"); lines.push(text); }, async close() {} };
  const audit = new Audit(flaky, { onFailure: "deny", maxQueue: 3, flushIntervalMs: 0 });
  const cg = await Callgate.load(compile(CRM, dir), { audit });
  cg.evaluate("view_customer", {}, { role: "agent" });
  await assert.rejects(audit.flush(200));
  const d = cg.evaluate("view_customer", {}, { role: "agent" });
  assert.equal(d.decision, "Deny");
  assert.equal(d.reason, "the audit trail cannot record decisions (Error: disk full); denied (on_failure=deny)");
  for (let i = 0; i < 5; i++) cg.evaluate("view_customer", {}, { role: "agent" });
  failing = false;
  await audit.close();
  const written = lines.join("").split("\n").filter(Boolean).map((l) => JSON.parse(l).record);
  const gap = written.find((r) => r.kind === "gap");
  // the first decision (its batch failed and was kept), then three queued: the other three are a gap
  assert.equal(gap?.lost, 3);
  assert.equal(written.filter((r) => r.kind === "decision").length, 4);
  assert.equal(written.length, 5);
});
