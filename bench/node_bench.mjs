// Median per-decision time of the wasm module under Node, lean export (decide), CRM cases.
//   node bench/node_bench.mjs WASM BLOB CASES.json
import { readFileSync } from "node:fs";
import { Callgate } from "../src/callgate/callgate.mjs";

const [wasmPath, blobPath, casesPath] = process.argv.slice(2);
const cg = await Callgate.load(readFileSync(wasmPath), readFileSync(blobPath));
const cases = JSON.parse(readFileSync(casesPath, "utf8")).cases;
const n = 200000;
const rounds = [];
let allows = 0;
for (let r = 0; r < 15; r++) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const c = cases[i % cases.length];
    allows += cg.evaluate(c.tool, c.args, { role: c.role, agentAttributes: c.agent_attributes, resourceAttributes: c.resource_attributes }).allowed;
  }
  rounds.push(Number(process.hrtime.bigint() - t0) / n);
}
rounds.sort((a, b) => a - b);
console.log(JSON.stringify({ median_ns: rounds[7], min_ns: rounds[0], max_ns: rounds[14], allows }));
