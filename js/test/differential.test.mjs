// The package's evaluate() against the Python engine on every case of the shared corpus
// (tests/corpus, read by tests/support/corpus.py).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { Callgate, RequestError, rawJson, requestText } from "../lib/index.mjs";
import { JS, pythonScript, tempDir } from "./support.mjs";

const SCRIPT = join(JS, "test", "python_engine.py");
const outcome = (d) => ({ decision: d.decision, rule: d.rule, approvals_required: d.approvalsRequired, reason: d.reason });

function decide(cg, tool, role, args, agent, resource, context) {
  try {
    return outcome(cg.evaluate(tool, args, { role, agentAttributes: agent, resourceAttributes: resource, context }));
  } catch (e) {
    if (!(e instanceof RequestError)) throw e;
    return { error: e.message, code: e.code };
  }
}

test("every corpus case: the package decides as the Python engine, decision, rule, approvals and reason", (t) => {
  // Raw path: the request texts the Python API sends (orjson's bytes), through rawJson: the
  // Python engine's outcome exactly, and what the corpus file expects.
  // Object path: the same JSON parsed into JavaScript values (a number loses a form such as
  // 800.0 or -0.0): the Python engine's outcome for the very bytes the package sent, and the
  // same decision, rule and approvals as the raw path.
  const dir = tempDir(t);
  const files = JSON.parse(pythonScript(SCRIPT, ["corpus", dir]));
  assert.ok(files.length >= 5, "the corpus has its files");
  const objectRequests = [];
  const objectOutcomes = [];
  let cases = 0;
  return (async () => {
    for (const f of files) {
      const cg = await Callgate.load(readFileSync(f.blob));
      for (const c of f.cases) {
        cases += 1;
        const { args, agent, resource, context } = c.texts;
        const raw = decide(cg, c.tool, c.role, rawJson(args), rawJson(agent), rawJson(resource), context === null ? undefined : rawJson(context));
        assert.deepEqual(raw, c.python, `${f.name}: ${c.name} (raw JSON)`);
        const expect = typeof c.expect === "string" ? { decision: c.expect } : c.expect;
        for (const key of ["decision", "rule", "approvals_required", "reason"]) {
          if (key in expect) assert.deepEqual(raw[key], expect[key], `${f.name}: ${c.name}: ${key} as the corpus expects`);
        }
        const values = [JSON.parse(args), JSON.parse(agent), JSON.parse(resource), context === null ? undefined : JSON.parse(context)];
        const got = decide(cg, c.tool, c.role, ...values);
        objectOutcomes.push([f.name, c.name, got, raw]);
        const who = { role: c.role, agentAttributes: values[1], resourceAttributes: values[2], context: values[3] };
        const parts = JSON.parse(requestText(c.tool, values[0], who));
        const text = (v) => JSON.stringify(v);
        objectRequests.push({
          blob: f.blob, tool: c.tool, args: text(parts[2]),
          context: `{"role":${text(c.role)},"agent_attrs":${text(parts[3])},"resource_attrs":${text(parts[4])}${parts.length > 5 ? `,"context":${text(parts[5])}` : ""}}`,
        });
      }
    }
    const python_ = JSON.parse(pythonScript(SCRIPT, ["evaluate-json"], JSON.stringify(objectRequests)));
    assert.equal(python_.length, cases);
    let reworded = 0;
    objectOutcomes.forEach(([file, name, got, raw], i) => {
      assert.deepEqual(got, python_[i], `${file}: ${name} (JavaScript values, the same bytes in Python)`);
      assert.deepEqual([got.decision, got.rule, got.approvals_required], [raw.decision, raw.rule, raw.approvals_required], `${file}: ${name}: same decision from values as from text`);
      if (got.reason !== raw.reason) reworded += 1;
    });
    // only numbers JavaScript writes differently (-0.0, 1500.0) change a reason's wording
    t.diagnostic(`${cases} cases, ${reworded} reasons reworded by JavaScript number forms`);
    assert.ok(reworded <= 3, `${reworded} reasons quote a number in JavaScript's form`);
    assert.ok(cases >= 100, `${cases} cases`);
  })();
});
