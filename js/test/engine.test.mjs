// The engine API: loading a compiled blob or a build-wasm module, decisions, typed errors,
// reload, and what the blob says beyond decisions (visibility) against the Python engine.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { BlobError, Callgate, PolicyError, RequestError, WasmError, rawJson, requestText } from "../lib/index.mjs";
import { CORPUS, EXAMPLES, JS, buildWasm, compile, pythonScript, tempDir } from "./support.mjs";

const CRM = join(EXAMPLES, "crm_policy.json");
const scenarios = JSON.parse(readFileSync(join(EXAMPLES, "crm_scenarios.json"), "utf8")).cases;

test("a compiled blob (bytes or a path) decides the CRM scenarios as the original engine did, with the Python reasons", async (t) => {
  const dir = tempDir(t);
  const blob = compile(CRM, dir);
  writeFileSync(join(dir, "crm.blob"), blob);
  for (const cg of [await Callgate.load(blob), await Callgate.load(join(dir, "crm.blob"))]) {
    for (const c of scenarios) {
      const d = cg.evaluate(c.tool, c.args, { role: c.role, agentAttributes: c.agent_attributes, resourceAttributes: c.resource_attributes });
      assert.equal(d.decision, c.expected, c.name);
      assert.equal(d.allowed, c.expected === "Allow");
    }
    const d = cg.evaluate("process_refund", { order_id: "ORD-8821", amount: 800 }, { role: "agent", agentAttributes: { user_id: "agt-099" } });
    assert.deepEqual(d.toJSON(), { decision: "Deny", reason: "process_refund denied for role 'agent': Arguments.amount = 800 is not <= 500 (rule 4)", rule: 3, approvalsRequired: 0 });
    assert.equal(cg.policyVersion, "perso-1.0.0");
  }
});

test("a callgate build-wasm module carries its policy: the same decisions and reasons as the blob", async (t) => {
  const dir = tempDir(t);
  const built = await Callgate.load(buildWasm(CRM, dir));
  const plain = await Callgate.load(compile(CRM, dir));
  assert.deepEqual(Buffer.from(built.blob), Buffer.from(plain.blob));
  for (const c of scenarios) {
    const who = { role: c.role, agentAttributes: c.agent_attributes, resourceAttributes: c.resource_attributes };
    assert.deepEqual(built.evaluate(c.tool, c.args, who).toJSON(), plain.evaluate(c.tool, c.args, who).toJSON(), c.name);
  }
});

test("an Elevate carries its approval count, a rule id names the deciding rule", async (t) => {
  const dir = tempDir(t);
  const ops = await Callgate.load(compile(join(EXAMPLES, "ops_policy.json"), dir));
  const d = ops.evaluate("transfer_funds", { payment: { amount: 500 } }, { role: "agent" });
  assert.deepEqual([d.decision, d.approvalsRequired], ["Elevate", 2]);
  const ids = await Callgate.load(compile(join(CORPUS, "rule_ids_policy.json"), dir));
  const named = JSON.parse(readFileSync(join(CORPUS, "rule_ids_policy.json"), "utf8")).rules.map((r) => r.id ?? null);
  assert.deepEqual(ids.policy.ruleIds, named);
  const cases = JSON.parse(readFileSync(join(CORPUS, "rule_ids_cases.json"), "utf8")).cases;
  const c = cases.find((x) => x.expect.rule !== null && named[x.expect.rule] !== null);
  const got = ids.evaluate(c.tool, c.args, { role: c.role, agentAttributes: c.agent_attributes ?? {}, resourceAttributes: c.resource_attributes ?? {}, context: c.context ?? undefined });
  assert.equal(got.ruleId, named[c.expect.rule]);
});

test("requests the core refuses are RequestErrors with the core's code and byte offset", async (t) => {
  const cg = await Callgate.load(compile(CRM, tempDir(t)));
  const who = { role: "agent" };
  // the offset is the duplicate key's (just after its opening quote) in the request the core read
  const at = requestText("process_refund", rawJson('{"amount": 1, "amount": 2}'), who).indexOf('"amount": 2') + 1;
  assert.throws(() => cg.evaluate("process_refund", rawJson('{"amount": 1, "amount": 2}'), who),
    (e) => e instanceof RequestError && e.code === "duplicate_key" && e.input === "request" && e.offset === at && e.message.endsWith(`at byte ${at} of request`));
  assert.throws(() => cg.evaluate("process_refund", { amount: NaN }, who), (e) => e instanceof RequestError && e.code === "nonfinite");
  assert.throws(() => cg.evaluate("process_refund", { amount: Infinity }, who), (e) => e instanceof RequestError && e.code === "nonfinite");
  const cyclic = {};
  cyclic.self = cyclic;
  assert.throws(() => cg.evaluate("process_refund", cyclic, who), (e) => e instanceof RequestError && e.code === "type");
  assert.throws(() => cg.evaluate("process_refund", { note: "\ud800" }, who), (e) => e instanceof RequestError && e.code === "surrogate");
  // a null that is data is not mistaken for a non-finite number
  assert.equal(cg.evaluate("process_refund", { amount: 1, note: null }, who).decision, "Allow");
  // an integer beyond 64 bits (BigInt) is written exactly and compared by value
  const big = cg.evaluate("process_refund", { amount: 2n ** 70n }, who);
  assert.equal(big.decision, "Deny");
  assert.match(big.reason, /Arguments\.amount = 1180591620717411303424 is not <= 500/);
});

test("a corrupt blob is a BlobError naming the core's cause and offset; reload keeps the old policy", async (t) => {
  const dir = tempDir(t);
  const blob = compile(CRM, dir);
  const bad = Uint8Array.from(blob);
  bad[bad.length - 1] ^= 0xff;
  await assert.rejects(Callgate.load(bad), (e) => e instanceof BlobError && e.code === "blob_checksum" && e.location === "(blob)");
  await assert.rejects(Callgate.load(new Uint8Array([1, 2, 3, 4, 5])), (e) => e instanceof PolicyError && e.code === "blob_magic");
  const cg = await Callgate.load(blob);
  await assert.rejects(cg.reload(bad), BlobError);
  assert.equal(cg.evaluate("view_customer", {}, { role: "agent" }).decision, "Allow");
  const plain = await Callgate.load(join(JS, "lib", "callgate.wasm")).catch((e) => e);
  assert.ok(plain instanceof WasmError && plain.code === "no_policy", "the bare module has no policy to load");
});

test("reload swaps the policy; a decision made before keeps the reason of the policy that made it", async (t) => {
  const dir = tempDir(t);
  const cg = await Callgate.load(compile(CRM, dir));
  const before = cg.evaluate("process_refund", { amount: 800 }, { role: "agent" });
  const policy = JSON.parse(readFileSync(CRM, "utf8"));
  policy.rules[3].condition.NumericCheck.value = 1000;
  policy.version = "raised-cap";
  writeFileSync(join(dir, "raised.json"), JSON.stringify(policy));
  await cg.reload(compile(join(dir, "raised.json"), dir));
  const after = cg.evaluate("process_refund", { amount: 800 }, { role: "agent" });
  assert.equal(after.decision, "Allow");
  assert.equal(cg.policyVersion, "raised-cap");
  assert.equal(before.decision, "Deny");
  assert.equal(before.reason, "process_refund denied for role 'agent': Arguments.amount = 800 is not <= 500 (rule 4)");
});

test("visibility read from the blob is the Python gate's listing for every tool and role of the examples and the corpus", async (t) => {
  const dir = tempDir(t);
  const paths = [CRM, join(EXAMPLES, "spec_policy.json"), join(EXAMPLES, "ops_policy.json"),
                 ...["branches", "files_payments", "leaves", "precedence", "rule_ids"].map((n) => join(CORPUS, `${n}_policy.json`))];
  const requests = [];
  const engines = [];
  for (const p of paths) {
    const policy = JSON.parse(readFileSync(p, "utf8"));
    const cg = await Callgate.load(compile(p, dir));
    const tools = [...new Set([...cg.policy.tools, ...(policy.tools ?? []), "no_such_tool"])];
    const roles = [...new Set([...cg.policy.roles, ...(policy.roles ?? []), "no_such_role"])];
    requests.push({ policy, tools, roles });
    engines.push(cg);
  }
  const python = JSON.parse(pythonScript(join(JS, "test", "python_engine.py"), ["visible"], JSON.stringify(requests)));
  let pairs = 0;
  requests.forEach((r, i) => {
    for (const tool of r.tools) for (const role of r.roles) {
      pairs += 1;
      assert.equal(engines[i].visible(tool, role), python[i][tool][role], `${paths[i]}: ${tool} as ${role}`);
    }
  });
  assert.ok(pairs > 100);
});
