// Build the npm package from the repository, and keep the one JS source in one place:
//
//   node scripts/build.mjs           copy the wasm module into lib/ and write the copies
//   node scripts/build.mjs --check   exit 1 (saying which) when a copy differs from its source
//
// - lib/callgate.wasm   <- $CALLGATE_WASM, else ../src/callgate/callgate.wasm (built by
//                          `python scripts/build_wasm.py`, or by `pip install .`)
// - LICENSE             <- ../LICENSE
// - ../src/callgate/callgate.mjs                 <- lib/callgate.mjs  (the wheel's copy)
// - ../src/callgate/playground/static/audit.mjs  <- lib/audit.mjs     (the playground's copy)
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const js = join(dirname(fileURLToPath(import.meta.url)), "..");
const repo = join(js, "..");
export const COPIES = [
  [join(js, "lib", "callgate.mjs"), join(repo, "src", "callgate", "callgate.mjs")],
  [join(js, "lib", "audit.mjs"), join(repo, "src", "callgate", "playground", "static", "audit.mjs")],
];

// run as a script (the tests import COPIES without building)
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();

function main() {
  const check = process.argv.includes("--check");
  const stale = [];
  for (const [source, copy] of COPIES) {
    const want = readFileSync(source);
    const have = existsSync(copy) ? readFileSync(copy) : null;
    if (have !== null && have.equals(want)) continue;
    if (check) stale.push(`${relative(repo, copy)} differs from ${relative(repo, source)} (run: npm run build in js/)`);
    else {
      writeFileSync(copy, want);
      console.error(`wrote ${relative(repo, copy)} from ${relative(repo, source)}`);
    }
  }
  if (check) {
    for (const line of stale) console.error(`error: ${line}`);
    process.exit(stale.length ? 1 : 0);
  }

  const wasm = process.env.CALLGATE_WASM || join(repo, "src", "callgate", "callgate.wasm");
  if (!existsSync(wasm)) {
    console.error(`error: ${wasm} is missing: build it with \`python scripts/build_wasm.py\` (or pip install .), or set CALLGATE_WASM`);
    process.exit(1);
  }
  copyFileSync(wasm, join(js, "lib", "callgate.wasm"));
  copyFileSync(join(repo, "LICENSE"), join(js, "LICENSE"));
  console.error(`copied ${relative(repo, wasm)} into js/lib/callgate.wasm`);
}
