// What a user gets: `npm pack`, the tarball installed into an empty project, the README's Node
// example run there (it prints the CRM decisions) and type-checked by tsc against the
// tarball's declarations.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { JS, REPO, callgate, python, run, tempDir } from "./support.mjs";

const NPM = process.env.npm_execpath && process.env.npm_execpath.endsWith(".js") ? [process.execPath, process.env.npm_execpath] : ["npm"];
const npm = (args, options) => run(NPM[0], [...NPM.slice(1), ...args], options);

/** The first ```js block of the README's "Node and browsers" section. */
export function readmeExample() {
  const readme = readFileSync(join(REPO, "README.md"), "utf8");
  const section = readme.split(/^## /m).find((s) => s.startsWith("Node and browsers"));
  assert.ok(section, "the README has a 'Node and browsers' section");
  const m = /```js\n([\s\S]*?)```/.exec(section);
  assert.ok(m, "the section has a ```js example");
  return m[1];
}

test("npm pack: the tarball installed into an empty project runs the README example, which prints the CRM decisions and type-checks", (t) => {
  const dir = tempDir(t, "callgate-pack-");
  const packed = JSON.parse(npm(["pack", "--json", "--pack-destination", dir], { cwd: JS }));
  const tarball = join(dir, packed[0].filename);
  const names = packed[0].files.map((f) => f.path).sort();
  for (const need of ["lib/callgate.wasm", "lib/callgate.mjs", "lib/audit.mjs", "lib/audit-file.mjs", "lib/mcp.mjs", "types/index.d.ts", "package.json", "README.md", "LICENSE"]) {
    assert.ok(names.includes(need), `the tarball has ${need}: ${names}`);
  }
  assert.ok(!names.some((n) => n.startsWith("test/") || n.startsWith("node_modules/")), "no tests nor dependencies in the tarball");

  const project = join(dir, "project");
  mkdirSync(project);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "fresh", private: true, type: "module" }));
  // the package has no dependencies: installing the tarball needs no registry
  npm(["install", "--offline", "--no-audit", "--no-fund", tarball], { cwd: project });
  assert.deepEqual(readdirSync(join(project, "node_modules")).filter((n) => !n.startsWith(".")), ["callgate"]);

  const r = callgate("compile", "crm", "-o", join(project, "crm.blob"));
  assert.equal(r.status, 0, r.stderr);
  const example = readmeExample();
  writeFileSync(join(project, "example.mjs"), example);
  const out = run(process.execPath, ["example.mjs"], { cwd: project });
  // what the Python engine says of the same calls, line for line
  const expected = python(`
import callgate
from callgate import examples
e = callgate.Engine.from_dict(examples.policy("crm"))
who = dict(role="agent", agent_attributes={"user_id": "agt-099"})
for amount in (200, 800):
    d = e.evaluate("process_refund", {"order_id": "ORD-8821", "amount": amount}, **who)
    print(f"refund {amount}: {d.decision} ({d.reason})")
print(e.evaluate("delete_customer", {"customer_id": "C-1042"}, **who).decision)
`);
  assert.equal(out, expected);
  assert.match(out, /^refund 200: Allow .*\nrefund 800: Deny .*800.*\nDeny\n$/);

  // the same text as TypeScript, checked against the declarations in the tarball
  writeFileSync(join(project, "example.mts"), example);
  writeFileSync(join(project, "tsconfig.json"), JSON.stringify({
    compilerOptions: { target: "es2022", module: "nodenext", moduleResolution: "nodenext", strict: true, noEmit: true,
                       types: ["node"], typeRoots: [join(JS, "node_modules", "@types")] },
    files: ["example.mts"],
  }));
  run(process.execPath, [join(JS, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], { cwd: project });
  // and tsc does catch a misuse through those declarations (a role that is not a string)
  writeFileSync(join(project, "example.mts"), example.replace('role: "agent"', "role: 7"));
  assert.throws(() => run(process.execPath, [join(JS, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], { cwd: project }), /TS2322|TS2345|TS2769/);
});
