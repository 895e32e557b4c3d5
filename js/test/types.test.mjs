// The declarations are what the code does: a TypeScript program using the engine, errors,
// rawJson, the audit trail (file and function transports) and visibility type-checks against
// types/ (tsc, strict) and prints what the engine and `callgate audit verify` say.
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { JS, EXAMPLES, callgate, compile, python, run, tempDir } from "./support.mjs";

const TSC = join(JS, "node_modules", "typescript", "bin", "tsc");
const PROGRAM = join(JS, ".build", "test", "fixtures", "api_usage.js");

test("a strict TypeScript program over the declarations compiles and does what its types say", (t) => {
  // `npm test` runs tsc first (a failed type check fails the run); alone, this compiles it
  if (!existsSync(PROGRAM)) run(process.execPath, [TSC, "-p", join(JS, "test", "tsconfig.json")], { cwd: JS });
  assert.ok(existsSync(PROGRAM));
  const dir = tempDir(t);
  const blob = join(dir, "crm.blob");
  writeFileSync(blob, compile(join(EXAMPLES, "crm_policy.json"), dir));
  const log = join(dir, "audit.jsonl");
  const out = run(process.execPath, [PROGRAM, blob, log]).split("\n");
  const [reason800, reason200] = python(`
import callgate, orjson
from callgate import examples
e = callgate.Engine.from_dict(examples.policy("crm"))
print(e.evaluate("process_refund", {"order_id": "ORD-8821", "amount": 800, "card": "4111"}, role="agent", agent_attributes={"user_id": "agt-099"}).reason)
print(e.evaluate_json("process_refund", b'{"amount": 200.0}', b'{"role": "agent", "agent_attrs": {}, "resource_attrs": {}}').reason)
`).trim().split("\n");
  assert.equal(out[0], "Deny rule=3 approvals=0 allowed=false");
  assert.equal(out[1], reason800);
  assert.equal(out[2], `Allow: ${reason200}`);
  assert.match(out[3], /^RequestError duplicate_key at \d+ of request$/);
  assert.match(out[4], /^BlobError blob_\w+; still perso-1\.0\.0$/);
  assert.equal(out[5], "visible to agent: process_refund,update_customer,view_customer");
  assert.equal(out[6], "events: decision:0"); // the function transport: no writer markers
  const records = readFileSync(log, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l).record);
  assert.deepEqual(records.map((r) => r.kind), ["writer", "decision", "error", "writer"]);
  assert.equal(records[1].args.card, "***"); // masked before it was hashed
  assert.equal(records[1].principal, "user:alice");
  assert.equal(records[2].error_code, "duplicate_key");
  const verified = callgate("audit", "verify", log);
  assert.equal(verified.status, 0, verified.stdout + verified.stderr);
});
