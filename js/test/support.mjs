// What the package's tests share: where the repository is, the Python engine they compare
// against (its callgate command line), compiled policies, temporary directories.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const JS = join(dirname(fileURLToPath(import.meta.url)), "..");
export const REPO = join(JS, "..");
export const CORPUS = join(REPO, "tests", "corpus");
export const EXAMPLES = join(REPO, "src", "callgate", "examples");

/** The Python that has callgate: $CALLGATE_PYTHON, else the repository's .venv, else python3. */
export const PYTHON = process.env.CALLGATE_PYTHON
  || (existsSync(join(REPO, ".venv", "bin", "python")) ? join(REPO, ".venv", "bin", "python") : "python3");

/** Run Python code (with the repository's tests/ on the path); its stdout. */
export function python(code, args = [], input = undefined) {
  const r = spawnSync(PYTHON, ["-c", code, ...args], { input, encoding: "utf8", maxBuffer: 1 << 28, cwd: REPO,
                                                        env: { ...process.env, PYTHONPATH: join(REPO, "tests") } });
  if (r.status !== 0) throw new Error(`python failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Run a Python script (tests/ on the path); its stdout. */
export function pythonScript(script, args = [], input = undefined) {
  const r = spawnSync(PYTHON, [script, ...args], { input, encoding: "utf8", maxBuffer: 1 << 28, cwd: REPO,
                                                  env: { ...process.env, PYTHONPATH: join(REPO, "tests") } });
  if (r.status !== 0) throw new Error(`${script} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Run the callgate command line: {status, stdout, stderr}. */
export function callgate(...args) {
  const r = spawnSync(PYTHON, ["-m", "callgate", ...args], { encoding: "utf8", cwd: REPO, env: { ...process.env, NO_COLOR: "1" } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A temporary directory, removed when the test ends. */
export function tempDir(t, prefix = "callgate-js-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** `callgate compile POLICY -o BLOB` (the build step a Node user runs): the blob's bytes. */
export function compile(policy, dir, semantics = "strict") {
  const out = join(dir, `${Math.random().toString(36).slice(2)}.blob`);
  const r = callgate("compile", policy, "-o", out, "--semantics", semantics);
  if (r.status !== 0) throw new Error(`callgate compile ${policy}: ${r.stderr}`);
  return readFileSync(out);
}

/** `callgate build-wasm POLICY -o MODULE`: the module's bytes. */
export function buildWasm(policy, dir) {
  const out = join(dir, "policy.wasm");
  const r = callgate("build-wasm", policy, "-o", out);
  if (r.status !== 0) throw new Error(`callgate build-wasm ${policy}: ${r.stderr}`);
  return readFileSync(out);
}

/** Run a program, failing the test with its output when it fails. */
export function run(cmd, args, options = {}) {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", maxBuffer: 1 << 26, ...options });
  } catch (e) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${e.stdout ?? ""}${e.stderr ?? ""}`);
  }
}
