// Runs cases through src/callgate/callgate.mjs under Node and prints one JSON line per case:
//   node run_cases.mjs WASM BLOB CASES.json
//     -> {"decision","rule","approvals_required","reason"} or {"error","code"}
import { readFileSync } from "node:fs";
import { Callgate, CallgateError } from "../../src/callgate/callgate.mjs";

const [wasmPath, blobPath, casesPath] = process.argv.slice(2);
const cg = await Callgate.load(readFileSync(wasmPath), blobPath === "-" ? undefined : readFileSync(blobPath));
const cases = JSON.parse(readFileSync(casesPath, "utf8")).cases;
for (const c of cases) {
  try {
    if (c.args_json !== undefined) {
      const r = cg.evaluateJson(c.tool, c.args_json, c.context_json);
      console.log(JSON.stringify({ decision: r.decision, rule: r.rule, approvals_required: r.approvals_required ?? 0, reason: r.reason }));
      continue;
    }
    const d = cg.evaluate(c.tool, c.args, { role: c.role, agentAttributes: c.agent_attributes, resourceAttributes: c.resource_attributes, context: c.context });
    console.log(JSON.stringify({ decision: d.decision, rule: d.rule, approvals_required: d.approvalsRequired, reason: d.reason }));
  } catch (e) {
    if (!(e instanceof CallgateError)) throw e;
    console.log(JSON.stringify({ error: e.message, code: e.code }));
  }
}
